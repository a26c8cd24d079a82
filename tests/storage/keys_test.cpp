#include "storage/keys.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <random>
#include <tuple>

using namespace pulse;
using namespace pulse::storage;

namespace {
constexpr std::int64_t some_ts = 1'731'801'715'542;
}

TEST_CASE("readings key round-trips, including extremes", "[keys]") {
  const std::string long_device(max_device_len, 'x');
  struct tc {
    std::string device;
    std::int64_t ts;
    std::uint64_t seq;
  };
  const std::vector<tc> cases = {
      {"meter-7", 1'731'801'715'542, 42},
      {"a", 0, 0},
      {long_device, max_ts, UINT64_MAX},
      {"battery:1:data", 3'599'999, 1},
  };
  for (const auto& c : cases) {
    auto key = readings_key(hour_bucket(c.ts), c.device, c.ts, c.seq);
    CHECK(key.size() == readings_key_fixed + c.device.size());
    readings_key_parts p;
    REQUIRE(decode_readings_key(key, p));
    CHECK(p.bucket == hour_bucket(c.ts));
    CHECK(p.device == c.device);
    CHECK(p.first_ts == c.ts);
    CHECK(p.first_seq == c.seq);
    CHECK(key.substr(0, key.size() - 16) == readings_prefix(hour_bucket(c.ts), c.device));
  }
  // Big-endian layout, as documented: bucket, length, device, ts, seq.
  auto key = readings_key(1, "ab", ms_per_hour + 2, 3);
  const std::string expected(
      "\x00\x00\x00\x01\x02"
      "ab"
      "\x00\x00\x00\x00\x00\x36\xee\x82"
      "\x00\x00\x00\x00\x00\x00\x00\x03",
      4 + 1 + 2 + 8 + 8);
  CHECK(key == expected);
}

TEST_CASE("bucket helpers", "[keys]") {
  CHECK(hour_bucket(0) == 0);
  CHECK(hour_bucket(ms_per_hour - 1) == 0);
  CHECK(hour_bucket(ms_per_hour) == 1);
  CHECK(minute_bucket(ms_per_minute * 61 + 5) == 61);
  CHECK(hour_bucket(max_ts) == 70'389'527u);
  CHECK(minute_bucket(max_ts) == 4'223'371'679u);  // still fits u32
  CHECK(valid_ts(0));
  CHECK(valid_ts(max_ts));
  CHECK_FALSE(valid_ts(-1));
  CHECK_FALSE(valid_ts(max_ts + 1));
}

TEST_CASE("readings keys sort by bucket, then device, then ts, then seq", "[keys]") {
  using tuple = std::tuple<std::uint32_t, std::string, std::int64_t, std::uint64_t>;
  std::mt19937_64 rng(7);
  const std::vector<std::string> devices = {"a", "ab", "b", "meter-1", "meter-10", "meter-2", "z"};
  std::vector<tuple> items;
  for (int i = 0; i < 2000; ++i) {
    std::uint32_t bucket = 481'000 + static_cast<std::uint32_t>(rng() % 3);
    std::int64_t ts = static_cast<std::int64_t>(bucket) * ms_per_hour +
                      static_cast<std::int64_t>(rng() % ms_per_hour);
    if (i % 50 == 0) ts = static_cast<std::int64_t>(bucket) * ms_per_hour;  // ties on ts
    std::uint64_t seq = (i % 7 == 0) ? UINT64_MAX - rng() % 3 : rng() % 1000;
    items.emplace_back(bucket, devices[rng() % devices.size()], ts, seq);
  }
  std::vector<std::pair<std::string, tuple>> keyed;
  for (const auto& t : items)
    keyed.emplace_back(readings_key(std::get<0>(t), std::get<1>(t), std::get<2>(t), std::get<3>(t)),
                       t);
  std::sort(keyed.begin(), keyed.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });

  for (std::size_t i = 1; i < keyed.size(); ++i) {
    const auto& [b0, d0, ts0, s0] = keyed[i - 1].second;
    const auto& [b1, d1, ts1, s1] = keyed[i].second;
    CHECK(b0 <= b1);
    if (b0 == b1 && d0 == d1) {
      CHECK(ts0 <= ts1);
      if (ts0 == ts1) CHECK(s0 <= s1);
    }
  }
  // Within a bucket, one device's keys are contiguous and exactly those that
  // start with its prefix ("a" must not capture "ab").
  for (std::uint32_t bucket = 481'000; bucket < 481'003; ++bucket) {
    for (const auto& dev : devices) {
      auto prefix = readings_prefix(bucket, dev);
      std::size_t first = keyed.size(), last = 0, n = 0, expected = 0;
      for (std::size_t i = 0; i < keyed.size(); ++i) {
        bool mine = std::get<0>(keyed[i].second) == bucket && std::get<1>(keyed[i].second) == dev;
        expected += mine;
        bool prefixed = keyed[i].first.compare(0, prefix.size(), prefix) == 0;
        CHECK(mine == prefixed);
        if (mine) {
          first = std::min(first, i);
          last = i;
          ++n;
        }
      }
      CHECK(n == expected);
      if (n > 0) CHECK(last - first + 1 == n);
    }
  }
}

