#include "tests/storage/test_db.hpp"
#include "storage/chunk.hpp"

#include <catch2/catch.hpp>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "storage/keys.hpp"

using namespace pulse;
using namespace pulse::storage;
using pulse::storage::test::bits;

namespace {

struct input {
  std::vector<chunk_row> rows;
  std::vector<chunk_value> values;
  void add(std::int64_t ts, std::uint64_t seq, std::vector<chunk_value> vs) {
    chunk_row r;
    r.ts = ts;
    r.seq = seq;
    r.first = static_cast<std::uint32_t>(values.size());
    r.count = static_cast<std::uint16_t>(vs.size());
    values.insert(values.end(), vs.begin(), vs.end());
    rows.push_back(r);
  }
};

// Encodes `in` (sorting it), decodes, and checks every field bit for bit
// against the sorted input.
void check_round_trip(input in) {
  std::string enc;
  auto first = encode_chunk(in.rows, in.values, enc);
  CHECK(first.ts == in.rows.front().ts);
  CHECK(first.seq == in.rows.front().seq);
  decoded_chunk out;
  REQUIRE(decode_chunk(enc, first.ts, first.seq, out));
  REQUIRE(out.rows.size() == in.rows.size());
  for (std::size_t i = 0; i < in.rows.size(); ++i) {
    const auto& a = in.rows[i];
    const auto& b = out.rows[i];
    CHECK(a.ts == b.ts);
    CHECK(a.seq == b.seq);
    REQUIRE(a.count == b.count);
    for (std::size_t k = 0; k < a.count; ++k) {
      CHECK(in.values[a.first + k].metric == out.values[b.first + k].metric);
      CHECK(bits(in.values[a.first + k].value) == bits(out.values[b.first + k].value));
    }
  }
}

}  // namespace

TEST_CASE("chunk round-trips out-of-order input, sorted by (ts, seq)", "[chunk]") {
  const std::int64_t base = 1'731'801'600'000;
  input in;
  in.add(base + 500, 5, {{0, 1.5}, {1, 2.5}});
  in.add(base + 100, 9, {{0, -3.0}, {1, 4.0}});  // earlier ts, later seq
  in.add(base + 100, 2, {{1, 7.0}});             // equal ts, lower seq
  in.add(base + 3'599'999, 1, {{2, 8.0}});
  std::string enc;
  auto copy = in;
  auto first = encode_chunk(copy.rows, copy.values, enc);
  CHECK(first.ts == base + 100);
  CHECK(first.seq == 2);
  decoded_chunk out;
  REQUIRE(decode_chunk(enc, first.ts, first.seq, out));
  REQUIRE(out.rows.size() == 4);
  CHECK(out.rows[0].ts == base + 100);
  CHECK(out.rows[0].seq == 2);
  CHECK(out.rows[1].ts == base + 100);
  CHECK(out.rows[1].seq == 9);
  CHECK(out.rows[2].ts == base + 500);
  CHECK(out.rows[2].seq == 5);
  CHECK(out.rows[3].ts == base + 3'599'999);
  CHECK(out.rows[3].seq == 1);
  REQUIRE(out.rows[1].count == 2);
  CHECK(out.values[out.rows[1].first].value == -3.0);
  CHECK(out.values[out.rows[1].first + 1].metric == 1);
  CHECK(out.values[out.rows[3].first].metric == 2);
  check_round_trip(in);
}

TEST_CASE("chunk round-trips extremes", "[chunk]") {
  SECTION("ts 0 and seq 0 / UINT64_MAX") {
    input in;
    in.add(0, UINT64_MAX, {{0, 1}});
    in.add(0, 0, {{0, 2}});
    in.add(1, UINT64_MAX, {{0, 3}});
    in.add(2, 0, {{0, 4}});
    check_round_trip(in);
  }
  SECTION("year 9999") {
    input in;
    in.add(max_ts, 1, {{0, 1}});
    in.add(max_ts - 3'599'999, UINT64_MAX - 1, {{0, 2}});
    check_round_trip(in);
  }
  SECTION("64 metrics with special doubles") {
    const double specials[] = {-0.0,
                               0.0,
                               std::numeric_limits<double>::denorm_min(),
                               -std::numeric_limits<double>::denorm_min(),
                               DBL_MIN / 3,
                               DBL_MAX,
                               -DBL_MAX,
                               -1e-300,
                               -123.456,
                               1e308};
    input in;
    for (int r = 0; r < 3; ++r) {
      std::vector<chunk_value> vs;
      for (std::uint32_t m = 0; m < 64; ++m)
        vs.push_back({m * 1000 + 7, specials[(m + static_cast<std::uint32_t>(r)) % 10]});
      in.add(1000 + r, 10 + static_cast<std::uint64_t>(r), vs);
    }
    check_round_trip(in);
    std::string enc;
    auto copy = in;
    encode_chunk(copy.rows, copy.values, enc);
    decoded_chunk out;
    REQUIRE(decode_chunk(enc, 1000, 10, out));
    CHECK(std::signbit(out.values[0].value));  // -0.0 survives
    CHECK(out.values[0].value == 0.0);
    CHECK(out.values[2].value == std::numeric_limits<double>::denorm_min());
    CHECK(out.values[64 + 4].value == DBL_MAX);  // row 1 starts at specials[1]
  }
  SECTION("huge metric ids") {
    input in;
    in.add(5, 5, {{UINT32_MAX, 1.0}, {0, 2.0}});
    check_round_trip(in);
  }
}

