#include "tests/storage/test_db.hpp"
#include "storage/rollup.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <random>

using namespace pulse::storage;
using pulse::storage::test::bits;

namespace {

struct point {
  double v;
  std::int64_t ts;
  std::uint64_t seq;
};

aggregate fold(const std::vector<point>& ps) {
  aggregate a;
  for (const auto& p : ps) a.add(p.v, p.ts, p.seq);
  return a;
}

void check_same(const aggregate& a, const aggregate& b) {
  CHECK(a.count == b.count);
  CHECK(bits(a.sum()) == bits(b.sum()));
  CHECK(bits(a.min) == bits(b.min));
  CHECK(bits(a.max) == bits(b.max));
  CHECK(bits(a.first) == bits(b.first));
  CHECK(bits(a.last) == bits(b.last));
  CHECK(a.first_ts == b.first_ts);
  CHECK(a.last_ts == b.last_ts);
  CHECK(a.first_seq == b.first_seq);
  CHECK(a.last_seq == b.last_seq);
}

}  // namespace

TEST_CASE("aggregate arithmetic", "[rollup]") {
  aggregate a;
  CHECK(a.count == 0);
  CHECK(a.avg() == 0.0);
  a.add(2.0, 100, 1);
  a.add(-4.0, 200, 2);
  a.add(8.5, 300, 3);
  CHECK(a.count == 3);
  CHECK(a.sum() == 6.5);
  CHECK(a.avg() == Approx(6.5 / 3));
  CHECK(a.min == -4.0);
  CHECK(a.max == 8.5);
  CHECK(a.first == 2.0);
  CHECK(a.first_ts == 100);
  CHECK(a.last == 8.5);
  CHECK(a.last_ts == 300);
  CHECK(a.last_seq == 3);
}

TEST_CASE("aggregate first/last follow (ts, seq), not arrival", "[rollup]") {
  aggregate a;
  a.add(5.0, 500, 50);
  a.add(1.0, 100, 10);  // late arrival of an earlier reading
  a.add(9.0, 900, 90);
  a.add(7.0, 700, 70);
  a.add(0.5, 100, 5);   // same ts as the first, lower seq: becomes first
  a.add(9.5, 900, 95);  // same ts as the last, higher seq: becomes last
  CHECK(a.first == 0.5);
  CHECK(a.first_ts == 100);
  CHECK(a.first_seq == 5);
  CHECK(a.last == 9.5);
  CHECK(a.last_ts == 900);
  CHECK(a.last_seq == 95);
}

TEST_CASE("aggregate merge is associative and matches sequential adds", "[rollup]") {
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> mag(-1e6, 1e6);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<point> ps;
    int n = 1 + static_cast<int>(rng() % 200);
    for (int i = 0; i < n; ++i) {
      double v = mag(rng) * std::pow(10.0, static_cast<int>(rng() % 9) - 4);
      ps.push_back({v, static_cast<std::int64_t>(rng() % 100000), rng()});
    }
    auto all = fold(ps);
    std::size_t i1 = rng() % (ps.size() + 1), i2 = rng() % (ps.size() + 1);
    if (i1 > i2) std::swap(i1, i2);
    auto a = fold({ps.begin(), ps.begin() + static_cast<long>(i1)});
    auto b = fold({ps.begin() + static_cast<long>(i1), ps.begin() + static_cast<long>(i2)});
    auto c = fold({ps.begin() + static_cast<long>(i2), ps.end()});
    aggregate left = a;  // (a + b) + c
    left.merge(b);
    left.merge(c);
    aggregate bc = b;  // a + (b + c)
    bc.merge(c);
    aggregate right = a;
    right.merge(bc);
    aggregate reversed = c;  // c + b + a
    reversed.merge(b);
    reversed.merge(a);
    check_same(left, all);
    check_same(right, all);
    check_same(reversed, all);
  }
}

TEST_CASE("compensated sum does not depend on order", "[rollup]") {
  SECTION("cancellation that a naive sum gets wrong") {
    std::vector<point> ps = {{1e100, 1, 1}, {1.0, 2, 2}, {-1e100, 3, 3}, {1e-3, 4, 4}};
    double naive = 0;
    for (auto& p : ps) naive += p.v;
    CHECK(naive != 1.001);  // the naive left-to-right sum loses the 1.0
    do {
      CHECK(fold(ps).sum() == 1.001);
    } while (std::next_permutation(ps.begin(), ps.end(),
                                   [](const point& a, const point& b) { return a.v < b.v; }));
  }
  SECTION("random mixed magnitudes, many shuffles") {
    std::mt19937_64 rng(99);
    std::uniform_real_distribution<double> u(-1, 1);
    std::vector<point> ps;
    for (int i = 0; i < 5000; ++i)
      ps.push_back({u(rng) * std::pow(10.0, static_cast<int>(rng() % 24) - 8), i,
                    static_cast<std::uint64_t>(i)});
    auto expected = fold(ps);
    double naive_first = 0;
    for (auto& p : ps) naive_first += p.v;
    bool naive_differs = false;
    for (int s = 0; s < 20; ++s) {
      std::shuffle(ps.begin(), ps.end(), rng);
      check_same(fold(ps), expected);
      double naive = 0;
      for (auto& p : ps) naive += p.v;
      naive_differs |= bits(naive) != bits(naive_first);
    }
    CHECK(naive_differs);  // the data is hard enough that plain summation wobbles
  }
}

