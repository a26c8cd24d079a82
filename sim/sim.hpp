#pragma once
// pulse-sim's shared pieces: run settings, the reconnect rules (backoff, how
// a welcome settles frames in flight; pure functions, so tests/sim checks
// them without a node), the per-run tally that device actors write into, the
// expected totals that --verify checks.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "sim/profiles.hpp"
#include "sim/replay.hpp"

namespace pulse::sim {

struct run_settings {
  std::string host = "127.0.0.1";
  std::string source;  // local address to connect from; "" = the kernel's choice
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
  // Reconnect backoff: attempt k waits uniform(0, min(max, min * 2^k)).
  std::chrono::milliseconds reconnect_min{100};
  std::chrono::milliseconds reconnect_max{5000};
  std::size_t reconnect_attempts = 12;  // in a row without a welcome; 0 = never give up
  std::string token;  // auth: in each hello, and as the bearer token of --verify
  std::vector<phase> phases;  // rate ramps (replace `rate` when not empty)
  double jitter = 0;          // each send interval × uniform(1 − jitter, 1 + jitter)
  std::string meta;           // compact JSON object sent as `meta` after each welcome; "" = none
};

// One settled frame: when (seconds since the run started), how many readings,
// and its ack latency (negative when it was found stored by a welcome).
struct ack_sample {
  std::uint32_t second = 0;
  std::uint32_t readings = 0;
  float ms = -1;
};

// The ceiling of reconnect attempt `attempt` (0-based): min * 2^attempt, at most max.
inline std::chrono::milliseconds backoff_ceiling(std::size_t attempt, std::chrono::milliseconds min,
                                                 std::chrono::milliseconds max) {
  // Capped exponent: any sensible max is reached long before 2^40.
  auto doublings = static_cast<int>(std::min<std::size_t>(attempt, 40));
  auto ceiling = static_cast<double>(min.count()) * std::ldexp(1.0, doublings);
  return std::chrono::milliseconds(
    static_cast<std::int64_t>(std::min(ceiling, static_cast<double>(max.count()))));
}

// Full jitter (delay uniform in [0, ceiling]): devices cut off together come
// back spread out instead of in waves.
template <class Rng>
std::chrono::milliseconds backoff_delay(std::size_t attempt, std::chrono::milliseconds min,
                                        std::chrono::milliseconds max, Rng& rng) {
  auto ceiling = backoff_ceiling(attempt, min, max).count();
  if (ceiling <= 0) return std::chrono::milliseconds(0);
  std::uniform_int_distribution<std::int64_t> pick(0, ceiling);
  return std::chrono::milliseconds(pick(rng));
}

// The seq of one reading of a replayed frame: given in the file, or left to
// the node (last_seq + 1), as OCPP frames do.
struct reading_seq {
  bool given = false;
  std::uint64_t seq = 0;
};

// The node's last_seq for a device once a frame is stored, if it was `before`
// when the frame arrived: the batcher's rule (a given seq above the highest
// counts, one at or below it is a duplicate; a missing one is highest + 1).
inline std::uint64_t last_seq_after(std::uint64_t before, const std::vector<reading_seq>& seqs) {
  auto last = before;
  for (auto& s : seqs) {
    if (!s.given) ++last;
    else last = std::max(last, s.seq);
  }
  return last;
}

// What a reconnected meter device does with one unconfirmed frame once the
// welcome says the node holds everything up to `node_last_seq`.
enum class resume_action {
  stored,    // every seq of it is at or below last_seq: count it as acked
  resend,    // send it again as it was; the node skips what it already has
  renumber,  // refused (overloaded) yet later seqs were stored, so a resend with
             // its old seqs would be skipped as duplicates: send it with new seqs
};

inline resume_action resume_frame(std::uint64_t first_seq, std::uint64_t last_seq, bool rejected,
                                  std::uint64_t node_last_seq) {
  if (!rejected) return last_seq <= node_last_seq ? resume_action::stored : resume_action::resend;
  return first_seq <= node_last_seq ? resume_action::renumber : resume_action::resend;
}

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

// One device's end state, for the report and for checks against the node.
struct device_result {
  std::uint64_t acked = 0;     // readings confirmed durable
  std::uint64_t last_seq = 0;  // highest seq confirmed durable (acked or in a welcome)
};

// Counters the device actors bump and the progress line reads.
// Accounting at the end: sent == acked + rejected + unconfirmed, where resent
// readings count once in `sent` (and again in `resent`).
struct tally {
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  std::atomic<std::uint64_t> connected{0};    // devices that connected at least once
  std::atomic<std::uint64_t> disconnects{0};  // connections lost (any cause)
  std::atomic<std::uint64_t> reconnects{0};   // welcomes after a lost connection
  std::atomic<std::uint64_t> gave_up{0};      // devices out of reconnect attempts
  std::atomic<std::uint64_t> frames_sent{0};  // first sends only
  std::atomic<std::uint64_t> sent{0};         // readings, first sends only
  std::atomic<std::uint64_t> resent{0};       // readings sent again after a reconnect
  std::atomic<std::uint64_t> acked{0};        // readings confirmed durable
  std::atomic<std::uint64_t> resumed{0};      // of those, found stored by a welcome, not acked
  std::atomic<std::uint64_t> rejected{0};     // readings refused (overloaded) and never stored
  std::atomic<std::uint64_t> finished{0};
  std::mutex mtx;  // guards everything below
  std::map<std::string, std::uint64_t> errors;  // by code
  std::map<std::string, std::uint64_t> closes;  // ended connections by cause ("1013", "lost", ...)
  std::vector<float> latencies_ms;              // per acked frame
  std::vector<ack_sample> samples;              // per settled frame, for the per-second series
  std::map<std::string, device_expectation> expected;  // acked readings per device
  std::map<std::string, device_result> results;        // per device
  std::vector<std::string> problems;            // unexpected events, for the summary
};

}  // namespace pulse::sim
