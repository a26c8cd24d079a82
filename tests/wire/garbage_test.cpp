// Random bytes and random mutations of valid frames: parse() must never
// throw or crash, must keep the output's invariants, and must report every
// input that is not JSON as exactly one invalid_json error.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "tests/wire/wire_test_support.hpp"
#include "wire/codec.hpp"

using namespace pulse;
using namespace pulse::wire;
using pulse::wire::test::now_ms;

namespace {

const char* seeds[] = {
    R"({"device":"meter-7","seq":42,"ts":1731801715542,"values":{"voltage":230.4,"current":5.1},"meta":{"fw":"1.2","n":3}})",
    R"({"device":"meter-7","readings":[{"seq":43,"ts":"2023-09-17T20:29:59Z","values":{"voltage":230.4}},{"seq":44,"values":{"voltage":1e3,"current":-0.5}}],"meta":{"fw":"x"}})",
    R"({"readings":[{"seq":1,"values":{"a":1}}],"device":"late"})",
    R"([{"device":"a","seq":1,"values":{"x":1}},{"device":"b","values":{"y":2}},{"device":"a","values":{"x":3,"y":4}}])",
    R"({"hello":{"device":"meter-7","token":"abc"}})",
    R"({"subscribe":["battery:1:data","meter-*"],"unsubscribe":["x"]})",
    R"({"charge_point_id":"cp1","payload":{"connectorId":1,"transactionId":76178,"meterValue":[{"timestamp":"2023-09-17T20:29:59Z","sampledValue":[{"value":"219710.906250","context":"Sample.Periodic","measurand":"Energy.Active.Import.Register","unit":"Wh"},{"phase":"L1-N","value":"245.04","measurand":"Voltage","unit":"V"}]}]}})",
    R"({"payload":"{\"connectorId\":1,\"meterValue\":[{\"timestamp\":\"2023-09-17T20:29:59Z\",\"sampledValue\":[{\"value\":\"1.5\"},{\"value\":\"2\"}]}]}","charge_point_id":"cp2"})",
};

const char structural[] = "{}[]:,\"\\ 0123456789-+.eEtrufalsn\n\t";

std::string mutate(std::string s, std::mt19937& rng) {
  std::uniform_int_distribution<int> op_dist(0, 7);
  int ops = 1 + static_cast<int>(rng() % 3);
  for (int k = 0; k < ops && !s.empty(); ++k) {
    std::size_t pos = rng() % s.size();
    switch (op_dist(rng)) {
      case 0:
        s[pos] = static_cast<char>(rng() % 256);
        break;  // random byte
      case 1:
        s[pos] = structural[rng() % (sizeof(structural) - 1)];
        break;  // JSON-ish byte
      case 2:
        s.erase(pos, 1 + rng() % 8);
        break;  // delete
      case 3:
        s.insert(pos, 1, structural[rng() % (sizeof(structural) - 1)]);
        break;  // insert
      case 4:
        s.resize(pos);
        break;   // truncate
      case 5: {  // duplicate a span
        std::size_t len = std::min<std::size_t>(s.size() - pos, 1 + rng() % 24);
        s.insert(rng() % s.size(), s.substr(pos, len));
        break;
      }
      case 6:
        s.insert(pos, std::string(1 + rng() % 40, rng() % 2 ? '[' : '{'));
        break;  // nesting
      default:
        std::swap(s[pos], s[rng() % s.size()]);
        break;
    }
  }
  return s;
}

// Text that nlohmann/json rejects as a syntax error must be one
// invalid_json error. (nlohmann also rejects numbers beyond double range such
// as 1e400 -- valid JSON grammar, which Pulse reports as invalid_reading.)
void check_against_reference(const std::string& text, const frame& f) {
  bool syntax_error = false;
  try {
    auto parsed = nlohmann::json::parse(text);
    (void)parsed;
  } catch (const nlohmann::json::parse_error&) {
    syntax_error = true;
  } catch (const nlohmann::json::exception&) {
  }
  if (syntax_error) {
    INFO(text);
    REQUIRE(test::only_invalid_json(f));
  }
}

}  // namespace

TEST_CASE("random bytes are reported, never crash", "[wire][garbage]") {
  frame_parser p;
  frame f;
  std::mt19937 rng(1234);
  for (int i = 0; i < 20000; ++i) {
    std::string text(rng() % 200, '\0');
    for (auto& c : text) c = static_cast<char>(rng() % 256);
    REQUIRE_NOTHROW(p.parse(text, now_ms, f));
    test::check_invariants(f);
    REQUIRE_FALSE(f.errors.empty());
    check_against_reference(text, f);
  }
}

TEST_CASE("mutated frames keep the invariants and never crash", "[wire][garbage]") {
  frame_parser p;
  frame f, g;
  std::mt19937 rng(5678);
  std::size_t json_errors = 0, delivered = 0;
  for (int i = 0; i < 60000; ++i) {
    std::string text = mutate(seeds[rng() % (sizeof(seeds) / sizeof(seeds[0]))], rng);
    REQUIRE_NOTHROW(p.parse(text, now_ms, f));
    test::check_invariants(f);
    check_against_reference(text, f);
    // Every frame produces something: readings, a control message or an error.
    bool something = !f.batches.empty() || !f.errors.empty() || f.hello || !f.subscribe.empty() ||
                     !f.unsubscribe.empty() || text.find('[') != std::string::npos;
    REQUIRE(something);
    if (!f.errors.empty() && f.errors[0].code == error_code::invalid_json) ++json_errors;
    delivered += f.readings();
    // Bodies go through the NDJSON path, including several lines at once.
    REQUIRE_NOTHROW(p.parse_body(text + "\n" + text, now_ms, g));
    test::check_invariants(g);
  }
  CHECK(json_errors > 1000);
  CHECK(delivered > 1000);
}
