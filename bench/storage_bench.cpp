// storage_bench: ingest throughput of storage::batcher on a real RocksDB, and
// the latency of aggregate queries on what it wrote.
//
//   storage_bench [devices=1000] [readings_per_device=2000] [flush_every=10000] [path]
//
// Each device gets batches of 100 readings of 4 metrics, one reading per
// second of device time; a flush runs whenever `flush_every` readings are
// buffered, as a shard does with batch.max-readings.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "storage/batcher.hpp"
#include "storage/query.hpp"

using namespace pulse;
using namespace pulse::storage;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t devices = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 1000;
  const std::size_t per_device = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 2000;
  const std::size_t flush_every = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 10000;
  const std::string path = argc > 4 ? argv[4] : "/tmp/pulse-storage-bench";
  std::filesystem::remove_all(path);

  status st;
  auto db = store::open({path, false}, st);
  if (!db) {
    std::fprintf(stderr, "open: %s\n", st.message.c_str());
    return 1;
  }
  const std::int64_t t0 = 1'731'801'600'000;
  constexpr std::size_t per_batch = 100;
  reading_batch b;
  b.metrics = {"voltage", "current", "power", "energy"};
  std::vector<ack_entry> acks;
  flush_stats fs;
  std::size_t total = 0, flushes = 0, chunks = 0, bytes = 0;
  // One flush, as a shard does it, counted into the totals.
  auto flush = [&](batcher& w) {
    if (auto s = w.flush(acks, fs); !s) {
      std::fprintf(stderr, "flush: %s\n", s.message.c_str());
      return false;
    }
    ++flushes;
    chunks += fs.chunks;
    bytes += fs.bytes;
    return true;
  };
  auto start = std::chrono::steady_clock::now();
  {
    batcher w(*db);
    for (std::size_t off = 0; off < per_device; off += per_batch) {
      for (std::size_t d = 0; d < devices; ++d) {
        b.device = "meter-" + std::to_string(d);
        b.rows.clear();
        b.samples.clear();
        for (std::size_t i = 0; i < per_batch && off + i < per_device; ++i) {
          auto k = off + i;
          reading_row row;
          row.ts = t0 + static_cast<std::int64_t>(k) * 1000;
          row.seq = k + 1;
          row.has_seq = true;
          row.first = static_cast<std::uint32_t>(b.samples.size());
          row.count = 4;
          b.rows.push_back(row);
          b.samples.push_back({0, 230.0 + static_cast<double>(k % 7) * 0.1});
          b.samples.push_back({1, 5.0 + static_cast<double>(d % 3)});
          b.samples.push_back({2, 1150.0 + static_cast<double>(k % 11)});
          b.samples.push_back({3, static_cast<double>(k) * 0.3});
        }
        total += w.add(d, b, 0).accepted;
        if (w.pending() >= flush_every) {
          if (!flush(w)) return 1;
        }
      }
    }
    if (!flush(w)) return 1;
  }
  auto secs = seconds_since(start);
  std::printf(
      "ingest: %zu readings, %zu flushes, %zu chunks, %.1f MB batches in %.2f s = %.2f M "
      "readings/s\n",
      total, flushes, chunks, static_cast<double>(bytes) / 1e6, secs,
      static_cast<double>(total) / secs / 1e6);

  const std::int64_t span = static_cast<std::int64_t>(per_device) * 1000;
  struct q {
    const char* name;
    std::int64_t from, to, step;
  };
  const q queries[] = {
      {"1h steps, aligned", t0, t0 + span, 3'600'000},
      {"1m steps, ragged", t0 + 1234, t0 + span - 4321, 60'000},
      {"90s steps", t0, t0 + span, 90'000},
      {"1s steps", t0, t0 + span, 1000},
      {"15m steps, aligned", t0, t0 + span / 900'000 * 900'000, 900'000},
      {"1d steps, ragged", t0 + 1234, t0 + span - 4321, 86'400'000},
  };
  for (const auto& qq : queries) {
    for (bool raw : {false, true}) {
      auto t = std::chrono::steady_clock::now();
      std::size_t n = 0;
      const std::size_t reps = 200;
      for (std::size_t i = 0; i < reps; ++i) {
        auto dev = "meter-" + std::to_string(i % devices);
        auto out = raw ? aggregate_device_raw(*db, dev, "power", qq.from, qq.to, qq.step, st)
                       : aggregate_device(*db, dev, "power", qq.from, qq.to, qq.step, st);
        n += out.size();
      }
      std::printf("query %-18s %-8s %8.3f ms/query (%zu buckets)\n", qq.name,
                  raw ? "raw" : "rollups", seconds_since(t) * 1e3 / reps, n / reps);
    }
  }
  std::printf("%s", db->stats_text().c_str());
  db.reset();
  std::filesystem::remove_all(path);
  return 0;
}
