// parse_rfc3339 / format_rfc3339.

#include <catch2/catch.hpp>
#include <random>

#include "wire/codec.hpp"

using pulse::wire::format_rfc3339;
using pulse::wire::parse_rfc3339;

TEST_CASE("RFC 3339 timestamps are parsed", "[wire][rfc3339]") {
  CHECK(parse_rfc3339("1970-01-01T00:00:00Z") == 0);
  CHECK(parse_rfc3339("2023-09-17T20:29:59Z") == 1694982599000);
  CHECK(parse_rfc3339("2023-09-17T20:29:59.123Z") == 1694982599123);
  CHECK(parse_rfc3339("2023-09-17T20:29:59.1Z") == 1694982599100);
  CHECK(parse_rfc3339("2023-09-17T20:29:59.12Z") == 1694982599120);
  CHECK(parse_rfc3339("2023-09-17T20:29:59.123999999Z") ==
        1694982599123);  // truncated, not rounded
  CHECK(parse_rfc3339("2023-09-17t20:29:59z") == 1694982599000);
  CHECK(parse_rfc3339("2023-09-17T22:29:59+02:00") == 1694982599000);
  CHECK(parse_rfc3339("2023-09-17T14:59:59-05:30") == 1694982599000);
  CHECK(parse_rfc3339("2023-09-17T20:29:59.5+00:00") == 1694982599500);
  CHECK(parse_rfc3339("2024-02-29T00:00:00Z") == 1709164800000);
  CHECK(parse_rfc3339("2000-02-29T00:00:00Z") == 951782400000);
  CHECK(parse_rfc3339("1969-12-31T23:59:59Z") == -1000);
  CHECK(parse_rfc3339("2016-12-31T23:59:60Z") == 1483228800000);  // leap second: next minute
  CHECK(parse_rfc3339("9999-12-31T23:59:59.999Z") == 253402300799999);
}

TEST_CASE("malformed or impossible timestamps are rejected", "[wire][rfc3339]") {
  const char* bad[] = {
      "",
      "2023-09-17",
      "2023-09-17T20:29:59",   // no offset
      "2023-09-17 20:29:59Z",  // space instead of T
      "2023-13-01T00:00:00Z",  // month 13
      "2023-00-01T00:00:00Z",
      "2023-02-29T00:00:00Z",  // not a leap year
      "1900-02-29T00:00:00Z",  // century, not a leap year
      "2023-02-30T00:00:00Z",
      "2023-04-31T00:00:00Z",
      "2023-09-00T00:00:00Z",
      "2023-09-17T24:00:00Z",  // hour 24
      "2023-09-17T20:60:00Z",
      "2023-09-17T20:29:61Z",
      "2023-09-17T20:29:59.Z",  // empty fraction
      "2023-09-17T20:29:59+2:00",
      "2023-09-17T20:29:59+24:00",
      "2023-09-17T20:29:59+02:60",
      "2023-09-17T20:29:59+0200",
      "2023-09-17T20:29:59ZZ",
      "2023-09-17T20:29:59Z ",
      " 2023-09-17T20:29:59Z",
      "2023/09/17T20:29:59Z",
      "20230917T202959Z",
      "2023-9-17T20:29:59Z",
      "-023-09-17T20:29:59Z",
      "2023-09-17T20:29:59.123",
  };
  for (const char* s : bad) {
    INFO(s);
    CHECK_FALSE(parse_rfc3339(s));
  }
}

TEST_CASE("timestamps are formatted with milliseconds in UTC", "[wire][rfc3339]") {
  CHECK(format_rfc3339(0) == "1970-01-01T00:00:00.000Z");
  CHECK(format_rfc3339(1694982599123) == "2023-09-17T20:29:59.123Z");
  CHECK(format_rfc3339(1709164800000) == "2024-02-29T00:00:00.000Z");
  CHECK(format_rfc3339(-1) == "1969-12-31T23:59:59.999Z");
  CHECK(format_rfc3339(253402300799999) == "9999-12-31T23:59:59.999Z");
}

TEST_CASE("format and parse round-trip", "[wire][rfc3339]") {
  std::mt19937_64 rng(3339);
  std::uniform_int_distribution<std::int64_t> dist(-62'135'596'800'000,
                                                   253'402'300'799'999);  // years 1..9999
  for (int i = 0; i < 100000; ++i) {
    std::int64_t ms = dist(rng);
    auto text = format_rfc3339(ms);
    INFO(ms << " " << text);
    REQUIRE(parse_rfc3339(text) == ms);
  }
}
