#include "storage/batcher.hpp"

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <map>
#include <random>

#include "storage/chunk.hpp"
#include "storage/keys.hpp"
#include "storage/query.hpp"
#include "storage/rollup.hpp"
#include "tests/storage/test_db.hpp"

using namespace pulse;
using namespace pulse::storage;
using namespace pulse::storage::test;

namespace {

using ack_map = std::map<std::pair<std::uint64_t, std::string>, std::uint64_t>;

ack_map flush_ok(batcher& b, flush_stats* stats = nullptr) {
  std::vector<ack_entry> acks;
  flush_stats fs;
  auto st = b.flush(acks, fs);
  REQUIRE(st.ok);
  ack_map m;
  for (auto& a : acks) {
    auto [it, inserted] = m.emplace(std::make_pair(a.owner, a.device), a.seq);
    CHECK(inserted);  // one ack per (owner, device)
  }
  if (stats) *stats = fs;
  return m;
}

// Readings CF keys, decoded, in key order.
std::vector<std::pair<readings_key_parts, std::string>> chunk_keys(store& db) {
  std::vector<std::pair<readings_key_parts, std::string>> out;
  std::unique_ptr<rocksdb::Iterator> it(
      db.db()->NewIterator(rocksdb::ReadOptions(), db.readings_cf()));
  static std::vector<std::string> keep;  // keeps the device views alive
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    keep.push_back(it->key().ToString());
    readings_key_parts p;
    REQUIRE(decode_readings_key(keep.back(), p));
    out.emplace_back(p, it->value().ToString());
  }
  REQUIRE(it->status().ok());
  return out;
}

std::vector<stored_reading> all_readings(store& db, const std::string& device) {
  std::string next;
  status st;
  auto out = read_readings(db, device, 0, max_ts, 1'000'000, "", next, st);
  REQUIRE(st.ok);
  CHECK(next.empty());
  return out;
}

std::vector<std::uint64_t> seqs(const std::vector<stored_reading>& rs) {
  std::vector<std::uint64_t> out;
  for (auto& x : rs) out.push_back(x.seq);
  return out;
}

}  // namespace

TEST_CASE("batcher acks one cumulative seq per owner and device", "[batcher]") {
  test_db t;
  batcher b(t.db());
  auto res = b.add(1, make_batch("meter-1", {r(t0, 1, {{"v", 1}}), r(t0 + 1, 2, {{"v", 2}})}), 500);
  CHECK(res.accepted == 2);
  CHECK(res.duplicates == 0);
  CHECK(res.rejected == 0);
  b.add(2, make_batch("meter-1", {r(t0 + 2, 3, {{"v", 3}})}), 500);
  b.add(1, make_batch("meter-2", {r(t0, 7, {{"v", 1}})}), 500);
  b.add(1, make_batch("meter-1", {r(t0 + 3, 4, {{"v", 4}})}), 500);
  CHECK(b.pending() == 5);
  flush_stats fs;
  auto acks = flush_ok(b, &fs);
  CHECK(acks == ack_map{{{1, "meter-1"}, 4}, {{2, "meter-1"}, 3}, {{1, "meter-2"}, 7}});
  CHECK(b.pending() == 0);
  CHECK(fs.readings == 5);
  CHECK(fs.devices == 2);
  CHECK(fs.chunks == 2);
  CHECK(fs.bytes > 0);
  CHECK(b.last_seq("meter-1") == 4);
  CHECK(b.last_seq("meter-2") == 7);
  CHECK(b.last_seq("unknown") == 0);

  // Nothing buffered: an empty flush writes nothing and acks nothing.
  CHECK(flush_ok(b, &fs).empty());
  CHECK(fs.readings == 0);
}

