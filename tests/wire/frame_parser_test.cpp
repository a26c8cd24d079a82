// frame_parser::parse: readings, batches, arrays, control messages and every
// error path with its exact code.

#include <catch2/catch.hpp>
#include <string>

#include "tests/wire/wire_test_support.hpp"
#include "wire/codec.hpp"

using namespace pulse;
using namespace pulse::wire;
using pulse::wire::test::flatten;
using pulse::wire::test::now_ms;
using pulse::wire::test::only_invalid_json;

namespace {

// Expects exactly one error, no readings, and returns the error.
wire_error single_error(const frame& f) {
  REQUIRE(f.errors.size() == 1);
  REQUIRE(f.readings() == 0);
  return f.errors[0];
}

wire_error bad_reading(frame_parser& p, const std::string& text) {
  INFO(text);
  auto f = test::parse(p, text);
  auto e = single_error(f);
  CHECK(e.code == error_code::invalid_reading);
  return e;
}

std::string reading_with(const std::string& fields) {
  return R"({"device":"meter-7",)" + fields + "}";
}

}  // namespace

TEST_CASE("a single reading is parsed into one batch", "[wire][reading]") {
  frame_parser p;
  auto f = test::parse(
      p,
      R"({"device":"meter-7","seq":42,"ts":1731801715542,"values":{"voltage":230.4,"current":5.1},"meta":{"fw":"1.2.3","slots":4}})");
  REQUIRE(f.errors.empty());
  REQUIRE(f.batches.size() == 1);
  const auto& b = f.batches[0];
  CHECK(b.device == "meter-7");
  CHECK(b.metrics == std::vector<std::string>{"voltage", "current"});
  REQUIRE(b.rows.size() == 1);
  CHECK(b.rows[0].seq == 42);
  CHECK(b.rows[0].has_seq);
  CHECK(b.rows[0].ts == 1731801715542);
  CHECK(b.rows[0].first == 0);
  CHECK(b.rows[0].count == 2);
  REQUIRE(b.samples.size() == 2);
  CHECK(b.samples[0].metric == 0);
  CHECK(b.samples[0].value == 230.4);
  CHECK(b.samples[1].metric == 1);
  CHECK(b.samples[1].value == 5.1);
  CHECK(b.meta == R"({"fw":"1.2.3","slots":4})");
  CHECK(f.readings() == 1);
}

TEST_CASE("optional reading fields", "[wire][reading]") {
  frame_parser p;
  SECTION("no seq and no ts: server time, shard assigns seq") {
    auto f = test::parse(p, R"({"device":"d","values":{"v":1}})");
    REQUIRE(f.readings() == 1);
    CHECK_FALSE(f.batches[0].rows[0].has_seq);
    CHECK(f.batches[0].rows[0].seq == 0);
    CHECK(f.batches[0].rows[0].ts == now_ms);
    CHECK(f.batches[0].meta.empty());
  }
  SECTION("keys in any order, ts as RFC 3339") {
    auto f = test::parse(
        p, R"({"values":{"v":-0.5e2},"ts":"2023-09-17T20:29:59.123Z","seq":0,"device":"d"})");
    REQUIRE(f.errors.empty());
    auto r = flatten(f);
    REQUIRE(r.size() == 1);
    CHECK(r[0].ts == 1694982599123);
    CHECK(r[0].seq == std::optional<std::uint64_t>(0));
    CHECK(r[0].value("v") == -50.0);
  }
  SECTION("largest seq") {
    auto f = test::parse(p, reading_with(R"("seq":18446744073709551615,"values":{"v":1})"));
    REQUIRE(f.errors.empty());
    CHECK(f.batches[0].rows[0].seq == UINT64_MAX);
  }
  SECTION("escaped keys and strings are unescaped") {
    auto f = test::parse(p, R"({"dev\u0069ce":"met\u0065r-7","values":{"volt\u0061ge":1}})");
    REQUIRE(f.errors.empty());
    CHECK(f.batches[0].device == "meter-7");
    CHECK(f.batches[0].metrics[0] == "voltage");
  }
  SECTION("integers, exponents and huge integers are numbers") {
    auto f = test::parse(
        p, reading_with(R"("values":{"a":7,"b":1e3,"c":123456789012345678901234567890,"d":-0})"));
    REQUIRE(f.errors.empty());
    auto r = flatten(f);
    CHECK(r[0].value("a") == 7);
    CHECK(r[0].value("b") == 1000);
    CHECK(r[0].value("c") == Approx(1.2345678901234568e29));
  }
  SECTION("64 metrics and a 128-character device are the limits") {
    std::string values;
    for (int i = 0; i < 64; ++i)
      values += (i ? "," : "") + std::string("\"m") + std::to_string(i) + "\":" + std::to_string(i);
    std::string device(128, 'x');
    auto f = test::parse(p, R"({"device":")" + device + R"(","values":{)" + values + "}}");
    REQUIRE(f.errors.empty());
    CHECK(f.batches[0].rows[0].count == 64);
  }
  SECTION("ts exactly 7 days ahead is accepted, and the smallest ms ts, and 1970 as RFC 3339") {
    auto f = test::parse(p, reading_with(R"("ts":)" + std::to_string(now_ms + max_future_ms) +
                                         R"(,"values":{"v":1})"));
    CHECK(f.errors.empty());
    f = test::parse(p, reading_with(R"("ts":100000000000,"values":{"v":1})"));
    CHECK(f.errors.empty());
    f = test::parse(p, reading_with(R"("ts":"1970-01-01T00:00:00Z","values":{"v":1})"));
    REQUIRE(f.errors.empty());
    CHECK(f.batches[0].rows[0].ts == 0);
  }
}

