// Integration: the command lines of the real pulse-node and pulse-sim binaries.
// Anything not understood stops them with exit code 2 and a message naming
// it, before the node opens storage or binds a port.

#include <catch2/catch.hpp>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "tests/support/process.hpp"

using namespace pulse;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

struct run_result {
  int rc;
  std::string out, err;
};

run_result run(const std::string& exe, const std::vector<std::string>& args) {
  test::child c(exe, args);
  int rc = c.wait(60s);
  return {rc, c.out(), c.err()};
}

// [global] (or top-level) key=value pairs of an INI file, quotes kept.
std::map<std::string, std::string> ini_globals(const std::string& path) {
  std::ifstream in{path};
  REQUIRE(in);
  std::map<std::string, std::string> keys;
  std::string line, section = "global";
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == ';') continue;
    if (line[0] == '[') {
      section = line.substr(1, line.find(']') - 1);
      continue;
    }
    auto eq = line.find('=');
    if (section == "global" && eq != std::string::npos) keys[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return keys;
}

// `--key=value` lines of --help output.
std::map<std::string, std::string> help_defaults(const std::string& help) {
  std::map<std::string, std::string> keys;
  std::istringstream in{help};
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("  --", 0) != 0) continue;
    auto eq = line.find('=');
    auto end = line.find("  ", 4);
    if (eq == std::string::npos || end == std::string::npos || eq > end) continue;
    keys[line.substr(4, eq - 4)] = line.substr(eq + 1, end - eq - 1);
  }
  return keys;
}

// A duration ("60s", "1min") in ns; -1 if `s` is not one.
long long duration_ns(const std::string& s) {
  std::size_t digits = 0;
  while (digits < s.size() && std::isdigit(static_cast<unsigned char>(s[digits]))) ++digits;
  if (digits == 0) return -1;
  auto unit = s.substr(digits);
  long long n = std::stoll(s.substr(0, digits));
  if (unit == "ns") return n;
  if (unit == "us") return n * 1000;
  if (unit == "ms") return n * 1000000;
  if (unit == "s") return n * 1000000000LL;
  if (unit == "min") return n * 60000000000LL;
  if (unit == "h") return n * 3600000000000LL;
  return -1;
}

// "50.0" and "50" are the same default; so are "60s" and "1min".
bool same_value(const std::string& a, const std::string& b) {
  if (a == b) return true;
  if (duration_ns(a) >= 0 && duration_ns(a) == duration_ns(b)) return true;
  char* ea = nullptr;
  char* eb = nullptr;
  double da = std::strtod(a.c_str(), &ea), db = std::strtod(b.c_str(), &eb);
  return !a.empty() && !b.empty() && *ea == 0 && *eb == 0 && da == db;
}

// An argument list and what the message must name.
struct bad_case {
  std::vector<std::string> args;
  std::string named;
};

// Runs `exe` with each case: exit code 2, the message names the argument,
// nothing printed on stdout (no start-up line).
void expect_refused(const std::string& exe, const std::vector<bad_case>& cases) {
  for (auto& c : cases) {
    std::string joined;
    for (auto& a : c.args) joined += a + " ";
    INFO(exe << " " << joined);
    auto r = run(exe, c.args);
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    CHECK(r.rc == 2);
    CHECK(r.err.find(c.named) != std::string::npos);
    CHECK(r.out.empty());
  }
}

// Every key of a --help output is documented in docs/configuration.md.
void expect_documented(const std::map<std::string, std::string>& keys) {
  std::ifstream in{test::source_dir() + "/docs/configuration.md"};
  REQUIRE(in);
  std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (auto& [key, value] : keys) {
    if (key == "config-file") continue;
    INFO(key << " is not in docs/configuration.md");
    CHECK(doc.find("`" + key + "`") != std::string::npos);
  }
}

}  // namespace

TEST_CASE("pulse-node refuses arguments it does not understand, naming them, before binding") {
  test::temp_dir dir;
  auto db = dir.path() + "/db";
  expect_refused(test::node_binary(), {
    {{"foo", "--net.port=0", "--storage.path=" + db}, "\"foo\""},
    {{"--net.port=0", "--storage.path=" + db, "foo"}, "\"foo\""},
    {{test::source_dir() + "/configs/pulse-node.ini"}, "configs/pulse-node.ini"},
    {{"--net.port=0", "--storage.path=" + db, "--net.bogus=3"}, "--net.bogus"},
    {{"--net.port=0", "--storage.path=" + db, "--nosuchkey"}, "--nosuchkey"},
    {{"--net.port=0", "--storage.path=" + db, "-x"}, "\"-x\""},
    {{"--net.port=0", "--storage.path=" + db, "--"}, "\"--\""},
    {{"--net.port=0", "--storage.path=" + db, "--batch.max-delay=5"},
     "batch.max-delay needs a unit, e.g. 5ms"},
    {{"--net.port=abc", "--storage.path=" + db}, "net.port: \"abc\""},
    {{"--net.port=70000", "--storage.path=" + db}, "net.port: \"70000\""},
    {{"--net.port", "--storage.path=" + db}, "--net.port needs a value"},
    {{"--net.port=0", "--storage.path=" + db, "--storage.sync=maybe"}, "storage.sync"},
    {{"--net.port=0", "--storage.path=" + db, "--config-file=" + dir.path() + "/none.ini"},
     "cannot read the config file " + dir.path() + "/none.ini"},
  });
  // It neither opened storage nor (so) bound its port.
  CHECK_FALSE(fs::exists(db));
}

