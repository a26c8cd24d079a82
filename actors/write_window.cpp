#include "actors/write_window.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/make_message.hpp>

#include "actors/actors.hpp"
#include "actors/atoms.hpp"

namespace pulse {

write_window::~write_window() {
  // What is still in flight no longer counts against its shards.
  for (std::size_t i = 0; i < pending_.size(); ++i)
    for (auto& e : pending_[i]) load_[i].fetch_sub(e.readings, std::memory_order_relaxed);
}

void write_window::start(std::vector<caf::actor> shards, std::atomic<std::uint64_t>* load) {
  table_ = std::move(shards);
  load_ = load;
  pending_.resize(table_.size());
}

void write_window::send(caf::event_based_actor* self, std::size_t i, reading_batch&& b) {
  auto n = static_cast<std::uint64_t>(b.size());
  auto ticket = ++last_ticket_;
  auto msg = caf::make_message(write_atom::value, ticket, std::move(b));
  load_[i].fetch_add(n, std::memory_order_relaxed);
  self->send(table_[i], msg);
  pending_[i].push_back(entry{ticket, n, std::move(msg)});
  readings_ += n;
}

void write_window::ack(std::size_t i, std::uint64_t ticket) {
  if (i >= pending_.size()) return;
  std::uint64_t done = 0;
  auto& q = pending_[i];
  while (!q.empty() && q.front().ticket <= ticket) {
    done += q.front().readings;
    q.pop_front();
  }
  readings_ -= done;
  load_[i].fetch_sub(done, std::memory_order_relaxed);
}

void write_window::restarted(caf::event_based_actor* self, std::size_t i, caf::actor a) {
  if (i >= table_.size()) return;
  table_[i] = std::move(a);
  for (auto& e : pending_[i]) self->send(table_[i], e.msg);
}

}  // namespace pulse