TEST_CASE("seq errors", "[wire][reading][errors]") {
  frame_parser p;
  CHECK(bad_reading(p, reading_with(R"("seq":-1,"values":{"v":1})")).message ==
        "seq is not an unsigned integer");
  CHECK(bad_reading(p, reading_with(R"("seq":4.5,"values":{"v":1})")).message ==
        "seq is not an unsigned integer");
  CHECK(bad_reading(p, reading_with(R"("seq":1e3,"values":{"v":1})")).message ==
        "seq is not an unsigned integer");
  CHECK(bad_reading(p, reading_with(R"("seq":"42","values":{"v":1})")).message ==
        "seq is not an unsigned integer");
  CHECK(bad_reading(p, reading_with(R"("seq":null,"values":{"v":1})")).message ==
        "seq is not an unsigned integer");
  CHECK(bad_reading(p, reading_with(R"("seq":18446744073709551616,"values":{"v":1})")).message ==
        "seq is out of range");
  CHECK(bad_reading(p, reading_with(R"("seq":-99999999999999999999,"values":{"v":1})")).message ==
        "seq is not an unsigned integer");
  // The error does not carry a seq that was not valid.
  CHECK_FALSE(bad_reading(p, reading_with(R"("seq":-1,"values":{"v":1})")).seq);
}

TEST_CASE("ts errors", "[wire][reading][errors]") {
  frame_parser p;
  auto e = bad_reading(p, reading_with(R"("seq":5,"ts":1731801715542.5,"values":{"v":1})"));
  CHECK(e.message == "ts is not an integer (ms since epoch)");
  CHECK(e.seq == std::optional<std::uint64_t>(5));
  CHECK(bad_reading(p, reading_with(R"("ts":-1,"values":{"v":1})")).message == "ts is before 1970");
  // Seconds where milliseconds belong: refused, naming the unit.
  for (auto ts : {"0", "1", "1731801600", "99999999999"}) {
    INFO(ts);
    auto e = bad_reading(p, reading_with(std::string(R"("seq":7,"ts":)") + ts + R"(,"values":{"v":1})"));
    CHECK(e.code == error_code::invalid_reading);
    CHECK(e.message == std::string("ts ") + ts +
                         " looks like seconds: timestamps are milliseconds since the epoch "
                         "(e.g. 1731801600000), or RFC 3339 strings");
    CHECK(e.seq == std::optional<std::uint64_t>(7));
  }
  CHECK(bad_reading(p, reading_with(R"("ts":"1969-12-31T23:59:59Z","values":{"v":1})")).message ==
        "ts is before 1970");
  CHECK(bad_reading(p, reading_with(R"("ts":)" + std::to_string(now_ms + max_future_ms + 1) +
                                    R"(,"values":{"v":1})"))
            .message == "ts is more than 7 days in the future");
  CHECK(bad_reading(p, reading_with(R"("ts":"2023-02-30T00:00:00Z","values":{"v":1})")).message ==
        "ts is not a valid RFC 3339 timestamp");
  CHECK(bad_reading(p, reading_with(R"("ts":true,"values":{"v":1})")).message ==
        "ts is not a number or an RFC 3339 string");
  CHECK(bad_reading(p, reading_with(R"("ts":99999999999999999999,"values":{"v":1})")).message ==
        "ts is out of range");
}

