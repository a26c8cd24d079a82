#include "sim/profiles.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include <sys/utsname.h>

#include <nlohmann/json.hpp>

namespace pulse::sim {

const std::vector<std::string>& profile_metrics(const std::string& profile) {
  static const std::vector<std::string> meter = {"voltage", "current", "power", "energy"};
  static const std::vector<std::string> battery = {"voltage", "current", "temperature",
                                                   "state_of_charge", "state_of_health"};
  static const std::vector<std::string> host = {"cpu_load", "mem_total", "mem_used", "mem_free",
                                                "uptime"};
  static const std::vector<std::string> none;
  if (profile == "meter") return meter;
  if (profile == "battery") return battery;
  if (profile == "host") return host;
  return none;
}

bool generated_profile(const std::string& profile) { return !profile_metrics(profile).empty(); }

void battery_model::step(double seconds, std::mt19937_64& rng, double* out) {
  std::uniform_real_distribution<double> unit(0, 1);
  std::normal_distribution<double> noise(0, 1);
  seconds = std::max(0.0, seconds);
  // Charge up to 95 %, then discharge down to 10 %, and again.
  bool switched = false;
  if (charging && soc >= 95) charging = false, switched = true;
  else if (!charging && soc <= 10) charging = true, switched = true;
  // The charger or the load changes its demand now and then (about every 2 min).
  bool wrong_sign = charging ? target <= 0 : target >= 0;
  if (switched || wrong_sign || unit(rng) < std::min(1.0, seconds / 120)) {
    target = charging ? 30 + unit(rng) * 170 : -(20 + unit(rng) * 180);
  }
  current += (target - current) * (1 - std::exp(-seconds / 10)) + noise(rng) * 0.5;
  current = std::clamp(current, -200.0, 200.0);

  double usable_ah = std::max(1e-3, capacity_ah * soh / 100);
  double dsoc = current * seconds / 3600 / usable_ah * 100;
  soc = std::clamp(soc + dsoc, 0.0, 100.0);
  // A full cycle moves 200 % of SOC (down and up); each costs 0.05 % of health.
  cycle_throughput += std::abs(dsoc);
  while (cycle_throughput >= 200) {
    cycle_throughput -= 200;
    soh = std::max(0.0, soh - 0.05);
  }
  // I²R heat lifts the temperature (about +20 °C at 200 A), which relaxes
  // toward it over minutes.
  double settle = ambient + current * current * resistance * 0.0125;
  temperature += (settle - temperature) * (1 - std::exp(-seconds / 300)) + noise(rng) * 0.02;
  temperature = std::clamp(temperature, -40.0, 120.0);

  // Open-circuit voltage per cell 3.0..4.2 V, steeper near empty and full.
  double x = soc / 100;
  double ocv = 3.0 + 1.0 * x + 0.2 * x * x * x - 0.1 * (1 - x) * (1 - x) * (1 - x) + 0.1;
  ocv = std::clamp(ocv, 3.0, 4.2);
  double voltage = std::clamp(cells * ocv + current * resistance, 0.0, 600.0);
  out[0] = voltage;
  out[1] = current;
  out[2] = temperature;
  out[3] = soc;
  out[4] = soh;
}

namespace {

std::string read_text(const char* path) {
  std::ifstream in{path};
  if (!in) return {};
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The number after `key:` on its line of /proc/meminfo, in bytes (kB given).
bool meminfo_field(std::string_view text, std::string_view key, double& out) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    auto line = text.substr(pos, end - pos);
    if (line.size() > key.size() && line.compare(0, key.size(), key) == 0 &&
        line[key.size()] == ':') {
      std::string rest(line.substr(key.size() + 1));
      char* stop = nullptr;
      double v = std::strtod(rest.c_str(), &stop);
      if (stop == rest.c_str() || !std::isfinite(v) || v < 0) return false;
      bool kb = rest.find("kB") != std::string::npos;
      out = kb ? v * 1024 : v;
      return true;
    }
    pos = end + 1;
  }
  return false;
}

}  // namespace

bool parse_proc_stat(std::string_view text, cpu_times& out) {
  // "cpu  user nice system idle iowait irq softirq steal guest guest_nice"
  if (text.substr(0, 4) != "cpu ") return false;
  auto end = text.find('\n');
  std::istringstream line{std::string(text.substr(4, end == std::string_view::npos ? text.size() - 4 : end - 4))};
  std::uint64_t v[8] = {};
  int n = 0;
  while (n < 8 && line >> v[n]) ++n;
  if (n < 4) return false;
  std::uint64_t total = 0;
  for (int i = 0; i < n; ++i) total += v[i];
  std::uint64_t idle = v[3] + (n > 4 ? v[4] : 0);  // idle + iowait
  out.total = total;
  out.busy = total - idle;
  return true;
}

bool parse_meminfo(std::string_view text, mem_info& out) {
  if (!meminfo_field(text, "MemTotal", out.total) || out.total <= 0) return false;
  if (!meminfo_field(text, "MemFree", out.free)) return false;
  if (!meminfo_field(text, "MemAvailable", out.available)) out.available = out.free;
  out.available = std::min(out.available, out.total);
  out.free = std::min(out.free, out.total);
  return true;
}

bool parse_uptime(std::string_view text, double& seconds) {
  std::string s(text.substr(0, text.find(' ')));
  char* stop = nullptr;
  seconds = std::strtod(s.c_str(), &stop);
  return stop != s.c_str() && std::isfinite(seconds) && seconds >= 0;
}