TEST_CASE("pulse-node names the file and line of an INI syntax error") {
  test::temp_dir dir;
  auto ini = dir.path() + "/syntax.ini";
  {
    std::ofstream out{ini};
    out << "[net]\nport=0\n# a comment of the wrong kind\n";
  }
  auto r = run(test::node_binary(), {"--config-file=" + ini, "--storage.path=" + dir.path() + "/db"});
  INFO(r.err);
  CHECK(r.rc == 2);
  CHECK(r.err.find(ini + ":3:") != std::string::npos);
  CHECK(r.err.find("syntax error") != std::string::npos);
  CHECK_FALSE(fs::exists(dir.path() + "/db"));
}

TEST_CASE("pulse-node --help lists every key of configs/pulse-node.ini with its default, not CAF's") {
  auto r = run(test::node_binary(), {"--help"});
  REQUIRE(r.rc == 0);
  CHECK(r.err.empty());
  auto keys = help_defaults(r.out);
  CHECK(keys["net.port"] == "8080");
  CHECK(keys["net.address"] == "\"127.0.0.1\"");
  CHECK(keys["batch.max-delay"] == "5ms");
  // every key of the shipped file is listed, with the default the file shows
  std::ifstream in{test::source_dir() + "/configs/pulse-node.ini"};
  REQUIRE(in);
  std::string line, section;
  std::size_t seen = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == ';') continue;
    if (line[0] == '[') {
      section = line.substr(1, line.find(']') - 1);
      continue;
    }
    if (section == "scheduler" || section == "middleman") continue;  // CAF's own
    auto eq = line.find('=');
    REQUIRE(eq != std::string::npos);
    auto key = section + "." + line.substr(0, eq);
    INFO(key << ": --help says " << keys[key] << ", the file " << line.substr(eq + 1));
    CHECK(same_value(keys[key], line.substr(eq + 1)));
    ++seen;
  }
  keys.erase("config-file");  // CAF's, in the usage lines
  CHECK(seen == keys.size());
  expect_documented(keys);
  for (auto caf_internal : {"opencl", "work-stealing", "stream.", "scheduler.", "middleman.", "logger."})
    CHECK(r.out.find(caf_internal) == std::string::npos);
  auto long_help = run(test::node_binary(), {"--long-help"});
  CHECK(long_help.rc == 0);
  CHECK(long_help.out.find("work-stealing") != std::string::npos);
  auto v = run(test::node_binary(), {"--version"});
  CHECK(v.rc == 0);
  CHECK(v.out.rfind("pulse-node ", 0) == 0);
}

TEST_CASE("pulse-sim refuses arguments it does not understand, naming them") {
  expect_refused(test::sim_binary(), {
    {{"foo", "--node=127.0.0.1:1"}, "\"foo\""},
    {{"--node=127.0.0.1:1", "foo"}, "\"foo\""},
    {{"replay", "a.xlsx", "extra"}, "\"extra\""},
    {{"--devices"}, "--devices needs a value"},
    {{"--devices=ten"}, "devices: \"ten\""},
    {{"--duration=5"}, "duration needs a unit, e.g. 5ms"},
    {{"--verify=perhaps"}, "verify"},
    {{"--bogus=1"}, "--bogus"},
  });
  auto v = run(test::sim_binary(), {"--version"});
  CHECK(v.rc == 0);
  CHECK(v.out.rfind("pulse-sim ", 0) == 0);
}

TEST_CASE("pulse-sim's built-in defaults are configs/pulse-sim.ini's, key for key") {
  auto r = run(test::sim_binary(), {"--help"});
  REQUIRE(r.rc == 0);
  auto help = help_defaults(r.out);
  auto ini = ini_globals(test::source_dir() + "/configs/pulse-sim.ini");
  REQUIRE(help.size() >= 20);
  CHECK(help.size() == ini.size());
  for (auto& [key, value] : help) {
    INFO(key << ": --help says " << value << ", configs/pulse-sim.ini says "
              << (ini.count(key) ? ini[key] : "nothing"));
    REQUIRE(ini.count(key) == 1);
    CHECK(same_value(value, ini[key]));
  }
  CHECK(r.out.find("work-stealing") == std::string::npos);
  expect_documented(help);
}
