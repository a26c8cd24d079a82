#include "tests/support/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace pulse::test {

namespace fs = std::filesystem;

temp_dir::temp_dir() {
  std::string tmpl = (fs::temp_directory_path() / "pulse-test-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

temp_dir::~temp_dir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in{path};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

child::child(const std::string& exe, const std::vector<std::string>& args) {
  auto out = dir_.path() + "/stdout";
  auto err = dir_.path() + "/stderr";
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(o, 1);
    dup2(e, 2);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(exe.c_str()));
    for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(exe.c_str(), argv.data());
    _exit(127);
  }
}

child::~child() {
  if (running()) stop(SIGKILL, std::chrono::seconds(5));
}

bool child::running() {
  if (exited_) return false;
  int st = 0;
  auto r = waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    exited_ = true;
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return false;
  }
  return true;
}

int child::wait(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (running()) {
    if (std::chrono::steady_clock::now() > deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return status_;
}

int child::stop(int sig, std::chrono::milliseconds timeout) {
  if (running()) kill(pid_, sig);
  return wait(timeout);
}

std::string child::wait_for_line(const std::string& needle, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    std::istringstream lines{out()};
    std::string line;
    while (std::getline(lines, line))
      if (line.find(needle) != std::string::npos) return line;
    if (!running() || std::chrono::steady_clock::now() > deadline) return {};
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::string child::out() const { return slurp(dir_.path() + "/stdout"); }
std::string child::err() const { return slurp(dir_.path() + "/stderr"); }

node_process start_node(const std::string& storage, std::vector<std::string> extra) {
  std::vector<std::string> args = {"--node.name=test-node", "--net.port=0",
                                   "--storage.path=" + storage, "--log.level=warn"};
  args.insert(args.end(), extra.begin(), extra.end());
  node_process n;
  n.proc = std::make_unique<child>(node_binary(), args);
  auto line = n.proc->wait_for_line("listening on", std::chrono::seconds(20));
  if (line.empty())
    throw std::runtime_error("pulse-node did not start: " + n.proc->err());
  n.port = static_cast<std::uint16_t>(std::stoi(line.substr(line.rfind(':') + 1)));
  return n;
}

std::string node_binary() { return PULSE_NODE_BIN; }
std::string sim_binary() { return PULSE_SIM_BIN; }
std::string source_dir() { return PULSE_SOURCE_DIR; }

}  // namespace pulse::test
