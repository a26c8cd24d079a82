// OCPP 1.6 MeterValues mapping, checked on real rows of
// tests/data/meter_values_dump_10k.xlsx (embedded below) and on all 10,000
// rows of it.

#include <zip.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <pugixml.hpp>
#include <set>
#include <string>

#include "tests/wire/wire_test_support.hpp"
#include "wire/codec.hpp"

using namespace pulse;
using namespace pulse::wire;
using pulse::wire::test::flatten;
using pulse::wire::test::now_ms;
using values_t = std::vector<std::pair<std::string, double>>;

namespace {

// Real rows (sheet row number, charge_point_id, payload), chosen to cover
// every shape in the dump: one sampled value; four with phase L1 / L3; five
// with SoC and "0" values; 13 meterValues with one sample each at one
// timestamp (measurands repeat across them, told apart only by location);
// timestamp after sampledValue, millisecond timestamps, transactionId after
// meterValue; Transaction.End context.
struct real_row {
  int row;
  const char* charge_point_id;
  const char* payload;
};
const real_row
    real_rows
        [] =
            {
                {2, "l5Us3JZIaTCetQpWLgx7",
                 R"({"connectorId":1,"transactionId":76178,"meterValue":[{"timestamp":"2023-09-17T20:29:59Z","sampledValue":[{"value":"219710.906250","context":"Sample.Periodic","measurand":"Energy.Active.Import.Register","unit":"Wh"}]}]})"},
                {3, "cocPpWdMprESdBtOQvGd",
                 R"({"connectorId":1,"transactionId":76151,"meterValue":[{"timestamp":"2023-09-17T20:30:00Z","sampledValue":[{"value":"353672.750000","context":"Sample.Clock","measurand":"Energy.Active.Import.Register","unit":"Wh"},{"phase":"L1","value":"245.04","context":"Sample.Clock","measurand":"Voltage","unit":"V"},{"value":"0.00","context":"Sample.Clock","measurand":"Temperature","unit":"Celsius"},{"phase":"L1","value":"7.68","context":"Sample.Clock","measurand":"Current.Import","unit":"A"}]}]})"},
                {11, "ezoqjCSmDt3tWMpdjNl7",
                 R"({"connectorId":3,"transactionId":75259,"meterValue":[{"timestamp":"2023-09-17T20:30:00Z","sampledValue":[{"value":"4753334","context":"Sample.Clock","measurand":"Energy.Active.Import.Register","unit":"Wh"},{"phase":"L3","value":"249.33","context":"Sample.Clock","measurand":"Voltage","unit":"V"},{"value":"50.61","context":"Sample.Clock","measurand":"Temperature","unit":"Celsius"},{"phase":"L3","value":"10.22","context":"Sample.Clock","measurand":"Current.Import","unit":"A"}]}]})"},
                {50, "fK9TE6k0g0zvHojHziO1",
                 R"({"connectorId":1,"transactionId":76256,"meterValue":[{"timestamp":"2023-09-17T20:30:08Z","sampledValue":[{"value":"28.7","context":"Sample.Periodic","format":"Raw","measurand":"Current.Import","location":"Outlet","unit":"A"}]},{"timestamp":"2023-09-17T20:30:08Z","sampledValue":[{"value":"30.0","context":"Sample.Periodic","format":"Raw","measurand":"Current.Offered","location":"Outlet","unit":"A"}]},{"timestamp":"2023-09-17T20:30:08Z","sampledValue":[{"value":"30.0","context":"Sample.Periodic","format":"Raw","measurand":"Current.Offered","location":"EV","unit":"A"}]},{"timestamp":"2023-09-17T20:30:08Z","sampledValue":[{"value":"949040","context":"Sample.Periodic","format":"Raw","measurand":"Energy.Active.Import.Register","location":"Outlet","unit":"Wh"}]},{"timestamp":"2023-09-17T20:30:08Z","sampledValue":[{"value":"1650","context":"Sample.Periodic","format":"Raw","measurand":"Energy.Active.Import.Interval","location":"Outlet","unit":"Wh"}]},{"timestamp":"2023-09-17T20:30:08Z","sampledValue":[{"value":"2835.0","context":"Sample.Periodic","format":"Raw","measurand":"Power.Active.Import","location":"Outlet","unit":"W"}]},{"timestamp":"2023-09-17T20:30:08Z","sampledValue":[{"value":"92","context":"Sample.Periodic","format":"Raw","measurand":"SoC","location":"EV","unit":"Percent"}]},{"timestamp":"2023-09-17T20:30:08Z","sampledValue":[{"value":"85","context":"Transaction.Begin","format":"Raw","measurand":"SoC","location":"EV","unit":"Percent"}]},{"timestamp":"2023-09-17T20:30:08Z","sampledValue":[{"value":"98.4","context":"Sample.Periodic","format":"Raw","measurand":"Voltage","location":"Outlet","unit":"V"}]},{"timestamp":"2023-09-17T20:30:08Z","sampledValue":[{"value":"104.0","context":"Sample.Periodic","format":"Raw","measurand":"Voltage","location":"EV","unit":"V"}]},{"timestamp":"2023-09-17T20:30:08Z","sampledValue":[{"value":"26.4","context":"Sample.Periodic","format":"Raw","measurand":"Temperature","location":"Body","unit":"Celsius"}]},{"timestamp":"2023-09-17T20:30:08Z","sampledValue":[{"value":"30.0","context":"Sample.Periodic","format":"Raw","measurand":"Temperature","location":"Outlet","unit":"Celsius"}]},{"timestamp":"2023-09-17T20:30:08Z","sampledValue":[{"value":"31.0","context":"Sample.Periodic","format":"Raw","measurand":"Temperature","location":"Inlet","unit":"Celsius"}]}]})"},
                {78, "Y1m1cuVPTWAMgxU5jpo",
                 R"({"connectorId":2,"transactionId":76127,"meterValue":[{"timestamp":"2023-09-17T20:30:41Z","sampledValue":[{"value":"2791285","context":"Transaction.End","measurand":"Energy.Active.Import.Register","unit":"Wh"}]}]})"},
                {2881, "VSQt4sBhiZuuyzGCBRoK",
                 R"({"connectorId":1,"meterValue":[{"sampledValue":[{"unit":"Percent","context":"Sample.Periodic","measurand":"SoC","location":"EV","value":"15.0"},{"unit":"Wh","context":"Sample.Periodic","format":"Raw","measurand":"Energy.Active.Import.Register","location":"Outlet","value":"55902452"},{"unit":"A","context":"Sample.Periodic","measurand":"Current.Import","value":"60"},{"unit":"A","context":"Sample.Periodic","measurand":"Current.Offered","location":"Inlet","value":"40"},{"unit":"W","context":"Sample.Periodic","measurand":"Power.Active.Import","value":"19920"},{"unit":"V","context":"Sample.Periodic","measurand":"Voltage","value":"332"}],"timestamp":"2023-09-17T21:22:23.078Z"}],"transactionId":76271})"},
                {5177,
                 "pgfPzZCDaiElu7d5qZq", R"({"connectorId":1,"transactionId":76281,"meterValue":[{"timestamp":"2023-09-17T22:11:44Z","sampledValue":[{"value":"616030","context":"Sample.Clock","measurand":"Energy.Active.Import.Register","unit":"Wh"},{"phase":"L1","value":"250.360001","context":"Sample.Clock","measurand":"Voltage","unit":"V"},{"value":"0","context":"Sample.Clock","measurand":"Temperature","unit":"Celsius"},{"phase":"L1","value":"0.212800","context":"Sample.Clock","measurand":"Current.Import","unit":"A"},{"value":"0","context":"Sample.Clock","measurand":"SoC","unit":"Percent"}]}]})"},
};

std::string ocpp_frame(std::string_view cp, std::string_view payload) {
  return R"({"charge_point_id":")" + std::string(cp) + R"(","payload":)" + std::string(payload) +
         "}";
}

// The same frame with the payload as a JSON string, as some gateways send it.
std::string ocpp_frame_string_payload(std::string_view cp, std::string_view payload) {
  std::string quoted;
  append_json_string(quoted, payload);
  return ocpp_frame(cp, quoted);
}

const real_row& row(int n) {
  for (const auto& r : real_rows)
    if (r.row == n) return r;
  FAIL("no row " << n);
  return real_rows[0];
}

frame parse_row(frame_parser& p, int n, bool as_string = false) {
  const auto& r = row(n);
  auto f = test::parse(p, as_string ? ocpp_frame_string_payload(r.charge_point_id, r.payload)
                                    : ocpp_frame(r.charge_point_id, r.payload));
  return f;
}

}  // namespace

