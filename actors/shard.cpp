// shard: the batcher actor. Runs detached (its own thread) because RocksDB
// writes block; sessions on the cooperative scheduler never wait for it.
// Each flush appends one record to the shard's head log and acks; a
// checkpoint (head full, storage.head-max-age after the head's first
// reading, or stop) writes chunks and rollups and truncates the log. A new
// instance replays the log and reloads the rest from RocksDB, so a crash
// loses only the unflushed buffer, which the writers still hold in their
// windows.

#include <chrono>
#include <unordered_set>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/actors.hpp"
#include "actors/atoms.hpp"
#include "storage/batcher.hpp"

namespace pulse {

struct shard_state {
  static inline const char* name = "shard";
  context_ptr ctx;
  std::size_t index = 0;
  std::unique_ptr<storage::batcher> batcher;
  // Writers of the buffered readings (by address) and the highest ticket of each in the buffer.
  std::unordered_map<std::uint64_t, std::pair<writer_ptr, std::uint64_t>> owners;
  std::vector<storage::ack_entry> acks;
  std::unordered_map<std::uint64_t, ack_list> acks_by_owner;
  // Newest reading per device in this buffer, for the hub (only while someone subscribes).
  std::unordered_map<std::string, latest_value> latest;
  std::uint64_t timer_generation = 0;
  bool timer_armed = false;
  bool checkpoint_armed = false;  // a checkpoint_atom is on its way
  std::chrono::milliseconds delay{0};  // the flush delay now (coalescing)
  std::unordered_set<std::uint64_t> last_writers;  // writers of the previous flush
  std::vector<write_item> drained;  // reused by every drain of the inbox
  std::uint64_t evictions_counted = 0;  // of this batcher, already in pulse_device_cache_evictions_total
};

namespace {

using shard_ptr = caf::stateful_actor<shard_state>*;

void add(shard_ptr self, const reading_batch& b, const writer_ptr& writer, std::uint64_t ticket);
void note_latest(shard_state& st, const reading_batch& b, std::int64_t received);
void adapt_delay(shard_state& st, std::size_t readings);

// Takes what writers left in the inbox since the last drain.
void drain(shard_ptr self) {
  auto& st = self->state;
  st.ctx->inboxes[st.index].drain(st.drained);
  for (auto& item : st.drained)
    if (item.target == self->id()) add(self, *item.batch, item.writer, item.ticket);
  // Items for an earlier instance died with it; their writers resend them
  // once the router says this one is up.
  st.drained.clear();
}

// Storage refuses writes: every writer of this buffer hears so
// (storage_unavailable) and what they sent is dropped; they resend after
// reconnecting. What the head held is acked and in the log: the batcher
// replays it from there when it is next used.
void refuse_all(shard_ptr self) {
  auto& st = self->state;
  if (st.owners.empty()) return;
  auto why = st.ctx->storage.reason();
  if (why.empty()) why = "storage refuses writes";
  for (auto& [id, owner] : st.owners)
    if (owner.first) owner.first->refused(st.index, why);
  st.owners.clear();
  st.latest.clear();
  if (st.batcher->pending() > 0) st.batcher->abandon();
}

void flush(shard_ptr self, bool checkpoint = false) {
  auto& st = self->state;
  drain(self);
  st.timer_armed = false;
  ++st.timer_generation;
  if (!st.ctx->storage.writable()) return refuse_all(self);
  if (st.owners.empty() && !(checkpoint && st.batcher->head_readings() > 0)) return;
  auto& m = st.ctx->metrics;
  auto t0 = std::chrono::steady_clock::now();
  storage::flush_stats fs;
  st.acks.clear();
  auto buffered = st.batcher->pending();
  auto status = st.batcher->flush(st.acks, fs, checkpoint);
  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  m.flushes.fetch_add(1, std::memory_order_relaxed);
  m.flush_seconds.observe(secs);
  if (!status && status.fault != storage::fault::none) {
    // The disk refuses (full, I/O errors): not this shard's fault, so no
    // restart. Nothing of this buffer was acked; its writers are refused and
    // resend once the storage probe finds the disk taking writes again.
    m.flush_failures.fetch_add(1, std::memory_order_relaxed);
    st.ctx->storage.fault(status.fault, "shard " + std::to_string(st.index) + ": " + status.message);
    return refuse_all(self);
  }
  if (!status) {
    // Nothing of this buffer is durable and nothing was acked. The writers
    // still hold it; going down makes the supervisor restart the shard (state
    // reloaded from disk) and the writers resend.
    m.flush_failures.fetch_add(1, std::memory_order_relaxed);
    spdlog::error("shard {}: flush of {} readings failed: {}", st.index, buffered,
                  status.message);
    st.owners.clear();
    st.latest.clear();
    self->quit(caf::make_error(caf::sec::runtime_error, "flush failed: " + status.message));
    return;
  }
  adapt_delay(st, fs.readings);
  m.readings_stored.fetch_add(fs.readings, std::memory_order_relaxed);
  if (fs.readings > 0) m.flush_readings.observe(static_cast<double>(fs.readings));
  if (fs.checkpoint) {
    m.checkpoints.fetch_add(1, std::memory_order_relaxed);
    auto c = st.batcher->cache();
    auto& gauge = m.device_caches[st.index];
    gauge.devices.store(c.devices, std::memory_order_relaxed);
    gauge.bytes.store(c.device_bytes, std::memory_order_relaxed);
    m.device_evictions.fetch_add(c.evicted - st.evictions_counted, std::memory_order_relaxed);
    st.evictions_counted = c.evicted;
  }
  // Readings wait in the head at most storage.head-max-age.
  if (!st.checkpoint_armed && st.batcher->head_readings() > 0) {
    st.checkpoint_armed = true;
    self->delayed_send(self, st.ctx->settings.storage_head_max_age, checkpoint_atom::value);
  }
  for (auto& a : st.acks) st.acks_by_owner[a.owner].emplace_back(std::move(a.device), a.seq);
  for (auto& [id, owner] : st.owners) {
    auto i = st.acks_by_owner.find(id);
    ack_list list;
    if (i != st.acks_by_owner.end()) list = std::move(i->second);
    if (owner.first) owner.first->acked(st.index, std::move(list), owner.second);
  }
  st.acks_by_owner.clear();
  st.owners.clear();
  if (!st.latest.empty() && st.ctx->hub) {
    std::vector<latest_value> values;
    values.reserve(st.latest.size());
    for (auto& [device, v] : st.latest) values.push_back(std::move(v));
    st.latest.clear();
    self->send(st.ctx->hub, publish_atom::value, std::move(values));
  }
}

// Buffers `b` for `writer`; flushes at batch.max-readings.
void add(shard_ptr self, const reading_batch& b, const writer_ptr& writer, std::uint64_t ticket) {
  auto& st = self->state;
  auto id = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(writer.get()));
  auto& owner = st.owners[id];
  if (!owner.first) owner.first = writer;
  owner.second = std::max(owner.second, ticket);
  // While storage refuses writes the next flush refuses this writer.
  if (!st.ctx->storage.writable()) return;
  auto now = now_ms();
  auto added = st.batcher->add(id, b, now);
  if (!added.unavailable) {
    st.ctx->storage.fault(added.unavailable.fault,
                          "shard " + std::to_string(st.index) + ": " + added.unavailable.message);
    return;
  }
  if (st.ctx->subscribers.load(std::memory_order_relaxed) > 0 ||
      st.ctx->peer_subscribers.load(std::memory_order_relaxed) > 0)
    note_latest(st, b, now);
  if (added.rejected > 0 && writer)
    writer->rejected(b.device, std::uint64_t{added.rejected},
                     "outside what storage can hold (ts range, values, metric dictionary)");
}

void arm_flush_timer(shard_ptr self) {
  auto& st = self->state;
  if (st.timer_armed) return;
  st.timer_armed = true;
  self->delayed_send(self, st.delay, flush_atom::value,
                     st.timer_generation);
}

// Coalescing. With one reading per frame over many connections, a flush
// holds about one reading per connection, so every reading costs an ack
// frame (a sendmsg here, a recv on the client) and each client sends its
// next frame alone. Measured (pulse-loadgen, 1,000 connections x 4 frames in
// flight): node CPU per reading 41 us at a 5 ms delay, 20 us at 50 ms, where
// each connection's frames share one flush and one ack, and the ack latency
// falls too (the node is no longer behind). The sign that a writer's frames
// are being split is that it shows up again in the next flush: so while
// flushes hold many writers with under two readings each, most of them back
// from the previous flush, the delay grows by half per flush up to
// batch.coalesce-delay; when few writers come back (paced devices, whose
// frames are further apart than any delay would bridge) or flushes are
// small, it shrinks back toward batch.max-delay. A lightly loaded node, or
// one whose devices send at a steady pace, keeps the short delay.
constexpr std::size_t coalesce_min_writers = 64;

void adapt_delay(shard_state& st, std::size_t readings) {
  const auto lo = st.ctx->settings.batch_max_delay;
  const auto hi = std::max(lo, st.ctx->settings.batch_coalesce_delay);
  const auto writers = st.owners.size();
  std::size_t back = 0;
  for (auto& [id, owner] : st.owners) back += st.last_writers.count(id);
  if (writers >= coalesce_min_writers && readings < 2 * writers && 2 * back > writers)
    st.delay = std::min(hi, std::max(st.delay + st.delay / 2, st.delay + std::chrono::milliseconds(1)));
  else if (writers < coalesce_min_writers / 2 || 5 * back < writers)
    st.delay = std::max(lo, st.delay * 2 / 3);
  st.last_writers.clear();
  for (auto& [id, owner] : st.owners) st.last_writers.insert(id);
}

// Remembers the newest reading of `b` if it is newer than what the buffer has.
void note_latest(shard_state& st, const reading_batch& b, std::int64_t received) {
  const reading_row* best = nullptr;
  for (auto& r : b.rows)
    if (!best || r.ts >= best->ts) best = &r;
  if (!best) return;
  auto& slot = st.latest[b.device];
  if (!slot.device.empty() && slot.ts > best->ts) return;
  slot.device = b.device;
  slot.ts = best->ts;
  slot.received_ms = received;
  slot.values.clear();
  for (std::uint32_t i = best->first; i < best->first + best->count; ++i)
    slot.values.emplace_back(b.metrics[b.samples[i].metric], b.samples[i].value);
}

}  // namespace