TEST_CASE("batcher deduplicates within a batch, across flushes and after reopening", "[batcher]") {
  test_db t;
  {
    batcher b(t.db());
    auto res = b.add(
        1,
        make_batch("d", {r(t0, 1, {{"v", 1}}), r(t0 + 1, 2, {{"v", 2}}), r(t0 + 1, 2, {{"v", 2}}),
                         r(t0 + 2, 3, {{"v", 3}}), r(t0 + 3, 2, {{"v", 99}})}),
        0);
    CHECK(res.accepted == 3);
    CHECK(res.duplicates == 2);
    CHECK(b.pending() == 5);  // duplicates wait for their ack too
    CHECK(flush_ok(b) == ack_map{{{1, "d"}, 3}});

    res = b.add(1,
                make_batch("d", {r(t0 + 1, 2, {{"v", 2}}), r(t0 + 3, 3, {{"v", 3}}),
                                 r(t0 + 4, 4, {{"v", 4}}), r(t0 + 5, 5, {{"v", 5}})}),
                0);
    CHECK(res.accepted == 2);
    CHECK(res.duplicates == 2);
    CHECK(flush_ok(b) == ack_map{{{1, "d"}, 5}});
  }
  t.reopen();
  {
    batcher b(t.db());
    CHECK(b.last_seq("d") == 5);
    auto res = b.add(9, make_batch("d", {r(t0, 1, {{"v", 1}}), r(t0 + 5, 5, {{"v", 5}})}), 0);
    CHECK(res.accepted == 0);
    CHECK(res.duplicates == 2);
    flush_stats fs;
    // Only duplicates: acked without a write.
    CHECK(flush_ok(b, &fs) == ack_map{{{9, "d"}, 5}});
    CHECK(fs.readings == 0);
    CHECK(fs.chunks == 0);
    res = b.add(9, make_batch("d", {r(t0 + 6, 6, {{"v", 6}})}), 0);
    CHECK(res.accepted == 1);
    CHECK(flush_ok(b) == ack_map{{{9, "d"}, 6}});
  }
  auto rs = all_readings(t.db(), "d");
  CHECK(seqs(rs) == std::vector<std::uint64_t>{1, 2, 3, 4, 5, 6});
  REQUIRE(rs[1].values.size() == 1);
  CHECK(rs[1].values[0].second == 2.0);  // the first copy of seq 2 won, not the 99
}

TEST_CASE("batcher assigns seq to readings without one", "[batcher]") {
  test_db t;
  batcher b(t.db());
  auto res = b.add(1, make_batch("d", {r_noseq(t0, {{"v", 1}}), r_noseq(t0 + 1, {{"v", 2}})}), 0);
  CHECK(res.accepted == 2);
  CHECK(b.last_seq("d") == 2);
  b.add(1, make_batch("d", {r(t0 + 2, 10, {{"v", 3}}), r_noseq(t0 + 3, {{"v", 4}})}), 0);
  CHECK(flush_ok(b) == ack_map{{{1, "d"}, 11}});
  b.add(2, make_batch("d", {r_noseq(t0 + 4, {{"v", 5}})}), 0);
  CHECK(flush_ok(b) == ack_map{{{2, "d"}, 12}});
  CHECK(seqs(all_readings(t.db(), "d")) == std::vector<std::uint64_t>{1, 2, 10, 11, 12});
}

TEST_CASE("batcher takes seq 0 only as a device's first reading", "[batcher]") {
  test_db t;
  batcher b(t.db());
  auto res = b.add(1, make_batch("d", {r(t0, 0, {{"v", 1}}), r(t0 + 1, 0, {{"v", 2}})}), 0);
  CHECK(res.accepted == 1);
  CHECK(res.duplicates == 1);
  CHECK(flush_ok(b) == ack_map{{{1, "d"}, 0}});
  CHECK(seqs(all_readings(t.db(), "d")) == std::vector<std::uint64_t>{0});
  t.reopen();
  batcher b2(t.db());
  res = b2.add(1, make_batch("d", {r(t0, 0, {{"v", 1}}), r_noseq(t0 + 2, {{"v", 3}})}), 0);
  CHECK(res.duplicates == 1);
  CHECK(res.accepted == 1);
  CHECK(flush_ok(b2) == ack_map{{{1, "d"}, 1}});
}

TEST_CASE("batcher rejects what storage cannot hold", "[batcher]") {
  test_db t;
  batcher b(t.db());
  auto batch = make_batch("d", {r(-1, 1, {{"v", 1}}), r(max_ts + 1, 2, {{"v", 1}}),
                                r(t0, 3, {{"v", std::numeric_limits<double>::quiet_NaN()}}),
                                r(t0, 4, {{"v", std::numeric_limits<double>::infinity()}}),
                                r(t0, 5, {{"bad name!", 1}}), r(t0, 6, {{"v", 6}})});
  batch.rows.push_back({t0, 7, 1000, 1, true});  // samples out of range
  auto res = b.add(1, batch, 0);
  CHECK(res.rejected == 6);
  CHECK(res.accepted == 1);
  CHECK(b.add(1, make_batch(std::string(129, 'x'), {r(t0, 1, {{"v", 1}})}), 0).rejected == 1);
  CHECK(b.add(1, make_batch("", {r(t0, 1, {{"v", 1}})}), 0).rejected == 1);
  CHECK(flush_ok(b) == ack_map{{{1, "d"}, 6}});
  status st;
  auto rec = t.db().load_device("d", st);
  REQUIRE(rec);
  CHECK(rec->metrics == std::vector<std::string>{"v"});  // the bad name did not enter
}