TEST_CASE("rollup key round-trips and sorts by resolution, bucket, device", "[keys]") {
  auto m = rollup_key(resolution::minute, 28'863'360, "meter-7");
  rollup_key_parts p;
  REQUIRE(decode_rollup_key(m, p));
  CHECK(p.res == resolution::minute);
  CHECK(p.bucket == 28'863'360u);
  CHECK(p.device == "meter-7");
  CHECK(m[0] == 'm');

  auto h = rollup_key(resolution::hour, UINT32_MAX, std::string(max_device_len, 'q'));
  REQUIRE(decode_rollup_key(h, p));
  CHECK(p.res == resolution::hour);
  CHECK(p.bucket == UINT32_MAX);
  CHECK(p.device.size() == max_device_len);

  CHECK(rollup_key(resolution::hour, 1, "z") < rollup_key(resolution::minute, 0, "a"));
  CHECK(rollup_key(resolution::minute, 1, "z") < rollup_key(resolution::minute, 2, "a"));
  CHECK(rollup_key(resolution::minute, 255, "z") < rollup_key(resolution::minute, 256, "a"));
}

TEST_CASE("meta keys sort by device id", "[keys]") {
  CHECK(meta_key("meter-7") == "dmeter-7");
  CHECK(meta_key("a") < meta_key("ab"));
  CHECK(meta_key("ab") < meta_key("b"));
  std::string_view d;
  REQUIRE(decode_meta_key("dmeter-7", d));
  CHECK(d == "meter-7");
}

TEST_CASE("key decoders reject garbage", "[keys]") {
  readings_key_parts rp;
  rollup_key_parts kp;
  std::string_view d;
  auto good = readings_key(hour_bucket(some_ts), "meter", some_ts, 9);
  SECTION("readings") {
    CHECK_FALSE(decode_readings_key("", rp));
    for (std::size_t n = 0; n < good.size(); ++n)
      CHECK_FALSE(decode_readings_key(good.substr(0, n), rp));
    CHECK_FALSE(decode_readings_key(good + "x", rp));
    auto zero_len = good;
    zero_len[4] = 0;
    CHECK_FALSE(decode_readings_key(zero_len, rp));
    auto long_len = good;
    long_len[4] = static_cast<char>(200);
    CHECK_FALSE(decode_readings_key(long_len, rp));
    // ts beyond max_ts
    CHECK_FALSE(decode_readings_key(readings_key(0, "a", 0, 0).replace(6, 8, 8, '\xff'), rp));
    // first ts outside the key's bucket
    CHECK_FALSE(decode_readings_key(readings_key(5, "a", 0, 0), rp));
  }
  SECTION("rollups") {
    auto k = rollup_key(resolution::hour, 10, "dev");
    CHECK(decode_rollup_key(k, kp));
    for (std::size_t n = 0; n < k.size(); ++n) CHECK_FALSE(decode_rollup_key(k.substr(0, n), kp));
    CHECK_FALSE(decode_rollup_key(k + "x", kp));
    auto bad_tag = k;
    bad_tag[0] = 'x';
    CHECK_FALSE(decode_rollup_key(bad_tag, kp));
    auto zero_len = k;
    zero_len[5] = 0;
    CHECK_FALSE(decode_rollup_key(zero_len, kp));
  }
  SECTION("meta") {
    CHECK_FALSE(decode_meta_key("", d));
    CHECK_FALSE(decode_meta_key("d", d));
    CHECK_FALSE(decode_meta_key("xmeter", d));
    CHECK_FALSE(decode_meta_key("d" + std::string(max_device_len + 1, 'a'), d));
  }
  SECTION("random bytes never crash; accepted keys are canonical") {
    std::mt19937_64 rng(11);
    for (int i = 0; i < 20000; ++i) {
      std::string s(rng() % 40, '\0');
      for (auto& c : s) c = static_cast<char>(rng());
      if (i % 3 == 0 && s.size() > 5) s[4] = static_cast<char>(s.size() - 21);  // plausible length
      if (decode_readings_key(s, rp))
        CHECK(readings_key(rp.bucket, rp.device, rp.first_ts, rp.first_seq) == s);
      if (decode_rollup_key(s, kp)) CHECK(rollup_key(kp.res, kp.bucket, kp.device) == s);
    }
  }
}

TEST_CASE("prefix_successor bounds a prefix", "[keys]") {
  CHECK(prefix_successor("abc") == "abd");
  CHECK(prefix_successor(std::string("a\xff", 2)) == "b");
  CHECK(prefix_successor(std::string("\xff\xff", 2)).empty());
  auto p = readings_prefix(3, "dev");
  auto s = prefix_successor(p);
  CHECK(readings_key(3, "dev", 3 * ms_per_hour, UINT64_MAX) < s);
  CHECK(readings_key(3, "dev", 3 * ms_per_hour, 0) > p);
}
