// retention: drops expired time buckets in the background (storage.retention,
// storage.rollup-retention) once a minute, and when POST /admin/clock moved
// the node's clock (tests). Detached: range deletes block on RocksDB, briefly
// (one write of range tombstones; whole SST files are unlinked), so shards and
// sessions never wait for it.

#include <caf/all.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "actors/actors.hpp"
#include "actors/atoms.hpp"
#include "actors/query_api.hpp"
#include "wire/codec.hpp"

namespace pulse {

// How often the background pass runs: buckets are hours, so a minute is
// plenty and the pass is cheap.
constexpr std::chrono::seconds retention_period{60};

struct retention_state {
  static inline const char* name = "retention";
  context_ptr ctx;
};

namespace {

using retention_ptr = caf::stateful_actor<retention_state>*;

// One pass at the node's now; the answer's JSON says what was dropped.
nlohmann::json expire_now(retention_ptr self) {
  auto& ctx = *self->state.ctx;
  auto now = ctx.now();
  auto& s = ctx.settings;
  auto rollup_ms = s.rollup_retention_ms > 0 ? s.rollup_retention_ms : s.retention_ms;
  std::int64_t readings_before = s.retention_ms > 0 ? std::max<std::int64_t>(0, now - s.retention_ms) : 0;
  std::int64_t rollups_before = rollup_ms > 0 ? std::max<std::int64_t>(0, now - rollup_ms) : 0;
  nlohmann::json j;
  j["now"] = now;
  j["readings_before"] = readings_before;
  j["rollups_before"] = rollups_before;
  auto st = ctx.db->expire(readings_before, rollups_before);
  if (!st) {
    spdlog::warn("retention: {}", st.message);
    j["error"] = st.message;
  } else {
    spdlog::debug("retention: readings before {} and rollups before {} dropped", readings_before,
                  rollups_before);
  }
  return j;
}

caf::behavior retention_actor(retention_ptr self, context_ptr ctx) {
  self->state.ctx = std::move(ctx);
  self->send(self, retention_atom::value);
  return {
    [=](retention_atom) {
      expire_now(self);
      self->delayed_send(self, retention_period, retention_atom::value);
    },
    [=](retention_atom, http_callback& done) {
      auto j = expire_now(self);
      done(http_reply{j.contains("error") ? 500 : 200, "application/json", j.dump(), {}});
    },
  };
}

// "30d", "-1h", "0": a signed duration for POST /admin/clock?offset=.
bool parse_offset(std::string_view s, std::int64_t& ms) {
  if (s == "0") {
    ms = 0;
    return true;
  }
  bool negative = !s.empty() && s.front() == '-';
  if (negative) s.remove_prefix(1);
  if (!api::parse_duration_ms(s, ms)) return false;
  if (negative) ms = -ms;
  return true;
}

}  // namespace

caf::actor spawn_retention(caf::actor_system& sys, context_ptr ctx) {
  return sys.spawn<caf::detached>(retention_actor, std::move(ctx));
}

void handle_clock(context_ptr ctx, caf::actor retention, const std::string& target,
                  http_callback done) {
  auto reply = [&](int status, std::string body) {
    done(http_reply{status, "application/json", std::move(body), {}});
  };
  if (!ctx->settings.fault_injection)
    return reply(404, wire::encode_error("not_found", "no such endpoint: /admin/clock"));
  auto q = target.find("?offset=");
  std::int64_t offset = 0;
  // Offsets beyond a century are refused: they only overflow arithmetic.
  if (q == std::string::npos || !parse_offset(std::string_view(target).substr(q + 8), offset) ||
      offset > 3'155'760'000'000 || offset < -3'155'760'000'000)
    return reply(400, wire::encode_error("bad_request",
                                         "use POST /admin/clock?offset=<duration>, e.g. 30d, -1h or 0"));
  ctx->clock_offset_ms = offset;
  spdlog::warn("debug: the node's clock is now {} ms off the system clock", offset);
  if (retention) {
    caf::anon_send(retention, retention_atom::value, std::move(done));
    return;
  }
  nlohmann::json j;
  j["now"] = ctx->now();
  reply(200, j.dump());
}

}  // namespace pulse
