#pragma once
// What simulated devices send: the value generators of the `meter`, `battery`
// and `host` profiles, the /proc readers behind `host`, and the load shape
// (--phases, --jitter). Pure functions and small structs, so tests/sim checks
// them without a node.

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace pulse::sim {

// The metric names of a generated profile, in the order values are produced.
// Empty for an unknown profile (and for `replay`, which sends files).
const std::vector<std::string>& profile_metrics(const std::string& profile);

// A generated profile: meter, battery, host.
bool generated_profile(const std::string& profile);

// battery: a pack cycling between charge and discharge.
//   voltage 0..600 V (series cells × open-circuit voltage of the state of
//   charge, plus the drop over the internal resistance), current −200..200 A
//   (positive = charging), temperature °C (follows the heat of the current,
//   cools toward ambient), state_of_charge and state_of_health 0..100 (health
//   falls a little with every full cycle).
// Simulated time runs `time_scale` times faster than the readings' spacing so
// that a cycle is seen in minutes, not hours.
struct battery_model {
  int cells = 120;               // in series, 3.0..4.2 V each
  double capacity_ah = 40;
  double resistance = 0.04;      // ohm, whole pack
  double soc = 50;               // %
  double soh = 98;               // %
  double temperature = 25;       // °C
  double ambient = 25;
  double current = 0;            // A, positive = charging
  double target = 0;             // current the charger/load is heading for
  bool charging = true;
  double cycle_throughput = 0;   // % of SOC moved since the last health step

  // A pack of its own, drawn from `rng` (cells, capacity, start SOC/SOH, ambient).
  template <class Rng>
  static battery_model make(Rng& rng) {
    battery_model b;
    b.cells = std::uniform_int_distribution<int>(96, 140)(rng);
    b.capacity_ah = std::uniform_real_distribution<double>(20, 80)(rng);
    b.soc = std::uniform_real_distribution<double>(15, 90)(rng);
    b.soh = std::uniform_real_distribution<double>(85, 100)(rng);
    b.ambient = std::uniform_real_distribution<double>(15, 30)(rng);
    b.temperature = b.ambient;
    b.charging = std::uniform_int_distribution<int>(0, 1)(rng) == 1;
    return b;
  }

  // Advances by `seconds` of simulated time and writes voltage, current,
  // temperature, state_of_charge, state_of_health into out[0..4].
  void step(double seconds, std::mt19937_64& rng, double* out);
};

// host: this machine, from /proc.
struct cpu_times {
  std::uint64_t busy = 0, total = 0;
};
// The aggregate "cpu" line of /proc/stat. False when it is not there.
bool parse_proc_stat(std::string_view text, cpu_times& out);
// MemTotal, MemAvailable (MemFree when the kernel has no MemAvailable), in bytes.
struct mem_info {
  double total = 0, available = 0, free = 0;
};
bool parse_meminfo(std::string_view text, mem_info& out);
// First number of /proc/uptime, in seconds.
bool parse_uptime(std::string_view text, double& seconds);
// CPU busy share in percent between two /proc/stat samples (0 if no time passed).
double cpu_load_percent(const cpu_times& before, const cpu_times& after);

// Reads /proc and writes cpu_load (%), mem_total, mem_used, mem_free (bytes:
// used = total − available, free = available) and uptime (s) into out[0..4].
// `last` carries the previous /proc/stat sample between calls (the first call
// compares against boot). False, with `error`, when /proc is unreadable.
bool read_host(cpu_times& last, double* out, std::string& error);
// {"os":…,"kernel":…,"cpu_model":…,"cpus":N} as compact JSON, for the
// readings' `meta` (from /etc/os-release, uname, /proc/cpuinfo).
std::string host_meta_json();

// Load shape: phases of a linear rate ramp, as load-testing tools do.
struct phase {
  double from = 0, to = 0;  // readings/s per device at the start and the end
  double seconds = 0;
};
// "FROM:TO:DURATION[,FROM:TO:DURATION...]" (DURATION as 30s, 2m, 500ms), or
// "...xN" at the end to repeat the whole list N times. False with `error`.
bool parse_phases(std::string_view text, std::vector<phase>& out, std::string& error);
double phases_seconds(const std::vector<phase>& phases);
// Rate at `t` seconds after the start; 0 after the last phase.
double phase_rate(const std::vector<phase>& phases, double t);

}  // namespace pulse::sim
