// InfluxDB line protocol: Telegraf-shaped lines, the id and metric mapping,
// precisions, every kind of field, and garbage (every bad line is refused
// with its number, nothing half-parsed survives).

#include <catch2/catch.hpp>

#include <random>
#include <string>

#include "tests/wire/wire_test_support.hpp"
#include "wire/line_protocol.hpp"

using namespace pulse;
using namespace pulse::wire;
using pulse::wire::test::flatten;
using pulse::wire::test::now_ms;

namespace {

constexpr std::int64_t ns = 1;
constexpr std::int64_t ms_unit = 1'000'000;

frame parse_lp(std::string_view body, std::int64_t unit = ns) {
  frame f;
  parse_line_protocol(body, unit, now_ms, f);
  test::check_invariants(f);
  return f;
}

std::string bad_line(std::string_view body, std::int64_t unit = ns) {
  auto f = parse_lp(body, unit);
  INFO(body);
  REQUIRE(f.errors.size() == 1);
  CHECK(f.batches.empty());
  CHECK(f.errors[0].code == error_code::invalid_reading);
  return f.errors[0].message;
}

}  // namespace

TEST_CASE("Telegraf's cpu and mem lines map to devices and metrics", "[wire][line_protocol]") {
  // As Telegraf writes them: tags sorted, ns timestamps, ints with 'i'.
  auto f = parse_lp(
    "cpu,cpu=cpu-total,host=edge-01 usage_idle=98.5,usage_user=1.25,usage_system=0.25 1731801600000000000\n"
    "mem,host=edge-01 used=123456789i,available_percent=42.5,free=18446744073709551615u 1731801600000000000\n"
    "cpu,cpu=cpu-total,host=edge-01 usage_idle=97,usage_user=2,usage_system=1 1731801610000000000\n");
  REQUIRE(f.errors.empty());
  auto r = flatten(f);
  REQUIRE(r.size() == 3);
  CHECK(r[0].device == "cpu:cpu-total:edge-01");
  CHECK(!r[0].seq);
  CHECK(r[0].ts == 1731801600000);
  CHECK(r[0].value("usage_idle") == 98.5);
  CHECK(r[0].value("usage_system") == 0.25);
  CHECK(r[1].device == "cpu:cpu-total:edge-01");
  CHECK(r[1].ts == 1731801610000);
  CHECK(r[1].value("usage_user") == 2);
  CHECK(r[2].device == "mem:edge-01");
  CHECK(r[2].value("used") == 123456789.0);
  CHECK(r[2].value("free") == 18446744073709551615.0);
  CHECK(f.batches.size() == 2);
}