TEST_CASE("batcher grows the metric dictionary and maps batch-local indices", "[batcher]") {
  test_db t;
  batcher b(t.db());
  b.add(1, make_batch("d", {r(t0, 1, {{"voltage", 230.0}, {"current", 5.0}})}), 0);
  flush_ok(b);
  // A different batch-local order and a new metric.
  b.add(1,
        make_batch("d", {r(t0 + 1, 2, {{"power", 1150.0}, {"current", 5.5}, {"voltage", 231.0}})}),
        0);
  flush_ok(b);
  status st;
  auto rec = t.db().load_device("d", st);
  REQUIRE(rec);
  CHECK(rec->metrics == std::vector<std::string>{"voltage", "current", "power"});

  // A new batcher (restarted shard) continues the same dictionary.
  batcher b2(t.db());
  b2.add(1, make_batch("d", {r(t0 + 2, 3, {{"energy", 7.0}, {"voltage", 229.0}})}), 0);
  flush_ok(b2);
  rec = t.db().load_device("d", st);
  REQUIRE(rec);
  CHECK(rec->metrics == std::vector<std::string>{"voltage", "current", "power", "energy"});

  auto rs = all_readings(t.db(), "d");
  REQUIRE(rs.size() == 3);
  using values = std::vector<std::pair<std::string, double>>;
  CHECK(rs[0].values == values{{"voltage", 230.0}, {"current", 5.0}});
  CHECK(rs[1].values == values{{"power", 1150.0}, {"current", 5.5}, {"voltage", 231.0}});
  CHECK(rs[2].values == values{{"energy", 7.0}, {"voltage", 229.0}});
}

TEST_CASE("batcher writes one chunk per device and hour per flush", "[batcher]") {
  test_db t;
  batcher b(t.db());
  std::vector<reading_spec> a, c;
  for (int i = 0; i < 30; ++i) {
    // 3 hours, out of order within the batch
    std::int64_t ts = t0 + (i % 3) * ms_per_hour + i * 1000;
    a.push_back(r(ts, static_cast<std::uint64_t>(i + 1), {{"v", i * 1.0}}));
    c.push_back(r(ts + 7, static_cast<std::uint64_t>(i + 1), {{"w", -i * 1.0}}));
  }
  b.add(1, make_batch("dev-a", a), 0);
  b.add(1, make_batch("dev-c", c), 0);
  flush_stats fs;
  flush_ok(b, &fs);
  CHECK(fs.chunks == 6);
  CHECK(fs.readings == 60);
  CHECK(fs.devices == 2);
  auto keys = chunk_keys(t.db());
  REQUIRE(keys.size() == 6);
  for (auto& [k, v] : keys) {
    decoded_chunk dc;
    REQUIRE(decode_chunk(v, k.first_ts, k.first_seq, dc));
    CHECK(dc.rows.size() == 10);
    CHECK(dc.rows.front().ts == k.first_ts);  // the key names the chunk's first reading
    CHECK(dc.rows.front().seq == k.first_seq);
    for (auto& row : dc.rows) CHECK(hour_bucket(row.ts) == k.bucket);
  }
  // Second flush into one of the same hours: one more chunk.
  b.add(1, make_batch("dev-a", {r(t0 + 5, 100, {{"v", 1}}), r(t0 + 6, 101, {{"v", 1}})}), 0);
  flush_ok(b, &fs);
  CHECK(fs.chunks == 1);
  CHECK(chunk_keys(t.db()).size() == 7);
  // Overlapping chunks of one hour still read back in (ts, seq) order.
  auto rs = all_readings(t.db(), "dev-a");
  REQUIRE(rs.size() == 32);
  CHECK(std::is_sorted(rs.begin(), rs.end(), [](auto& x, auto& y) {
    return x.ts != y.ts ? x.ts < y.ts : x.seq < y.seq;
  }));
  CHECK(rs[1].seq == 100);
}

