// Tests of sim/replay: the real OCPP XLSX dump, small CSV/NDJSON fixtures,
// spreadsheets built here to reach the XLSX corners the dump does not use,
// and garbage that must end in a clear error rather than a crash.

#include "sim/replay.hpp"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include <zip.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

namespace fs = std::filesystem;
using pulse::sim::load_replay;
using pulse::sim::parse_rfc3339_ms;
using pulse::sim::replay_data;

namespace {

const std::string test_data = PULSE_TEST_DATA;
const std::string fixtures = PULSE_SIM_FIXTURES;

// A scratch directory removed at the end of the test.
struct temp_dir {
  fs::path path;
  temp_dir() {
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path() /
           ("pulse_replay_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name, const std::string& content) const {
    auto p = (path / name).string();
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }
};

using zip_entries = std::vector<std::pair<std::string, std::string>>;

// Writes a zip archive with the given entries (the buffers must outlive zip_close).
void write_zip(const std::string& path, const zip_entries& entries) {
  int err = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  REQUIRE(z != nullptr);
  for (auto& [name, content] : entries) {
    zip_source_t* src = zip_source_buffer(z, content.data(), content.size(), 0);
    REQUIRE(src != nullptr);
    REQUIRE(zip_file_add(z, name.c_str(), src, ZIP_FL_OVERWRITE) >= 0);
  }
  REQUIRE(zip_close(z) == 0);
}

const char* xml_head = R"(<?xml version="1.0" encoding="UTF-8" standalone="yes"?>)";
const char* ns_main = R"(xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main")";

// A minimal workbook whose first sheet is `sheet_path` (relative to xl/), not sheet1.xml.
zip_entries workbook(const std::string& sheet_path, const std::string& sheet_xml,
                     const std::string& shared_xml) {
  zip_entries e;
  e.emplace_back(
      "xl/workbook.xml",
      std::string(xml_head) + "<workbook " + ns_main +
          R"( xmlns:rel="http://schemas.openxmlformats.org/officeDocument/2006/relationships">)"
          R"(<sheets><sheet name="dump" sheetId="1" rel:id="rIdSheet"/></sheets></workbook>)");
  e.emplace_back(
      "xl/_rels/workbook.xml.rels",
      std::string(xml_head) +
          R"(<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">)"
          R"(<Relationship Id="rIdOther" Type="x" Target="styles.xml"/>)"
          R"(<Relationship Id="rIdSheet" Type="y" Target=")" +
          sheet_path + R"("/></Relationships>)");
  e.emplace_back("xl/" + sheet_path, sheet_xml);
  if (!shared_xml.empty()) e.emplace_back("xl/sharedStrings.xml", shared_xml);
  return e;
}

std::string sheet(const std::string& rows) {
  return std::string(xml_head) + "<worksheet " + ns_main + "><sheetData>" + rows +
         "</sheetData></worksheet>";
}

std::string inline_cell(const std::string& ref, const std::string& text) {
  return R"(<c r=")" + ref + R"(" t="inlineStr"><is><t>)" + text + "</t></is></c>";
}

const std::string ocpp_payload_xml =
    "{&quot;connectorId&quot;:1,&quot;meterValue&quot;:[{&quot;timestamp&quot;:&quot;"
    "2023-09-17T20:29:59Z&quot;,&quot;sampledValue&quot;:[{&quot;value&quot;:&quot;1.5&quot;}]}]}";

}  // namespace