TEST_CASE("OCPP: one sampled value", "[wire][ocpp]") {
  frame_parser p;
  for (bool as_string : {false, true}) {
    INFO("payload as string: " << as_string);
    auto f = parse_row(p, 2, as_string);
    REQUIRE(f.errors.empty());
    REQUIRE(f.batches.size() == 1);
    const auto& b = f.batches[0];
    CHECK(b.device == "l5Us3JZIaTCetQpWLgx7");
    REQUIRE(b.rows.size() == 1);
    CHECK_FALSE(b.rows[0].has_seq);
    CHECK(b.rows[0].ts == 1694982599000);
    CHECK(flatten(f)[0].values == values_t{{"Energy.Active.Import.Register", 219710.90625}});
    CHECK(b.meta ==
          R"({"connectorId":1,"transactionId":76178,"unit.Energy.Active.Import.Register":"Wh"})");
  }
}

TEST_CASE("OCPP: phases become metric suffixes", "[wire][ocpp]") {
  frame_parser p;
  for (bool as_string : {false, true}) {
    auto f = parse_row(p, 3, as_string);
    REQUIRE(f.errors.empty());
    auto r = flatten(f);
    REQUIRE(r.size() == 1);
    CHECK(r[0].device == "cocPpWdMprESdBtOQvGd");
    CHECK(r[0].ts == 1694982600000);
    CHECK(r[0].values == values_t{{"Energy.Active.Import.Register", 353672.75},
                                  {"Voltage.L1", 245.04},
                                  {"Temperature", 0.0},
                                  {"Current.Import.L1", 7.68}});
    CHECK(
        f.batches[0].meta ==
        R"({"connectorId":1,"transactionId":76151,"unit.Energy.Active.Import.Register":"Wh","unit.Voltage.L1":"V","unit.Temperature":"Celsius","unit.Current.Import.L1":"A"})");
  }
  auto f = parse_row(p, 11);
  REQUIRE(f.errors.empty());
  CHECK(flatten(f)[0].values == values_t{{"Energy.Active.Import.Register", 4753334},
                                         {"Voltage.L3", 249.33},
                                         {"Temperature", 50.61},
                                         {"Current.Import.L3", 10.22}});
  CHECK(f.batches[0].meta.find(R"("connectorId":3)") != std::string::npos);
  f = parse_row(p, 5177);
  REQUIRE(f.errors.empty());
  CHECK(flatten(f)[0].values == values_t{{"Energy.Active.Import.Register", 616030},
                                         {"Voltage.L1", 250.360001},
                                         {"Temperature", 0},
                                         {"Current.Import.L1", 0.2128},
                                         {"SoC", 0}});
  CHECK(flatten(f)[0].ts == 1694988704000);
}

