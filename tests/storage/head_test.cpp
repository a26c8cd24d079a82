// The head: flushes append log records, queries see them at once, a
// checkpoint moves them into chunks and rollups, and a batcher that dies
// without a checkpoint is replayed from its log with nothing lost or doubled.
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <catch2/catch.hpp>
#include <random>

#include "storage/batcher.hpp"
#include "storage/head_log.hpp"
#include "storage/keys.hpp"
#include "storage/query.hpp"
#include "tests/storage/test_db.hpp"

using namespace pulse;
using namespace pulse::storage;
using namespace pulse::storage::test;

namespace {

std::size_t count_keys(store& db, rocksdb::ColumnFamilyHandle* cf) {
  std::unique_ptr<rocksdb::Iterator> it(db.db()->NewIterator(rocksdb::ReadOptions(), cf));
  std::size_t n = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) ++n;
  REQUIRE(it->status().ok());
  return n;
}

std::size_t flush_acks(batcher& b, bool checkpoint = false, flush_stats* stats = nullptr) {
  std::vector<ack_entry> acks;
  flush_stats fs;
  REQUIRE(b.flush(acks, fs, checkpoint).ok);
  if (stats) *stats = fs;
  return acks.size();
}

// What a client sees of a device: its record, every reading, two aggregates.
struct view {
  std::uint64_t last_seq = 0;
  std::int64_t latest_ts = 0;
  std::vector<std::string> metrics;
  std::vector<std::tuple<std::int64_t, std::uint64_t, double>> readings;
  std::vector<std::tuple<std::int64_t, std::uint64_t, double, double>> minutes, minutes_raw;
  bool operator==(const view& o) const {
    return last_seq == o.last_seq && latest_ts == o.latest_ts && metrics == o.metrics &&
           readings == o.readings && minutes == o.minutes && minutes_raw == o.minutes_raw;
  }
};

view look(store& db, const std::string& device) {
  view v;
  status st;
  auto rec = db.load_device(device, st);
  REQUIRE(st.ok);
  if (!rec) return v;
  v.last_seq = rec->last_seq;
  v.latest_ts = rec->latest_ts;
  v.metrics = rec->metrics;
  std::string next;
  for (auto& r : read_readings(db, device, 0, max_ts, 1'000'000, "", next, st))
    v.readings.emplace_back(r.ts, r.seq, r.values.at(0).second);
  REQUIRE(st.ok);
  for (auto& b : aggregate_device(db, device, "v", t0 - ms_per_hour, t0 + 3 * ms_per_hour,
                                  ms_per_minute, st))
    v.minutes.emplace_back(b.t, b.agg.count, b.agg.sum(), b.agg.max);
  REQUIRE(st.ok);
  for (auto& b : aggregate_device_raw(db, device, "v", t0 - ms_per_hour, t0 + 3 * ms_per_hour,
                                      ms_per_minute, st))
    v.minutes_raw.emplace_back(b.t, b.agg.count, b.agg.sum(), b.agg.max);
  REQUIRE(st.ok);
  return v;
}

const head_options with_head{1'000'000};

}  // namespace

TEST_CASE("head: a flush is one log record, visible to queries before any chunk exists",
          "[head]") {
  test_db t;
  batcher b(t.db(), 3, with_head);
  for (int d = 0; d < 50; ++d)
    b.add(1, make_batch("dev-" + std::to_string(d), {r(t0 + d, 1, {{"v", 1.0 * d}})}), 1);
  flush_stats fs;
  CHECK(flush_acks(b, false, &fs) == 50);
  CHECK_FALSE(fs.checkpoint);
  CHECK(fs.readings == 50);
  CHECK(fs.devices == 50);
  CHECK(count_keys(t.db(), t.db().log_cf()) == 1);  // one put for 50 devices
  CHECK(count_keys(t.db(), t.db().readings_cf()) == 0);
  CHECK(count_keys(t.db(), t.db().meta_cf()) == 0);

  auto v = look(t.db(), "dev-7");
  CHECK(v.last_seq == 1);
  CHECK(v.latest_ts == t0 + 7);
  CHECK(v.metrics == std::vector<std::string>{"v"});
  REQUIRE(v.readings.size() == 1);
  CHECK(std::get<2>(v.readings[0]) == 7.0);
  CHECK(v.minutes == v.minutes_raw);
  REQUIRE(v.minutes.size() == 1);
  CHECK(std::get<1>(v.minutes[0]) == 1);

  status st;
  auto page = t.db().list_devices("dev-1", "", 100, st);
  REQUIRE(st.ok);
  CHECK(page.size() == 11);  // dev-1, dev-10..dev-19
  CHECK(page.front().id == "dev-1");
  CHECK(b.head_readings() == 50);

  // The checkpoint writes chunks, rollups and records and empties the log;
  // answers do not change.
  auto before = look(t.db(), "dev-7");
  CHECK(flush_acks(b, true, &fs) == 0);
  CHECK(fs.checkpoint);
  CHECK(fs.checkpointed == 50);
  CHECK(count_keys(t.db(), t.db().log_cf()) == 0);
  CHECK(count_keys(t.db(), t.db().readings_cf()) == 50);
  CHECK(count_keys(t.db(), t.db().meta_cf()) == 50);
  CHECK(look(t.db(), "dev-7") == before);
  CHECK(b.head_readings() == 0);
}