TEST_CASE("values errors name the field", "[wire][reading][errors]") {
  frame_parser p;
  auto e = bad_reading(p, reading_with(R"("seq":43,"values":{"voltage":"230.4"})"));
  CHECK(e.message == "values.voltage is not a number");
  CHECK(e.seq == std::optional<std::uint64_t>(43));
  CHECK(bad_reading(p, reading_with(R"("values":{"a":1,"voltage":null})")).message ==
        "values.voltage is not a number");
  CHECK(bad_reading(p, reading_with(R"("values":{"on":true})")).message ==
        "values.on is not a number");
  CHECK(bad_reading(p, reading_with(R"("values":{"o":{"x":1}})")).message ==
        "values.o is not a number");
  CHECK(bad_reading(p, reading_with(R"("values":{"o":[1]})")).message ==
        "values.o is not a number");
  CHECK(bad_reading(p, reading_with(R"("values":{"big":1e400})")).message ==
        "values.big is not a finite number");
  CHECK(bad_reading(p, reading_with(R"("values":{})")).message == "values is empty");
  CHECK(bad_reading(p, reading_with(R"("values":[1,2])")).message == "values is not an object");
  CHECK(bad_reading(p, reading_with(R"("values":{"v":1,"w":2,"v":3})")).message ==
        "values.v appears twice");
  CHECK(bad_reading(p, reading_with(R"("values":{"bad name":1})")).message ==
        "values.bad name is not a valid metric name (1-64 characters of A-Za-z0-9_.)");
  CHECK(bad_reading(p, reading_with(R"("values":{")" + std::string(65, 'm') + R"(":1})"))
            .message.find("is not a valid metric name") != std::string::npos);
  std::string values;
  for (int i = 0; i < 65; ++i)
    values += (i ? "," : "") + std::string("\"m") + std::to_string(i) + "\":1";
  CHECK(bad_reading(p, reading_with(R"("values":{)" + values + "}")).message ==
        "values has more than 64 metrics");
  CHECK(bad_reading(p, R"({"device":"d","seq":1})").message == "values is missing");
  // Duplicates past the pairwise check go through the hash index.
  values.clear();
  for (int i = 0; i < 40; ++i)
    values += (i ? "," : "") + std::string("\"m") + std::to_string(i) + "\":1";
  CHECK(bad_reading(p, reading_with(R"("values":{)" + values + R"(,"m17":2})")).message ==
        "values.m17 appears twice");
}

TEST_CASE("device errors", "[wire][reading][errors]") {
  frame_parser p;
  const std::string msg = "device is not a valid device id (1-128 characters of A-Za-z0-9:._-)";
  CHECK(bad_reading(p, R"({"values":{"v":1}})").message == "device is missing");
  CHECK(bad_reading(p, R"({"device":"a b","values":{"v":1}})").message == msg);
  CHECK(bad_reading(p, R"({"device":"","values":{"v":1}})").message == msg);
  CHECK(
      bad_reading(p, R"({"device":")" + std::string(129, 'x') + R"(","values":{"v":1}})").message ==
      msg);
  CHECK(bad_reading(p, R"({"device":7,"values":{"v":1}})").message == "device is not a string");
  CHECK(bad_reading(p, R"({"device":"mét","values":{"v":1}})").message == msg);
}

