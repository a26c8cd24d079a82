// frame_parser::parse_body: HTTP bodies as a JSON array or NDJSON.

#include <catch2/catch.hpp>
#include <string>

#include "tests/wire/wire_test_support.hpp"
#include "wire/codec.hpp"

using namespace pulse;
using namespace pulse::wire;
using pulse::wire::test::flatten;
using pulse::wire::test::now_ms;

namespace {
frame body(frame_parser& p, std::string_view text) {
  frame f;
  p.parse_body(text, now_ms, f);
  test::check_invariants(f);
  return f;
}
}  // namespace

TEST_CASE("a body that starts with a bracket is one array", "[wire][body]") {
  frame_parser p;
  auto f = body(
      p,
      "  \n[{\"device\":\"a\",\"values\":{\"v\":1}},\n {\"device\":\"b\",\"values\":{\"v\":2}}]\n");
  CHECK(f.errors.empty());
  CHECK(f.batches.size() == 2);
  f = body(p,
           "[{\"device\":\"a\",\"values\":{\"v\":1}}]\n[{\"device\":\"a\",\"values\":{\"v\":1}}]");
  REQUIRE(f.errors.size() == 1);
  CHECK(f.errors[0].code == error_code::invalid_json);
  CHECK(f.batches.empty());
}

TEST_CASE("NDJSON lines merge into per-device batches", "[wire][body]") {
  frame_parser p;
  std::string text =
      "{\"device\":\"a\",\"seq\":1,\"values\":{\"x\":1}}\r\n"
      "\n"
      "   \n"
      "{\"device\":\"b\",\"readings\":[{\"seq\":1,\"values\":{\"y\":1}},{\"seq\":2,\"values\":{"
      "\"y\":2}}]}\n"
      "[{\"device\":\"a\",\"seq\":2,\"values\":{\"z\":2,\"x\":3}}]\n"
      "{\"charge_point_id\":\"cp1\",\"payload\":{\"connectorId\":1,\"meterValue\":[{\"timestamp\":"
      "\"2023-09-17T20:29:59Z\",\"sampledValue\":[{\"value\":\"5\"}]}]}}\n"
      "{\"device\":\"a\",\"seq\":3,\"values\":{\"x\":4}}";  // no final newline
  auto f = body(p, text);
  REQUIRE(f.errors.empty());
  REQUIRE(f.batches.size() == 3);
  CHECK(f.batches[0].device == "a");
  CHECK(f.batches[0].rows.size() == 3);
  CHECK(f.batches[0].metrics == std::vector<std::string>{"x", "z"});
  CHECK(f.batches[1].device == "b");
  CHECK(f.batches[2].device == "cp1");
  CHECK(f.batches[2].metrics == std::vector<std::string>{"Energy.Active.Import.Register"});
  auto r = flatten(f);
  CHECK(r[1].values == std::vector<std::pair<std::string, double>>{{"z", 2}, {"x", 3}});
}

TEST_CASE("a bad NDJSON line is reported by number, the others are delivered", "[wire][body]") {
  frame_parser p;
  std::string text =
      "{\"device\":\"a\",\"seq\":1,\"values\":{\"x\":1}}\n"
      "{\"device\":\"a\",\"seq\":2,\"values\":{\"x\":\"no\"}}\n"
      // valid first reading, broken JSON later on the same line: the whole line goes
      "[{\"device\":\"a\",\"seq\":3,\"values\":{\"x\":3,\"new\":1}},{\"device\":\"c\",\"values\":{"
      "\"x\":1}},{]\n"
      "{\"device\":\"a\",\"seq\":4,\"values\":{\"x\":4},\"meta\":{\"m\":4}}\n"
      "{\"device\":\"a\",\"seq\":5,\"values\":{\"x\":5},\"meta\":{\"m\":5}} trailing\n"
      "{\"hello\":{\"device\":\"a\"}}\n";
  auto f = body(p, text);
  REQUIRE(f.batches.size() == 1);
  const auto& b = f.batches[0];
  CHECK(b.device == "a");
  CHECK(b.metrics == std::vector<std::string>{"x"});  // "new" was rolled back with its line
  CHECK(b.meta == R"({"m":4})");                      // line 5's meta rolled back too
  auto r = flatten(f);
  REQUIRE(r.size() == 2);
  CHECK(r[0].seq == std::optional<std::uint64_t>(1));
  CHECK(r[1].seq == std::optional<std::uint64_t>(4));
  REQUIRE(f.errors.size() == 4);
  CHECK(f.errors[0].code == error_code::invalid_reading);
  CHECK(f.errors[0].message == "line 2: values.x is not a number");
  CHECK(f.errors[0].seq == std::optional<std::uint64_t>(2));
  CHECK(f.errors[1].code == error_code::invalid_json);
  CHECK(f.errors[1].message.rfind("line 3: invalid JSON: ", 0) == 0);
  CHECK(f.errors[2].code == error_code::invalid_json);
  CHECK(f.errors[2].message.rfind("line 5: invalid JSON: ", 0) == 0);
  CHECK(f.errors[3].code == error_code::invalid_reading);
  CHECK(f.errors[3].message == "line 6: hello is not allowed in a request body");
  CHECK_FALSE(f.hello);
}

TEST_CASE("a pretty-printed object body is parsed as a whole", "[wire][body]") {
  frame_parser p;
  auto f = body(p, "{\n  \"device\": \"a\",\n  \"values\": {\"x\": 1}\n}\n");
  CHECK(f.errors.empty());
  CHECK(f.readings() == 1);
  // ...but broken JSON across lines still reports the lines.
  f = body(p, "{\n  \"device\": \"a\",\n");
  REQUIRE(f.errors.size() == 2);
  CHECK(f.errors[0].message.rfind("line 1: invalid JSON", 0) == 0);
  CHECK(f.errors[1].message.rfind("line 2: invalid JSON", 0) == 0);
}

TEST_CASE("too many readings in a body is too_large", "[wire][body]") {
  frame_parser p;
  std::string text;
  std::string line = "{\"device\":\"d\",\"readings\":[";
  for (int i = 0; i < 1000; ++i) line += i ? ",{\"values\":{\"v\":1}}" : "{\"values\":{\"v\":1}}";
  line += "]}\n";
  for (int i = 0; i < 100; ++i) text += line;
  auto f = body(p, text);
  CHECK(f.errors.empty());
  CHECK(f.readings() == 100000);
  text += "{\"device\":\"d\",\"values\":{\"v\":1}}\n";
  f = body(p, text);
  REQUIRE(f.errors.size() == 1);
  CHECK(f.errors[0].code == error_code::too_large);
  CHECK(f.errors[0].message == "request body has more than 100000 readings");
  CHECK(f.batches.empty());
}