TEST_CASE("head: chunks hold many flushes, and a full head checkpoints by itself", "[head]") {
  test_db t;
  batcher b(t.db(), 0, head_options{100});
  std::uint64_t seq = 0;
  flush_stats fs;
  int checkpoints = 0;
  for (int f = 0; f < 60; ++f) {
    for (int d = 0; d < 4; ++d)
      b.add(7, make_batch("m" + std::to_string(d), {r(t0 + f * 1000, seq + 1, {{"v", f * 0.5}})}),
            1);
    ++seq;
    CHECK(flush_acks(b, false, &fs) == 4);
    if (fs.checkpoint) ++checkpoints;
    CHECK(b.head_readings() < 100);
  }
  CHECK(checkpoints == 2);  // at 100 and 200 readings
  CHECK(count_keys(t.db(), t.db().readings_cf()) == 8);  // a chunk per device per checkpoint
  auto v = look(t.db(), "m2");
  CHECK(v.readings.size() == 60);
  CHECK(v.last_seq == 60);
  CHECK(v.minutes == v.minutes_raw);
}

TEST_CASE("head: a batcher that dies without a checkpoint is replayed from its log", "[head]") {
  test_db t;
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> val(-1e6, 1e6);
  std::map<std::string, std::uint64_t> acked;
  {
    batcher b(t.db(), 1, head_options{500});  // some checkpoints, then an open head
    for (int f = 0; f < 40; ++f) {
      for (int d = 0; d < 20; ++d) {
        auto dev = "d" + std::to_string(d);
        auto seq = ++acked[dev];
        auto ts = t0 + static_cast<std::int64_t>(rng() % (2 * ms_per_hour));
        b.add(9, make_batch(dev, {r(ts, seq, {{"v", val(rng)}})}, d == 3 ? "{\"fw\":\"1\"}" : ""),
              1000 + f);
      }
      flush_acks(b);
    }
    CHECK(b.head_readings() > 0);
    // Destroyed here without a checkpoint: what a kill -9 leaves behind.
  }
  std::map<std::string, view> seen;
  for (auto& [dev, n] : acked) seen[dev] = look(t.db(), dev);
  CHECK(seen["d5"].readings.size() == 40);
  CHECK(seen["d5"].minutes == seen["d5"].minutes_raw);
  REQUIRE(count_keys(t.db(), t.db().log_cf()) > 0);

  t.reopen();
  batcher b(t.db(), 1, head_options{500});
  std::size_t replayed = 0;
  REQUIRE(b.recover(replayed).ok);
  CHECK(replayed > 0);
  CHECK(replayed < 800);
  CHECK(count_keys(t.db(), t.db().log_cf()) == 0);
  for (auto& [dev, n] : acked) {
    CHECK(b.last_seq(dev) == n);
    CHECK(look(t.db(), dev) == seen[dev]);
  }
  status st;
  auto rec = t.db().load_device("d3", st);
  REQUIRE(rec);
  CHECK(rec->meta == "{\"fw\":\"1\"}");

  // A resend of what was acked is a duplicate: acked, not stored again.
  auto res = b.add(9, make_batch("d0", {r(t0, acked["d0"], {{"v", 1.0}})}), 2000);
  CHECK(res.duplicates == 1);
  CHECK(flush_acks(b) == 1);
  CHECK(look(t.db(), "d0") == seen["d0"]);
}