TEST_CASE("RFC 3339 timestamps parse to ms without time zone state", "[replay]") {
  std::int64_t ms = 0;
  CHECK(parse_rfc3339_ms("1970-01-01T00:00:00Z", ms));
  CHECK(ms == 0);
  CHECK(parse_rfc3339_ms("2023-09-17T20:29:59Z", ms));
  CHECK(ms == 1694982599000);
  CHECK(parse_rfc3339_ms("2024-11-17T02:01:55+02:00", ms));
  CHECK(ms == 1731801715000);
  CHECK(parse_rfc3339_ms("2024-02-29t12:00:00.5z", ms));
  CHECK(ms == 1709208000500);
  CHECK(parse_rfc3339_ms("2024-02-29 12:00:00.500999-00:00", ms));
  CHECK(ms == 1709208000500);
  CHECK(parse_rfc3339_ms("1969-12-31T23:59:59Z", ms));
  CHECK(ms == -1000);
  for (const char* bad :
       {"", "2023-09-17", "2023-09-17T20:29:59", "2023-02-29T00:00:00Z", "2023-09-17T24:00:00Z",
        "2023-13-01T00:00:00Z", "2023-09-17T20:29:59.Z", "2023-09-17T20:29:59Zjunk",
        "2023-9-17T20:29:59Z", "2023-09-17T20:29:59+0200"}) {
    INFO(bad);
    CHECK_FALSE(parse_rfc3339_ms(bad, ms));
  }
}

TEST_CASE("the real OCPP MeterValues dump loads completely", "[replay][xlsx]") {
  auto path = test_data + "/meter_values_dump_10k.xlsx";
  INFO(path);
  REQUIRE(fs::exists(path));
  replay_data data;
  std::string error;
  REQUIRE(load_replay(path, "", data, error));
  CHECK(error.empty());
  CHECK(data.rows == 10000);
  CHECK(data.devices.size() == 53);

  std::size_t frames = 0, sampled_values = 0;
  for (auto& d : data.devices) {
    REQUIRE_FALSE(d.frames.empty());
    for (std::size_t i = 0; i < d.frames.size(); ++i) {
      auto& f = d.frames[i];
      if (i > 0) REQUIRE(d.frames[i - 1].ts <= f.ts);
      auto j = nlohmann::json::parse(f.text);
      REQUIRE(j["charge_point_id"] == d.device);
      REQUIRE(j["payload"].is_object());
      auto& mv = j["payload"]["meterValue"];
      REQUIRE(mv.is_array());
      std::int64_t first = 0;
      REQUIRE(parse_rfc3339_ms(mv[0]["timestamp"].get<std::string>(), first));
      REQUIRE(f.ts == first);
      for (auto& m : mv) sampled_values += m["sampledValue"].size();
      ++frames;
    }
  }
  CHECK(frames == 10000);
  CHECK(sampled_values == 22003);

  // The first row of the sheet, kept verbatim.
  auto& first = data.devices.front();
  CHECK(first.device == "l5Us3JZIaTCetQpWLgx7");
  bool found = false;
  for (auto& f : first.frames)
    found = found || f.text.find("\"transactionId\":76178") != std::string::npos;
  CHECK(found);
}

TEST_CASE("XLSX: sheet via relationships, rich text, inline strings, numbers", "[replay][xlsx]") {
  temp_dir dir;
  // Columns in a different order than the dump, a numeric id, a blank row,
  // and an id spread over two rich-text runs.
  std::string shared = std::string(xml_head) + "<sst " + ns_main +
                       "><si><t>payload</t></si>"
                       "<si><r><rPr><b/></rPr><t>Charge_Point_ID</t></r></si>"
                       "<si><r><t>cp-</t></r><r><t xml:space=\"preserve\">rich</t></r>"
                       "<rPh><t>ignored</t></rPh></si>"
                       "<si><t>" +
                       ocpp_payload_xml + "</t></si></sst>";
  std::string rows =
      R"(<row r="1"><c r="A1" t="s"><v>0</v></c><c r="C1" t="s"><v>1</v></c></row>)"
      R"(<row r="2"><c r="A2" t="s"><v>3</v></c><c r="C2" t="s"><v>2</v></c></row>)"
      R"(<row r="3"><c r="A3" s="1"/><c r="C3" s="1"/></row>)"
      R"(<row r="4">)" +
      inline_cell("A4",
                  "{&quot;meterValue&quot;:[{&quot;timestamp&quot;:&quot;2023-09-17T20:29:58.250Z"
                  "&quot;,&quot;sampledValue&quot;:[]}]}") +
      R"(<c r="B4"><v>99</v></c><c r="C4"><v>4711</v></c></row>)";
  auto path = dir.path / "small.xlsx";
  write_zip(path.string(), workbook("worksheets/data.xml", sheet(rows), shared));

  replay_data data;
  std::string error;
  REQUIRE(load_replay(path.string(), "", data, error));
  CHECK(data.rows == 2);
  REQUIRE(data.devices.size() == 2);
  CHECK(data.devices[0].device == "cp-rich");
  CHECK(data.devices[0].frames[0].ts == 1694982599000);
  auto j = nlohmann::json::parse(data.devices[0].frames[0].text);
  CHECK(j["charge_point_id"] == "cp-rich");
  CHECK(j["payload"]["meterValue"][0]["sampledValue"][0]["value"] == "1.5");
  CHECK(data.devices[1].device == "4711");
  CHECK(data.devices[1].frames[0].ts == 1694982598250);
}

