#pragma once
// Test support: real child processes (pulse-node, pulse-sim) and temp dirs.

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <cstdint>
#include <string>
#include <vector>

namespace pulse::test {

// A directory under /tmp removed (recursively) on destruction.
class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A child process with stdout and stderr captured into files in a temp dir.
class child {
 public:
  child(const std::string& exe, const std::vector<std::string>& args);
  ~child();  // SIGKILL if still running
  // Waits until stdout has a line containing `needle`; returns that line ("" on timeout/exit).
  std::string wait_for_line(const std::string& needle, std::chrono::milliseconds timeout);
  // Sends `sig` and waits up to `timeout` for exit. Returns the exit status (128+sig if killed), -1 on timeout.
  int stop(int sig, std::chrono::milliseconds timeout);
  // Waits for exit; -1 on timeout.
  int wait(std::chrono::milliseconds timeout);
  bool running();
  std::string out() const;  // all of stdout so far
  std::string err() const;  // all of stderr so far
  pid_t pid() const { return pid_; }

 private:
  temp_dir dir_;
  pid_t pid_ = -1;
  int status_ = -1;
  bool exited_ = false;
};

// A started pulse-node on port 0 with storage in `storage` and extra --key=value args.
struct node_process {
  std::unique_ptr<child> proc;
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
};
node_process start_node(const std::string& storage, std::vector<std::string> extra = {});

std::string node_binary();
std::string sim_binary();
std::string source_dir();

}  // namespace pulse::test