TEST_CASE("head: start-up recovery takes every shard's log, whatever the shard count was",
          "[head]") {
  test_db t;
  {
    batcher a(t.db(), 0, with_head), c(t.db(), 5, with_head);
    a.add(1, make_batch("x", {r(t0, 1, {{"v", 1.0}}), r(t0 + 1, 2, {{"v", 2.0}})}), 1);
    c.add(1, make_batch("y", {r(t0, 1, {{"v", 3.0}})}), 1);
    flush_acks(a);
    flush_acks(c);
  }
  batcher other(t.db(), 0, with_head);
  std::size_t replayed = 0;
  // An own-shard recovery leaves other shards' records alone.
  REQUIRE(other.recover(replayed).ok);
  CHECK(replayed == 2);
  CHECK(count_keys(t.db(), t.db().log_cf()) == 1);
  batcher all(t.db(), 0, {}, true);
  REQUIRE(all.recover(replayed).ok);
  CHECK(replayed == 1);
  CHECK(count_keys(t.db(), t.db().log_cf()) == 0);
  CHECK(look(t.db(), "x").readings.size() == 2);
  CHECK(look(t.db(), "y").last_seq == 1);
}

TEST_CASE("head: a corrupt log record is an error, never a crash or a silent loss", "[head]") {
  test_db t;
  std::mt19937_64 rng(7);
  {
    batcher b(t.db(), 2, with_head);
    b.add(1, make_batch("z", {r(t0, 1, {{"v", 1.0}}), r(t0 + 5, 2, {{"v", 2.0}})}), 1);
    flush_acks(b);
  }
  std::string key, good;
  {
    std::unique_ptr<rocksdb::Iterator> it(
        t.db().db()->NewIterator(rocksdb::ReadOptions(), t.db().log_cf()));
    it->SeekToFirst();
    REQUIRE(it->Valid());
    key = it->key().ToString();
    good = it->value().ToString();
  }
  // Every truncation and many random byte flips: decoding refuses or yields a
  // well-formed section; nothing reads out of bounds (ASan in CI).
  for (std::size_t n = 0; n < good.size(); ++n) {
    std::size_t sections = 0;
    bool ok = for_each_log_section(good.substr(0, n), [&](const log_section&) {
      ++sections;
      return true;
    });
    CHECK_FALSE(ok);
  }
  for (int i = 0; i < 2000; ++i) {
    auto bad = good;
    bad[rng() % bad.size()] ^= static_cast<char>(1 + rng() % 255);
    meta_record rec;
    decoded_chunk rows;
    for_each_log_section(bad, [&](const log_section& s) {
      decode_log_section(s, rec, rows);
      return true;
    });
  }
  rocksdb::WriteBatch wb;
  REQUIRE(wb.Put(t.db().log_cf(), key, "\x01garbage").ok());
  REQUIRE(t.db().write(wb).ok);
  batcher b(t.db(), 2, with_head);
  std::size_t replayed = 0;
  auto st = b.recover(replayed);
  CHECK_FALSE(st.ok);
  CHECK(st.message.find("corrupt log record") != std::string::npos);
  CHECK(count_keys(t.db(), t.db().log_cf()) == 1);  // kept for an operator to look at
  status qs;
  CHECK_FALSE(t.db().load_device("z", qs));
  CHECK_FALSE(qs.ok);  // queries say so too
}