TEST_CASE("XLSX: a payload stored as a JSON string is embedded as an object", "[replay][xlsx]") {
  temp_dir dir;
  std::string rows = R"(<row r="1">)" + inline_cell("A1", "charge_point_id") +
                     inline_cell("B1", "payload") + R"(</row><row r="2">)" +
                     inline_cell("A2", "cp-1") +
                     inline_cell("B2", "&quot;{\\&quot;meterValue\\&quot;:[]}&quot;") + "</row>";
  auto path = dir.path / "string_payload.xlsx";
  write_zip(path.string(), workbook("worksheets/sheet1.xml", sheet(rows), ""));
  replay_data data;
  std::string error;
  REQUIRE(load_replay(path.string(), "", data, error));
  CHECK(data.devices.at(0).frames.at(0).text ==
        R"({"charge_point_id":"cp-1","payload":{"meterValue":[]}})");
}

TEST_CASE("CSV fixture becomes reading frames", "[replay][csv]") {
  replay_data data;
  std::string error;
  REQUIRE(load_replay(fixtures + "/readings.csv", "", data, error));
  CHECK(data.rows == 4);
  REQUIRE(data.devices.size() == 3);

  auto& m1 = data.devices[0];
  CHECK(m1.device == "meter-1");
  REQUIRE(m1.frames.size() == 2);
  // Sorted by ts: the file's third row comes first.
  CHECK(m1.frames[0].ts == 1731801714000);
  CHECK(
      m1.frames[0].text ==
      R"({"device":"meter-1","seq":2,"ts":1731801714000,"values":{"voltage":229.9,"current":5,"note_free":-2}})");
  CHECK(
      m1.frames[1].text ==
      R"({"device":"meter-1","seq":1,"ts":1731801715542,"values":{"voltage":230.4,"current":5.1}})");

  auto& m2 = data.devices[1];
  CHECK(m2.device == "meter-2");
  CHECK(
      m2.frames.at(0).text ==
      R"({"device":"meter-2","seq":7,"ts":1731801715000,"values":{"voltage":231,"note_free":1000}})");

  auto& m3 = data.devices[2];
  CHECK(m3.device == "meter,quoted \"3\"");
  CHECK(m3.frames.at(0).text ==
        R"({"device":"meter,quoted \"3\"","ts":1731801715000,"values":{"voltage":0.5}})");
}

TEST_CASE("CSV: quoted line breaks, CRLF, device_id, RFC 3339 ts", "[replay][csv]") {
  temp_dir dir;
  auto path = dir.file("crlf.csv",
                       "\xEF\xBB\xBF"
                       "Device_ID,ts,\"temp\"\r\n"
                       "\"multi\r\nline\",2023-09-17T20:29:59Z,1.25\r\n"
                       "\r\n"
                       "b,5,-0\r\n");
  replay_data data;
  std::string error;
  REQUIRE(load_replay(path, "", data, error));
  REQUIRE(data.devices.size() == 2);
  CHECK(data.devices[0].device == "multi\r\nline");
  CHECK(data.devices[0].frames[0].ts == 1694982599000);
  CHECK(data.devices[1].frames[0].text == R"({"device":"b","ts":5,"values":{"temp":-0}})");

  // A bad value after the multi-line record is reported on its own line.
  auto bad = dir.file("bad.csv", "device,ts,temp\n\"a\nb\",1,2\nc,2,x\n");
  CHECK_FALSE(load_replay(bad, "", data, error));
  CHECK(error == "row 4, column temp: \"x\" is not a finite number");
}

