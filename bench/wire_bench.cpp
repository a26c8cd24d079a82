// wire_bench: how fast frame_parser turns frames into reading batches.
//
//   wire_bench [seconds-per-run]   (default 0.5)
//
// Prints readings/s (median of 5 runs) for a 100-reading batch frame with 3
// metrics per reading, a 1-reading frame, a 100-reading array over 10
// devices and a real OCPP MeterValues frame. One parser and one frame are
// reused throughout, as a session does. Rates are per second of this
// thread's CPU time, so they stay meaningful on a busy shared machine; the
// wall-clock rate is printed next to them.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <vector>

#include "wire/codec.hpp"

namespace {

using clock_type = std::chrono::steady_clock;
constexpr std::int64_t now_ms = 1'731'801'715'542;

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

std::string batch_frame(int readings) {
  std::string s = R"({"device":"meter-7","readings":[)";
  for (int i = 0; i < readings; ++i) {
    char buf[160];
    std::snprintf(buf, sizeof(buf),
                  R"(%s{"seq":%d,"ts":%lld,"values":{"voltage":%.1f,"current":%.2f,"power":%.1f}})",
                  i ? "," : "", 1000 + i, static_cast<long long>(now_ms - 100'000 + i * 1000),
                  229.5 + i % 10 * 0.1, 5.0 + i % 7 * 0.01, 1150.0 + i % 13);
    s += buf;
  }
  return s + "]}";
}

std::string single_frame() {
  return R"({"device":"meter-7","seq":42,"ts":1731801715542,"values":{"voltage":230.4,"current":5.12,"power":1179.6}})";
}

std::string array_frame(int readings, int devices) {
  std::string s = "[";
  for (int i = 0; i < readings; ++i) {
    char buf[200];
    std::snprintf(
        buf, sizeof(buf),
        R"(%s{"device":"meter-%d","seq":%d,"ts":%lld,"values":{"voltage":%.1f,"current":%.2f,"power":%.1f}})",
        i ? "," : "", i % devices, 1000 + i / devices,
        static_cast<long long>(now_ms - 100'000 + i * 1000), 229.5 + i % 10 * 0.1,
        5.0 + i % 7 * 0.01, 1150.0 + i % 13);
    s += buf;
  }
  return s + "]";
}

// Row 3 of tests/data/meter_values_dump_10k.xlsx.
std::string ocpp_frame() {
  return R"({"charge_point_id":"cocPpWdMprESdBtOQvGd","payload":{"connectorId":1,"transactionId":76151,"meterValue":[{"timestamp":"2023-09-17T20:30:00Z","sampledValue":[{"value":"353672.750000","context":"Sample.Clock","measurand":"Energy.Active.Import.Register","unit":"Wh"},{"phase":"L1","value":"245.04","context":"Sample.Clock","measurand":"Voltage","unit":"V"},{"value":"0.00","context":"Sample.Clock","measurand":"Temperature","unit":"Celsius"},{"phase":"L1","value":"7.68","context":"Sample.Clock","measurand":"Current.Import","unit":"A"}]}]}})";
}

void run(const char* name, const std::string& text, double seconds) {
  pulse::wire::frame_parser parser;
  pulse::wire::frame out;
  parser.parse(text, now_ms, out);
  if (!out.errors.empty()) {
    std::printf("%s: unexpected error: %s\n", name, out.errors[0].message.c_str());
    std::exit(1);
  }
  std::size_t per_frame = out.readings();
  std::vector<double> cpu_rates, wall_rates;
  for (int r = 0; r < 5; ++r) {
    std::size_t frames = 0;
    double cpu_start = thread_cpu_seconds();
    auto start = clock_type::now();
    double cpu_now = cpu_start;
    do {
      for (int k = 0; k < 64; ++k) parser.parse(text, now_ms, out);
      frames += 64;
      cpu_now = thread_cpu_seconds();
    } while (cpu_now - cpu_start < seconds);
    double wall = std::chrono::duration<double>(clock_type::now() - start).count();
    auto readings = static_cast<double>(frames * per_frame);
    cpu_rates.push_back(readings / (cpu_now - cpu_start));
    wall_rates.push_back(readings / wall);
    if (out.readings() != per_frame) std::exit(1);
  }
  std::sort(cpu_rates.begin(), cpu_rates.end());
  std::sort(wall_rates.begin(), wall_rates.end());
  double median = cpu_rates[2];
  double frames_per_s = median / static_cast<double>(per_frame);
  std::printf(
      "%-34s %6zu B %4zu rd/frame %7.2f M readings/s %9.0f frames/s %6.0f MB/s  (wall: %5.2f M "
      "readings/s)\n",
      name, text.size(), per_frame, median / 1e6, frames_per_s,
      frames_per_s * static_cast<double>(text.size()) / 1e6, wall_rates[2] / 1e6);
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = argc > 1 ? std::atof(argv[1]) : 0.5;
  if (seconds <= 0) seconds = 0.5;
  std::printf("frame_parser, median of 5 runs of %.2f s CPU time each, one thread\n", seconds);
  run("batch: 100 readings x 3 metrics", batch_frame(100), seconds);
  run("single reading, 3 metrics", single_frame(), seconds);
  run("array: 100 readings, 10 devices", array_frame(100, 10), seconds);
  run("OCPP MeterValues (real row, 4 sv)", ocpp_frame(), seconds);
  return 0;
}
