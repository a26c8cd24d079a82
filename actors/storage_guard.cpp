#include "actors/storage_guard.hpp"

#include <sys/statvfs.h>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/actors.hpp"
#include "actors/atoms.hpp"

namespace pulse {

namespace {

constexpr std::size_t low_space_kind = 4;
constexpr auto log_every = std::chrono::seconds(30);

std::size_t kind_index(storage::fault f) {
  switch (f) {
    case storage::fault::no_space: return 0;
    case storage::fault::corruption: return 2;
    case storage::fault::closed: return 3;
    default: return 1;  // io_error, and anything unclassified
  }
}

std::string mib(std::uint64_t bytes) {
  return std::to_string(bytes >> 20) + " MiB";
}

}  // namespace

const char* storage_guard::kind_name(std::size_t i) {
  static const char* const names[kinds] = {"no_space", "io_error", "corruption", "closed",
                                           "low_space"};
  return i < kinds ? names[i] : "unknown";
}

void storage_guard::enter(std::size_t kind, const std::string& why) {
  errors_[kind].fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lk(mtx_);
  auto now = std::chrono::steady_clock::now();
  if (writable_.load(std::memory_order_relaxed)) {
    since_ = now;
    last_log_ = now;
    low_space_only_ = kind == low_space_kind;
    reason_ = why;
    writable_.store(false, std::memory_order_relaxed);
    spdlog::error("storage: refusing writes: {}", why);
    return;
  }
  // Already refusing: a real fault outranks low space in what we report.
  if (kind != low_space_kind && low_space_only_) {
    low_space_only_ = false;
    reason_ = why;
  }
}

void storage_guard::fault(storage::fault kind, const std::string& why) {
  enter(kind_index(kind), why);
}

void storage_guard::low_space(std::uint64_t free, std::uint64_t min) {
  enter(low_space_kind, "only " + mib(free) + " free on the storage file system, under "
                        "storage.min-free-bytes (" + mib(min) + ")");
}

bool storage_guard::only_low_space() const {
  std::lock_guard lk(mtx_);
  return low_space_only_;
}

void storage_guard::cleared() {
  std::lock_guard lk(mtx_);
  if (writable_.load(std::memory_order_relaxed)) return;
  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - since_).count();
  spdlog::warn("storage: taking writes again after {:.1f} s (was: {})", secs, reason_);
  reason_.clear();
  low_space_only_ = false;
  recoveries_.fetch_add(1, std::memory_order_relaxed);
  writable_.store(true, std::memory_order_relaxed);
}

void storage_guard::still_failing(const std::string& why) {
  std::lock_guard lk(mtx_);
  auto now = std::chrono::steady_clock::now();
  if (now - last_log_ < log_every) return;
  last_log_ = now;
  spdlog::error("storage: still refusing writes ({:.0f} s): {}",
                std::chrono::duration<double>(now - since_).count(), why);
}

std::string storage_guard::reason() const {
  if (writable()) return {};
  std::lock_guard lk(mtx_);
  return reason_;
}

void storage_guard::render(std::string& out) const {
  out += "# HELP pulse_storage_writable 1 while storage takes writes, 0 while writes are refused.\n"
         "# TYPE pulse_storage_writable gauge\npulse_storage_writable ";
  out += writable() ? "1\n" : "0\n";
  out += "# HELP pulse_storage_errors_total Storage faults met, by kind.\n"
         "# TYPE pulse_storage_errors_total counter\n";
  for (std::size_t i = 0; i < kinds; ++i) {
    out += "pulse_storage_errors_total{kind=\"";
    out += kind_name(i);
    out += "\"} ";
    out += std::to_string(errors_[i].load(std::memory_order_relaxed));
    out += '\n';
  }
  out += "# HELP pulse_storage_recoveries_total Times storage took writes again after a fault.\n"
         "# TYPE pulse_storage_recoveries_total counter\npulse_storage_recoveries_total ";
  out += std::to_string(recoveries_.load(std::memory_order_relaxed));
  out += '\n';
  if (auto f = free_bytes.load(std::memory_order_relaxed); f >= 0) {
    out += "# HELP pulse_storage_free_bytes Free bytes on the storage file system (last probe).\n"
           "# TYPE pulse_storage_free_bytes gauge\npulse_storage_free_bytes ";
    out += std::to_string(f);
    out += '\n';
  }
}

namespace {

constexpr auto probe_every = std::chrono::seconds(1);
constexpr auto retry_every = std::chrono::milliseconds(250);

void probe(node_context& ctx) {
  auto& g = ctx.storage;
  const auto min = ctx.settings.storage_min_free_bytes;
  struct statvfs vfs {};
  std::int64_t free = -1;
  if (::statvfs(ctx.settings.storage_path.c_str(), &vfs) == 0)
    free = static_cast<std::int64_t>(static_cast<std::uint64_t>(vfs.f_bavail) * vfs.f_frsize);
  g.free_bytes.store(free, std::memory_order_relaxed);
  auto low = [&](std::uint64_t need) {
    return min > 0 && free >= 0 && static_cast<std::uint64_t>(free) < need;
  };
  if (low(min)) {
    g.low_space(static_cast<std::uint64_t>(free), min);
    return;
  }
  if (g.writable()) return;
  // A little over the limit before taking writes again, so that it does not flap.
  if (low(min + min / 4)) return;
  if (g.only_low_space()) {
    g.cleared();
    return;
  }
  auto st = ctx.db->recover();
  if (st)
    g.cleared();
  else
    g.still_failing(st.message);
}

}  // namespace

caf::behavior storage_probe_actor(caf::event_based_actor* self, context_ptr ctx) {
  self->send(self, timeout_atom::value);
  return {
    [=](timeout_atom) {
      probe(*ctx);
      self->delayed_send(self, ctx->storage.writable() ? std::chrono::milliseconds(probe_every)
                                                       : retry_every,
                         timeout_atom::value);
    },
  };
}

caf::actor spawn_storage_probe(caf::actor_system& sys, context_ptr ctx) {
  // Detached: a reopen blocks while RocksDB replays its WAL.
  return sys.spawn<caf::detached>(storage_probe_actor, std::move(ctx));
}

}  // namespace pulse