TEST_CASE("meta", "[wire][reading][meta]") {
  frame_parser p;
  SECTION("strings and numbers kept as compact JSON, escapes normalised") {
    auto f = test::parse(
        p,
        R"({"device":"h1", "values":{"load":0.5}, "meta" : { "os" : "Linux \"6\"" , "cpus":8, "ghz":2.50, "uni":"\u00e9" }})");
    REQUIRE(f.errors.empty());
    CHECK(f.batches[0].meta == R"({"os":"Linux \"6\"","cpus":8,"ghz":2.50,"uni":"é"})");
  }
  SECTION("latest wins within a frame") {
    auto f = test::parse(
        p,
        R"([{"device":"h1","values":{"a":1},"meta":{"v":1}},{"device":"h1","values":{"a":2}},{"device":"h1","values":{"a":3},"meta":{"v":3}}])");
    REQUIRE(f.errors.empty());
    CHECK(f.batches[0].meta == R"({"v":3})");
  }
  SECTION("anything else is an invalid reading") {
    CHECK(bad_reading(p, reading_with(R"("values":{"v":1},"meta":{"x":{"y":1}})")).message ==
          "meta.x is not a string or number");
    CHECK(bad_reading(p, reading_with(R"("values":{"v":1},"meta":{"x":[1]})")).message ==
          "meta.x is not a string or number");
    CHECK(bad_reading(p, reading_with(R"("values":{"v":1},"meta":{"x":true})")).message ==
          "meta.x is not a string or number");
    CHECK(bad_reading(p, reading_with(R"("values":{"v":1},"meta":{"x":null})")).message ==
          "meta.x is not a string or number");
    CHECK(bad_reading(p, reading_with(R"("values":{"v":1},"meta":"fw 1.2")")).message ==
          "meta is not an object");
    CHECK(bad_reading(
              p, reading_with(R"("values":{"v":1},"meta":{"x":")" + std::string(5000, 'a') + "\"}"))
              .message == "meta is larger than 4096 bytes");
  }
}

TEST_CASE("unknown and repeated fields", "[wire][reading][errors]") {
  frame_parser p;
  auto e = bad_reading(p, reading_with(R"("seq":9,"values":{"v":1},"x":1)"));
  CHECK(e.message == "unknown field x");
  CHECK(e.seq == std::optional<std::uint64_t>(9));
  CHECK(bad_reading(p, reading_with(R"("x":{"deep":[1,2,{"a":null}]},"values":{"v":1})")).message ==
        "unknown field x");
  CHECK(bad_reading(p, reading_with(R"("values":{"v":1},"values":{"v":2})")).message ==
        "values appears twice");
  CHECK(bad_reading(p, reading_with(R"("values":{"v":1},"hello":{"device":"d"})")).message ==
        "unknown field hello");
  CHECK(bad_reading(p, reading_with(R"("values":{"v":1},"readings":[])")).message ==
        "unknown field readings");
}