TEST_CASE("line protocol mapping: tag order, escapes, characters, strings and booleans",
          "[wire][line_protocol]") {
  SECTION("tag values in the order of their keys, whatever the line's order") {
    auto r = flatten(parse_lp("disk,path=/,device=sda1,fstype=ext4 used_percent=12.5"));
    REQUIRE(r.size() == 1);
    // device, fstype, path; '/' is outside the id syntax and becomes '_'.
    CHECK(r[0].device == "disk:sda1:ext4:_");
    CHECK(r[0].ts == now_ms);  // no timestamp: the receive time
  }
  SECTION("escapes in measurement, tags and field keys") {
    auto r = flatten(parse_lp(R"(my\ meter,site\=x=a\,b my\ field=1,other\,f=2)"));
    REQUIRE(r.size() == 1);
    CHECK(r[0].device == "my_meter:a_b");
    CHECK(r[0].value("my_field") == 1);
    CHECK(r[0].value("other_f") == 2);
  }
  SECTION("strings are skipped, booleans are 1 and 0") {
    auto r = flatten(parse_lp(
      R"(system,host=h uptime=3600i,uptime_format="1:00, \"up\"",ok=true,down=F,n1=TRUE,n0=false)"));
    REQUIRE(r.size() == 1);
    CHECK(r[0].values.size() == 5);
    CHECK(r[0].value("ok") == 1);
    CHECK(r[0].value("down") == 0);
    CHECK(r[0].value("n1") == 1);
    CHECK(r[0].value("n0") == 0);
    // Only strings: the line stores nothing, and is not an error.
    auto f = parse_lp("system,host=h uptime_format=\"1 day\"\nsystem,host=h load1=0.5\n");
    REQUIRE(f.errors.empty());
    CHECK(flatten(f).size() == 1);
  }
  SECTION("comments, blank lines, CRLF and spaces around") {
    auto f = parse_lp("# a comment\n\n  \r\nm v=1 1731801600000\r\n   m v=2 1731801600001  \n", ms_unit);
    REQUIRE(f.errors.empty());
    auto r = flatten(f);
    REQUIRE(r.size() == 2);
    CHECK(r[1].ts == 1731801600001);
  }
  SECTION("negative and exponent floats, negative integers") {
    auto r = flatten(parse_lp("m a=-1.5e3,b=-7i,c=0.0,d=1E-2"));
    REQUIRE(r.size() == 1);
    CHECK(r[0].value("a") == -1500);
    CHECK(r[0].value("b") == -7);
    CHECK(r[0].value("d") == 0.01);
  }
}

TEST_CASE("line protocol precisions", "[wire][line_protocol]") {
  CHECK(line_protocol_precision("", false) == 1);
  CHECK(line_protocol_precision("n", false) == 1);
  CHECK(line_protocol_precision("ns", true) == 1);
  CHECK(line_protocol_precision("u", false) == 1'000);
  CHECK(line_protocol_precision("us", true) == 1'000);
  CHECK(line_protocol_precision("ms", true) == 1'000'000);
  CHECK(line_protocol_precision("s", false) == 1'000'000'000);
  CHECK(line_protocol_precision("m", false) == 60'000'000'000);
  CHECK(line_protocol_precision("h", false) == 3'600'000'000'000);
  for (auto bad : {"n", "u", "m", "h", "sec", "S", "1s", " ms"}) CHECK_FALSE(line_protocol_precision(bad, true));
  for (auto bad : {"sec", "S", "d", "MS"}) CHECK_FALSE(line_protocol_precision(bad, false));

  const std::int64_t t = 1731801600;  // seconds
  for (auto [unit, ts] : {std::pair{std::int64_t{1'000'000'000}, t},
                          std::pair{std::int64_t{1'000'000}, t * 1000 + 7},
                          std::pair{std::int64_t{1'000}, t * 1'000'000 + 7'999},
                          std::pair{std::int64_t{1}, t * 1'000'000'000 + 7'999'999},
                          std::pair{std::int64_t{60'000'000'000}, t / 60}}) {
    INFO(unit);
    auto r = flatten(parse_lp("m v=1 " + std::to_string(ts), unit));
    REQUIRE(r.size() == 1);
    if (unit == 60'000'000'000) CHECK(r[0].ts == t / 60 * 60'000);
    else if (unit == 1'000'000'000) CHECK(r[0].ts == t * 1000);
    else CHECK(r[0].ts == t * 1000 + 7);  // truncated to ms
  }
}

TEST_CASE("bad lines are refused whole, naming the line", "[wire][line_protocol][errors]") {
  CHECK(bad_line("m v=1\nm v=oops\nm v=3") ==
        "line 2: field 'v': 'oops' is not a number (floats 1.5, integers 1i, unsigned 1u, booleans, "
        "or \"strings\")");
  CHECK(bad_line("m v=1\n\n# c\nm") == "line 4: expected a space before the fields");
  CHECK(bad_line(" ,t=1 v=1") == "line 1: missing measurement");
  CHECK(bad_line("m,=x v=1") == "line 1: empty tag key");
  CHECK(bad_line("m,t v=1") == "line 1: tag 't' has no '='");
  CHECK(bad_line("m,t= v=1") == "line 1: tag 't' has an empty value");
  CHECK(bad_line("m,a=1,a=2 v=1") == "line 1: tag 'a' appears twice");
  CHECK(bad_line("m ") == "line 1: no fields");
  CHECK(bad_line("m =1") == "line 1: empty field key");
  CHECK(bad_line("m v") == "line 1: field 'v' has no '='");
  CHECK(bad_line("m v=") == "line 1: field 'v' has no value");
  CHECK(bad_line("m v=1,v=2") == "line 1: field 'v' appears twice");
  CHECK(bad_line("m v=\"open") == "line 1: field 'v': unterminated string");
  CHECK(bad_line("m v=1i2") == "line 1: field 'v': '1i2' is not a number (floats 1.5, integers 1i, unsigned 1u, booleans, or \"strings\")");
  CHECK(bad_line("m v=99999999999999999999i") == "line 1: field 'v': '99999999999999999999i' is not an integer in range");
  CHECK(bad_line("m v=-1u") == "line 1: field 'v': '-1u' is not an integer in range");
  CHECK(bad_line("m v=i") == "line 1: field 'v': 'i' is not an integer in range");
  CHECK(bad_line("m v=nan") .find("is not a number") != std::string::npos);
  CHECK(bad_line("m v=inf").find("is not a number") != std::string::npos);
  CHECK(bad_line("m v=1e999").find("is not a number") != std::string::npos);
  CHECK(bad_line("m v=1 12x") == "line 1: timestamp '12x' is not an integer");
  CHECK(bad_line("m v=1 1 2") == "line 1: unexpected text after the timestamp");
  CHECK(bad_line("m v=1,") == "line 1: empty field key");
  CHECK(bad_line("m v=1\"") .find("line 1:") == 0);
  // Seconds sent where the default precision (ns) was meant.
  CHECK(bad_line("m v=1 1731801600") ==
        "line 1: timestamp 1731801600 is before 1973 at this precision (precision= says its unit: "
        "ns by default; s, ms, us too)");
  CHECK(bad_line("m v=1 -1", ms_unit).find("before 1973") != std::string::npos);
  CHECK(bad_line("m v=1 9223372036854775807", 1'000'000'000).find("7 days in the future") !=
        std::string::npos);
  CHECK(bad_line("m v=1 " + std::to_string((now_ms + 8 * 86'400'000) ), ms_unit)
          .find("7 days in the future") != std::string::npos);
  CHECK(bad_line(std::string(129, 'm') + " v=1").find("at most 128") != std::string::npos);
  CHECK(bad_line("m " + std::string(65, 'f') + "=1").find("longer than 64") != std::string::npos);
  std::string many = "m ";
  for (int i = 0; i < 65; ++i) many += (i ? ",f" : "f") + std::to_string(i) + "=1";
  CHECK(bad_line(many) == "line 1: 65 numeric fields, at most 64 per line");
}

TEST_CASE("line protocol garbage never crashes and keeps the invariants",
          "[wire][line_protocol][garbage]") {
  const std::string seeds[] = {
    "cpu,cpu=cpu0,host=a usage_idle=98.5,usage_user=1i 1731801600000000000\n",
    "system,host=h uptime_format=\"1:00\",load1=0.5,ok=t\n",
    R"(my\ m,t\=k=v\,w f\ 1=1u,s="a\"b" 1731801600000000001)",
  };
  const char alphabet[] = " ,=\\\"\n\r#0123456789iutfTF.-+eE";
  std::mt19937 rng(42);
  for (int i = 0; i < 20000; ++i) {
    std::string s = seeds[i % 3];
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      auto pos = rng() % (s.size() + 1);
      switch (rng() % 3) {
        case 0: s.insert(s.begin() + pos, alphabet[rng() % (sizeof alphabet - 1)]); break;
        case 1: if (pos < s.size()) s.erase(pos, 1); break;
        default: if (pos < s.size()) s[pos] = static_cast<char>(rng() % 256); break;
      }
    }
    frame f;
    parse_line_protocol(s, 1, now_ms, f);
    test::check_invariants(f);
    // All or nothing: an error leaves no readings.
    if (!f.errors.empty()) {
      REQUIRE(f.errors.size() == 1);
      REQUIRE(f.batches.empty());
      REQUIRE(f.errors[0].message.rfind("line ", 0) == 0);
    }
  }
}