TEST_CASE("OCPP: every meterValue is a reading, even at one timestamp", "[wire][ocpp]") {
  frame_parser p;
  auto f = parse_row(p, 50);
  REQUIRE(f.errors.empty());
  REQUIRE(f.batches.size() == 1);
  const auto& b = f.batches[0];
  CHECK(b.metrics ==
        std::vector<std::string>{"Current.Import", "Current.Offered",
                                 "Energy.Active.Import.Register", "Energy.Active.Import.Interval",
                                 "Power.Active.Import", "SoC", "Voltage", "Temperature"});
  auto r = flatten(f);
  REQUIRE(r.size() == 13);
  for (const auto& reading : r) {
    CHECK(reading.ts == 1694982608000);
    CHECK(reading.values.size() == 1);
    CHECK_FALSE(reading.seq);
  }
  CHECK(r[1].values == values_t{{"Current.Offered", 30}});
  CHECK(r[2].values == values_t{{"Current.Offered", 30}});
  CHECK(r[6].values == values_t{{"SoC", 92}});
  CHECK(r[7].values == values_t{{"SoC", 85}});
  CHECK(r[10].values == values_t{{"Temperature", 26.4}});
  CHECK(r[12].values == values_t{{"Temperature", 31}});
  CHECK(
      b.meta ==
      R"({"connectorId":1,"transactionId":76256,"unit.Current.Import":"A","unit.Current.Offered":"A","unit.Energy.Active.Import.Register":"Wh","unit.Energy.Active.Import.Interval":"Wh","unit.Power.Active.Import":"W","unit.SoC":"Percent","unit.Voltage":"V","unit.Temperature":"Celsius"})");
}