TEST_CASE("batcher rollup rows agree with the raw readings", "[batcher]") {
  test_db t;
  std::map<std::pair<char, std::uint32_t>, aggregate> expected;  // per (resolution, bucket)
  auto account = [&](std::int64_t ts, std::uint64_t seq, double v) {
    expected[{'m', minute_bucket(ts)}].add(v, ts, seq);
    expected[{'h', hour_bucket(ts)}].add(v, ts, seq);
  };
  std::uint64_t seq = 0;
  std::mt19937_64 rng(17);
  for (int round = 0; round < 4; ++round) {
    // A new batcher every other round: rollups must read through to disk.
    batcher b(t.db());
    for (int f = 0; f < 3; ++f) {
      std::vector<reading_spec> rs;
      for (int i = 0; i < 50; ++i) {
        std::int64_t ts =
            t0 + static_cast<std::int64_t>(rng() % (2 * ms_per_hour));  // late data too
        double v = static_cast<double>(static_cast<std::int64_t>(rng() % 20001) - 10000) / 7.0;
        rs.push_back(r(ts, ++seq, {{"x", v}}));
        account(ts, seq, v);
      }
      b.add(1, make_batch("dev", rs), 0);
      flush_ok(b);
    }
  }
  std::size_t rows = 0;
  for (const auto& [k, agg] : expected) {
    auto key = rollup_key(k.first == 'm' ? resolution::minute : resolution::hour, k.second, "dev");
    std::string v;
    REQUIRE(t.db().db()->Get(rocksdb::ReadOptions(), t.db().rollups_cf(), key, &v).ok());
    rollup_row row;
    REQUIRE(decode_rollup_row(v, row));
    REQUIRE(row.entries.size() == 1);
    const auto& got = row.entries[0].agg;
    CHECK(got.count == agg.count);
    CHECK(got.sum() == agg.sum());
    CHECK(got.min == agg.min);
    CHECK(got.max == agg.max);
    CHECK(got.first == agg.first);
    CHECK(got.first_seq == agg.first_seq);
    CHECK(got.last == agg.last);
    CHECK(got.last_ts == agg.last_ts);
    ++rows;
  }
  CHECK(rows > 100);
  status st;
  auto hourly = aggregate_device(t.db(), "dev", "x", t0, t0 + 2 * ms_per_hour, ms_per_hour, st);
  REQUIRE(st.ok);
  REQUIRE(hourly.size() == 2);
  CHECK(hourly[0].agg.count + hourly[1].agg.count == 600);
}

TEST_CASE("batcher meta record: latest by (ts, seq), seen times, meta json", "[batcher]") {
  test_db t;
  batcher b(t.db());
  b.add(1,
        make_batch("d", {r(t0 + 100, 5, {{"v", 5}, {"w", 50}}), r(t0 + 50, 6, {{"v", 6}})},
                   R"({"fw":"1"})"),
        1000);
  b.add(1, make_batch("d", {r(t0 + 100, 7, {{"v", 7}})}), 1500);
  flush_ok(b);
  status st;
  auto rec = t.db().load_device("d", st);
  REQUIRE(rec);
  CHECK(rec->last_seq == 7);
  CHECK(rec->first_seen == 1000);
  CHECK(rec->last_seen == 1500);
  CHECK(rec->meta == R"({"fw":"1"})");
  CHECK(rec->latest_ts == t0 + 100);
  CHECK(rec->latest == std::vector<std::pair<std::string, double>>{{"v", 7}});

  // An older reading arriving later does not replace the latest values.
  b.add(1, make_batch("d", {r(t0 + 10, 8, {{"w", 8}})}, R"({"fw":"2"})"), 2000);
  flush_ok(b);
  rec = t.db().load_device("d", st);
  REQUIRE(rec);
  CHECK(rec->last_seq == 8);
  CHECK(rec->first_seen == 1000);
  CHECK(rec->last_seen == 2000);
  CHECK(rec->meta == R"({"fw":"2"})");
  CHECK(rec->latest == std::vector<std::pair<std::string, double>>{{"v", 7}});

  // A newer one does, also after a restart.
  batcher b2(t.db());
  b2.add(1, make_batch("d", {r(t0 + 101, 9, {{"w", 9}, {"v", 1}})}), 3000);
  flush_ok(b2);
  rec = t.db().load_device("d", st);
  REQUIRE(rec);
  CHECK(rec->latest_ts == t0 + 101);
  CHECK(rec->latest == std::vector<std::pair<std::string, double>>{{"w", 9}, {"v", 1}});
  CHECK(rec->first_seen == 1000);
}