TEST_CASE("NDJSON fixture: frames as they are, device and ts found", "[replay][ndjson]") {
  replay_data data;
  std::string error;
  REQUIRE(load_replay(fixtures + "/frames.ndjson", "", data, error));
  CHECK(data.rows == 5);
  REQUIRE(data.devices.size() == 3);

  auto& m7 = data.devices[0];
  CHECK(m7.device == "meter-7");
  REQUIRE(m7.frames.size() == 2);
  CHECK(m7.frames[0].ts == 1731801710000);  // the batch: ts of its first reading
  CHECK(m7.frames[0].text.rfind(R"({"device":"meter-7","readings")", 0) == 0);
  CHECK(m7.frames[1].ts == 1731801715542);

  auto& cp = data.devices[1];
  CHECK(cp.device == "cp-1");
  REQUIRE(cp.frames.size() == 2);
  CHECK(cp.frames[0].ts == 1694982598000);  // payload as a JSON string, one second earlier
  CHECK(cp.frames[1].ts == 1694982599000);

  // No timestamp at all: it keeps its place after the line before it.
  auto& m8 = data.devices[2];
  CHECK(m8.frames.at(0).ts == 1694982598000);
  CHECK(m8.frames.at(0).text == R"({"device":"meter-8","values":{"voltage":1}})");
}

TEST_CASE("the format can be named instead of taken from the extension", "[replay]") {
  temp_dir dir;
  auto path = dir.file("frames.txt", R"({"device":"d","ts":1,"values":{"x":1}})");
  replay_data data;
  std::string error;
  CHECK_FALSE(load_replay(path, "", data, error));
  CHECK(error.find("extension") != std::string::npos);
  REQUIRE(load_replay(path, "jsonl", data, error));
  CHECK(data.rows == 1);
  CHECK_FALSE(load_replay(path, "parquet", data, error));
  CHECK(error.find("unknown format") != std::string::npos);
}