TEST_CASE("a batch for one device", "[wire][batch]") {
  frame_parser p;
  SECTION("good readings delivered, bad ones reported with path and seq") {
    auto f = test::parse(p, R"({"device":"meter-7","readings":[
        {"seq":43,"ts":1731801715000,"values":{"voltage":230.1,"current":5}},
        {"seq":44,"ts":1731801716000,"values":{"voltage":"x"}},
        {"seq":45,"ts":1731801717000,"values":{"current":5.2,"voltage":230.3}},
        7,
        {"ts":1731801718000,"values":{"voltage":230.4},"meta":{"fw":"2"}}],
        "meta":{"fw":"1"}})");
    REQUIRE(f.batches.size() == 1);
    const auto& b = f.batches[0];
    CHECK(b.device == "meter-7");
    CHECK(b.metrics == std::vector<std::string>{"voltage", "current"});
    auto r = flatten(f);
    REQUIRE(r.size() == 3);
    CHECK(r[0].seq == std::optional<std::uint64_t>(43));
    CHECK(r[1].seq == std::optional<std::uint64_t>(45));
    CHECK(r[1].values ==
          std::vector<std::pair<std::string, double>>{{"current", 5.2}, {"voltage", 230.3}});
    CHECK_FALSE(r[2].seq);
    CHECK(r[2].ts == 1731801718000);
    REQUIRE(f.errors.size() == 2);
    CHECK(f.errors[0].code == error_code::invalid_reading);
    CHECK(f.errors[0].message == "readings[1].values.voltage is not a number");
    CHECK(f.errors[0].seq == std::optional<std::uint64_t>(44));
    CHECK(f.errors[1].message == "readings[3] is not an object");
    CHECK_FALSE(f.errors[1].seq);
    CHECK(b.meta == R"({"fw":"1"})");  // the batch's own meta applies after its readings
  }
  SECTION("readings before device") {
    auto f = test::parse(
        p,
        R"({"readings":[{"seq":1,"values":{"v":1}},{"seq":2,"values":{"v":2}}],"meta":{"m":1},"device":"late"})");
    REQUIRE(f.errors.empty());
    REQUIRE(f.batches.size() == 1);
    CHECK(f.batches[0].device == "late");
    CHECK(f.batches[0].rows.size() == 2);
    CHECK(f.batches[0].meta == R"({"m":1})");
  }
  SECTION("device problems drop the batch with one error") {
    auto e = bad_reading(p, R"({"readings":[{"values":{"v":1}}]})");
    CHECK(e.message == "device is missing");
    e = bad_reading(p, R"({"device":"no spaces","readings":[{"values":{"v":1}}]})");
    CHECK(e.message == "device is not a valid device id (1-128 characters of A-Za-z0-9:._-)");
    e = bad_reading(p, R"({"readings":[{"values":{"v":1}}],"device":"no spaces"})");
    CHECK(e.message == "device is not a valid device id (1-128 characters of A-Za-z0-9:._-)");
  }
  SECTION("batch-level problems") {
    CHECK(bad_reading(p, R"({"device":"d","readings":{}})").message == "readings is not an array");
    CHECK(bad_reading(p, R"({"device":"d","readings":[]})").message == "readings is empty");
    CHECK(
        bad_reading(p, R"({"device":"d","readings":[{"device":"d","values":{"v":1}}]})").message ==
        "readings[0]: device is not allowed inside a batch's readings");
    CHECK(bad_reading(p, R"({"device":"d","readings":[{"values":{"v":1},"extra":1}]})").message ==
          "readings[0]: unknown field extra");
    auto f = test::parse(p, R"({"device":"d","readings":[{"values":{"v":1}}],"extra":true})");
    CHECK(f.readings() == 1);  // a stray batch-level key is reported, the readings still count
    REQUIRE(f.errors.size() == 1);
    CHECK(f.errors[0].message == "unknown field extra");
    f = test::parse(p, R"({"device":"d","readings":[{"values":{"v":1}}],"meta":[1]})");
    CHECK(f.readings() == 1);
    REQUIRE(f.errors.size() == 1);
    CHECK(f.errors[0].message == "meta is not an object");
    CHECK(f.batches[0].meta.empty());
  }
}

TEST_CASE("an array of readings is grouped by device in frame order", "[wire][array]") {
  frame_parser p;
  auto f = test::parse(p, R"([
      {"device":"a","seq":1,"values":{"x":1,"y":2}},
      {"device":"b","seq":1,"values":{"y":3}},
      {"device":"a","seq":2,"values":{"y":4,"z":5}},
      {"device":"c","seq":1,"values":{"x":"bad"}},
      "nope",
      {"device":"b","seq":2,"values":{"x":6}}])");
  REQUIRE(f.batches.size() == 2);
  CHECK(f.batches[0].device == "a");
  CHECK(f.batches[0].metrics == std::vector<std::string>{"x", "y", "z"});
  CHECK(f.batches[0].rows.size() == 2);
  CHECK(f.batches[0].rows[1].seq == 2);
  CHECK(f.batches[0].samples[f.batches[0].rows[1].first].metric == 1);
  CHECK(f.batches[1].device == "b");
  CHECK(f.batches[1].metrics == std::vector<std::string>{"y", "x"});
  auto r = flatten(f);
  REQUIRE(r.size() == 4);
  CHECK(r[3].values == std::vector<std::pair<std::string, double>>{{"x", 6}});
  REQUIRE(f.errors.size() == 2);
  CHECK(f.errors[0].message == "[3].values.x is not a number");
  CHECK(f.errors[0].seq == std::optional<std::uint64_t>(1));
  CHECK(f.errors[1].message == "[4] is not an object");
  SECTION("an empty array is nothing, not an error") {
    auto g = test::parse(p, "[]");
    CHECK(g.errors.empty());
    CHECK(g.batches.empty());
  }
  SECTION("many devices go through the device index") {
    std::string text = "[";
    for (int i = 0; i < 300; ++i)
      text += (i ? "," : "") + std::string(R"({"device":"d)") + std::to_string(i % 100) +
              R"(","values":{"v":)" + std::to_string(i) + "}}";
    text += "]";
    auto g = test::parse(p, text);
    REQUIRE(g.errors.empty());
    REQUIRE(g.batches.size() == 100);
    CHECK(g.batches[42].device == "d42");
    CHECK(g.batches[42].rows.size() == 3);
    CHECK(g.batches[42].samples[2].value == 242);
  }
}