TEST_CASE("OCPP: key order does not matter, ms timestamps", "[wire][ocpp]") {
  frame_parser p;
  auto f = parse_row(p, 2881);
  REQUIRE(f.errors.empty());
  auto r = flatten(f);
  REQUIRE(r.size() == 1);
  CHECK(r[0].ts == 1694985743078);
  CHECK(r[0].values == values_t{{"SoC", 15},
                                {"Energy.Active.Import.Register", 55902452},
                                {"Current.Import", 60},
                                {"Current.Offered", 40},
                                {"Power.Active.Import", 19920},
                                {"Voltage", 332}});
  CHECK(
      f.batches[0].meta ==
      R"({"connectorId":1,"transactionId":76271,"unit.SoC":"Percent","unit.Energy.Active.Import.Register":"Wh","unit.Current.Import":"A","unit.Current.Offered":"A","unit.Power.Active.Import":"W","unit.Voltage":"V"})");
  // payload before charge_point_id
  const auto& rr = row(78);
  f = test::parse(p, std::string(R"({"payload":)") + rr.payload + R"(,"charge_point_id":")" +
                         rr.charge_point_id + "\"}");
  REQUIRE(f.errors.empty());
  CHECK(f.batches[0].device == "Y1m1cuVPTWAMgxU5jpo");
  CHECK(flatten(f)[0].values == values_t{{"Energy.Active.Import.Register", 2791285}});
  CHECK(f.batches[0].meta ==
        R"({"connectorId":2,"transactionId":76127,"unit.Energy.Active.Import.Register":"Wh"})");
  f = test::parse(
      p, std::string(R"({"payload":)") +
             [&] {
               std::string q;
               append_json_string(q, rr.payload);
               return q;
             }() +
             R"(,"charge_point_id":")" + rr.charge_point_id + "\"}");
  REQUIRE(f.errors.empty());
  CHECK(f.readings() == 1);
}

TEST_CASE("OCPP: phases with characters metric names do not allow", "[wire][ocpp]") {
  frame_parser p;
  auto f = test::parse(
      p,
      ocpp_frame(
          "cp-1",
          R"({"connectorId":0,"meterValue":[{"timestamp":"2023-09-17T20:29:59+02:00","sampledValue":[
      {"value":"230.1","measurand":"Voltage","phase":"L1-N","unit":"V"},
      {"value":"400.2","measurand":"Voltage","phase":"L1-L2","unit":"V"},
      {"value":"0.1","measurand":"Current.Import","phase":"N","unit":"A"},
      {"value":"7"}]}]})"));
  REQUIRE(f.errors.empty());
  auto r = flatten(f);
  REQUIRE(r.size() == 1);
  CHECK(r[0].ts == 1694982599000 - 2 * 3'600'000);
  CHECK(r[0].values == values_t{{"Voltage.L1_N", 230.1},
                                {"Voltage.L1_L2", 400.2},
                                {"Current.Import.N", 0.1},
                                {"Energy.Active.Import.Register", 7}});  // default measurand
  CHECK(
      f.batches[0].meta ==
      R"({"connectorId":0,"unit.Voltage.L1_N":"V","unit.Voltage.L1_L2":"V","unit.Current.Import.N":"A"})");
}

TEST_CASE("OCPP: a repeated metric in one meterValue goes to an extra reading", "[wire][ocpp]") {
  frame_parser p;
  auto f = test::parse(
      p,
      ocpp_frame(
          "cp1",
          R"({"connectorId":1,"transactionId":5,"meterValue":[{"timestamp":"2023-09-17T20:29:59Z","sampledValue":[
      {"value":"100","context":"Sample.Periodic","measurand":"Energy.Active.Import.Register","unit":"Wh"},
      {"value":"230","measurand":"Voltage","unit":"V"},
      {"value":"101","context":"Sample.Clock","measurand":"Energy.Active.Import.Register","unit":"Wh"},
      {"value":"102","context":"Transaction.End","unit":"Wh"},
      {"value":"231","measurand":"Voltage","location":"EV","unit":"V"}]}]})"));
  REQUIRE(f.errors.empty());
  auto r = flatten(f);
  REQUIRE(r.size() == 3);
  for (const auto& reading : r) CHECK(reading.ts == 1694982599000);
  CHECK(r[0].values == values_t{{"Energy.Active.Import.Register", 100}, {"Voltage", 230}});
  CHECK(r[1].values == values_t{{"Energy.Active.Import.Register", 101}, {"Voltage", 231}});
  CHECK(r[2].values == values_t{{"Energy.Active.Import.Register", 102}});
}

