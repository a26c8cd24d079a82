#pragma once
// --subscribe=N: simulated dashboards. Each opens a WebSocket, says hello
// (with the token when there is one), subscribes to the simulated devices'
// prefix and times every pushed update: end to end (the reading's ts, set
// by the device when it built the frame, to the push arriving here) and the
// node's own latency_ms (receive to push).

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace pulse::net {
class ws_client;
}

namespace pulse::sim {

struct push_stats {
  std::mutex mtx;  // guards everything
  std::uint64_t opened = 0;       // watchers whose WebSocket opened
  std::uint64_t snapshots = 0;    // snapshot messages
  std::uint64_t snapshot_devices = 0;
  std::uint64_t updates = 0;      // device entries in update messages
  std::vector<float> e2e_ms;      // per update: now − reading ts
  std::vector<float> server_ms;   // per update: the node's latency_ms
  std::vector<std::uint32_t> second;  // per update: seconds since the run started
  std::vector<std::string> problems;
};

class watchers {
 public:
  watchers(boost::asio::io_context& ioc, std::string host, std::uint16_t port, std::string token,
           std::string pattern, std::shared_ptr<push_stats> stats);
  ~watchers();
  // Opens n subscribers.
  void start(std::size_t n);
  // Closes them (expected closes are not problems after this).
  void stop();

  struct impl;

 private:
  std::shared_ptr<impl> impl_;
};

}  // namespace pulse::sim
