#pragma once
// Simulated devices: each one a CAF actor driving its own WebSocket.

#include <memory>
#include <string>
#include <vector>

#include <caf/fwd.hpp>

#include "sim/sim.hpp"

namespace boost::asio {
class io_context;
}

namespace pulse::sim {

// What one frame contributes once it is acked.
struct frame_expect {
  std::size_t readings = 0;  // valid readings in it
  std::size_t errors = 0;    // error messages the node will answer with
  device_expectation totals;
  // replay: each valid reading's seq, in frame order, so that a reconnected
  // device can tell from the welcome's last_seq whether the frame was stored.
  std::vector<reading_seq> seqs;
};

// One device of the `replay` profile: its frames, in send order.
struct replay_script {
  std::string device;
  std::vector<replay_frame> frames;
  std::vector<frame_expect> expect;
};

caf::actor spawn_meter_device(caf::actor_system& sys, boost::asio::io_context& ioc,
                              const run_settings& cfg, tally& t, std::string id,
                              std::uint64_t seed, std::chrono::milliseconds start_delay);

caf::actor spawn_replay_device(caf::actor_system& sys, boost::asio::io_context& ioc,
                               const run_settings& cfg, tally& t,
                               std::shared_ptr<const replay_script> script);

// Tells a device to stop sending and finish once its acks are in (or after
// cfg.drain). A device cut off meanwhile still reconnects to settle what it
// has in flight.
void stop_device(const caf::actor& device);

// Merges b into a.
void merge_expectation(device_expectation& a, const device_expectation& b);

}  // namespace pulse::sim