TEST_CASE("aggregate min/max are order independent for signed zeros", "[rollup]") {
  aggregate a, b;
  a.add(0.0, 1, 1);
  a.add(-0.0, 2, 2);
  b.add(-0.0, 2, 2);
  b.add(0.0, 1, 1);
  CHECK(std::signbit(a.min));
  CHECK(std::signbit(b.min));
  CHECK_FALSE(std::signbit(a.max));
  CHECK_FALSE(std::signbit(b.max));
  aggregate z;
  z.add(-0.0, 1, 1);
  z.add(-0.0, 2, 2);
  CHECK(std::signbit(z.sum()));
}

TEST_CASE("aggregate merge with empty and overflow", "[rollup]") {
  aggregate a, empty;
  a.add(3.0, 10, 1);
  auto copy = a;
  a.merge(empty);
  check_same(a, copy);
  empty.merge(a);
  check_same(empty, copy);

  aggregate big;
  big.add(1.7e308, 1, 1);
  big.add(1.7e308, 2, 2);
  CHECK(std::isinf(big.sum()));
  CHECK(big.sum() > 0);
  CHECK(big.max == 1.7e308);
}

TEST_CASE("rollup row keeps entries sorted and merges per metric", "[rollup]") {
  rollup_row row;
  row.at(7).add(1.0, 10, 1);
  row.at(2).add(2.0, 10, 1);
  row.at(7).add(3.0, 20, 2);
  REQUIRE(row.entries.size() == 2);
  CHECK(row.entries[0].metric == 2);
  CHECK(row.entries[1].metric == 7);
  CHECK(row.find(7)->count == 2);
  CHECK(row.find(5) == nullptr);

  rollup_row other;
  other.at(5).add(4.0, 5, 9);
  other.at(7).add(-1.0, 5, 8);
  row.merge(other);
  REQUIRE(row.entries.size() == 3);
  CHECK(row.find(7)->count == 3);
  CHECK(row.find(7)->first == -1.0);
  CHECK(row.find(7)->sum() == 3.0);
  CHECK(row.find(5)->sum() == 4.0);
}

TEST_CASE("rollup row encoding round-trips and rejects garbage", "[rollup]") {
  rollup_row row;
  row.at(0).add(230.4, 1'731'801'600'000, 1);
  row.at(0).add(-0.0, 1'731'801'600'500, UINT64_MAX);
  row.at(3).add(1e-310, 0, 0);
  row.at(4000).add(-1.5e300, 253'402'300'799'999, 7);
  row.at(4000).add(1.5e300, 253'402'300'799'999, 6);
  std::string enc;
  encode_rollup_row(row, enc);
  rollup_row out;
  REQUIRE(decode_rollup_row(enc, out));
  REQUIRE(out.entries.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(out.entries[i].metric == row.entries[i].metric);
    check_same(out.entries[i].agg, row.entries[i].agg);
    CHECK(bits(out.entries[i].agg.sum_lo) == bits(row.entries[i].agg.sum_lo));
  }

  for (std::size_t n = 0; n < enc.size(); ++n)
    CHECK_FALSE(decode_rollup_row(enc.substr(0, n), out));
  CHECK(out.entries.empty());
  CHECK_FALSE(decode_rollup_row(enc + "x", out));
  auto bad_version = enc;
  bad_version[0] = 9;
  CHECK_FALSE(decode_rollup_row(bad_version, out));

  // Metric ids must increase.
  rollup_row twice;
  twice.at(1).add(1, 1, 1);
  twice.at(2).add(1, 1, 1);
  std::string e2;
  encode_rollup_row(twice, e2);
  auto swapped = e2;
  swapped[2] = 2;  // first entry's metric id 1 -> 2: equal to the next one
  CHECK_FALSE(decode_rollup_row(swapped, out));

  std::mt19937_64 rng(5);
  for (int i = 0; i < 20000; ++i) {
    std::string s = enc;
    if (i % 2) {
      s.resize(rng() % 200);
      for (auto& c : s) c = static_cast<char>(rng());
      if (!s.empty()) s[0] = 1;
    } else {
      for (int f = 0; f < 2; ++f) s[rng() % s.size()] ^= static_cast<char>(1 << (rng() % 8));
    }
    if (decode_rollup_row(s, out)) {
      for (std::size_t k = 0; k < out.entries.size(); ++k) {
        CHECK(out.entries[k].agg.count > 0);
        if (k) CHECK(out.entries[k - 1].metric < out.entries[k].metric);
      }
    }
  }
}
