#include "storage/query.hpp"

#include <rocksdb/db.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <map>
#include <random>

#include "storage/batcher.hpp"
#include "storage/keys.hpp"
#include "tests/storage/test_db.hpp"

using namespace pulse;
using namespace pulse::storage;
using namespace pulse::storage::test;

namespace {

struct stored {
  std::int64_t ts;
  std::uint64_t seq;
  std::map<std::string, double> values;
};

void flush_ok(batcher& b) {
  std::vector<ack_entry> acks;
  flush_stats fs;
  REQUIRE(b.flush(acks, fs).ok);
}

void check_same(const std::vector<bucket>& a, const std::vector<bucket>& b) {
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO("bucket " << i << " t=" << a[i].t);
    CHECK(a[i].t == b[i].t);
    CHECK(a[i].agg.count == b[i].agg.count);
    CHECK(bits(a[i].agg.sum()) == bits(b[i].agg.sum()));
    CHECK(bits(a[i].agg.min) == bits(b[i].agg.min));
    CHECK(bits(a[i].agg.max) == bits(b[i].agg.max));
    CHECK(bits(a[i].agg.first) == bits(b[i].agg.first));
    CHECK(bits(a[i].agg.last) == bits(b[i].agg.last));
    CHECK(a[i].agg.first_ts == b[i].agg.first_ts);
    CHECK(a[i].agg.last_seq == b[i].agg.last_seq);
  }
}

// Independent reference: every stored reading in (ts, seq) order, folded
// into buckets with the same arithmetic the raw path uses.
std::vector<bucket> reference(const std::vector<stored>& all, const std::string& metric,
                              std::int64_t from, std::int64_t to, std::int64_t step) {
  auto sorted = all;
  std::sort(sorted.begin(), sorted.end(),
            [](auto& a, auto& b) { return a.ts != b.ts ? a.ts < b.ts : a.seq < b.seq; });
  std::map<std::int64_t, aggregate> m;
  for (auto& s : sorted) {
    if (s.ts < from || s.ts >= to) continue;
    auto it = s.values.find(metric);
    if (it == s.values.end()) continue;
    auto q = s.ts / step * step;  // ts >= 0
    m[q].add(it->second, s.ts, s.seq);
  }
  std::vector<bucket> out;
  for (auto& [t, a] : m) out.push_back({t, a});
  return out;
}

// Random readings of one device over ~6 hours, arriving out of order over
// many flushes and two batcher lifetimes, some metrics missing.
std::vector<stored> fill_random(test_db& t, const std::string& device, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<stored> all;
  std::uint64_t seq = 0;
  const char* names[] = {"a", "b", "c"};
  for (int life = 0; life < 2; ++life) {
    batcher b(t.db());
    for (int f = 0; f < 25; ++f) {
      std::vector<reading_spec> rs;
      int n = 1 + static_cast<int>(rng() % 120);
      for (int i = 0; i < n; ++i) {
        std::int64_t ts = t0 - 17'000 + static_cast<std::int64_t>(rng() % (6 * ms_per_hour));
        if (rng() % 10 == 0) ts = ts / ms_per_minute * ms_per_minute;  // minute edges
        if (rng() % 20 == 0) ts = ts / ms_per_hour * ms_per_hour;      // hour edges
        stored s{ts, ++seq, {}};
        reading_spec spec = r(ts, s.seq, {});
        for (int m = 0; m < 3; ++m) {
          if (m > 0 && rng() % 3 == 0) continue;
          double v = static_cast<double>(static_cast<std::int64_t>(rng() % 2'000'001) - 1'000'000) /
                     (1 + rng() % 1000);
          if (rng() % 50 == 0) v *= 1e12;
          s.values[names[m]] = v;
          spec.values.emplace_back(names[m], v);
        }
        if (rng() % 25 == 0 && !all.empty()) {
          // Equal ts with an earlier reading (seq breaks the tie).
          s.ts = spec.ts = all[rng() % all.size()].ts;
        }
        all.push_back(s);
        rs.push_back(spec);
      }
      b.add(1, make_batch(device, rs), 0);
      flush_ok(b);
    }
  }
  return all;
}

}  // namespace