TEST_CASE("batcher flush failure acks nothing, drops the buffer and reloads state", "[batcher]") {
  // The write path reads nothing, so a flush fails only when RocksDB refuses
  // the write: injected EIO on every file append.
  test::temp_dir dir;
  auto faults = std::make_shared<fault_injector>();
  store_options so(dir.path() + "/db");
  so.faults = faults;
  status st;
  auto db = store::open(so, st);
  REQUIRE(db);
  batcher b(*db);
  b.add(1, make_batch("d", {r(t0, 1, {{"v", 1}})}), 0);
  flush_ok(b);
  b.add(1, make_batch("d", {r(t0 + 1, 2, {{"v", 2}}), r(t0 + 2, 3, {{"new_metric", 3}})}), 0);
  b.add(2, make_batch("e", {r(t0, 1, {{"v", 1}})}), 0);
  CHECK(b.last_seq("d") == 3);  // buffered counts as seen
  faults->mode = injected_fault::eio_write;
  std::vector<ack_entry> acks;
  flush_stats fs;
  st = b.flush(acks, fs);
  CHECK_FALSE(st.ok);
  CHECK(st.fault == fault::io_error);
  CHECK(acks.empty());
  CHECK(fs.readings == 0);
  CHECK(b.pending() == 0);
  // The disk comes back (the node's storage probe reopens the store).
  faults->mode = injected_fault::off;
  REQUIRE(db->recover());
  // Nothing of the failed flush is on disk, and the state was reloaded.
  CHECK(b.last_seq("d") == 1);
  CHECK(b.last_seq("e") == 0);
  CHECK(chunk_keys(*db).size() == 1);
  status s2;
  CHECK(db->load_device("d", s2)->metrics == std::vector<std::string>{"v"});

  // The resent readings go through.
  auto res =
      b.add(1, make_batch("d", {r(t0 + 1, 2, {{"v", 2}}), r(t0 + 2, 3, {{"new_metric", 3}})}), 0);
  CHECK(res.accepted == 2);
  CHECK(flush_ok(b) == ack_map{{{1, "d"}, 3}});
  CHECK(seqs(all_readings(*db, "d")) == std::vector<std::uint64_t>{1, 2, 3});
  auto m = aggregate_device(*db, "d", "v", t0, t0 + ms_per_minute, ms_per_minute, st);
  REQUIRE(m.size() == 1);
  CHECK(m[0].agg.count == 2);
  CHECK(m[0].agg.sum() == 3.0);
}

TEST_CASE("batcher: a corrupt stored rollup row fails the query that reads it, not the flush",
          "[batcher]") {
  test_db t;
  {
    batcher b(t.db());
    b.add(1, make_batch("d", {r(t0, 1, {{"v", 1}})}), 0);
    flush_ok(b);
  }
  const auto hour_key = rollup_key(resolution::hour, hour_bucket(t0), "d");
  rocksdb::WriteBatch wb;
  REQUIRE(wb.Put(t.db().rollups_cf(), hour_key, "junk").ok());
  REQUIRE(t.db().write(wb));
  batcher b(t.db());  // a fresh cache: the hour's row is not known whole
  b.add(1, make_batch("d", {r(t0 + 1, 2, {{"v", 2}})}), 0);
  flush_ok(b);  // a Merge operand: nothing read
  status st;
  const std::int64_t hour = hour_bucket(t0) * ms_per_hour;
  aggregate_device(t.db(), "d", "v", hour, hour + ms_per_hour, ms_per_hour, st);
  CHECK_FALSE(st.ok);
  // The raw readings are intact.
  CHECK(seqs(all_readings(t.db(), "d")) == std::vector<std::uint64_t>{1, 2});
}