namespace {

caf::behavior shard_actor(caf::stateful_actor<shard_state>* self, context_ptr ctx,
                          std::size_t index) {
  auto& st = self->state;
  st.ctx = ctx;
  st.index = index;
  st.delay = ctx->settings.batch_max_delay;
  st.batcher = std::make_unique<storage::batcher>(
    *ctx->db, static_cast<std::uint16_t>(index),
    storage::head_options{ctx->settings.storage_head_max_readings,
                          ctx->settings.storage_device_cache_bytes / ctx->settings.shards});
  // A restart after a crash: what the old instance acked and had not yet
  // checkpointed is in its log.
  std::size_t replayed = 0;
  auto t0 = std::chrono::steady_clock::now();
  if (auto rs = st.batcher->recover(replayed); !rs) {
    spdlog::error("shard {}: replaying its log failed: {}", index, rs.message);
    self->quit(caf::make_error(caf::sec::runtime_error, "log replay failed: " + rs.message));
    return {};
  }
  if (replayed > 0)
    spdlog::info("shard {}: replayed {} readings from its log in {} ms", index, replayed,
                 std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - t0).count());
  // From now on writers kick this instance; items already waiting get a flush.
  if (ctx->inboxes[index].attach(caf::actor_cast<caf::actor>(self))) arm_flush_timer(self);
  ctx->shards_up.fetch_add(1);
  self->attach_functor([ctx] { ctx->shards_up.fetch_sub(1); });
  const auto& cfg = ctx->settings;
  // A throwing handler ends this instance only; the supervisor restarts it.
  self->set_exception_handler([index](caf::scheduled_actor*, std::exception_ptr& e) -> caf::error {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      spdlog::error("shard {}: {}", index, x.what());
      return caf::make_error(caf::sec::runtime_error, x.what());
    } catch (...) {
      return caf::make_error(caf::sec::runtime_error, "unknown exception");
    }
  });
  return {
    [=](write_atom, std::uint64_t ticket, const reading_batch& b, const writer_ptr& writer) {
      add(self, b, writer, ticket);
      if (self->state.batcher->pending() >= cfg.batch_max_readings)
        flush(self);
      else
        arm_flush_timer(self);
    },
    [=](inbox_atom, bool now) {
      if (now)
        flush(self);
      else
        arm_flush_timer(self);
    },
    [=](flush_atom, std::uint64_t generation) {
      if (generation == self->state.timer_generation) flush(self);
    },
    [=](checkpoint_atom) {
      self->state.checkpoint_armed = false;
      flush(self, true);
    },
    [=](last_seq_atom, const std::string& device) -> std::uint64_t {
      // Answer with what is durable: flush what is buffered first.
      flush(self);
      return self->state.batcher->last_seq(device);
    },
    [=](crash_atom) {
      spdlog::warn("shard {}: crashing on request (debug.fault-injection)", self->state.index);
      throw std::runtime_error("injected crash");
    },
    [=](stop_atom) {
      flush(self, true);  // a clean stop leaves an empty log: nothing to replay
      self->quit();
    },
  };
}

}  // namespace

caf::actor spawn_shard(caf::actor_system& sys, context_ptr ctx, std::size_t index) {
  return sys.spawn<caf::detached>(shard_actor, std::move(ctx), index);
}

}  // namespace pulse