TEST_CASE("aggregate_device equals raw aggregation on random data", "[query]") {
  test_db t;
  auto all = fill_random(t, "dev", 2024);
  REQUIRE(all.size() > 1000);
  const std::int64_t steps[] = {1000,
                                7000,
                                ms_per_minute,
                                90'000,
                                5 * ms_per_minute,
                                13 * ms_per_minute,
                                ms_per_hour,
                                2 * ms_per_hour + 1,
                                86'400'000};
  std::mt19937_64 rng(5);
  status st;
  int rollup_buckets = 0;
  for (int trial = 0; trial < 150; ++trial) {
    const auto step = steps[trial % (sizeof steps / sizeof steps[0])];
    std::int64_t from = t0 - 3 * ms_per_hour + static_cast<std::int64_t>(rng() % (9 * ms_per_hour));
    std::int64_t to = from + static_cast<std::int64_t>(rng() % (7 * ms_per_hour));
    switch (trial % 4) {  // aligned edges as well as ragged ones
      case 0:
        from = from / ms_per_hour * ms_per_hour;
        break;
      case 1:
        to = to / ms_per_minute * ms_per_minute;
        break;
      case 2:
        from = from / step * step;
        to = to / step * step;
        break;
      default:
        break;
    }
    for (const char* metric : {"a", "c"}) {
      INFO("trial " << trial << " metric " << metric << " from " << from << " to " << to << " step "
                    << step);
      auto fast = aggregate_device(t.db(), "dev", metric, from, to, step, st);
      REQUIRE(st.ok);
      auto raw = aggregate_device_raw(t.db(), "dev", metric, from, to, step, st);
      REQUIRE(st.ok);
      check_same(fast, raw);
      check_same(raw, reference(all, metric, from, to, step));
      rollup_buckets += static_cast<int>(fast.size());
    }
  }
  CHECK(rollup_buckets > 1000);

  SECTION("whole window, all steps") {
    for (auto step : steps) {
      auto fast = aggregate_device(t.db(), "dev", "b", 0, max_ts, step, st);
      REQUIRE(st.ok);
      check_same(fast, reference(all, "b", 0, max_ts, step));
    }
  }
}

TEST_CASE("aligned windows are answered from rollup rows alone", "[query]") {
  test_db t;
  auto all = fill_random(t, "dev", 7);
  status st;
  auto before_h = aggregate_device(t.db(), "dev", "a", t0, t0 + 4 * ms_per_hour, ms_per_hour, st);
  auto before_m = aggregate_device(t.db(), "dev", "a", t0 + 5 * ms_per_minute,
                                   t0 + 50 * ms_per_minute, 5 * ms_per_minute, st);
  REQUIRE(before_h.size() == 4);
  REQUIRE(before_m.size() == 9);
  // Remove every chunk: whole hours and minutes still answer, raw does not.
  rocksdb::WriteBatch wb;
  REQUIRE(wb.DeleteRange(t.db().readings_cf(), std::string(1, '\0'), std::string(8, '\xff')).ok());
  REQUIRE(t.db().write(wb));
  auto raw = aggregate_device_raw(t.db(), "dev", "a", t0, t0 + 4 * ms_per_hour, ms_per_hour, st);
  CHECK(raw.empty());
  check_same(aggregate_device(t.db(), "dev", "a", t0, t0 + 4 * ms_per_hour, ms_per_hour, st),
             before_h);
  check_same(aggregate_device(t.db(), "dev", "a", t0 + 5 * ms_per_minute, t0 + 50 * ms_per_minute,
                              5 * ms_per_minute, st),
             before_m);
  // Day steps merge hour rows.
  auto day = aggregate_device(t.db(), "dev", "a", t0, t0 + 86'400'000, 86'400'000, st);
  REQUIRE(day.size() == 1);
  std::uint64_t n = 0;
  for (auto& s : all)
    if (s.ts >= t0 && s.values.count("a")) ++n;
  CHECK(day[0].agg.count == n);
}

TEST_CASE("aggregate_device edge cases", "[query]") {
  test_db t;
  batcher b(t.db());
  b.add(1, make_batch("d", {r(t0, 1, {{"v", 1.0}}), r(t0 + 1, 2, {{"v", 2.0}, {"w", 5.0}})}), 0);
  flush_ok(b);
  status st;
  CHECK(aggregate_device(t.db(), "nobody", "v", 0, max_ts, ms_per_hour, st).empty());
  CHECK(st.ok);
  CHECK(aggregate_device(t.db(), "d", "nothing", 0, max_ts, ms_per_hour, st).empty());
  CHECK(st.ok);
  CHECK(aggregate_device(t.db(), "bad device id!", "v", 0, max_ts, ms_per_hour, st).empty());
  CHECK(st.ok);
  CHECK(aggregate_device(t.db(), "d", "v", t0 + 5, t0, ms_per_hour, st).empty());
  CHECK(st.ok);
  aggregate_device(t.db(), "d", "v", 0, max_ts, 0, st);
  CHECK_FALSE(st.ok);
  aggregate_device_raw(t.db(), "d", "v", 0, max_ts, -5, st);
  CHECK_FALSE(st.ok);

  auto one = aggregate_device(t.db(), "d", "v", -1'000'000, max_ts, INT64_MAX, st);
  REQUIRE(st.ok);
  REQUIRE(one.size() == 1);
  CHECK(one[0].t == 0);
  CHECK(one[0].agg.count == 2);
  CHECK(one[0].agg.sum() == 3.0);

  auto w = aggregate_device(t.db(), "d", "w", t0, t0 + 2, 1, st);
  REQUIRE(w.size() == 1);
  CHECK(w[0].t == t0 + 1);
  CHECK(w[0].agg.first == 5.0);

  auto v = aggregate_device(t.db(), "d", "v", t0 + 1, t0 + 2, 1000, st);  // window inside a bucket
  REQUIRE(v.size() == 1);
  CHECK(v[0].t == t0);
  CHECK(v[0].agg.count == 1);
  CHECK(v[0].agg.sum() == 2.0);
}