TEST_CASE("hello, subscribe, unsubscribe", "[wire][control]") {
  frame_parser p;
  SECTION("hello") {
    auto f = test::parse(p, R"({"hello":{"device":"meter-7","token":"s3cr\"t"}})");
    REQUIRE(f.errors.empty());
    REQUIRE(f.hello);
    CHECK(f.hello->device == "meter-7");
    CHECK(f.hello->token == "s3cr\"t");
    f = test::parse(p, R"({"hello":{"device":"meter-7"}})");
    REQUIRE(f.hello);
    CHECK(f.hello->token.empty());
    f = test::parse(p, R"({"hello":{"token":"reader"}})");  // a reader: no device
    REQUIRE(f.errors.empty());
    REQUIRE(f.hello);
    CHECK(f.hello->device.empty());
    CHECK(f.hello->token == "reader");
  }
  SECTION("bad hello") {
    auto f = test::parse(p, R"({"hello":{"device":"bad id"}})");
    CHECK_FALSE(f.hello);
    REQUIRE(f.errors.size() == 1);
    CHECK(f.errors[0].code == error_code::invalid_reading);
    CHECK(f.errors[0].message ==
          "hello.device is not a valid device id (1-128 characters of A-Za-z0-9:._-)");
    CHECK(bad_reading(p, R"({"hello":{}})").message == "hello.device is missing");
    CHECK(bad_reading(p, R"({"hello":"meter-7"})").message == "hello is not an object");
    CHECK(bad_reading(p, R"({"hello":{"device":"d","x":1}})").message == "hello: unknown field x");
    CHECK(bad_reading(p, R"({"hello":{"device":"d","token":5}})").message ==
          "hello.token is not a string");
    CHECK(bad_reading(p, R"({"hello":{"device":"d"},"device":"d"})").message ==
          "unknown field device");
  }
  SECTION("subscribe and unsubscribe") {
    auto f = test::parse(p, R"({"subscribe":["battery:1:data","meter-*","*"]})");
    REQUIRE(f.errors.empty());
    CHECK(f.subscribe == std::vector<std::string>{"battery:1:data", "meter-*", "*"});
    f = test::parse(p, R"({"unsubscribe":["meter-*"],"subscribe":["a"]})");
    CHECK(f.unsubscribe == std::vector<std::string>{"meter-*"});
    CHECK(f.subscribe == std::vector<std::string>{"a"});
  }
  SECTION("bad patterns are reported, good ones kept") {
    auto f = test::parse(p, R"({"subscribe":["ok","a*b","**","x y",7,""]})");
    CHECK(f.subscribe == std::vector<std::string>{"ok"});
    REQUIRE(f.errors.size() == 5);
    for (const auto& e : f.errors) CHECK(e.code == error_code::invalid_reading);
    CHECK(f.errors[0].message ==
          "subscribe[1] is not a valid device id or prefix (A-Za-z0-9:._- with an optional "
          "trailing *)");
    CHECK(f.errors[3].message == "subscribe[4] is not a string");
    CHECK(bad_reading(p, R"({"unsubscribe":"meter-*"})").message == "unsubscribe is not an array");
  }
}

TEST_CASE("unknown message type", "[wire][errors]") {
  frame_parser p;
  CHECK(bad_reading(p, "{}").message == "unknown message type");
  CHECK(bad_reading(p, R"({"foo":1,"bar":[1,2]})").message == "unknown message type");
  CHECK(bad_reading(p, R"({"ack":{"device":"d","seq":1}})").message == "unknown message type");
}

