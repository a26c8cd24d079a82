// pulse-sim: the actor-based client simulator. Load generator (profiles
// `meter`, `battery`, `host`; rate ramps in phases; simulated dashboards
// with --subscribe), file replayer (`replay FILE`: XLSX, CSV, NDJSON) and end-to-end
// verifier (`--verify`).

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <thread>

#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "net/http_client.hpp"
#include "node/command_line.hpp"
#include "node/config_file.hpp"
#include "sim/device.hpp"
#include "sim/replay.hpp"
#include "sim/watchers.hpp"
#include "wire/codec.hpp"

namespace {

using namespace pulse::sim;

struct sim_config : caf::actor_system_config {
  std::string node = "127.0.0.1:8080";
  std::size_t devices = 10;
  double rate = 10;
  std::size_t batch = 1;
  std::size_t window = 1000;
  caf::timespan duration = std::chrono::seconds(10);
  caf::timespan ramp_up = std::chrono::seconds(0);
  caf::timespan drain = std::chrono::seconds(15);
  std::string profile = "meter";
  std::string file;
  std::string format;
  std::string prefix;  // "" = sim-<profile>-
  double speed = 0;
  std::string report;
  bool verify = false;
  std::size_t io_threads = 1;
  bool quiet = false;
  caf::timespan reconnect_min = run_settings{}.reconnect_min;
  caf::timespan reconnect_max = run_settings{}.reconnect_max;
  std::size_t reconnect_attempts = run_settings{}.reconnect_attempts;
  std::string token;
  std::string phases;
  double jitter = 0;
  std::size_t subscribe = 0;
  std::string source;

  std::string check_file() const { return pulse::check_config_file(custom_options_, config_file_path); }
  const caf::config_option_set& options() const { return custom_options_; }
  std::size_t first_own_option = 0;  // CAF's options come before pulse-sim's

