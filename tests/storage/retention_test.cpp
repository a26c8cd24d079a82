// store::expire: whole time buckets dropped with range deletes, rollups kept
// longer than readings, device records kept, other devices' and newer
// buckets untouched.

#include <catch2/catch.hpp>

#include "storage/batcher.hpp"
#include "storage/query.hpp"
#include "tests/storage/test_db.hpp"

using namespace pulse;
using namespace pulse::storage;
using namespace pulse::storage::test;

namespace {

constexpr std::int64_t hour = ms_per_hour;

// Readings every 10 minutes for 6 hours from t0, for two devices, written
// through the batcher (chunks, minute and hour rollups, device records).
void fill(test_db& t) {
  batcher b(t.db(), 0, {}, false);
  for (auto device : {"a", "b"}) {
    std::vector<reading_spec> rs;
    for (int i = 0; i < 36; ++i) rs.push_back(r(t0 + i * 10 * ms_per_minute, i + 1, {{"v", 1.0}}));
    REQUIRE(b.add(1, make_batch(device, rs), t0).accepted == rs.size());
  }
  std::vector<ack_entry> acks;
  flush_stats fs;
  REQUIRE(b.flush(acks, fs).ok);
}

std::uint64_t raw_count(test_db& t, const char* device) {
  status st;
  auto v = aggregate_device_raw(t.db(), device, "v", 0, t0 + 100 * hour, 100 * hour, st);
  REQUIRE(st.ok);
  std::uint64_t n = 0;
  for (auto& b : v) n += b.agg.count;
  return n;
}

std::uint64_t rollup_count(test_db& t, const char* device, std::int64_t step) {
  status st;
  // Whole hours (or minutes): answered from rollup rows where chunks are gone.
  auto v = aggregate_device(t.db(), device, "v", t0, t0 + 6 * hour, step, st);
  REQUIRE(st.ok);
  std::uint64_t n = 0;
  for (auto& b : v) n += b.agg.count;
  return n;
}

}  // namespace

TEST_CASE("expire drops whole buckets: readings first, rollups later", "[storage][retention]") {
  test_db t;
  fill(t);
  REQUIRE(raw_count(t, "a") == 36);

  SECTION("nothing to drop") {
    REQUIRE(t.db().expire(0, 0).ok);
    REQUIRE(t.db().expire(t0, t0).ok);  // buckets end after t0: none is wholly before it
    CHECK(raw_count(t, "a") == 36);
  }
  SECTION("readings before t0+2h30m: the two whole hours go, the third stays") {
    REQUIRE(t.db().expire(t0 + 2 * hour + 30 * ms_per_minute, 0).ok);
    CHECK(raw_count(t, "a") == 24);
    CHECK(raw_count(t, "b") == 24);
    // Rollups kept: whole-hour answers still count everything.
    CHECK(rollup_count(t, "a", hour) == 36);
    // The device record (last_seq) stays, so dedupe still works.
    status st;
    auto rec = t.db().load_device("a", st);
    REQUIRE(rec);
    CHECK(rec->last_seq == 36);

    // Then rollups before t0+4h: hour and minute rows of the first four hours.
    REQUIRE(t.db().expire(t0 + 2 * hour + 30 * ms_per_minute, t0 + 4 * hour).ok);
    // Whole hours are answered from hour rows: only hours 4 and 5 have them now.
    CHECK(rollup_count(t, "a", hour) == 12);
    CHECK(raw_count(t, "a") == 24);
  }
  SECTION("everything") {
    REQUIRE(t.db().expire(t0 + 7 * hour, t0 + 7 * hour).ok);
    CHECK(raw_count(t, "a") == 0);
    CHECK(rollup_count(t, "a", hour) == 0);
    CHECK(rollup_count(t, "b", ms_per_minute) == 0);
    // Still there after a reopen (the deletes are durable, not cached).
    t.reopen();
    CHECK(raw_count(t, "a") == 0);
  }
}
