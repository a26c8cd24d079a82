#pragma once
// pulse-sim's shared pieces: run settings, the per-run tally that device
// actors write into, the expected totals that --verify checks.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "sim/replay.hpp"

namespace pulse::sim {

struct run_settings {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
  std::size_t devices = 10;
  double rate = 10;            // readings per second per device; 0 = as fast as acks allow
  std::size_t batch = 1;       // readings per frame
  std::size_t window = 1000;   // readings in flight per device
  std::chrono::milliseconds duration{10000};
  std::chrono::milliseconds ramp_up{0};
  std::chrono::milliseconds drain{15000};  // wait for outstanding acks after the run
  std::string profile = "meter";
  std::string prefix = "sim-meter-";
  double speed = 0;            // replay: 0 = as fast as acks allow, else x real time
};

// Compensated (Neumaier) sum, as the node keeps it, so both sides agree.
struct exact_sum {
  double hi = 0, lo = 0;
  void add(double v) {
    double t = hi + v;
    if (std::abs(hi) >= std::abs(v)) lo += (hi - t) + v;
    else lo += (v - t) + hi;
    hi = t;
  }
  double value() const { return hi + lo; }
};

struct metric_total {
  std::uint64_t count = 0;
  exact_sum sum;
};

// What one device expects the node to hold after the run.
struct device_expectation {
  std::int64_t min_ts = INT64_MAX;
  std::int64_t max_ts = INT64_MIN;
  std::map<std::string, metric_total> metrics;
};

// Counters the device actors bump and the progress line reads.
struct tally {
  std::atomic<std::uint64_t> connected{0};
  std::atomic<std::uint64_t> disconnects{0};
  std::atomic<std::uint64_t> frames_sent{0};
  std::atomic<std::uint64_t> sent{0};   // readings
  std::atomic<std::uint64_t> acked{0};  // readings
  std::atomic<std::uint64_t> finished{0};
  std::mutex mtx;  // guards everything below
  std::map<std::string, std::uint64_t> errors;  // by code
  std::vector<float> latencies_ms;              // per acked frame
  std::map<std::string, device_expectation> expected;  // acked readings per device
  std::vector<std::string> problems;            // unexpected events, for the summary
};

}  // namespace pulse::sim