  sim_config() {
    // As pulse-node (see node/config.cpp): condition-variable scheduling and
    // one cooperative thread cost far less CPU per message here.
    set("scheduler.policy", caf::atom("sharing"));
    set("scheduler.max-threads", std::size_t{1});
    first_own_option = custom_options_.size();
    opt_group{custom_options_, "global"}
      .add(node, "node", "host:port of the pulse-node to drive")
      .add(source, "source",
           "local address the devices connect from, e.g. 127.0.0.2 (more than ~14,000 "
           "connections to one node from one address run out of ephemeral ports)")
      .add(devices, "devices", "simulated devices (meter profile), one WebSocket each")
      .add(rate, "rate", "readings per second per device; 0 = as fast as acks allow")
      .add(batch, "batch", "readings per frame")
      .add(window, "window", "readings in flight per device before it waits for acks")
      .add(duration, "duration", "how long to send (meter profile), e.g. 10s")
      .add(ramp_up, "ramp-up", "spread device connects over this time")
      .add(drain, "drain", "after the run, wait this long for outstanding acks")
      .add(profile, "profile", "meter, battery, host or replay")
      .add(file, "file", "replay: XLSX, CSV or NDJSON file")
      .add(format, "format", "replay: xlsx, csv or ndjson (default: from the extension)")
      .add(prefix, "prefix", "device id prefix (default sim-<profile>-)")
      .add(speed, "speed", "replay: 0 = as fast as acks allow, N = N x real time")
      .add(report, "report", "write a JSON report to this file")
      .add(verify, "verify", "after the run, check through the HTTP API that every acked reading is stored")
      .add(io_threads, "io-threads", "threads running the WebSockets")
      .add(quiet, "quiet", "no progress line")
      .add(reconnect_min, "reconnect-min",
           "first reconnect waits up to this (full jitter), doubling per attempt")
      .add(reconnect_max, "reconnect-max", "cap of the reconnect wait")
      .add(reconnect_attempts, "reconnect-attempts",
           "reconnects in a row without a welcome before a device gives up; 0 = never")
      .add(token, "token",
           "auth token: sent in every hello, and as Authorization: Bearer by --verify")
      .add(phases, "phases",
           "rate ramps FROM:TO:DURATION[,...][xN] in readings/s per device; replaces --rate and --duration")
      .add(jitter, "jitter", "each device's send interval x uniform(1-J, 1+J), 0..0.9")
      .add(subscribe, "subscribe",
           "simulated dashboards subscribing to the devices' prefix; push latency in the summary");
  }
};

const char* usage =
  "usage: pulse-sim [--key=value ...]              --profile=meter|battery|host: --devices --rate --batch --duration\n"
  "       pulse-sim replay FILE [--key=value ...]  replay an XLSX (OCPP MeterValues), CSV or NDJSON file\n"
  "Every key can also be set in an INI file (--config-file=configs/pulse-sim.ini, keys\n"
  "before any section or under [global]); the command line wins. Defaults as shown\n"
  "(they are configs/pulse-sim.ini's); --long-help also lists CAF's own options.\n";

double percentile(const std::vector<float>& sorted, double p) {
  if (sorted.empty()) return 0;
  auto i = static_cast<std::size_t>(std::ceil(p / 100.0 * sorted.size())) ;
  return sorted[std::min(sorted.size() - 1, i == 0 ? 0 : i - 1)];
}

nlohmann::json latency_json(std::vector<float>& v) {
  std::sort(v.begin(), v.end());
  return {{"count", v.size()}, {"p50", percentile(v, 50)}, {"p99", percentile(v, 99)},
          {"max", v.empty() ? 0.0 : v.back()}};
}

// Per second since the start: readings and frames settled, ack latency, and
// (with --subscribe) updates pushed and their end-to-end latency.
nlohmann::json per_second_series(const std::vector<ack_sample>& samples, const push_stats* push) {
  std::uint32_t last = 0;
  for (auto& s : samples) last = std::max(last, s.second);
  if (push)
    for (auto s : push->second) last = std::max(last, s);
  if (samples.empty() && (!push || push->second.empty())) return nlohmann::json::array();
  std::vector<std::uint64_t> readings(last + 1), frames(last + 1);
  std::vector<std::vector<float>> lat(last + 1), pushed(last + 1);
  for (auto& s : samples) {
    readings[s.second] += s.readings;
    frames[s.second]++;
    if (s.ms >= 0) lat[s.second].push_back(s.ms);
  }
  if (push)
    for (std::size_t i = 0; i < push->second.size(); ++i) pushed[push->second[i]].push_back(push->e2e_ms[i]);
  auto series = nlohmann::json::array();
  for (std::uint32_t t = 0; t <= last; ++t) {
    nlohmann::json row = {{"t", t}, {"acked", readings[t]}, {"frames", frames[t]},
                          {"ack_latency_ms", latency_json(lat[t])}};
    if (push) row["push_latency_ms"] = latency_json(pushed[t]);
    series.push_back(std::move(row));
  }
  return series;
}

// Checks that every acked reading is stored: per device and metric, count and
// sum over the acked readings' time span. Returns the number of mismatches.
std::size_t verify(const run_settings& rs, tally& t, bool all_acked, nlohmann::json& out) {
  std::size_t bad = 0, checked = 0;
  nlohmann::json mismatches = nlohmann::json::array();
  for (auto& [device, exp] : t.expected) {
    for (auto& [metric, tot] : exp.metrics) {
      if (tot.count == 0) continue;
      ++checked;
      using pulse::net::url_encode;
      std::string target = "/api/v1/devices/" + url_encode(device) +
                           "/aggregate?metric=" + url_encode(metric) +
                           "&from=" + std::to_string(exp.min_ts) +
                           "&to=" + std::to_string(exp.max_ts + 1) + "&fn=count,sum";
      pulse::net::http_response res;
      std::string err;
      std::uint64_t count = 0;
      double sum = 0;
      std::string problem;
      std::vector<std::pair<std::string, std::string>> headers;
      if (!rs.token.empty()) headers.emplace_back("Authorization", "Bearer " + rs.token);
      if (!pulse::net::http_request(rs.host, rs.port, "GET", target, "", res, err,
                                    std::chrono::seconds(10), "application/json", headers)) {
        problem = "request failed: " + err;
      } else if (res.status != 200) {
        problem = "HTTP " + std::to_string(res.status) + ": " + res.body;
      } else {
        auto j = nlohmann::json::parse(res.body, nullptr, false);
        if (j.is_discarded() || !j.contains("buckets")) {
          problem = "unreadable answer: " + res.body.substr(0, 200);
        } else {
          exact_sum s;
          for (auto& b : j["buckets"]) {
            count += b.value("count", std::uint64_t{0});
            s.add(b.value("sum", 0.0));
          }
          sum = s.value();
          double want = tot.sum.value();
          if (count < tot.count)
            problem = "stored " + std::to_string(count) + " < acked " + std::to_string(tot.count);
          else if (all_acked && count != tot.count)
            problem = "stored " + std::to_string(count) + " != sent " + std::to_string(tot.count);
          else if (count == tot.count &&
                   std::abs(sum - want) > 1e-9 * std::max(1.0, std::abs(want)))
            problem = "sum " + std::to_string(sum) + " != " + std::to_string(want);
        }
      }
      if (!problem.empty()) {
        ++bad;
        if (mismatches.size() < 20)
          mismatches.push_back({{"device", device}, {"metric", metric}, {"problem", problem}});
        if (bad <= 10) std::fprintf(stderr, "verify: %s %s: %s\n", device.c_str(), metric.c_str(), problem.c_str());
      }
    }
  }
  out = {{"checked", checked}, {"mismatches", bad}, {"examples", mismatches}};
  return bad;
}

// Frames of a replay file, grouped per device, with what each should produce.
bool build_scripts(const replay_data& data, std::vector<std::shared_ptr<const replay_script>>& out,
                   std::size_t& readings, std::size_t& bad_values, std::string& error) {
  pulse::wire::frame_parser parser;
  pulse::wire::frame f;
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch()).count();
  for (auto& dev : data.devices) {
    auto s = std::make_shared<replay_script>();
    s->device = dev.device;
    s->frames = dev.frames;
    for (auto& fr : dev.frames) {
      parser.parse(fr.text, now, f);
      frame_expect e;
      e.errors = f.errors.size();
      bad_values += f.errors.size();
      for (auto& b : f.batches) {
        for (auto& r : b.rows) {
          e.readings++;
          e.seqs.push_back({r.has_seq, r.seq});
          e.totals.min_ts = std::min(e.totals.min_ts, r.ts);
          e.totals.max_ts = std::max(e.totals.max_ts, r.ts);
          for (std::uint32_t k = r.first; k < r.first + r.count; ++k) {
            auto& tot = e.totals.metrics[b.metrics[b.samples[k].metric]];
            tot.count++;
            tot.sum.add(b.samples[k].value);
          }
        }
      }
      if (e.readings == 0 && e.errors == 0) {
        error = dev.device + ": a frame yields neither readings nor errors";
        return false;
      }
      readings += e.readings;
      s->expect.push_back(std::move(e));
    }
    out.push_back(std::move(s));
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  // `pulse-sim replay FILE ...` is shorthand for --profile=replay --file=FILE.
  std::vector<char*> args(argv, argv + argc);
  std::string replay_file;
  bool replay_cmd = false;
  if (args.size() > 1 && std::string(args[1]) == "replay") {
    replay_cmd = true;
    args.erase(args.begin() + 1);
    if (args.size() > 1 && args[1][0] != '-') {
      replay_file = args[1];
      args.erase(args.begin() + 1);
    }
  }
  sim_config cfg;
  auto cl = pulse::check_command_line(cfg.options(), static_cast<int>(args.size()), args.data());
  switch (cl.what) {
    case pulse::command_line::action::help:
      std::fputs(usage, stdout);
      std::fputs(pulse::options_help(cfg.options(), cfg.first_own_option).c_str(), stdout);
      return 0;
    case pulse::command_line::action::version:
      std::printf("pulse-sim %s\n", pulse::version());
      return 0;
    case pulse::command_line::action::fail:
      std::cerr << "pulse-sim: " << cl.message << "\n";
      return 2;
    case pulse::command_line::action::run:
      break;
  }
  if (auto err = cfg.parse(static_cast<int>(cl.args.size()), cl.args.data())) {
    std::cerr << "pulse-sim: " << caf::actor_system_config::render(err) << "\n";
    return 2;
  }
  if (cfg.cli_helptext_printed) return 0;
  cl.apply_flags();
  if (auto problem = cfg.check_file(); !problem.empty()) {
    std::cerr << "pulse-sim: " << problem << "\n";
    return 2;
  }
  if (replay_cmd) cfg.profile = "replay";
  if (!replay_file.empty()) cfg.file = replay_file;

  run_settings rs;
  auto colon = cfg.node.rfind(':');
  if (colon == std::string::npos) {
    std::cerr << "pulse-sim: --node must be host:port\n";
    return 2;
  }
  rs.host = cfg.node.substr(0, colon);
  if (!cfg.source.empty()) {
    boost::system::error_code ec;
    boost::asio::ip::make_address(cfg.source, ec);
    if (ec) {
      std::cerr << "pulse-sim: --source must be an IP address, got '" << cfg.source << "'\n";
      return 2;
    }
    rs.source = cfg.source;
  }
  try {
    auto p = std::stoul(cfg.node.substr(colon + 1));
    if (p == 0 || p > 65535) throw std::out_of_range("port");
    rs.port = static_cast<std::uint16_t>(p);
  } catch (...) {
    std::cerr << "pulse-sim: bad port in --node=" << cfg.node << "\n";
    return 2;
  }
  rs.devices = cfg.devices;
  rs.rate = cfg.rate;
  rs.batch = std::max<std::size_t>(1, cfg.batch);
  rs.window = std::max(cfg.window, rs.batch);
  rs.duration = std::chrono::duration_cast<std::chrono::milliseconds>(cfg.duration);
  rs.ramp_up = std::chrono::duration_cast<std::chrono::milliseconds>(cfg.ramp_up);
  rs.drain = std::chrono::duration_cast<std::chrono::milliseconds>(cfg.drain);
  rs.profile = cfg.profile;
  rs.prefix = cfg.prefix;
  rs.speed = cfg.speed;
  rs.reconnect_min = std::chrono::duration_cast<std::chrono::milliseconds>(cfg.reconnect_min);
  rs.reconnect_max = std::chrono::duration_cast<std::chrono::milliseconds>(cfg.reconnect_max);
  rs.reconnect_attempts = cfg.reconnect_attempts;
  rs.token = cfg.token;
  if (rs.reconnect_min.count() < 1 || rs.reconnect_max < rs.reconnect_min) {
    std::cerr << "pulse-sim: --reconnect-min must be at least 1ms and --reconnect-max at least "
                 "--reconnect-min\n";
    return 2;
  }
  if (!generated_profile(rs.profile) && rs.profile != "replay") {
    std::cerr << "pulse-sim: --profile must be meter, battery, host or replay\n";
    return 2;
  }
  if (rs.prefix.empty()) rs.prefix = "sim-" + rs.profile + "-";
  if (!cfg.phases.empty()) {
    std::string error;
    if (!parse_phases(cfg.phases, rs.phases, error)) {
      std::cerr << "pulse-sim: --phases: " << error << "\n";
      return 2;
    }
    rs.duration = std::chrono::milliseconds(static_cast<std::int64_t>(phases_seconds(rs.phases) * 1000));
  }
  if (!(cfg.jitter >= 0 && cfg.jitter <= 0.9)) {
    std::cerr << "pulse-sim: --jitter must be 0..0.9\n";
    return 2;
  }
  rs.jitter = cfg.jitter;
  if (cfg.subscribe > 1000) {
    std::cerr << "pulse-sim: --subscribe must be 0..1000\n";
    return 2;
  }
  if (rs.profile == "host") {
    // The machine's own figures, once a second, with its description as meta.
    cpu_times cpu;
    double probe[5];
    std::string error;
    if (!read_host(cpu, probe, error)) {
      std::cerr << "pulse-sim: --profile=host: " << error << "\n";
      return 2;
    }
    if (!rs.phases.empty() || cfg.rate != 10 || cfg.batch != 1)
      std::cerr << "pulse-sim: --profile=host sends one reading a second; --rate, --batch and --phases are ignored\n";
    rs.rate = 1;
    rs.batch = 1;
    rs.phases.clear();
    rs.duration = std::chrono::duration_cast<std::chrono::milliseconds>(cfg.duration);
    rs.meta = host_meta_json();
  }
  if (rs.rate < 0 || rs.devices == 0 || rs.devices > 19000) {
    std::cerr << "pulse-sim: --rate must be >= 0 and --devices 1..19000\n";
    return 2;
  }

  std::vector<std::shared_ptr<const replay_script>> scripts;
  std::size_t replay_readings = 0, replay_bad = 0;
  if (rs.profile == "replay") {
    if (cfg.file.empty()) {
      std::cerr << "pulse-sim: replay needs a file (pulse-sim replay FILE)\n";
      return 2;
    }
    replay_data data;
    std::string error;
    if (!load_replay(cfg.file, cfg.format, data, error) ||
        !build_scripts(data, scripts, replay_readings, replay_bad, error)) {
      std::cerr << "pulse-sim: " << cfg.file << ": " << error << "\n";
      return 2;
    }
    std::fprintf(stderr, "replay: %s: %zu rows, %zu devices, %zu readings, %zu unreadable values\n",
                 cfg.file.c_str(), data.rows, scripts.size(), replay_readings, replay_bad);
  }

  caf::actor_system sys{cfg};
  boost::asio::io_context ioc;
  auto work = boost::asio::make_work_guard(ioc);
  std::vector<std::thread> io;
  for (std::size_t i = 0; i < std::max<std::size_t>(1, cfg.io_threads); ++i)
    io.emplace_back([&] { ioc.run(); });

  tally t;
  std::vector<caf::actor> devices;
  auto start = t.start;
  auto push = std::make_shared<push_stats>();
  std::unique_ptr<watchers> dashboards;
  if (cfg.subscribe > 0) {
    // Subscribed before the devices start, so that every update is seen.
    dashboards = std::make_unique<watchers>(ioc, rs.host, rs.port, rs.token,
                                            rs.profile == "replay" ? std::string{"*"} : rs.prefix + "*", push);
    dashboards->start(cfg.subscribe);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  auto start_wall = std::chrono::system_clock::now();
  if (rs.profile != "replay") {
    for (std::size_t i = 0; i < rs.devices; ++i) {
      auto delay = rs.ramp_up * static_cast<long>(i) / static_cast<long>(rs.devices);
      devices.push_back(spawn_meter_device(sys, ioc, rs, t, rs.prefix + std::to_string(i),
                                           1234567 + i, delay));
    }
  } else {
    for (auto& s : scripts) devices.push_back(spawn_replay_device(sys, ioc, rs, t, s));
  }

  // Progress, once a second, until the devices are done.
  bool tty = isatty(STDERR_FILENO);
  auto send_until = start + rs.duration + rs.ramp_up;
  auto hard_stop = rs.profile != "replay" ? send_until + rs.drain + std::chrono::seconds(5)
                                         : start + std::chrono::hours(24);
  bool stop_sent = false;
  std::uint64_t last_acked = 0;
  auto last = start;
  while (t.finished.load() < devices.size()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    auto now = std::chrono::steady_clock::now();
    if (!stop_sent && rs.profile != "replay" && now >= send_until) {
      for (auto& d : devices) stop_device(d);
      stop_sent = true;
    }
    if (now >= hard_stop) {
      std::fprintf(stderr, "\npulse-sim: devices did not finish in time\n");
      break;
    }
    if (now - last >= std::chrono::seconds(1) && !cfg.quiet) {
      auto acked = t.acked.load();
      double secs = std::chrono::duration<double>(now - last).count();
      std::fprintf(stderr,
                   "%st=%5.1fs connected=%llu sent=%llu acked=%llu reconnects=%llu rate=%.0f/s%s",
                   tty ? "\r" : "", std::chrono::duration<double>(now - start).count(),
                   (unsigned long long)t.connected.load(), (unsigned long long)t.sent.load(),
                   (unsigned long long)acked, (unsigned long long)t.reconnects.load(),
                   (acked - last_acked) / secs, tty ? "   " : "\n");
      last_acked = acked;
      last = now;
    }
  }
  auto end = std::chrono::steady_clock::now();
  if (!cfg.quiet && tty) std::fputc('\n', stderr);
  for (auto& d : devices) caf::anon_send_exit(d, caf::exit_reason::user_shutdown);
  devices.clear();
  if (dashboards) {
    // The last updates are pushed after the last acks.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    dashboards->stop();
  }
  work.reset();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ioc.stop();
  for (auto& th : io) th.join();

  // Summary. Throughput is over the sending period (the drain is not counted
  // when everything was acked by then).
  std::lock_guard<std::mutex> guard{t.mtx};
  auto& lat = t.latencies_ms;
  std::sort(lat.begin(), lat.end());
  double secs = std::chrono::duration<double>(end - start).count();
  if (rs.profile != "replay") secs = std::min(secs, std::chrono::duration<double>(rs.duration + rs.ramp_up).count());
  auto sent = t.sent.load(), acked = t.acked.load();
  // sent == acked + refused + unconfirmed: resends count once.
  auto settled = acked + t.rejected.load();
  auto unconfirmed = sent > settled ? sent - settled : 0;
  std::uint64_t errors = 0;
  for (auto& [c, n] : t.errors) errors += n;
  double rate = secs > 0 ? acked / secs : 0;
  std::printf("\npulse-sim %s against %s:%u\n", rs.profile.c_str(), rs.host.c_str(), rs.port);
  std::printf("  %-22s %llu\n", "devices connected", (unsigned long long)t.connected.load());
  std::printf("  %-22s %llu\n", "frames sent", (unsigned long long)t.frames_sent.load());
  std::printf("  %-22s %llu\n", "readings sent", (unsigned long long)sent);
  std::printf("  %-22s %llu\n", "readings acked", (unsigned long long)acked);
  std::printf("  %-22s %llu\n", "  found stored on resume", (unsigned long long)t.resumed.load());
  std::printf("  %-22s %llu\n", "readings resent", (unsigned long long)t.resent.load());
  std::printf("  %-22s %llu\n", "readings refused", (unsigned long long)t.rejected.load());
  std::printf("  %-22s %llu\n", "readings unconfirmed", (unsigned long long)unconfirmed);
  std::printf("  %-22s %llu (connections lost %llu, devices gave up %llu)\n", "reconnects",
              (unsigned long long)t.reconnects.load(), (unsigned long long)t.disconnects.load(),
              (unsigned long long)t.gave_up.load());
  for (auto& [c, n] : t.closes) {
    auto label = c == "connect_failed" ? std::string{"connects failed"} : "closed: " + c;
    std::printf("    %-20s %llu\n", label.c_str(), (unsigned long long)n);
  }
  std::printf("  %-22s %llu\n", "errors", (unsigned long long)errors);
  for (auto& [c, n] : t.errors) std::printf("    %-20s %llu\n", c.c_str(), (unsigned long long)n);
  std::printf("  %-22s %.1f s\n", "elapsed", secs);
  std::printf("  %-22s %.0f readings/s\n", "throughput (acked)", rate);
  std::printf("  %-22s p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f ms\n", "ack latency",
              percentile(lat, 50), percentile(lat, 90), percentile(lat, 99), percentile(lat, 99.9),
              lat.empty() ? 0.0 : lat.back());
  std::lock_guard<std::mutex> push_guard{push->mtx};
  nlohmann::json push_json;
  if (cfg.subscribe > 0) {
    auto e2e = push->e2e_ms, server = push->server_ms;
    auto e = latency_json(e2e), s = latency_json(server);
    std::printf("  %-22s %llu of %zu subscribers, %llu updates, snapshots of %llu devices\n", "pushes",
                (unsigned long long)push->opened, cfg.subscribe, (unsigned long long)push->updates,
                (unsigned long long)push->snapshot_devices);
    std::printf("  %-22s p50 %.0f  p99 %.0f  max %.0f ms (reading ts to push received; node's own: p50 %.0f p99 %.0f)\n",
                "push latency", e["p50"].get<double>(), e["p99"].get<double>(), e["max"].get<double>(),
                s["p50"].get<double>(), s["p99"].get<double>());
    for (auto& p : push->problems) std::printf("  subscriber problem: %s\n", p.c_str());
    push_json = {{"subscribers", cfg.subscribe}, {"opened", push->opened}, {"updates", push->updates},
                 {"snapshot_devices", push->snapshot_devices}, {"latency_ms", e}, {"node_latency_ms", s},
                 {"problems", push->problems}};
  }
  for (std::size_t i = 0; i < std::min<std::size_t>(t.problems.size(), 10); ++i)
    std::printf("  problem: %s\n", t.problems[i].c_str());
  if (t.problems.size() > 10) std::printf("  ... %zu problems in all\n", t.problems.size());

  nlohmann::json report = {
    {"profile", rs.profile},
    {"node", cfg.node},
    {"started", std::chrono::duration_cast<std::chrono::milliseconds>(start_wall.time_since_epoch()).count()},
    {"devices", rs.profile != "replay" ? rs.devices : scripts.size()},
    {"readings_per_frame", rs.batch},
    {"rate_per_device", rs.rate},
    {"connected", t.connected.load()},
    {"disconnects", t.disconnects.load()},
    {"reconnects", t.reconnects.load()},
    {"gave_up", t.gave_up.load()},
    {"closes", t.closes},
    {"frames_sent", t.frames_sent.load()},
    {"sent", sent},
    {"acked", acked},
    {"resumed", t.resumed.load()},
    {"resent", t.resent.load()},
    {"rejected", t.rejected.load()},
    {"unconfirmed", unconfirmed},
    {"errors", t.errors},
    {"elapsed_s", secs},
    {"throughput_per_s", rate},
    {"latency_ms",
     {{"p50", percentile(lat, 50)}, {"p90", percentile(lat, 90)}, {"p99", percentile(lat, 99)},
      {"p999", percentile(lat, 99.9)}, {"max", lat.empty() ? 0.0 : lat.back()}}},
    {"problems", t.problems.size()},
    {"jitter", rs.jitter},
    {"series", per_second_series(t.samples, cfg.subscribe > 0 ? push.get() : nullptr)},
  };
  if (!rs.phases.empty()) {
    auto& ph = report["phases"] = nlohmann::json::array();
    for (auto& p : rs.phases) ph.push_back({{"from", p.from}, {"to", p.to}, {"seconds", p.seconds}});
  }
  if (cfg.subscribe > 0) report["push"] = push_json;
  auto& per_device = report["per_device"] = nlohmann::json::object();
  for (auto& [id, r] : t.results) per_device[id] = {{"acked", r.acked}, {"last_seq", r.last_seq}};
  int rc = 0;
  if (t.gave_up.load() > 0) rc = 1;  // a device stopped before its run was done
  if (rs.profile == "replay" && acked != replay_readings) {
    std::printf("  replay: %llu of %zu readings acked\n", (unsigned long long)acked, replay_readings);
    rc = 1;
  }
  if (cfg.verify) {
    nlohmann::json v;
    auto bad = verify(rs, t, sent == acked, v);
    report["verify"] = v;
    std::printf("  %-22s %s (%llu device/metric pairs checked, %zu mismatches)\n", "verify",
                bad == 0 ? "OK" : "FAILED", (unsigned long long)v["checked"].get<std::size_t>(), bad);
    if (bad > 0 || acked == 0) rc = 1;
  }
  if (!cfg.report.empty()) {
    std::ofstream out{cfg.report};
    out << report.dump(2) << "\n";
    if (!out) {
      std::fprintf(stderr, "pulse-sim: cannot write %s\n", cfg.report.c_str());
      rc = rc ? rc : 2;
    }
  }
  std::fflush(stdout);
  return rc;
}