TEST_CASE("read_readings pages by cursor across chunk boundaries", "[query]") {
  test_db t;
  std::vector<std::pair<std::int64_t, std::uint64_t>> expected;
  {
    batcher b(t.db());
    std::uint64_t seq = 0;
    // Three hours; each flush covers all of them so chunks of one hour
    // interleave in ts; equal ts across chunks too.
    for (int f = 0; f < 6; ++f) {
      std::vector<reading_spec> rs;
      for (int i = 0; i < 9; ++i) {
        std::int64_t ts = t0 + (i % 3) * ms_per_hour + (i / 3) * 10'000 + (f % 3) * 1000;
        ++seq;
        rs.push_back(r(ts, seq, {{"v", static_cast<double>(seq)}, {"w", -1.0}}));
        expected.emplace_back(ts, seq);
      }
      b.add(1, make_batch("d", rs), 0);
      flush_ok(b);
    }
  }
  std::sort(expected.begin(), expected.end());
  REQUIRE(expected.size() == 54);

  for (std::size_t limit : {1u, 5u, 7u, 27u, 54u, 100u}) {
    INFO("limit " << limit);
    std::vector<std::pair<std::int64_t, std::uint64_t>> got;
    std::string cursor, next;
    status st;
    int pages = 0;
    do {
      auto page = read_readings(t.db(), "d", 0, max_ts, limit, cursor, next, st);
      REQUIRE(st.ok);
      REQUIRE(!page.empty());  // never an empty last page
      CHECK(page.size() <= limit);
      if (!next.empty()) CHECK(page.size() == limit);
      for (auto& x : page) {
        got.emplace_back(x.ts, x.seq);
        REQUIRE(x.values.size() == 2);
        CHECK(x.values[0].first == "v");
        CHECK(x.values[0].second == static_cast<double>(x.seq));
      }
      cursor = next;
      ++pages;
    } while (!cursor.empty() && pages < 100);
    CHECK(got == expected);
    CHECK(pages == static_cast<int>((54 + limit - 1) / limit));
  }

  SECTION("time window") {
    std::string next;
    status st;
    auto from = t0 + ms_per_hour, to = t0 + ms_per_hour + 10'000;
    auto page = read_readings(t.db(), "d", from, to, 4, "", next, st);
    REQUIRE(page.size() == 4);
    CHECK(page[0].ts == t0 + ms_per_hour);
    CHECK_FALSE(next.empty());
    auto rest = read_readings(t.db(), "d", from, to, 4, next, next, st);
    CHECK(rest.size() == 2);  // 6 readings in [from, to)
    CHECK(next.empty());
    for (auto& x : rest) CHECK(x.ts < to);
  }
}

TEST_CASE("read_readings rejects a malformed cursor and bad arguments", "[query]") {
  test_db t;
  batcher b(t.db());
  b.add(1, make_batch("d", {r(t0, 1, {{"v", 1.0}}), r(t0 + 1, 2, {{"v", 2.0}})}), 0);
  flush_ok(b);
  std::string next;
  status st;
  auto page = read_readings(t.db(), "d", 0, max_ts, 1, "", next, st);
  REQUIRE(page.size() == 1);
  REQUIRE(!next.empty());
  const std::string good = next;

  for (std::string bad : {std::string("garbage"), good.substr(0, good.size() - 1), good + "0",
                          "x" + good.substr(1), std::string(33, 'c')}) {
    INFO(bad);
    auto out = read_readings(t.db(), "d", 0, max_ts, 10, bad, next, st);
    CHECK_FALSE(st.ok);
    CHECK(st.message == "malformed cursor");
    CHECK(out.empty());
  }
  auto upper = good;
  std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
  upper[0] = 'c';
  if (upper != good) {
    read_readings(t.db(), "d", 0, max_ts, 10, upper, next, st);
    CHECK_FALSE(st.ok);
  }
  read_readings(t.db(), "d", 0, max_ts, 0, "", next, st);
  CHECK_FALSE(st.ok);

  auto rest = read_readings(t.db(), "d", 0, max_ts, 10, good, next, st);
  REQUIRE(st.ok);
  REQUIRE(rest.size() == 1);
  CHECK(rest[0].seq == 2);
  CHECK(next.empty());

  CHECK(read_readings(t.db(), "nobody", 0, max_ts, 10, "", next, st).empty());
  CHECK(st.ok);
  CHECK(next.empty());
}
