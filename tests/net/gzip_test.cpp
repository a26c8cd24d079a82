// net/gzip: real gzip streams made with zlib, multi-member bodies, the size
// bound (a small "zip bomb"), and garbage.

#include <catch2/catch.hpp>
#include <zlib.h>

#include <random>
#include <string>

#include "net/gzip.hpp"
#include "tests/support/gzip.hpp"

using pulse::net::gunzip;
using pulse::net::gunzip_result;

using pulse::test::gzip;

TEST_CASE("gunzip inflates what gzip made, member after member", "[net][gzip]") {
  std::string text;
  for (int i = 0; i < 5000; ++i) text += "cpu,host=h usage_idle=" + std::to_string(i) + "\n";
  std::string out, err;
  REQUIRE(gunzip(gzip(text), 1 << 20, out, err) == gunzip_result::ok);
  CHECK(out == text);
  REQUIRE(gunzip(gzip("a\n") + gzip("b\n"), 100, out, err) == gunzip_result::ok);
  CHECK(out == "a\nb\n");
  REQUIRE(gunzip(gzip(""), 100, out, err) == gunzip_result::ok);
  CHECK(out.empty());
}

TEST_CASE("gunzip stops at the bound and refuses garbage", "[net][gzip][errors]") {
  std::string out, err;
  // 64 MiB of zeros compress to ~64 KiB: inflating stops at the bound.
  auto bomb = gzip(std::string(64 << 20, '\0'));
  CHECK(bomb.size() < (1 << 20));
  CHECK(gunzip(bomb, 1 << 20, out, err) == gunzip_result::too_large);
  CHECK(out.empty());
  CHECK(err.find("1048576") != std::string::npos);
  auto good = gzip("m v=1\n");
  CHECK(gunzip(good.substr(0, good.size() - 6), 100, out, err) == gunzip_result::corrupt);
  CHECK(err == "the gzip body is truncated");
  CHECK(gunzip("m v=1\n", 100, out, err) == gunzip_result::corrupt);
  CHECK(gunzip("", 100, out, err) == gunzip_result::corrupt);
  CHECK(gunzip(good + "trailing junk", 100, out, err) == gunzip_result::corrupt);
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    auto s = good;
    s[rng() % s.size()] = static_cast<char>(rng());
    auto r = gunzip(s, 100, out, err);
    if (r != gunzip_result::ok) CHECK(out.empty());
    else CHECK(out.size() <= 100);
  }
}