TEST_CASE("batcher rollup cache: evicted rows take late data as merge operands", "[batcher]") {
  test_db t;
  batcher b(t.db());
  // 80 flushes of 20 devices, minutes moving on: the periodic sweeps drop
  // the early minute rows from the cache.
  for (int f = 0; f < 80; ++f) {
    for (int d = 0; d < 20; ++d) {
      auto dev = "dev-" + std::to_string(d);
      b.add(static_cast<std::uint64_t>(d),
            make_batch(
                dev, {r(t0 + 1000 + f * 20'000, static_cast<std::uint64_t>(f + 2), {{"v", 1.0}})}),
            0);
    }
    CHECK(flush_ok(b).size() == 20);
  }
  // Late readings for the first minute (server-assigned seq: a client seq
  // below the highest would be a duplicate).
  for (int d = 0; d < 20; ++d)
    CHECK(
        b.add(1, make_batch("dev-" + std::to_string(d), {r_noseq(t0, {{"v", 2.0}})}), 0).accepted ==
        1);
  flush_ok(b);
  status st;
  for (int d = 0; d < 20; d += 3) {
    auto dev = "dev-" + std::to_string(d);
    auto minute = aggregate_device(t.db(), dev, "v", t0, t0 + ms_per_minute, ms_per_minute, st);
    REQUIRE(minute.size() == 1);
    CHECK(minute[0].agg.count == 4);  // 1 late + 3 at 1 s, 21 s, 41 s
    CHECK(minute[0].agg.sum() == 5.0);
    CHECK(minute[0].agg.first == 2.0);
    auto hour = aggregate_device(t.db(), dev, "v", t0, t0 + ms_per_hour, ms_per_hour, st);
    REQUIRE(hour.size() == 1);
    CHECK(hour[0].agg.count == 81);
    CHECK(hour[0].agg.sum() == 82.0);
    auto minutes = aggregate_device(t.db(), dev, "v", t0, t0 + ms_per_hour, ms_per_minute, st);
    CHECK(minutes.size() == 27);  // readings span 0:00 .. 26:41
  }
}

TEST_CASE("batcher device cache: devices evicted past storage.device-cache-bytes keep exact "
          "last_seq, dedupe and aggregates", "[batcher][cache]") {
  test_db t;
  // A budget of ~100 device states, 1,000 devices, each flush a checkpoint
  // (no head): every round evicts most devices and reloads them from meta.
  head_options opts;
  opts.device_cache_bytes = 65536;
  batcher b(t.db(), 0, opts);
  constexpr int devices = 1000, rounds = 6;
  auto dev = [](int d) { return "ev-" + std::to_string(d); };
  for (int round = 1; round <= rounds; ++round) {
    for (int d = 0; d < devices; ++d) {
      auto seq = static_cast<std::uint64_t>(round);
      // Each round also resends the previous round's reading: a duplicate.
      std::vector<reading_spec> rs;
      if (round > 1) rs.push_back(r(t0 + (round - 1) * 1000 + d, seq - 1, {{"v", 99.0}}));
      rs.push_back(r(t0 + round * 1000 + d, seq, {{"v", static_cast<double>(round)}}));
      auto res = b.add(1, make_batch(dev(d), rs), 0);
      CHECK(res.accepted == 1);
      CHECK(res.duplicates == (round > 1 ? 1u : 0u));
    }
    std::vector<ack_entry> acks;
    flush_stats fs;
    REQUIRE(b.flush(acks, fs).ok);
    CHECK(acks.size() == devices);
    auto c = b.cache();
    CHECK(c.device_bytes <= opts.device_cache_bytes);
    CHECK(c.devices < devices);
  }
  CHECK(b.cache().evicted >= devices * (rounds - 1) / 2);
  // Server-assigned seqs continue from the stored last_seq after a reload.
  auto res = b.add(1, make_batch(dev(7), {r_noseq(t0 + 60'000, {{"v", 7.0}})}), 0);
  CHECK(res.accepted == 1);
  CHECK(flush_ok(b) == ack_map{{{1, dev(7)}, rounds + 1}});
  status st;
  for (int d : {0, 7, 500, 999}) {
    CHECK(b.last_seq(dev(d)) == (d == 7 ? rounds + 1u : rounds + 0u));
    // Every round stored once: 1 + 2 + ... + rounds (+ 7 for the extra one).
    auto agg = aggregate_device(t.db(), dev(d), "v", t0, t0 + ms_per_hour, ms_per_hour, st);
    REQUIRE(st.ok);
    REQUIRE(agg.size() == 1);
    CHECK(agg[0].agg.count == (d == 7 ? rounds + 1u : rounds + 0u));
    CHECK(agg[0].agg.sum() == rounds * (rounds + 1) / 2 + (d == 7 ? 7.0 : 0.0));
    CHECK(agg[0].agg.max == (d == 7 ? 7.0 : rounds));
    auto raw = aggregate_device_raw(t.db(), dev(d), "v", t0, t0 + ms_per_hour, ms_per_hour, st);
    REQUIRE(raw.size() == 1);
    CHECK(raw[0].agg.count == agg[0].agg.count);
    CHECK(raw[0].agg.sum() == agg[0].agg.sum());
  }
}