double cpu_load_percent(const cpu_times& before, const cpu_times& after) {
  if (after.total <= before.total || after.busy < before.busy) return 0;
  double load = 100.0 * static_cast<double>(after.busy - before.busy) /
                static_cast<double>(after.total - before.total);
  return std::clamp(load, 0.0, 100.0);
}

bool read_host(cpu_times& last, double* out, std::string& error) {
  cpu_times now;
  mem_info mem;
  double up = 0;
  if (!parse_proc_stat(read_text("/proc/stat"), now)) return error = "cannot read /proc/stat", false;
  if (!parse_meminfo(read_text("/proc/meminfo"), mem)) return error = "cannot read /proc/meminfo", false;
  if (!parse_uptime(read_text("/proc/uptime"), up)) return error = "cannot read /proc/uptime", false;
  out[0] = cpu_load_percent(last, now);
  out[1] = mem.total;
  out[2] = mem.total - mem.available;
  out[3] = mem.available;
  out[4] = up;
  last = now;
  return true;
}

std::string host_meta_json() {
  nlohmann::json meta = nlohmann::json::object();
  auto os = read_text("/etc/os-release");
  auto p = os.find("PRETTY_NAME=");
  if (p != std::string::npos) {
    auto v = os.substr(p + 12, os.find('\n', p) - p - 12);
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
    meta["os"] = v;
  }
  utsname u{};
  if (uname(&u) == 0) {
    if (!meta.contains("os")) meta["os"] = u.sysname;
    meta["kernel"] = std::string(u.sysname) + " " + u.release;
    meta["arch"] = u.machine;
  }
  auto cpu = read_text("/proc/cpuinfo");
  auto m = cpu.find("model name");
  if (m != std::string::npos) {
    auto colon = cpu.find(':', m);
    auto eol = cpu.find('\n', m);
    if (colon != std::string::npos && colon < eol) {
      auto v = cpu.substr(colon + 1, eol - colon - 1);
      v.erase(0, v.find_first_not_of(" \t"));
      meta["cpu_model"] = v;
    }
  }
  meta["cpus"] = std::max(1u, std::thread::hardware_concurrency());
  return meta.dump();
}

namespace {

bool parse_seconds(std::string_view s, double& out) {
  std::size_t digits = 0;
  while (digits < s.size() && (std::isdigit(static_cast<unsigned char>(s[digits])) || s[digits] == '.'))
    ++digits;
  if (digits == 0 || digits > 12) return false;
  double v = std::strtod(std::string(s.substr(0, digits)).c_str(), nullptr);
  auto unit = s.substr(digits);
  double scale = unit == "ms" ? 0.001 : unit == "s" ? 1 : unit == "m" ? 60 : unit == "h" ? 3600 : -1;
  if (scale < 0 || !std::isfinite(v)) return false;
  out = v * scale;
  return true;
}

bool parse_rate(std::string_view s, double& out) {
  if (s.empty() || s.size() > 16) return false;
  std::string t(s);
  char* stop = nullptr;
  out = std::strtod(t.c_str(), &stop);
  return stop == t.c_str() + t.size() && std::isfinite(out) && out >= 0 && out <= 1e6;
}

}  // namespace

bool parse_phases(std::string_view text, std::vector<phase>& out, std::string& error) {
  out.clear();
  std::size_t repeat = 1;
  auto x = text.rfind('x');
  if (x != std::string_view::npos) {
    auto n = text.substr(x + 1);
    if (n.empty() || n.size() > 4 || n.find_first_not_of("0123456789") != std::string_view::npos ||
        (repeat = std::stoul(std::string(n))) == 0)
      return error = "repeat count after 'x' must be 1..9999", false;
    text = text.substr(0, x);
  }
  if (text.empty()) return error = "no phases (expected FROM:TO:DURATION,...)", false;
  std::vector<phase> list;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    auto end = text.find(',', pos);
    if (end == std::string_view::npos) end = text.size();
    auto item = text.substr(pos, end - pos);
    auto c1 = item.find(':');
    auto c2 = c1 == std::string_view::npos ? c1 : item.find(':', c1 + 1);
    phase p;
    auto which = "phase " + std::to_string(list.size() + 1) + " '" + std::string(item) + "'";
    if (c2 == std::string_view::npos || item.find(':', c2 + 1) != std::string_view::npos)
      return error = which + ": expected FROM:TO:DURATION", false;
    if (!parse_rate(item.substr(0, c1), p.from) || !parse_rate(item.substr(c1 + 1, c2 - c1 - 1), p.to))
      return error = which + ": rates must be numbers 0..1000000 (readings/s per device)", false;
    if (!parse_seconds(item.substr(c2 + 1), p.seconds) || p.seconds <= 0 || p.seconds > 86400)
      return error = which + ": duration must be like 500ms, 30s, 2m, 1h (at most 24h)", false;
    list.push_back(p);
    if (list.size() > 1000) return error = "at most 1000 phases", false;
    pos = end + 1;
  }
  for (std::size_t i = 0; i < repeat; ++i) out.insert(out.end(), list.begin(), list.end());
  if (phases_seconds(out) > 7 * 86400) return error = "phases last more than 7 days", false;
  return true;
}

double phases_seconds(const std::vector<phase>& phases) {
  double s = 0;
  for (auto& p : phases) s += p.seconds;
  return s;
}

double phase_rate(const std::vector<phase>& phases, double t) {
  if (t < 0) return phases.empty() ? 0 : phases.front().from;
  for (auto& p : phases) {
    if (t < p.seconds) return p.from + (p.to - p.from) * (t / p.seconds);
    t -= p.seconds;
  }
  return 0;
}

}  // namespace pulse::sim
