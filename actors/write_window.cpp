#include "actors/write_window.hpp"

#include <caf/make_message.hpp>
#include <caf/send.hpp>

#include "actors/actors.hpp"
#include "actors/atoms.hpp"

namespace pulse {

namespace {

class actor_writer final : public shard_writer {
 public:
  explicit actor_writer(const caf::actor& a) : addr_(a.address()) {}
  void acked(std::uint64_t shard, ack_list acks, std::uint64_t ticket) override {
    if (auto a = caf::actor_cast<caf::actor>(addr_))
      caf::anon_send(a, ack_atom::value, shard, std::move(acks), ticket);
  }
  void rejected(std::string device, std::uint64_t count, std::string why) override {
    if (auto a = caf::actor_cast<caf::actor>(addr_))
      caf::anon_send(a, reject_atom::value, std::move(device), count, std::move(why));
  }
  void refused(std::uint64_t shard, std::string why) override {
    if (auto a = caf::actor_cast<caf::actor>(addr_))
      caf::anon_send(a, refuse_atom::value, shard, std::move(why));
  }

 private:
  caf::actor_addr addr_;
};

}  // namespace

writer_ptr make_actor_writer(const caf::actor& a) { return std::make_shared<actor_writer>(a); }

write_window::~write_window() {
  // What is still in flight no longer counts against its shards.
  if (!ctx_) return;
  for (std::size_t i = 0; i < pending_.size(); ++i)
    for (auto& e : pending_[i]) ctx_->shard_load[i].fetch_sub(e.readings, std::memory_order_relaxed);
}

void write_window::start(std::vector<caf::actor> shards, node_context& ctx, writer_ptr writer) {
  table_ = std::move(shards);
  ctx_ = &ctx;
  writer_ = std::move(writer);
  pending_.resize(table_.size());
  track_devices_ = ctx.settings.cluster.enabled();
}

void write_window::push(std::size_t i, const entry& e) {
  caf::actor to;
  auto kick = ctx_->inboxes[i].push(write_item{writer_, e.ticket, e.batch, table_[i].id()},
                                    ctx_->settings.batch_max_readings, to);
  if (kick != shard_inbox::kick::none && to)
    caf::anon_send(to, inbox_atom::value, kick == shard_inbox::kick::now);
}

void write_window::send(std::size_t i, reading_batch&& b) {
  auto n = static_cast<std::uint64_t>(b.size());
  entry e{++last_ticket_, n, std::make_shared<const reading_batch>(std::move(b)),
          std::chrono::steady_clock::now()};
  ctx_->shard_load[i].fetch_add(n, std::memory_order_relaxed);
  push(i, e);
  if (track_devices_) {
    auto [d, fresh] = devices_.try_emplace(e.batch->device, i, 0);
    d->second.first = i;  // the caller routed by slot_of: the same slot
    ++d->second.second;
  }
  pending_[i].push_back(std::move(e));
  readings_ += n;
}

void write_window::ack(std::size_t i, std::uint64_t ticket) {
  if (i >= pending_.size()) return;
  std::uint64_t done = 0;
  auto& q = pending_[i];
  if (q.empty() || q.front().ticket > ticket) return;
  const auto now = std::chrono::steady_clock::now();
  auto& latency = ctx_->metrics.ack_seconds;
  while (!q.empty() && q.front().ticket <= ticket) {
    done += q.front().readings;
    latency.observe(std::chrono::duration<double>(now - q.front().taken).count());
    forget_device(q.front());
    q.pop_front();
  }
  readings_ -= done;
  ctx_->shard_load[i].fetch_sub(done, std::memory_order_relaxed);
}

void write_window::restarted(std::size_t i, caf::actor a) {
  if (i >= table_.size()) return;
  table_[i] = std::move(a);
  for (auto& e : pending_[i]) push(i, e);
}

void write_window::drop(std::size_t i) {
  if (i >= pending_.size()) return;
  std::uint64_t n = 0;
  for (auto& e : pending_[i]) {
    n += e.readings;
    forget_device(e);
  }
  pending_[i] = fifo{};
  readings_ -= n;
  ctx_->shard_load[i].fetch_sub(n, std::memory_order_relaxed);
}

void write_window::forget_device(const entry& e) {
  if (!track_devices_) return;
  auto d = devices_.find(e.batch->device);
  if (d != devices_.end() && --d->second.second == 0) devices_.erase(d);
}

std::optional<std::size_t> write_window::slot_of(const std::string& device) const {
  if (devices_.empty()) return std::nullopt;
  auto d = devices_.find(device);
  if (d == devices_.end()) return std::nullopt;
  return d->second.first;
}

std::size_t slot_router::operator()(const std::string& device) const {
  if (!members_) return shard_of(device, shards_);
  if (replicated_) return shards_;
  if (auto sticky = window_.slot_of(device)) return *sticky;
  auto o = owner_of(device, *members_);
  return o.member == 0 ? o.shard : shards_;  // this node is the first member
}

std::optional<std::uint64_t> write_window::first_seq(std::size_t i) const {
  if (i >= pending_.size() || pending_[i].empty()) return std::nullopt;
  const auto& b = *pending_[i].front().batch;
  if (b.rows.empty() || !b.rows.front().has_seq) return std::nullopt;
  return b.rows.front().seq;
}

}  // namespace pulse
