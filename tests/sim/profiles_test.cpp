// The generated profiles without a node: battery values stay in their ranges
// and cycle, the /proc readers of `host` (on fixed texts, on garbage and on
// this machine's real /proc), and the --phases load shape.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "sim/profiles.hpp"

using namespace pulse::sim;

TEST_CASE("battery profile: values in range, SOC cycles between charge and discharge") {
  std::mt19937_64 rng{7};
  for (int pack = 0; pack < 20; ++pack) {
    auto b = battery_model::make(rng);
    double v[5];
    double soc_lo = 100, soc_hi = 0, soh_start = b.soh;
    int sign_changes = 0;
    double last_current = 0;
    // 20,000 steps of 30 simulated seconds: about a week, many cycles.
    for (int i = 0; i < 20000; ++i) {
      b.step(30, rng, v);
      REQUIRE(v[0] >= 0);
      REQUIRE(v[0] <= 600);
      REQUIRE(v[1] >= -200);
      REQUIRE(v[1] <= 200);
      REQUIRE(v[2] > -40);
      REQUIRE(v[2] < 80);
      REQUIRE(v[3] >= 0);
      REQUIRE(v[3] <= 100);
      REQUIRE(v[4] >= 0);
      REQUIRE(v[4] <= 100);
      if (i > 0 && (v[1] > 0) != (last_current > 0)) ++sign_changes;
      last_current = v[1];
      soc_lo = std::min(soc_lo, v[3]);
      soc_hi = std::max(soc_hi, v[3]);
    }
    CHECK(soc_lo < 15);  // discharged down to about 10 %
    CHECK(soc_hi > 90);  // charged up to about 95 %
    CHECK(sign_changes >= 4);
    CHECK(b.soh < soh_start);  // cycles wear it
    CHECK(b.soh > soh_start - 25);  // 0.05 % a cycle
  }
}

TEST_CASE("battery profile: consecutive readings drift, they do not jump") {
  std::mt19937_64 rng{11};
  auto b = battery_model::make(rng);
  double prev[5], v[5];
  b.step(30, rng, prev);
  for (int i = 0; i < 5000; ++i) {
    b.step(30, rng, v);
    // SOC per step: at most 200 A for 30 s of the usable capacity
    CHECK(std::abs(v[3] - prev[3]) <= 200.0 * 30 / 3600 / (b.capacity_ah * b.soh / 100) * 100 + 1e-9);
    CHECK(std::abs(v[2] - prev[2]) < 3);    // temperature
    CHECK(std::abs(v[4] - prev[4]) <= 0.05 + 1e-9);
    std::copy(v, v + 5, prev);
  }
}

TEST_CASE("host profile: /proc/stat, /proc/meminfo, /proc/uptime parsed") {
  cpu_times a, b;
  REQUIRE(parse_proc_stat("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n", a));
  CHECK(a.total == 1000);
  CHECK(a.busy == 200);
  REQUIRE(parse_proc_stat("cpu  200 0 200 1400 200 0 0 0 0 0\n", b));
  CHECK(cpu_load_percent(a, b) == Approx(20));
  CHECK(cpu_load_percent(b, a) == 0);  // clock went back: no nonsense
  CHECK(cpu_load_percent(a, a) == 0);

  mem_info m;
  REQUIRE(parse_meminfo("MemTotal:       16000 kB\nMemFree:         2000 kB\nMemAvailable:    8000 kB\n", m));
  CHECK(m.total == 16000.0 * 1024);
  CHECK(m.available == 8000.0 * 1024);
  CHECK(m.free == 2000.0 * 1024);
  // old kernels: no MemAvailable
  REQUIRE(parse_meminfo("MemTotal: 100 kB\nMemFree: 40 kB\n", m));
  CHECK(m.available == 40.0 * 1024);

  double up = 0;
  REQUIRE(parse_uptime("12345.67 23456.78\n", up));
  CHECK(up == Approx(12345.67));
}

TEST_CASE("host profile: garbage /proc texts are refused") {
  cpu_times c;
  CHECK_FALSE(parse_proc_stat("", c));
  CHECK_FALSE(parse_proc_stat("cpu0 1 2 3 4\n", c));
  CHECK_FALSE(parse_proc_stat("cpu  x y z\n", c));
  CHECK_FALSE(parse_proc_stat("cpu  1 2\n", c));
  mem_info m;
  CHECK_FALSE(parse_meminfo("", m));
  CHECK_FALSE(parse_meminfo("MemFree: 10 kB\n", m));
  CHECK_FALSE(parse_meminfo("MemTotal: lots\nMemFree: 1 kB\n", m));
  CHECK_FALSE(parse_meminfo("MemTotal: 0 kB\nMemFree: 0 kB\n", m));
  CHECK_FALSE(parse_meminfo("MemTotalish: 10 kB\nMemFree: 1 kB\n", m));
  double up;
  CHECK_FALSE(parse_uptime("", up));
  CHECK_FALSE(parse_uptime("abc 1", up));
  CHECK_FALSE(parse_uptime("-5 1", up));
}

TEST_CASE("host profile: this machine's /proc gives plausible values and meta") {
  cpu_times last;
  double v[5];
  std::string error;
  REQUIRE(read_host(last, v, error));
  REQUIRE(read_host(last, v, error));
  CHECK(v[0] >= 0);
  CHECK(v[0] <= 100);
  CHECK(v[1] > 64.0 * 1024 * 1024);        // mem_total: more than 64 MiB
  CHECK(v[2] > 0);                         // mem_used
  CHECK(v[3] > 0);                         // mem_free (available)
  CHECK(v[2] + v[3] == Approx(v[1]));
  CHECK(v[4] > 0);                         // uptime
  auto meta = nlohmann::json::parse(host_meta_json());
  CHECK(meta["os"].is_string());
  CHECK(meta["cpus"].get<int>() >= 1);
  CHECK(meta.contains("kernel"));
  CHECK(meta.dump().size() < 4096);        // the node's limit for one meta
}

TEST_CASE("phases: parsed, repeated, interpolated") {
  std::vector<phase> p;
  std::string error;
  REQUIRE(parse_phases("0:100:10s,100:100:1m", p, error));
  REQUIRE(p.size() == 2);
  CHECK(phases_seconds(p) == 70);
  CHECK(phase_rate(p, 0) == 0);
  CHECK(phase_rate(p, 5) == Approx(50));
  CHECK(phase_rate(p, 9.99) == Approx(99.9));
  CHECK(phase_rate(p, 30) == 100);
  CHECK(phase_rate(p, 70) == 0);  // after the last phase
  REQUIRE(parse_phases("1:2:500msx3", p, error));
  CHECK(p.size() == 3);
  CHECK(phases_seconds(p) == Approx(1.5));
  CHECK(phase_rate(p, 0.75) == Approx(1.5));
  REQUIRE(parse_phases("5:5:1h", p, error));
  CHECK(p[0].seconds == 3600);
}

TEST_CASE("phases: garbage is refused with a message") {
  std::vector<phase> p;
  for (const char* bad : {"", "1:2", "1:2:3", "1:2:3s:4", "a:2:3s", "1:-2:3s", "1:2:0s", "1:2:3d",
                          "1:2:3s,", ",1:2:3s", "1:2:3sx0", "1:2:3sx", "1:2:3sxx2", "1:2:25h",
                          "1e9:1:1s", "nan:1:1s", "1:2:3s x2"}) {
    std::string error;
    CHECK_FALSE(parse_phases(bad, p, error));
    CHECK_FALSE(error.empty());
  }
}
