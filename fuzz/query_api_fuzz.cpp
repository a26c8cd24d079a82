// libFuzzer target: a GET request target ("/api/v1/...?...") through
// api::handle_query against a real RocksDB store holding a few devices, so
// that path routing, query-string decoding, parameter checks, cursors and the
// storage reads behind them are all reached. The input also goes through the
// helpers the node uses for query parameters.

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "actors/query_api.hpp"
#include "fuzz/fuzz_check.hpp"
#include "storage/batcher.hpp"
#include "storage/store.hpp"
#include "wire/codec.hpp"

namespace {

using namespace pulse;

// 2024-11-17T00:00:00Z; the seed corpus asks for windows around it.
constexpr std::int64_t t0 = 1'731'801'600'000;

std::string store_dir;
std::unique_ptr<storage::store> db;

void remove_store() {
  db.reset();
  std::error_code ec;
  std::filesystem::remove_all(store_dir, ec);
}

// Writes readings through the same path a shard uses: wire codec, batcher.
void seed(storage::store& s) {
  wire::frame_parser parser;
  wire::frame f;
  storage::batcher batcher{s};
  std::vector<storage::ack_entry> acks;
  storage::flush_stats stats;
  // Several flushes per device, so that readings span chunks and pages.
  for (int flush = 0; flush < 6; ++flush) {
    std::string text = "[";
    for (int i = 0; i < 10; ++i) {
      auto ts = t0 + (flush * 10 + i) * 6 * ms_per_minute;
      auto seq = std::to_string(flush * 10 + i + 1);
      text += (i ? "," : "");
      text += R"({"device":"meter-1","seq":)" + seq + R"(,"ts":)" + std::to_string(ts) +
              R"(,"values":{"voltage":)" + std::to_string(230 + i) + R"(,"current":0.5}},)";
      text += R"({"device":"battery:1:data","seq":)" + seq + R"(,"ts":)" + std::to_string(ts + 1) +
              R"(,"values":{"voltage":48.5,"soc":)" + std::to_string(i) + R"(}})";
    }
    text += "]";
    parser.parse(text, t0, f);
    for (auto& b : f.batches) batcher.add(1, b, t0);
    if (!batcher.flush(acks, stats)) std::abort();
  }
  parser.parse(R"({"device":"meter-2","seq":1,"ts":1731801600000,"values":{"voltage":1e300},"meta":{"fw":"1.2"}})",
               t0, f);
  for (auto& b : f.batches) batcher.add(1, b, t0);
  if (!batcher.flush(acks, stats)) std::abort();
}

bool is_error_shape(const nlohmann::json& j) {
  return j.is_object() && j.size() == 1 && j.contains("error") && j["error"].is_object() &&
         j["error"].size() == 2 && j["error"]["code"].is_string() &&
         j["error"]["message"].is_string();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "pulse-fuzz-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) std::abort();
  store_dir = tmpl;
  storage::status st;
  db = storage::store::open(storage::store_options{store_dir + "/db", false}, st);
  if (!st || !db) std::abort();
  seed(*db);
  std::atexit(remove_store);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);

  api::query_context ctx;
  ctx.db = db.get();
  ctx.node_name = "fuzz";
  ctx.online = [](std::string_view d) { return d == "meter-1"; };
  auto a = api::handle_query(ctx, "GET", input);
  // A storage failure or an exception would be a 500: with a healthy store
  // every request is either answered or refused as the client's fault.
  PULSE_FUZZ_CHECK(a.status == 200 || a.status == 400 || a.status == 404);
  if (a.content_type == "text/csv; charset=utf-8") {
    // format=csv: a header line, then rows of as many cells.
    PULSE_FUZZ_CHECK(a.status == 200 && !a.body.empty() && a.body.back() == '\n');
  } else {
    PULSE_FUZZ_CHECK(a.content_type == "application/json");
    auto j = nlohmann::json::parse(a.body, nullptr, false);
    PULSE_FUZZ_CHECK(!j.is_discarded());
    if (a.status != 200) PULSE_FUZZ_CHECK(is_error_shape(j));
  }

  // The parameter helpers on their own, with what their contracts promise.
  bool ok = false;
  auto decoded = api::url_decode(input, ok);
  PULSE_FUZZ_CHECK(decoded.size() <= input.size());
  if (!ok) PULSE_FUZZ_CHECK(decoded.empty());
  std::int64_t ms = -1;
  if (api::parse_time_param(input, 1731801600000, ms))
    PULSE_FUZZ_CHECK(ms >= 0 && ms <= api::max_time_ms);
  if (api::parse_duration_ms(input, ms)) PULSE_FUZZ_CHECK(ms > 0);
  if (auto t = wire::parse_rfc3339(input)) {
    // Whatever parses must format and parse back to the same instant.
    if (*t >= 0 && *t <= storage::max_ts) {
      auto back = wire::parse_rfc3339(wire::format_rfc3339(*t));
      PULSE_FUZZ_CHECK(back && *back == *t);
    }
  }
  return 0;
}
