// Server -> client encoders; every message must read back as JSON.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "wire/codec.hpp"

using namespace pulse::wire;
using nlohmann::json;

TEST_CASE("ack, error and welcome messages", "[wire][encode]") {
  CHECK(encode_ack("meter-7", 42) == R"({"ack":{"device":"meter-7","seq":42}})");
  CHECK(encode_ack("d", UINT64_MAX) == R"({"ack":{"device":"d","seq":18446744073709551615}})");
  CHECK(
      encode_error(wire_error{error_code::invalid_reading, "values.voltage is not a number", 43}) ==
      R"({"error":{"code":"invalid_reading","message":"values.voltage is not a number","seq":43}})");
  CHECK(encode_error(wire_error{error_code::invalid_json, "invalid JSON: x", std::nullopt}) ==
        R"({"error":{"code":"invalid_json","message":"invalid JSON: x"}})");
  CHECK(encode_error(error_code::too_large, "frame has more than 100000 readings") ==
        R"({"error":{"code":"too_large","message":"frame has more than 100000 readings"}})");
  CHECK(encode_welcome("node-a", "meter-7", 41) ==
        R"({"welcome":{"node":"node-a","device":"meter-7","last_seq":41}})");

  auto ack = json::parse(encode_ack("meter-7", 42));
  CHECK(ack["ack"]["device"] == "meter-7");
  CHECK(ack["ack"]["seq"] == 42);
  auto welcome = json::parse(encode_welcome("node \"a\"", "meter-7", 0));
  CHECK(welcome["welcome"]["node"] == "node \"a\"");
  CHECK(welcome["welcome"]["last_seq"] == 0);
}

TEST_CASE("error codes have their wire names", "[wire][encode]") {
  CHECK(std::string(to_string(error_code::invalid_json)) == "invalid_json");
  CHECK(std::string(to_string(error_code::invalid_reading)) == "invalid_reading");
  CHECK(std::string(to_string(error_code::unauthorized)) == "unauthorized");
  CHECK(std::string(to_string(error_code::rate_limited)) == "rate_limited");
  CHECK(std::string(to_string(error_code::overloaded)) == "overloaded");
  CHECK(std::string(to_string(error_code::too_large)) == "too_large");
  for (auto c : {error_code::invalid_json, error_code::invalid_reading, error_code::unauthorized,
                 error_code::rate_limited, error_code::overloaded, error_code::too_large}) {
    auto j = json::parse(encode_error(wire_error{c, "m", 1}));
    CHECK(j["error"]["code"] == to_string(c));
    CHECK(j["error"]["seq"] == 1);
  }
}

TEST_CASE("strings are escaped", "[wire][encode]") {
  std::string out;
  append_json_string(out, "a\"b\\c\n\t\x01\x1f/é€😀");
  CHECK(out == "\"a\\\"b\\\\c\\u000a\\u0009\\u0001\\u001f/é€😀\"");
  CHECK(json::parse(out) == "a\"b\\c\n\t\x01\x1f/é€😀");

  out.clear();
  append_json_string(out, std::string_view("\0x", 2));
  CHECK(out == "\"\\u0000x\"");

  // Invalid UTF-8 (stray continuation, truncated sequence, overlong, surrogate)
  // becomes U+FFFD so the message stays valid JSON.
  out.clear();
  append_json_string(out,
                     "a\x80"
                     "b\xe2\x82"
                     "c\xc0\xaf"
                     "d\xed\xa0\x80"
                     "e\xf4\x90\x80\x80");
  auto text = json::parse(out).get<std::string>();
  CHECK(text.find("a\xef\xbf\xbd"
                  "b") == 0);
  CHECK(text.find("e") != std::string::npos);

  std::string message;
  for (int c = 0; c < 256; ++c) message.push_back(static_cast<char>(c));
  auto encoded = encode_error(wire_error{error_code::invalid_reading, message, 7});
  REQUIRE_NOTHROW(json::parse(encoded));
  auto round = json::parse(encoded)["error"]["message"].get<std::string>();
  CHECK(round.substr(0, 128) == message.substr(0, 128));
}

TEST_CASE("parser error messages encode to valid JSON", "[wire][encode]") {
  frame_parser p;
  frame f;
  p.parse(R"({"device":"d","values":{"k\"\\\n\u0001":"x"}})", 0, f);
  REQUIRE(f.errors.size() == 1);
  auto j = json::parse(encode_error(f.errors[0]));
  CHECK(j["error"]["message"] == std::string("values.k\"\\\n\x01 is not a number"));
}