TEST_CASE("anything that is not JSON is one invalid_json error", "[wire][errors][json]") {
  frame_parser p;
  const char* cases[] = {
      "",
      "   ",
      "{",
      R"({"device":"meter-7","values":{"v":1})",
      R"({"device":"meter-7","values":{"v":1}}})",
      R"({"device":"meter-7","values":{"v":1}} {"device":"x"})",
      R"({"device":"meter-7" "values":{"v":1}})",
      R"({"device":"meter-7","values":{"v":01}})",
      R"({"device":"meter-7","values":{"v":1.}})",
      R"({"device":"meter-7","values":{"v":1x}})",
      R"({"device":"meter-7","values":{"v":tru}})",
      R"({"device":"meter-7","values":{"v":1},"meta":{"a":nul}})",
      R"({"device":"meter-7","values":{"v":1},"x":[1 2]})",
      R"({"device":"me\qter","values":{"v":1}})",
      R"({"device":"meter-7","values":{"v":1},"x":"\ud800"})",
      "{\"device\":\"a\nb\",\"values\":{\"v\":1}}",
      "{\"device\":\"\xff\",\"values\":{\"v\":1}}",
      R"([{"device":"a","values":{"v":1}},])",
      R"([{"device":"a","values":{"v":1}}],)",
      "42",
      "\"meter-7\"",
      "true",
      "null",
      "nul",
      R"({"device":"a","readings":[{"values":{"v":1}},{"values":{"v":2}}])",
      R"({"device":"d","readings":[{"values":{"v":1}}, {"values":{"v":}}]})",
      R"({"subscribe":["a",]})",
  };
  for (const char* text : cases) {
    INFO(text);
    auto f = test::parse(p, text);
    CHECK(only_invalid_json(f));
    if (!f.errors.empty()) CHECK(f.errors[0].message.rfind("invalid JSON: ", 0) == 0);
  }
  SECTION("deep nesting beyond simdjson's depth limit") {
    std::string deep = R"({"device":"d","values":{"v":1},"x":)" + std::string(5000, '[') +
                       std::string(5000, ']') + "}";
    auto f = test::parse(p, deep);
    CHECK(only_invalid_json(f));
    CHECK(f.errors[0].message.find("too deep") != std::string::npos);
    f = test::parse(p, std::string(100000, '['));
    CHECK(only_invalid_json(f));
    f = test::parse(p, std::string(100000, '{'));
    CHECK(only_invalid_json(f));
  }
  SECTION("messages are clear") {
    CHECK(test::parse(p, "42").errors[0].message ==
          "invalid JSON: a frame must be a JSON object or array");
    CHECK(test::parse(p, R"({"a":1}})").errors[0].message ==
          "invalid JSON: unexpected content after the JSON value");
  }
}

TEST_CASE("more than 100,000 readings in a frame is too_large", "[wire][errors]") {
  frame_parser p;
  auto frame_of = [](std::size_t n) {
    std::string text = R"({"device":"d","readings":[)";
    text.reserve(n * 16);
    for (std::size_t i = 0; i < n; ++i)
      text += i ? R"(,{"values":{"v":1}})" : R"({"values":{"v":1}})";
    return text + "]}";
  };
  auto f = test::parse(p, frame_of(max_readings_per_frame));
  CHECK(f.errors.empty());
  CHECK(f.readings() == max_readings_per_frame);
  f = test::parse(p, frame_of(max_readings_per_frame + 1));
  REQUIRE(f.errors.size() == 1);
  CHECK(f.errors[0].code == error_code::too_large);
  CHECK(f.errors[0].message == "frame has more than 100000 readings");
  CHECK(f.batches.empty());
}

TEST_CASE("a frame is reused: cleared first, nothing stale", "[wire][reuse]") {
  frame_parser p;
  frame f;
  p.parse(R"([{"device":"a","values":{"x":1,"y":2}},{"device":"b","values":{"y":1}}])", now_ms, f);
  REQUIRE(f.batches.size() == 2);
  f.errors.push_back({error_code::overloaded, "stale", {}});
  f.subscribe.push_back("stale");
  p.parse(R"({"device":"c","values":{"z":3}})", now_ms, f);
  test::check_invariants(f);
  REQUIRE(f.batches.size() == 1);
  CHECK(f.errors.empty());
  CHECK(f.subscribe.empty());
  CHECK(f.batches[0].device == "c");
  CHECK(f.batches[0].metrics == std::vector<std::string>{"z"});
  CHECK(f.batches[0].meta.empty());
  p.parse(R"({"device":"a","values":{"x":1}})", now_ms, f);
  auto capacity = f.batches[0].samples.capacity();
  p.parse(R"({"device":"a","values":{"x":2}})", now_ms, f);
  CHECK(f.batches[0].samples.capacity() == capacity);  // buffers come back from the parser's spares
  CHECK(flatten(f)[0].value("x") == 2);
}