TEST_CASE("chunk with repeated metric sets is compact", "[chunk]") {
  input in;
  for (int i = 0; i < 100; ++i)
    in.add(1'731'801'600'000 + i * 1000, 1000 + static_cast<std::uint64_t>(i),
           {{0, 230.0 + i}, {1, 5.1}, {2, 1170.0}, {3, 1e6 + i}});
  std::string enc;
  auto copy = in;
  encode_chunk(copy.rows, copy.values, enc);
  // 100 x (1-2 bytes ts + 1 seq + 1 header + 32 values), ids written once.
  CHECK(enc.size() <= 100 * 36 + 16);
  CHECK(enc.size() >= 100 * 35);
  check_round_trip(in);
}

TEST_CASE("chunk decode appends to existing output", "[chunk]") {
  input a, b;
  a.add(10, 1, {{0, 1.0}});
  b.add(5, 2, {{1, 2.0}, {2, 3.0}});
  std::string ea, eb;
  encode_chunk(a.rows, a.values, ea);
  encode_chunk(b.rows, b.values, eb);
  decoded_chunk out;
  REQUIRE(decode_chunk(ea, 10, 1, out));
  REQUIRE(decode_chunk(eb, 5, 2, out));
  REQUIRE(out.rows.size() == 2);
  CHECK(out.rows[1].first == 1);
  CHECK(out.values[out.rows[1].first + 1].value == 3.0);
}

TEST_CASE("chunk decoder rejects truncated and garbage input", "[chunk]") {
  input in;
  for (int i = 0; i < 20; ++i)
    in.add(3'600'000 + i * 17, static_cast<std::uint64_t>(i * 3),
           {{static_cast<std::uint32_t>(i % 3), i * 1.5}});
  std::string enc;
  auto first = encode_chunk(in.rows, in.values, enc);

  decoded_chunk out;
  out.rows.push_back({1, 1, 0, 1});
  out.values.push_back({0, 9.0});
  for (std::size_t n = 0; n < enc.size(); ++n) {
    CHECK_FALSE(decode_chunk(enc.substr(0, n), first.ts, first.seq, out));
    CHECK(out.rows.size() == 1);  // untouched on failure
    CHECK(out.values.size() == 1);
  }
  CHECK_FALSE(decode_chunk(enc + '\0', first.ts, first.seq, out));
  auto bad_version = enc;
  bad_version[0] = 2;
  CHECK_FALSE(decode_chunk(bad_version, first.ts, first.seq, out));
  CHECK_FALSE(decode_chunk(enc, -1, first.seq, out));
  // A base ts near max_ts makes the deltas overflow the ts range.
  CHECK_FALSE(decode_chunk(enc, max_ts - 10, first.seq, out));
  // count far larger than the data could hold
  std::string huge("\x01\xff\xff\xff\xff\x0f", 6);
  CHECK_FALSE(decode_chunk(huge, 0, 0, out));
  // 0 values in a reading
  std::string zero_values("\x01\x01\x00\x00\x00", 5);
  CHECK_FALSE(decode_chunk(zero_values, 0, 0, out));
  // "same ids" flag on the first reading
  std::string same_first(
      "\x01\x01\x00\x00\x03"
      "12345678",
      13);
  CHECK_FALSE(decode_chunk(same_first, 0, 0, out));
  CHECK(out.rows.size() == 1);

  std::mt19937_64 rng(3);
  for (int i = 0; i < 20000; ++i) {
    std::string s = enc;
    if (i % 2) {
      s.resize(rng() % 64);
      for (auto& c : s) c = static_cast<char>(rng());
      if (!s.empty()) s[0] = 1;
    } else {
      for (int f = 0; f < 3; ++f) s[rng() % s.size()] ^= static_cast<char>(1 << (rng() % 8));
    }
    decoded_chunk o;
    if (decode_chunk(s, first.ts, first.seq, o)) {
      // Whatever decodes is well-formed: sorted, counts in range, values in bounds.
      for (std::size_t k = 0; k < o.rows.size(); ++k) {
        CHECK(o.rows[k].count >= 1);
        CHECK(o.rows[k].count <= 64);
        CHECK(o.rows[k].first + o.rows[k].count <= o.values.size());
        CHECK(valid_ts(o.rows[k].ts));
        if (k > 0) CHECK(row_less(o.rows[k - 1], o.rows[k]));
      }
    } else {
      CHECK(o.rows.empty());
    }
  }
}