TEST_CASE("fleet aggregates: the bucket-major rollup scan, the device-by-device path and the "
          "per-device answers agree, with part of the data still in the head",
          "[head][fleet]") {
  test_db t;
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> val(-1e3, 1e3);
  auto b = std::make_unique<batcher>(t.db(), 0, head_options{1'000'000});
  std::map<std::string, std::uint64_t> seq;
  // Ids of several lengths on both sides of the prefix "fl-", so that the
  // prefix's skip scan over (length, id) ordered rollup keys is exercised.
  auto name = [](int d) {
    if (d % 5 == 0) return "ab-" + std::to_string(d * 1000);
    if (d % 3 == 0) return "other-" + std::to_string(d);
    if (d % 7 == 0) return "fl-x" + std::to_string(d * 100000);
    return "fl-" + std::to_string(d);
  };
  auto load = [&](int flushes) {
    for (int f = 0; f < flushes; ++f) {
      for (int d = 0; d < 30; ++d) {
        auto dev = name(d);
        auto ts = t0 + static_cast<std::int64_t>(rng() % (3 * ms_per_hour));
        b->add(1, make_batch(dev, {r(ts, ++seq[dev], {{"v", val(rng)}, {"w", 1.0}})}), 1);
      }
      flush_acks(*b);
    }
  };
  load(30);
  flush_acks(*b, true);  // checkpointed: chunks and rollups
  // A fresh batcher knows no row whole: its checkpoint writes Merge operands
  // for every row already stored (the same hours), which reads must fold in.
  b = std::make_unique<batcher>(t.db(), 0, head_options{1'000'000});
  load(30);
  flush_acks(*b, true);
  load(40);  // these stay in the head log
  REQUIRE(count_keys(t.db(), t.db().log_cf()) > 0);

  struct window {
    std::int64_t from, to, step;
  };
  for (auto w : {window{t0, t0 + 3 * ms_per_hour, ms_per_minute},          // minute rows
                 window{t0, t0 + 3 * ms_per_hour, ms_per_hour},            // hour rows
                 window{t0 - ms_per_hour, t0 + 5 * ms_per_hour, 5 * ms_per_minute},
                 window{t0 + 12'345, t0 + 2 * ms_per_hour + 7, 90'000},    // device by device
                 window{t0 + 1, t0 + 3 * ms_per_hour, ms_per_hour}}) {
    std::map<std::int64_t, aggregate> want;
    std::map<std::string, std::map<std::int64_t, aggregate>> want_groups;
    for (auto& [dev, n] : seq) {
      if (dev.rfind("fl-", 0) != 0) continue;
      status st;
      auto rows = aggregate_device(t.db(), dev, "v", w.from, w.to, w.step, st);
      REQUIRE(st.ok);
      // Rollups (merge operands folded in) and chunks alone give the same.
      auto raw = aggregate_device_raw(t.db(), dev, "v", w.from, w.to, w.step, st);
      REQUIRE(st.ok);
      REQUIRE(raw.size() == rows.size());
      for (std::size_t i = 0; i < raw.size(); ++i) {
        CHECK(raw[i].t == rows[i].t);
        CHECK(raw[i].agg.count == rows[i].agg.count);
        CHECK(raw[i].agg.sum() == rows[i].agg.sum());
        CHECK(raw[i].agg.min == rows[i].agg.min);
        CHECK(raw[i].agg.max == rows[i].agg.max);
        CHECK(raw[i].agg.first == rows[i].agg.first);
        CHECK(raw[i].agg.last == rows[i].agg.last);
      }
      for (auto& bk : rows) {
        want[bk.t].merge(bk.agg);
        want_groups[dev][bk.t].merge(bk.agg);
      }
    }
    REQUIRE_FALSE(want.empty());
    std::map<std::int64_t, aggregate> merged;
    std::map<std::string, std::map<std::int64_t, aggregate>> groups, unused;
    REQUIRE(aggregate_fleet(t.db(), "fl-", "v", w.from, w.to, w.step, false, merged, unused).ok);
    REQUIRE(aggregate_fleet(t.db(), "fl-", "v", w.from, w.to, w.step, true, merged, groups).ok);
    // The same read by two threads, each over half of the keys (meta and
    // rollups), as a fleet of 100,000 devices or more is; and without a prefix.
    std::map<std::int64_t, aggregate> merged2, all, all2;
    std::map<std::string, std::map<std::int64_t, aggregate>> groups2, unused2;
    REQUIRE(aggregate_fleet(t.db(), "fl-", "v", w.from, w.to, w.step, false, merged2, unused2, 0).ok);
    REQUIRE(aggregate_fleet(t.db(), "fl-", "v", w.from, w.to, w.step, true, merged2, groups2, 0).ok);
    REQUIRE(aggregate_fleet(t.db(), "", "v", w.from, w.to, w.step, false, all, unused2).ok);
    REQUIRE(aggregate_fleet(t.db(), "", "v", w.from, w.to, w.step, false, all2, unused2, 0).ok);
    auto same = [](const std::map<std::int64_t, aggregate>& a,
                   const std::map<std::int64_t, aggregate>& b) {
      std::vector<std::tuple<std::int64_t, std::uint64_t, double, double, double, double, double>> x, y;
      for (auto& [t, g] : a)
        if (g.count) x.emplace_back(t, g.count, g.sum(), g.min, g.max, g.first, g.last);
      for (auto& [t, g] : b)
        if (g.count) y.emplace_back(t, g.count, g.sum(), g.min, g.max, g.first, g.last);
      return x == y;
    };
    CHECK(same(merged, want));
    CHECK(same(merged2, want));
    CHECK(same(all2, all));
    CHECK(groups2.size() == groups.size());
    for (auto& [dev, m] : groups2) CHECK(same(m, groups[dev]));
    std::uint64_t fl = 0, total = 0;
    for (auto& [tt, g] : merged) fl += g.count;
    for (auto& [tt, g] : all) total += g.count;
    CHECK(total > fl);  // the other devices count too
    std::size_t nonempty = 0;
    for (auto& [dev, m] : groups) {
      CHECK(dev.rfind("fl-", 0) == 0);
      CHECK(same(m, want_groups[dev]));
      for (auto& [tt, g] : m) nonempty += g.count > 0;
    }
    CHECK(nonempty > 0);
  }
}