TEST_CASE("OCPP: more than 64 sampled values are spread over readings", "[wire][ocpp]") {
  frame_parser p;
  std::string svs;
  for (int i = 0; i < 150; ++i)
    svs += (i ? "," : "") + std::string(R"({"value":")") + std::to_string(i) +
           R"(","measurand":"M)" + std::to_string(i % 100) + "\"}";
  auto f = test::parse(
      p,
      ocpp_frame(
          "cp1",
          R"({"connectorId":1,"meterValue":[{"timestamp":"2023-09-17T20:29:59Z","sampledValue":[)" +
              svs + "]}]}"));
  REQUIRE(f.errors.empty());
  auto r = flatten(f);
  std::size_t total = 0;
  std::multiset<std::string> names;
  for (const auto& reading : r) {
    total += reading.values.size();
    for (const auto& [n, v] : reading.values) {
      names.insert(n);
      CHECK(v == Approx(std::stoi(n.substr(1)) + (names.count(n) == 2 ? 100 : 0)));
    }
  }
  CHECK(total == 150);
  CHECK(names.count("M7") == 2);
  CHECK(names.count("M70") == 1);
  CHECK(r.size() == 3);
}

TEST_CASE("OCPP: nothing is dropped silently", "[wire][ocpp][errors]") {
  frame_parser p;
  SECTION("an unreadable value is an error naming it; the rest is delivered") {
    auto f = test::parse(p, ocpp_frame("cp1", R"({"connectorId":1,"meterValue":[
        {"timestamp":"2023-09-17T20:29:59Z","sampledValue":[{"value":"1.5","measurand":"A"},{"value":"2","measurand":"B"},{"value":"abc","measurand":"C"},{"value":"NaN","measurand":"D"},{"value":4.5,"measurand":"E"},{"value":"1e999","measurand":"F"},{"value":" 6 ","measurand":"G"}]},
        {"timestamp":"2023-09-17T20:30:59Z","sampledValue":[{"value":"0A1F","format":"SignedData"},{"value":"","measurand":"H"},{"value":null,"measurand":"I"}]}]})"));
    auto r = flatten(f);
    REQUIRE(r.size() == 1);
    CHECK(r[0].values == values_t{{"A", 1.5}, {"B", 2}, {"E", 4.5}, {"G", 6}});
    REQUIRE(f.errors.size() == 6);
    for (const auto& e : f.errors) {
      CHECK(e.code == error_code::invalid_reading);
      CHECK_FALSE(e.seq);
    }
    CHECK(f.errors[0].message == "meterValue[0].sampledValue[2].value is not a number");
    CHECK(f.errors[1].message == "meterValue[0].sampledValue[3].value is not a number");
    CHECK(f.errors[2].message == "meterValue[0].sampledValue[5].value is not a number");
    CHECK(f.errors[3].message == "meterValue[1].sampledValue[0].value is not a number");
    CHECK(f.errors[4].message == "meterValue[1].sampledValue[1].value is not a number");
    CHECK(f.errors[5].message == "meterValue[1].sampledValue[2].value is not a number");
  }
  SECTION("meterValue-level problems name the meterValue and count what it held") {
    auto f = test::parse(p, ocpp_frame("cp1", R"({"connectorId":1,"meterValue":[
        {"sampledValue":[{"value":"1"}]},
        {"timestamp":"2023-13-01T00:00:00Z","sampledValue":[{"value":"1"},{"value":"2","measurand":"X"}]},
        {"timestamp":"2023-09-17T20:29:59Z"},
        {"timestamp":"2023-09-17T20:29:59Z","sampledValue":[]},
        {"timestamp":"2023-09-17T20:29:59Z","sampledValue":[{"value":"1"}],"extra":1},
        {"timestamp":"2099-01-01T00:00:00Z","sampledValue":[{"value":"1"}]},
        {"timestamp":"2023-09-17T20:29:59Z","sampledValue":[{"value":"1","bogus":"x"},{"value":"2","measurand":"Bad Name"},{"value":"3","measurand":"Voltage","phase":"L1","unit":7}]},
        "x",
        {"timestamp":"2023-09-17T20:29:59Z","sampledValue":[{"value":"9"}]}]})"));
    auto r = flatten(f);
    REQUIRE(r.size() == 1);
    CHECK(r[0].values == values_t{{"Energy.Active.Import.Register", 9}});
    std::vector<std::string> messages;
    for (const auto& e : f.errors) messages.push_back(e.message);
    CHECK(messages == std::vector<std::string>{
                          "meterValue[0].timestamp is missing (1 sampled values not stored)",
                          "meterValue[1].timestamp is not a valid RFC 3339 timestamp (2 sampled "
                          "values not stored)",
                          "meterValue[2].sampledValue is missing",
                          "meterValue[3].sampledValue is empty",
                          "meterValue[4]: unknown field extra (1 sampled values not stored)",
                          "meterValue[5].timestamp is more than 7 days in the future (1 sampled "
                          "values not stored)",
                          "meterValue[6].sampledValue[0]: unknown field bogus",
                          "meterValue[6].sampledValue[1].measurand is not a valid metric name "
                          "(1-64 characters of A-Za-z0-9_.)",
                          "meterValue[6].sampledValue[2].unit is not a string",
                          "meterValue[7] is not an object",
                      });
  }
  SECTION("frame and payload problems") {
    auto e = test::parse(p, ocpp_frame("bad id", row(2).payload));
    REQUIRE(e.errors.size() == 1);
    CHECK(e.readings() == 0);
    CHECK(e.errors[0].message ==
          "charge_point_id is not a valid device id (1-128 characters of A-Za-z0-9:._-)");
    e = test::parse(p, R"({"charge_point_id":"cp1"})");
    REQUIRE(e.errors.size() == 1);
    CHECK(e.errors[0].message == "payload is missing");
    e = test::parse(p, std::string(R"({"payload":)") + row(2).payload + "}");
    REQUIRE(e.errors.size() == 1);
    CHECK(e.errors[0].message == "charge_point_id is missing");
    CHECK(e.readings() == 0);
    e = test::parse(p, ocpp_frame("cp1", "[1]"));
    REQUIRE(e.errors.size() == 1);
    CHECK(e.errors[0].message == "payload is not an object or a JSON string");
    e = test::parse(p, ocpp_frame("cp1", R"("[1]")"));
    REQUIRE(e.errors.size() == 1);
    CHECK(e.errors[0].message == "payload string does not hold a JSON object");
    e = test::parse(
        p,
        ocpp_frame(
            "cp1",
            R"({"connectorId":-1,"transactionId":"t","meterValue":[{"timestamp":"2023-09-17T20:29:59Z","sampledValue":[{"value":"1"}]}],"vendor":1})"));
    CHECK(e.readings() == 1);  // payload-level problems do not drop the readings
    REQUIRE(e.errors.size() == 3);
    CHECK(e.errors[0].message == "connectorId is not a non-negative integer");
    CHECK(e.errors[1].message == "transactionId is not an integer");
    CHECK(e.errors[2].message == "unknown field vendor in payload");
    CHECK(e.batches[0].meta.empty());  // nothing valid to describe
    e = test::parse(p, ocpp_frame("cp1", R"({"connectorId":1})"));
    REQUIRE(e.errors.size() == 1);
    CHECK(e.errors[0].message == "meterValue is missing");
    e = test::parse(p, ocpp_frame("cp1", R"({"connectorId":1,"meterValue":[]})"));
    REQUIRE(e.errors.size() == 1);
    CHECK(e.errors[0].message == "meterValue is empty");
    e = test::parse(
        p, R"({"charge_point_id":"cp1","payload":{"connectorId":1,"meterValue":[]},"device":"x"})");
    REQUIRE(e.errors.size() == 2);
    CHECK(e.errors[1].message == "unknown field device");
  }
  SECTION("a payload string that is not JSON is invalid_json") {
    auto e = test::parse(p, ocpp_frame("cp1", R"("{\"connectorId\":1,")"));
    CHECK(test::only_invalid_json(e));
    CHECK(e.errors[0].message.rfind("invalid JSON: payload string: ", 0) == 0);
    e = test::parse(
        p,
        ocpp_frame(
            "cp1",
            R"("{\"connectorId\":1,\"meterValue\":[{\"timestamp\":\"2023-09-17T20:29:59Z\",\"sampledValue\":[{\"value\":\"1\",\"context\":tru}]}]}")"));
    CHECK(test::only_invalid_json(e));
    e = test::parse(p, ocpp_frame("cp1", R"("{\"connectorId\":1,\"meterValue\":[]} x")"));
    CHECK(test::only_invalid_json(e));
  }
}

// ---------------------------------------------------------------------------
// The whole dump, when it is there.

namespace {

bool read_zip_entry(zip_t* z, const char* name, std::string& out) {
  zip_stat_t st;
  if (zip_stat(z, name, 0, &st) != 0) return false;
  zip_file_t* f = zip_fopen(z, name, 0);
  if (!f) return false;
  out.resize(st.size);
  auto n = zip_fread(f, out.data(), st.size);
  zip_fclose(f);
  return n == static_cast<zip_int64_t>(st.size);
}

// (charge_point_id, payload) of every data row of the sheet.
std::vector<std::pair<std::string, std::string>> read_dump(const char* path) {
  std::vector<std::pair<std::string, std::string>> rows;
  int err = 0;
  zip_t* z = zip_open(path, ZIP_RDONLY, &err);
  if (!z) return rows;
  std::string strings_xml, sheet_xml;
  bool ok = read_zip_entry(z, "xl/sharedStrings.xml", strings_xml) &&
            read_zip_entry(z, "xl/worksheets/sheet1.xml", sheet_xml);
  zip_close(z);
  if (!ok) return rows;
  pugi::xml_document strings_doc, sheet_doc;
  if (!strings_doc.load_buffer(strings_xml.data(), strings_xml.size()) ||
      !sheet_doc.load_buffer(sheet_xml.data(), sheet_xml.size()))
    return rows;
  std::vector<std::string> strings;
  for (auto si : strings_doc.child("sst").children("si")) {
    std::string text;
    for (auto t : si.select_nodes(".//t")) text += t.node().text().get();
    strings.push_back(std::move(text));
  }
  bool header = true;
  for (auto r : sheet_doc.child("worksheet").child("sheetData").children("row")) {
    std::string cells[2];
    for (auto c : r.children("c")) {
      std::string ref = c.attribute("r").value();
      int col = ref.empty() ? -1 : ref[0] - 'A';
      if (col < 0 || col > 1) continue;
      std::string v = c.child("v").text().get();
      cells[col] = std::string(c.attribute("t").value()) == "s" ? strings.at(std::stoul(v)) : v;
    }
    if (header) {
      header = false;
      continue;
    }
    rows.emplace_back(cells[0], cells[1]);
  }
  return rows;
}

}  // namespace

TEST_CASE("OCPP: every row of the real dump parses", "[wire][ocpp][dump]") {
  auto rows = read_dump(PULSE_OCPP_XLSX);
  INFO("the dump: " PULSE_OCPP_XLSX);
  REQUIRE(rows.size() == 10000);
  frame_parser p;
  frame f;
  std::set<std::string> devices;
  std::size_t readings = 0, samples = 0, errors = 0;
  double sum = 0;
  std::string ndjson;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& [cp, payload] = rows[i];
    // Every third row with the payload as a JSON string.
    std::string text =
        i % 3 == 0 ? ocpp_frame_string_payload(cp, payload) : ocpp_frame(cp, payload);
    p.parse(text, now_ms, f);
    if (!f.errors.empty()) {
      ++errors;
      UNSCOPED_INFO("row " << i + 2 << ": " << f.errors[0].message);
    }
    for (const auto& b : f.batches) {
      devices.insert(b.device);
      readings += b.rows.size();
      samples += b.samples.size();
      for (const auto& s : b.samples) sum += s.value;
      CHECK(b.meta.rfind(R"({"connectorId":)", 0) == 0);
    }
    ndjson += text;
    ndjson += '\n';
  }
  CHECK(errors == 0);
  CHECK(devices.size() == 53);
  CHECK(readings == 11452);
  CHECK(samples == 22003);
  CHECK(sum == Approx(14737930959.8).epsilon(1e-12));

  // The same rows as one NDJSON body: one batch per charge point.
  p.parse_body(ndjson, now_ms, f);
  test::check_invariants(f);
  CHECK(f.errors.empty());
  CHECK(f.batches.size() == 53);
  CHECK(f.readings() == 11452);
}