TEST_CASE("garbage input ends in a clear error", "[replay][errors]") {
  temp_dir dir;
  replay_data data;
  std::string error;

  SECTION("missing file") {
    CHECK_FALSE(load_replay((dir.path / "nope.xlsx").string(), "", data, error));
    CHECK(error == "file not found");
  }
  SECTION("a text file renamed .xlsx") {
    auto path = dir.file("text.xlsx", "charge_point_id,payload\nthis is not a zip\n");
    CHECK_FALSE(load_replay(path, "", data, error));
    CHECK(error.find("not a zip archive") != std::string::npos);
  }
  SECTION("an empty .xlsx") {
    auto path = dir.file("empty.xlsx", "");
    CHECK_FALSE(load_replay(path, "", data, error));
    CHECK_FALSE(error.empty());
  }
  SECTION("a zip without a sheet") {
    auto path = (dir.path / "nosheet.xlsx").string();
    write_zip(path, {{"hello.txt", "hello"}, {"xl/styles.xml", "<styleSheet/>"}});
    CHECK_FALSE(load_replay(path, "", data, error));
    CHECK(error.find("no worksheet") != std::string::npos);
  }
  SECTION("a sheet that is not XML") {
    auto path = (dir.path / "badxml.xlsx").string();
    write_zip(path, {{"xl/worksheets/sheet1.xml", "<worksheet><sheetData><row>"}});
    CHECK_FALSE(load_replay(path, "", data, error));
    CHECK(error.find("not well-formed XML") != std::string::npos);
  }
  SECTION("XLSX without the payload column") {
    auto path = (dir.path / "nocol.xlsx").string();
    write_zip(path, workbook("worksheets/sheet1.xml",
                             sheet(R"(<row r="1">)" + inline_cell("A1", "charge_point_id") +
                                   inline_cell("B1", "data") + "</row>"),
                             ""));
    CHECK_FALSE(load_replay(path, "", data, error));
    CHECK(error == "missing column payload in the header (row 1)");
  }
  SECTION("XLSX with a payload that is not JSON") {
    auto path = (dir.path / "badpayload.xlsx").string();
    std::string rows = R"(<row r="1">)" + inline_cell("A1", "charge_point_id") +
                       inline_cell("B1", "payload") + R"(</row><row r="7">)" +
                       inline_cell("A7", "cp") + inline_cell("B7", "{not json") + "</row>";
    write_zip(path, workbook("worksheets/sheet1.xml", sheet(rows), ""));
    CHECK_FALSE(load_replay(path, "", data, error));
    CHECK(error.rfind("row 7: payload is not valid JSON", 0) == 0);
  }
  SECTION("XLSX with an empty charge_point_id") {
    auto path = (dir.path / "noid.xlsx").string();
    std::string rows = R"(<row r="1">)" + inline_cell("A1", "charge_point_id") +
                       inline_cell("B1", "payload") + R"(</row><row r="2">)" +
                       inline_cell("B2", "{}") + "</row>";
    write_zip(path, workbook("worksheets/sheet1.xml", sheet(rows), ""));
    CHECK_FALSE(load_replay(path, "", data, error));
    CHECK(error == "row 2: empty charge_point_id");
  }
  SECTION("XLSX with a shared string index out of range") {
    auto path = (dir.path / "badindex.xlsx").string();
    write_zip(path, workbook("worksheets/sheet1.xml",
                             sheet(R"(<row r="1"><c r="A1" t="s"><v>5</v></c></row>)"), ""));
    CHECK_FALSE(load_replay(path, "", data, error));
    CHECK(error.rfind("row 1: shared string index", 0) == 0);
  }
  SECTION("CSV with a bad number") {
    CHECK_FALSE(load_replay(fixtures + "/bad_number.csv", "", data, error));
    CHECK(error == "row 3, column voltage: \"abc\" is not a finite number");
  }
  SECTION("CSV without a ts column") {
    auto path = dir.file("nots.csv", "device,voltage\na,1\n");
    CHECK_FALSE(load_replay(path, "", data, error));
    CHECK(error == "header: no ts column");
  }
  SECTION("CSV with a short row") {
    auto path = dir.file("short.csv", "device,ts,v\na,1,2\nb,2\n");
    CHECK_FALSE(load_replay(path, "", data, error));
    CHECK(error == "row 3: 2 fields, the header has 3");
  }
  SECTION("CSV with an unterminated quote") {
    auto path = dir.file("quote.csv", "device,ts,v\n\"a,1,2\n");
    CHECK_FALSE(load_replay(path, "", data, error));
    CHECK(error == "row 2: unterminated quoted field");
  }
  SECTION("NDJSON with a bad line") {
    CHECK_FALSE(load_replay(fixtures + "/bad_line.ndjson", "", data, error));
    CHECK(error.rfind("line 2: not JSON", 0) == 0);
  }
  SECTION("NDJSON line without a device") {
    auto path = dir.file("nodevice.ndjson", "{\"subscribe\":[\"a\"]}\n");
    CHECK_FALSE(load_replay(path, "", data, error));
    CHECK(error.rfind("line 1: no \"device\"", 0) == 0);
  }
  SECTION("NDJSON line with an unreadable ts") {
    auto path = dir.file("badts.ndjson", "\n{\"device\":\"a\",\"ts\":\"yesterday\"}\n");
    CHECK_FALSE(load_replay(path, "", data, error));
    CHECK(error.rfind("line 2: timestamp \"yesterday\"", 0) == 0);
  }
  SECTION("binary junk as NDJSON") {
    auto path = dir.file("junk.ndjson", std::string("\x00\xff\xfe{{{", 7));
    CHECK_FALSE(load_replay(path, "", data, error));
    CHECK(error.rfind("line 1: not JSON", 0) == 0);
  }
  SECTION("an empty CSV") {
    auto path = dir.file("empty.csv", "");
    CHECK_FALSE(load_replay(path, "", data, error));
    CHECK(error == "no header row");
  }
  SECTION("a directory") {
    CHECK_FALSE(load_replay(dir.path.string(), "csv", data, error));
    CHECK(error.find("directory") != std::string::npos);
  }
  CHECK(data.devices.empty());  // nothing half-loaded
}
