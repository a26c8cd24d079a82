// pulse-loadgen: a lean WebSocket load generator, to measure a pulse-node's
// CPU per reading acked from outside, with as little client CPU as possible.
//
//   pulse-loadgen --node=127.0.0.1:8080 --connections=1000 --batch=1 --inflight=4
//                 --duration=10s --warmup=2s --node-pid=PID [--also-pid=PID ...] [--json]
//   pulse-loadgen --hold --connections=10000 --duration=5s --node-pid=PID
//
// One thread, one epoll set, plain nonblocking sockets. Each connection is one
// device (`<prefix><i>`); after the HTTP Upgrade it keeps --inflight frames of
// --batch readings unacked and sends the next frame when a cumulative ack
// frees a slot (or, with --rate, when its pacing timer says so). Frames are
// formatted by hand into a reused buffer, masked with a cheap random key,
// and everything a connection has to send goes out in one send(); replies are
// read in large chunks and only acks (`{"ack":` ... `"seq":N`) and errors
// (`{"error":`) are looked at. No reconnects: a connection the node closes
// stays closed and is reported as lost.
//
// Phases: ramp (connections opened at --connect-rate, nothing sent until all
// are up or failed), --warmup, the measured --duration, then close frames and
// exit within ~2 s. Only the measured interval counts: readings acked,
// frames, ack latency (send of a frame to the ack covering its last seq), the
// node's CPU (utime+stime from /proc/PID/stat) and this process's CPU
// (getrusage). --also-pid (repeatable) adds the CPU of other processes (e.g.
// the database behind a gateway) into a separate figure, over the same interval.
//
// --hold: idle connections, for the node's memory per connection. Every
// connection sends one frame (of --batch readings) once all are up; when all
// are acked (or after 60 s), --warmup passes and the measured interval is
// --duration of silence (pings are answered). The node's VmRSS (from
// /proc/PID/status) is read before the first connect and at the end of the
// hold, and (end - before) / connections still open is printed.
//
// Exit code: 0, or 1 when no connection succeeded, nothing was acked in the
// measured interval (with --hold: not every first frame was acked, or a
// connection was lost) or errors exceed 1% of the frames sent, or 2 on bad
// options.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <optional>
#include <queue>
#include <string>
#include <string_view>
#include <vector>

namespace {

// --- options ---------------------------------------------------------------

struct options {
  std::string host = "127.0.0.1";
  std::string port = "8080";
  int connections = 1;
  std::string device_prefix = "lg-";
  int batch = 1;
  int inflight = 4;
  int metrics = 3;
  std::int64_t duration_ns = 10'000'000'000;
  std::int64_t warmup_ns = 2'000'000'000;
  long node_pid = 0;  // 0 = not given
  std::vector<long> also_pids;
  bool hold = false;
  double connect_rate = 2000;
  std::uint64_t start_seq = 1;
  std::optional<std::int64_t> ts_start;  // ms; default now - 1 h
  double rate = 0;                       // frames/s per connection, 0 = window only
  bool json = false;
  bool quiet = false;
};

constexpr const char* usage =
    "usage: pulse-loadgen [--node=HOST:PORT] [--connections=N] [--device-prefix=lg-]\n"
    "         [--batch=R] [--inflight=K] [--metrics=M] [--duration=10s] [--warmup=2s]\n"
    "         [--rate=F] [--node-pid=PID] [--connect-rate=2000] [--start-seq=1]\n"
    "         [--ts-start=MS] [--also-pid=PID ...] [--hold] [--json] [--quiet]\n";

bool parse_int(std::string_view s, long long lo, long long hi, long long& out) {
  if (s.empty() || s.size() > 19) return false;
  long long v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  if (v < lo || v > hi) return false;
  out = v;
  return true;
}

bool parse_double(const std::string& s, double lo, double hi, double& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (*end != '\0' || !(v >= lo && v <= hi)) return false;
  out = v;
  return true;
}

// "10s", "500ms", "1.5s"; a bare number is seconds.
bool parse_duration(std::string s, std::int64_t& out_ns) {
  double scale = 1e9;
  if (s.size() > 2 && s.compare(s.size() - 2, 2, "ms") == 0) {
    scale = 1e6;
    s.resize(s.size() - 2);
  } else if (s.size() > 1 && s.back() == 's') {
    s.resize(s.size() - 1);
  }
  double v = 0;
  if (!parse_double(s, 0, 1e7, v)) return false;
  out_ns = static_cast<std::int64_t>(v * scale);
  return true;
}

bool parse_node(std::string s, options& o) {
  if (s.rfind("ws://", 0) == 0) s.erase(0, 5);
  if (auto slash = s.find('/'); slash != std::string::npos) s.resize(slash);
  auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size()) return false;
  std::string host = s.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  long long port = 0;
  if (!parse_int(std::string_view(s).substr(colon + 1), 1, 65535, port)) return false;
  o.host = host;
  o.port = std::to_string(port);
  return true;
}

// Returns false (after printing why) on a bad option.
bool parse_options(int argc, char** argv, options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(usage, stdout);
      std::exit(0);
    }
    if (arg.rfind("--", 0) != 0) {
      std::fprintf(stderr, "pulse-loadgen: unexpected argument '%s'\n%s", arg.c_str(), usage);
      return false;
    }
    auto eq = arg.find('=');
    std::string key = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    std::string val = eq == std::string::npos ? std::string() : arg.substr(eq + 1);
    bool has_val = eq != std::string::npos;
    long long n = 0;
    bool ok = has_val;
    if (key == "json" || key == "quiet" || key == "hold") {
      ok = !has_val || val == "true" || val == "1";
      (key == "json" ? o.json : key == "quiet" ? o.quiet : o.hold) = true;
    } else if (key == "node") {
      ok = ok && parse_node(val, o);
    } else if (key == "connections") {
      ok = ok && parse_int(val, 1, 1'000'000, n);
      o.connections = static_cast<int>(n);
    } else if (key == "device-prefix") {
      ok = ok && !val.empty() && val.size() < 200 &&
           std::none_of(val.begin(), val.end(), [](char c) {
             return c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20;
           });
      o.device_prefix = val;
    } else if (key == "batch") {
      ok = ok && parse_int(val, 1, 100'000, n);
      o.batch = static_cast<int>(n);
    } else if (key == "inflight") {
      ok = ok && parse_int(val, 1, 100'000, n);
      o.inflight = static_cast<int>(n);
    } else if (key == "metrics") {
      ok = ok && parse_int(val, 1, 1000, n);
      o.metrics = static_cast<int>(n);
    } else if (key == "duration") {
      ok = ok && parse_duration(val, o.duration_ns) && o.duration_ns > 0;
    } else if (key == "warmup") {
      ok = ok && parse_duration(val, o.warmup_ns);
    } else if (key == "node-pid") {
      ok = ok && parse_int(val, 1, 1LL << 31, n);
      o.node_pid = static_cast<long>(n);
    } else if (key == "also-pid") {
      ok = ok && parse_int(val, 1, 1LL << 31, n);
      o.also_pids.push_back(static_cast<long>(n));
    } else if (key == "connect-rate") {
      ok = ok && parse_double(val, 1, 1e7, o.connect_rate);
    } else if (key == "start-seq") {
      ok = ok && parse_int(val, 0, 1LL << 60, n);
      o.start_seq = static_cast<std::uint64_t>(n);
    } else if (key == "ts-start") {
      ok = ok && parse_int(val, 0, 253402300800000LL, n);
      o.ts_start = n;
    } else if (key == "rate") {
      ok = ok && parse_double(val, 0, 1e7, o.rate);
    } else {
      std::fprintf(stderr, "pulse-loadgen: unknown option '--%s'\n%s", key.c_str(), usage);
      return false;
    }
    if (!ok) {
      std::fprintf(stderr, "pulse-loadgen: bad value for --%s: '%s'\n", key.c_str(), val.c_str());
      return false;
    }
  }
  return true;
}

// --- small helpers ---------------------------------------------------------

std::int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
std::uint64_t next_random() {  // xorshift64*: masks, handshake keys, pacing phases
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dULL;
}

char* put_uint(char* p, std::uint64_t v) {
  char tmp[20];
  int n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v);
  while (n) *p++ = tmp[--n];
  return p;
}

char* put(char* p, std::string_view s) {
  std::memcpy(p, s.data(), s.size());
  return p + s.size();
}

std::string base64(const unsigned char* data, std::size_t n) {
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (std::size_t i = 0; i < n; i += 3) {
    std::uint32_t v = static_cast<std::uint32_t>(data[i]) << 16;
    if (i + 1 < n) v |= static_cast<std::uint32_t>(data[i + 1]) << 8;
    if (i + 2 < n) v |= data[i + 2];
    out += tbl[(v >> 18) & 63];
    out += tbl[(v >> 12) & 63];
    out += i + 1 < n ? tbl[(v >> 6) & 63] : '=';
    out += i + 2 < n ? tbl[v & 63] : '=';
  }
  return out;
}

// User+system CPU in microseconds.
std::int64_t own_cpu_us() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return (static_cast<std::int64_t>(ru.ru_utime.tv_sec) + ru.ru_stime.tv_sec) * 1'000'000 +
         ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

// utime+stime of a process in microseconds, from its /proc/PID/stat (kept
// open from the start, so that reading it cannot fail with EMFILE).
std::optional<std::int64_t> proc_cpu_us(int stat_fd) {
  if (stat_fd < 0) return std::nullopt;
  char buf[1024];
  ssize_t got = pread(stat_fd, buf, sizeof(buf) - 1, 0);
  if (got <= 0) return std::nullopt;
  auto n = static_cast<std::size_t>(got);
  buf[n] = '\0';
  const char* p = std::strrchr(buf, ')');  // comm may contain spaces and parens
  if (!p) return std::nullopt;
  unsigned long long utime = 0, stime = 0;
  // After ")": state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
  // cmajflt, then utime (field 14) and stime (15) in clock ticks.
  if (std::sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                  &stime) != 2)
    return std::nullopt;
  long hz = sysconf(_SC_CLK_TCK);
  return static_cast<std::int64_t>((utime + stime) * 1'000'000ULL /
                                   static_cast<unsigned long long>(hz));
}

// VmRSS of a process in KiB, from its /proc/PID/status (kept open).
std::optional<std::int64_t> proc_rss_kb(int status_fd) {
  if (status_fd < 0) return std::nullopt;
  char buf[4096];
  ssize_t got = pread(status_fd, buf, sizeof(buf) - 1, 0);
  if (got <= 0) return std::nullopt;
  buf[got] = '\0';
  const char* p = std::strstr(buf, "\nVmRSS:");
  if (!p) return std::nullopt;
  long long kb = 0;
  if (std::sscanf(p + 7, " %lld", &kb) != 1) return std::nullopt;
  return kb;
}

// Log-linear histogram of microseconds: exact below 128, then 64 sub-buckets
// per power of two (under 1.6% error).
class histogram {
 public:
  void record(std::uint64_t us) {
    ++counts_[index(us)];
    ++total_;
    max_ = std::max(max_, us);
  }
  std::uint64_t count() const { return total_; }
  std::uint64_t max() const { return max_; }
  // Midpoint of the bucket holding the q-quantile.
  double quantile(double q) const {
    if (total_ == 0) return 0;
    auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total_) + 0.999999);
    rank = std::clamp<std::uint64_t>(rank, 1, total_);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank) {
        if (i < 128) return static_cast<double>(i);
        std::size_t e = i / 64 - 1;
        double lo = static_cast<double>((i - e * 64) << e);
        double mid = lo + static_cast<double>((std::uint64_t{1} << e) - 1) / 2;
        return std::min(mid, static_cast<double>(max_));
      }
    }
    return static_cast<double>(max_);
  }

 private:
  static std::size_t index(std::uint64_t v) {
    if (v < 128) return static_cast<std::size_t>(v);
    int e = 63 - __builtin_clzll(v) - 6;
    return static_cast<std::size_t>(e) * 64 + static_cast<std::size_t>(v >> e);
  }
  std::vector<std::uint64_t> counts_ = std::vector<std::uint64_t>(64 * 60, 0);
  std::uint64_t total_ = 0;
  std::uint64_t max_ = 0;
};

// --- connections -----------------------------------------------------------

enum class conn_state { idle, connecting, handshaking, open, closing, closed };

struct sent_frame {
  std::uint64_t last_seq;
  std::int64_t sent_ns;
};

// One device on one socket. Owned by the loop's vector; only the loop thread
// touches it.
struct connection {
  int fd = -1;
  conn_state state = conn_state::idle;
  std::string frame_prefix;  // {"device":"lg-17",
  std::string out;           // bytes not yet taken by the kernel, from out_off
  std::size_t out_off = 0;
  std::string partial;  // an incomplete frame (or HTTP response) left over from a read
  std::string message;  // a fragmented text message being assembled
  bool in_fragment = false;
  bool close_sent = false;
  bool timer_armed = false;
  std::vector<sent_frame> ring;  // frames in flight, oldest at head
  std::size_t head = 0, count = 0;
  std::uint64_t next_seq = 1;
  std::uint64_t acked_seq = 0;
  std::int64_t next_due_ns = 0;  // pacing, with --rate
};

enum class phase { ramp, warmup, measure, drain };

class loadgen {
 public:
  explicit loadgen(const options& o) : opt_(o) {}
  int run();

 private:
  void start_connection(std::size_t i);
  void fail(connection& c, const char* why);
  void close_connection(connection& c);
  void on_event(std::size_t i, std::uint32_t events);
  void on_connected(connection& c);
  bool read_input(connection& c, bool hangup);
  bool parse_handshake(connection& c, std::size_t& consumed, const char* data, std::size_t n);
  std::size_t parse_frames(connection& c, const char* data, std::size_t n);
  void on_message(connection& c, const char* p, std::size_t n);
  void on_ack(connection& c, std::uint64_t seq);
  void fill(std::size_t i);
  void append_frame(connection& c, int opcode, const char* payload, std::size_t n);
  void append_data_frame(connection& c);
  void flush(connection& c);
  void send_close(connection& c);
  void enter_measure();
  void leave_measure();
  void report();
  // Frames go out only once every connection is up (or has failed), so the
  // load starts at once and a busy node does not delay the remaining handshakes.
  bool sending() const { return phase_ == phase::warmup || phase_ == phase::measure; }
  bool measuring() const { return phase_ == phase::measure; }

  options opt_;
  std::vector<connection> conns_;
  int epfd_ = -1;
  int node_stat_fd_ = -1;  // /proc/<node-pid>/stat
  int node_status_fd_ = -1;  // /proc/<node-pid>/status (VmRSS)
  std::vector<int> also_stat_fds_;  // /proc/<also-pid>/stat
  addrinfo* addr_ = nullptr;
  std::string handshake_host_;
  std::vector<std::string> values_;  // precomputed "values" objects, picked by seq
  std::string scratch_;
  std::vector<char> rbuf_ = std::vector<char>(256 * 1024);
  std::int64_t now_ = 0;
  phase phase_ = phase::ramp;
  std::int64_t period_ns_ = 0;
  std::int64_t ts_start_ms_ = 0;
  using timer = std::pair<std::int64_t, std::size_t>;
  std::priority_queue<timer, std::vector<timer>, std::greater<timer>> timers_;

  // Counters over the whole run.
  std::size_t started_ = 0, open_ok_ = 0, failed_ = 0, lost_ = 0, live_ = 0, pending_ = 0;
  std::map<std::string, int> fail_reasons_;
  std::uint64_t frames_sent_ = 0, errors_ = 0;
  // Counters over the measured interval.
  std::uint64_t m_readings_acked_ = 0, m_frames_acked_ = 0, m_frames_sent_ = 0;
  histogram latency_;
  std::int64_t m_start_ns_ = 0, m_end_ns_ = 0;
  std::int64_t m_own_cpu0_ = 0, m_own_cpu_ = 0;
  std::optional<std::int64_t> m_node_cpu0_, m_node_cpu_;
  std::optional<std::int64_t> m_also_cpu0_, m_also_cpu_;
  std::optional<std::int64_t> rss_before_kb_, rss_end_kb_;
  // --hold: connections whose first frame is not acked yet; when all were.
  std::size_t hold_unacked_ = 0, m_live_end_ = 0;
  std::int64_t hold_acked_ns_ = 0;
  std::optional<std::int64_t> also_cpu_us() const;
};

volatile std::sig_atomic_t interrupted = 0;
void on_signal(int) { interrupted = 1; }

std::optional<std::int64_t> loadgen::also_cpu_us() const {
  if (also_stat_fds_.empty()) return std::nullopt;
  std::int64_t sum = 0;
  for (int fd : also_stat_fds_) {
    auto v = proc_cpu_us(fd);
    if (!v) return std::nullopt;
    sum += *v;
  }
  return sum;
}

void loadgen::start_connection(std::size_t i) {
  connection& c = conns_[i];
  ++started_;
  c.fd = socket(addr_->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c.fd < 0) {
    c.state = conn_state::closed;
    ++failed_;
    ++fail_reasons_[std::string("socket: ") + std::strerror(errno)];
    return;
  }
  int one = 1;
  setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = i;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, c.fd, &ev) != 0) {
    ::close(c.fd);
    c.fd = -1;
    c.state = conn_state::closed;
    ++failed_;
    ++fail_reasons_[std::string("epoll_ctl: ") + std::strerror(errno)];
    return;
  }
  c.state = conn_state::connecting;
  ++pending_;
  if (connect(c.fd, addr_->ai_addr, addr_->ai_addrlen) == 0) {
    on_connected(c);
  } else if (errno != EINPROGRESS) {
    fail(c, std::strerror(errno));
  }
}

// A connection that never got to `open`.
void loadgen::fail(connection& c, const char* why) {
  ++failed_;
  --pending_;
  ++fail_reasons_[why];
  ::close(c.fd);
  c.fd = -1;
  c.state = conn_state::closed;
}

// A connection that was open.
void loadgen::close_connection(connection& c) {
  if (c.state == conn_state::closed) return;
  if (phase_ != phase::drain) ++lost_;
  if (opt_.hold && c.count > 0 && hold_unacked_ > 0) --hold_unacked_;
  --live_;
  ::close(c.fd);
  c.fd = -1;
  c.state = conn_state::closed;
  c.out.clear();
  c.out_off = 0;
}

void loadgen::on_connected(connection& c) {
  unsigned char key[16];
  for (int k = 0; k < 16; k += 8) {
    std::uint64_t r = next_random();
    std::memcpy(key + k, &r, 8);
  }
  c.out = "GET /ws HTTP/1.1\r\nHost: " + handshake_host_ +
          "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + base64(key, 16) +
          "\r\nSec-WebSocket-Version: 13\r\n\r\n";
  c.out_off = 0;
  c.state = conn_state::handshaking;
  flush(c);
}

void loadgen::on_event(std::size_t i, std::uint32_t events) {
  connection& c = conns_[i];
  if (c.state == conn_state::closed || c.state == conn_state::idle) return;
  if (c.state == conn_state::connecting) {
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return fail(c, std::strerror(err));
    on_connected(c);
    if (c.state == conn_state::closed) return;
  }
  if (events & EPOLLOUT) flush(c);
  if (c.state == conn_state::closed) return;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    if (!read_input(c, events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) return;
    fill(i);
    flush(c);
  }
}

// Reads until the socket is drained, handling complete frames as they come.
// Returns false when the connection is gone.
bool loadgen::read_input(connection& c, bool hangup) {
  std::size_t have = c.partial.size();
  if (rbuf_.size() < have + 64 * 1024) rbuf_.resize(have + 256 * 1024);
  std::memcpy(rbuf_.data(), c.partial.data(), have);
  for (;;) {
    std::size_t room = rbuf_.size() - have;
    ssize_t n = recv(c.fd, rbuf_.data() + have, room, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      if (c.state == conn_state::handshaking) {
        fail(c, n == 0 ? "closed during handshake" : std::strerror(errno));
      } else {
        close_connection(c);
      }
      return false;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    now_ = now_ns();
    have += static_cast<std::size_t>(n);
    std::size_t consumed = 0;
    if (c.state == conn_state::handshaking) {
      if (!parse_handshake(c, consumed, rbuf_.data(), have)) return false;
    }
    if (c.state == conn_state::open || c.state == conn_state::closing)
      consumed += parse_frames(c, rbuf_.data() + consumed, have - consumed);
    if (c.state == conn_state::closed) return false;
    std::memmove(rbuf_.data(), rbuf_.data() + consumed, have - consumed);
    have -= consumed;
    if (rbuf_.size() - have < 64 * 1024) rbuf_.resize(have + 256 * 1024);
    // A short read drained the socket; with edge triggering a later arrival
    // raises a new event, so there is no need for a read that says EAGAIN.
    // After a hang-up no further event comes: read on to the end of stream.
    if (static_cast<std::size_t>(n) < room && !hangup) break;
  }
  c.partial.assign(rbuf_.data(), have);
  return true;
}

bool loadgen::parse_handshake(connection& c, std::size_t& consumed, const char* data,
                              std::size_t n) {
  std::string_view v(data, n);
  auto end = v.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (n > 16 * 1024) fail(c, "handshake response too long");
    return n <= 16 * 1024;
  }
  if (v.rfind("HTTP/1.1 101", 0) != 0) {
    auto eol = v.find("\r\n");
    std::string status(v.substr(0, std::min<std::size_t>(eol, 40)));
    fail(c, ("handshake answered '" + status + "'").c_str());
    return false;
  }
  consumed = end + 4;
  c.state = conn_state::open;
  --pending_;
  ++open_ok_;
  ++live_;
  return true;
}

// Handles the complete frames in data; returns the bytes consumed.
std::size_t loadgen::parse_frames(connection& c, const char* data, std::size_t n) {
  std::size_t pos = 0;
  while (c.state != conn_state::closed && n - pos >= 2) {
    auto b0 = static_cast<unsigned char>(data[pos]);
    auto b1 = static_cast<unsigned char>(data[pos + 1]);
    std::size_t hdr = 2;
    std::uint64_t len = b1 & 0x7f;
    if (len == 126) {
      if (n - pos < 4) break;
      len = (static_cast<std::uint64_t>(static_cast<unsigned char>(data[pos + 2])) << 8) |
            static_cast<unsigned char>(data[pos + 3]);
      hdr = 4;
    } else if (len == 127) {
      if (n - pos < 10) break;
      len = 0;
      for (int k = 0; k < 8; ++k) len = (len << 8) | static_cast<unsigned char>(data[pos + 2 + k]);
      hdr = 10;
    }
    bool masked = b1 & 0x80;
    if (masked) hdr += 4;
    if (len > (1ULL << 30)) {  // not a pulse-node
      close_connection(c);
      break;
    }
    if (n - pos < hdr + len) break;
    char* payload = const_cast<char*>(data + pos + hdr);
    if (masked) {
      const char* key = data + pos + hdr - 4;
      for (std::uint64_t k = 0; k < len; ++k) payload[k] ^= key[k & 3];
    }
    bool fin = b0 & 0x80;
    int opcode = b0 & 0x0f;
    auto plen = static_cast<std::size_t>(len);
    pos += hdr + plen;
    switch (opcode) {
      case 0x1:
      case 0x2:
        if (fin) {
          on_message(c, payload, plen);
        } else {
          c.message.assign(payload, plen);
          c.in_fragment = true;
        }
        break;
      case 0x0:
        if (!c.in_fragment) break;
        c.message.append(payload, plen);
        if (fin) {
          c.in_fragment = false;
          on_message(c, c.message.data(), c.message.size());
          c.message.clear();
        }
        break;
      case 0x8:  // close: answer it (once), then wait for the node to end TCP
        if (!c.close_sent) {
          append_frame(c, 0x8, payload, std::min<std::size_t>(plen, 2));
          c.close_sent = true;
        }
        c.state = conn_state::closing;
        break;
      case 0x9:
        if (!c.close_sent) append_frame(c, 0xA, payload, std::min<std::size_t>(plen, 125));
        break;
      default:  // pong or reserved: ignore
        break;
    }
  }
  return pos;
}

std::uint64_t parse_seq(const char* p, std::size_t n) {
  std::string_view v(p, n);
  auto at = v.find("\"seq\":");
  if (at == std::string_view::npos) return 0;
  std::uint64_t seq = 0;
  for (std::size_t k = at + 6; k < n && p[k] >= '0' && p[k] <= '9'; ++k)
    seq = seq * 10 + (p[k] - '0');
  return seq;
}

void loadgen::on_message(connection& c, const char* p, std::size_t n) {
  std::string_view v(p, n);
  if (v.rfind("{\"ack\":", 0) == 0) {
    on_ack(c, parse_seq(p, n));
  } else if (v.rfind("{\"error\":", 0) == 0) {
    if (++errors_ <= 5) {
      std::fprintf(stderr, "pulse-loadgen: %.*s: %.*s\n",
                   static_cast<int>(c.frame_prefix.size() > 13 ? c.frame_prefix.size() - 13 : 0),
                   c.frame_prefix.data() + 11, static_cast<int>(std::min<std::size_t>(n, 300)), p);
    }
  }
  // anything else (welcome, updates) is not ours to count
}

void loadgen::on_ack(connection& c, std::uint64_t seq) {
  if (seq <= c.acked_seq) return;
  if (measuring()) m_readings_acked_ += seq - c.acked_seq;
  c.acked_seq = seq;
  bool was_unacked = c.count > 0;
  while (c.count > 0 && c.ring[c.head].last_seq <= seq) {
    if (measuring()) {
      ++m_frames_acked_;
      std::int64_t d = now_ - c.ring[c.head].sent_ns;
      latency_.record(d > 0 ? static_cast<std::uint64_t>(d) / 1000 : 0);
    }
    c.head = (c.head + 1) % c.ring.size();
    --c.count;
  }
  if (opt_.hold && was_unacked && c.count == 0 && hold_unacked_ > 0) --hold_unacked_;
}

// Sends new frames while the window (and the pacing) allows.
void loadgen::fill(std::size_t i) {
  connection& c = conns_[i];
  if (c.state != conn_state::open || !sending()) return;
  if (opt_.hold) {  // one frame per connection, then silence
    if (c.next_seq == opt_.start_seq) {
      append_data_frame(c);
      ++hold_unacked_;
    }
    return;
  }
  auto window = static_cast<std::size_t>(opt_.inflight);
  while (c.count < window) {
    if (opt_.rate > 0) {
      if (now_ < c.next_due_ns) {
        if (!c.timer_armed) {
          timers_.emplace(c.next_due_ns, i);
          c.timer_armed = true;
        }
        break;
      }
      // Behind by more than a period (the window was full, or this loop was
      // late): send one frame now and pace on from here, with no burst to
      // catch up on the missed slots.
      if (c.next_due_ns < now_ - period_ns_) c.next_due_ns = now_;
      c.next_due_ns += period_ns_;
    }
    append_data_frame(c);
  }
}

// Appends a masked client frame.
void loadgen::append_frame(connection& c, int opcode, const char* payload, std::size_t n) {
  if (c.out_off > 0 && c.out_off * 2 >= c.out.size()) {
    c.out.erase(0, c.out_off);
    c.out_off = 0;
  }
  std::size_t at = c.out.size();
  std::size_t hdr = n < 126 ? 6 : n < 65536 ? 8 : 14;
  c.out.resize(at + hdr + n);
  auto* q = reinterpret_cast<unsigned char*>(&c.out[at]);
  *q++ = static_cast<unsigned char>(0x80 | opcode);
  if (n < 126) {
    *q++ = static_cast<unsigned char>(0x80 | n);
  } else if (n < 65536) {
    *q++ = 0x80 | 126;
    *q++ = static_cast<unsigned char>(n >> 8);
    *q++ = static_cast<unsigned char>(n);
  } else {
    *q++ = 0x80 | 127;
    for (int k = 7; k >= 0; --k)
      *q++ = static_cast<unsigned char>(static_cast<std::uint64_t>(n) >> (8 * k));
  }
  auto mask32 = static_cast<std::uint32_t>(next_random() >> 32);
  std::memcpy(q, &mask32, 4);
  q += 4;
  // XOR eight bytes at a time; the key repeats every four bytes from the payload start.
  std::uint64_t mask64 = (static_cast<std::uint64_t>(mask32) << 32) | mask32;
  std::size_t k = 0;
  for (; k + 8 <= n; k += 8) {
    std::uint64_t w;
    std::memcpy(&w, payload + k, 8);
    w ^= mask64;
    std::memcpy(q + k, &w, 8);
  }
  const auto* mb = reinterpret_cast<const unsigned char*>(&mask32);
  for (; k < n; ++k) q[k] = static_cast<unsigned char>(payload[k]) ^ mb[k & 3];
}

// Formats the next frame of --batch readings into scratch_ and appends it.
void loadgen::append_data_frame(connection& c) {
  std::size_t need =
      c.frame_prefix.size() + 32 + static_cast<std::size_t>(opt_.batch) * (values_[0].size() + 64);
  if (scratch_.size() < need) scratch_.resize(need * 2);
  char* const begin = &scratch_[0];
  char* p = put(begin, c.frame_prefix);
  auto reading = [&](char* p, std::uint64_t seq) {
    p = put(p, "\"seq\":");
    p = put_uint(p, seq);
    p = put(p, ",\"ts\":");
    p = put_uint(p, static_cast<std::uint64_t>(ts_start_ms_) + seq);
    *p++ = ',';
    return put(p, values_[seq % values_.size()]);
  };
  std::uint64_t seq = c.next_seq;
  if (opt_.batch == 1) {
    p = reading(p, seq);
    *p++ = '}';
  } else {
    p = put(p, "\"readings\":[");
    for (int r = 0; r < opt_.batch; ++r) {
      if (r) *p++ = ',';
      *p++ = '{';
      p = reading(p, seq + static_cast<std::uint64_t>(r));
      *p++ = '}';
    }
    p = put(p, "]}");
  }
  c.next_seq += static_cast<std::uint64_t>(opt_.batch);
  append_frame(c, 0x1, begin, static_cast<std::size_t>(p - begin));
  std::size_t slot = (c.head + c.count) % c.ring.size();
  c.ring[slot] = sent_frame{c.next_seq - 1, now_};
  ++c.count;
  ++frames_sent_;
  if (measuring()) ++m_frames_sent_;
}

void loadgen::flush(connection& c) {
  while (c.out_off < c.out.size()) {
    std::size_t left = c.out.size() - c.out_off;
    ssize_t n = send(c.fd, c.out.data() + c.out_off, left, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;  // EPOLLOUT will say when
      if (c.state == conn_state::handshaking || c.state == conn_state::connecting)
        fail(c, std::strerror(errno));
      else
        close_connection(c);
      return;
    }
    c.out_off += static_cast<std::size_t>(n);
    if (static_cast<std::size_t>(n) < left) return;  // socket buffer full
  }
  c.out.clear();
  c.out_off = 0;
}

void loadgen::send_close(connection& c) {
  if (c.close_sent || c.state != conn_state::open) return;
  const char code[2] = {static_cast<char>(1000 >> 8), static_cast<char>(1000 & 0xff)};
  append_frame(c, 0x8, code, 2);
  c.close_sent = true;
  c.state = conn_state::closing;
  flush(c);
}

void loadgen::enter_measure() {
  phase_ = phase::measure;
  m_start_ns_ = now_ns();
  m_own_cpu0_ = own_cpu_us();
  m_node_cpu0_ = proc_cpu_us(node_stat_fd_);
  m_also_cpu0_ = also_cpu_us();
}

void loadgen::leave_measure() {
  m_end_ns_ = now_ns();
  m_own_cpu_ = own_cpu_us() - m_own_cpu0_;
  if (m_node_cpu0_) {
    if (auto end = proc_cpu_us(node_stat_fd_)) m_node_cpu_ = *end - *m_node_cpu0_;
  }
  if (m_also_cpu0_) {
    if (auto end = also_cpu_us()) m_also_cpu_ = *end - *m_also_cpu0_;
  }
  rss_end_kb_ = proc_rss_kb(node_status_fd_);
  m_live_end_ = live_;
  phase_ = phase::drain;
}

int loadgen::run() {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  if (int rc = getaddrinfo(opt_.host.c_str(), opt_.port.c_str(), &hints, &addr_); rc != 0) {
    std::fprintf(stderr, "pulse-loadgen: cannot resolve %s: %s\n", opt_.host.c_str(),
                 gai_strerror(rc));
    return 2;
  }
  handshake_host_ = (opt_.host.find(':') != std::string::npos ? "[" + opt_.host + "]" : opt_.host) +
                    ":" + opt_.port;
  if (opt_.node_pid) {
    std::string path = "/proc/" + std::to_string(opt_.node_pid) + "/stat";
    node_stat_fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (!proc_cpu_us(node_stat_fd_)) {
      std::fprintf(stderr, "pulse-loadgen: cannot read %s\n", path.c_str());
      return 2;
    }
    path = "/proc/" + std::to_string(opt_.node_pid) + "/status";
    node_status_fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    rss_before_kb_ = proc_rss_kb(node_status_fd_);
  }
  for (long pid : opt_.also_pids) {
    std::string path = "/proc/" + std::to_string(pid) + "/stat";
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (!proc_cpu_us(fd)) {
      std::fprintf(stderr, "pulse-loadgen: cannot read %s\n", path.c_str());
      return 2;
    }
    also_stat_fds_.push_back(fd);
  }
  if (opt_.hold && !opt_.node_pid) {
    std::fprintf(stderr, "pulse-loadgen: --hold needs --node-pid (it reads the node's VmRSS)\n");
    return 2;
  }

  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  getrlimit(RLIMIT_NOFILE, &rl);
  if (!opt_.quiet && rl.rlim_cur != RLIM_INFINITY &&
      static_cast<rlim_t>(opt_.connections) + 16 > rl.rlim_cur)
    std::fprintf(stderr, "pulse-loadgen: open-file limit %llu: expect EMFILE failures\n",
                 static_cast<unsigned long long>(rl.rlim_cur));

  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  // Values vary a little with seq, like a meter's would; 16 variants, formatted once.
  static const char* const names[] = {"voltage", "current", "power"};
  for (int v = 0; v < 16; ++v) {
    std::string s = "\"values\":{";
    for (int m = 0; m < opt_.metrics; ++m) {
      char buf[64];
      if (m < 3) {
        static const double base[] = {229.6, 5.02, 1150.0};
        static const double step[] = {0.1, 0.01, 2.5};
        std::snprintf(buf, sizeof(buf), "%s\"%s\":%.2f", m ? "," : "", names[m],
                      base[m] + step[m] * v);
      } else {
        std::snprintf(buf, sizeof(buf), ",\"m%d\":%d.%d", m, m, v);
      }
      s += buf;
    }
    s += '}';
    values_.push_back(std::move(s));
  }
  ts_start_ms_ = opt_.ts_start ? *opt_.ts_start
                               : static_cast<std::int64_t>(std::time(nullptr)) * 1000 - 3'600'000;
  if (opt_.rate > 0)
    period_ns_ = std::max<std::int64_t>(1, static_cast<std::int64_t>(1e9 / opt_.rate));

  conns_.resize(static_cast<std::size_t>(opt_.connections));
  for (std::size_t i = 0; i < conns_.size(); ++i) {
    connection& c = conns_[i];
    c.frame_prefix = "{\"device\":\"" + opt_.device_prefix + std::to_string(i) + "\",";
    c.ring.resize(static_cast<std::size_t>(opt_.inflight));
    c.next_seq = opt_.start_seq;
    c.acked_seq = opt_.start_seq ? opt_.start_seq - 1 : 0;
  }

  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) {
    std::perror("pulse-loadgen: epoll_create1");
    return 1;
  }
  const std::int64_t t0 = now_ns();
  now_ = t0;
  const std::int64_t ramp_for =
      static_cast<std::int64_t>(static_cast<double>(opt_.connections) / opt_.connect_rate * 1e9);
  const std::int64_t ramp_deadline = t0 + ramp_for + 5'000'000'000;  // then pending ones fail
  std::int64_t warmup_end = 0, measure_end = 0, drain_end = 0;
  std::vector<epoll_event> events(1024);

  for (;;) {
    now_ = now_ns();
    if (interrupted && phase_ != phase::drain) {
      if (phase_ == phase::measure) {
        leave_measure();
      } else {
        phase_ = phase::drain;
      }
    }
    // Phase changes.
    if (phase_ == phase::ramp) {
      auto due = std::min<std::size_t>(
          conns_.size(),
          1 + static_cast<std::size_t>(static_cast<double>(now_ - t0) * opt_.connect_rate / 1e9));
      while (started_ < due) start_connection(started_);
      if (started_ == conns_.size() && (pending_ == 0 || now_ >= ramp_deadline)) {
        for (auto& c : conns_)
          if (c.state == conn_state::connecting || c.state == conn_state::handshaking)
            fail(c, "timeout");
        if (!opt_.quiet)
          std::fprintf(stderr,
                       "pulse-loadgen: %zu connected, %zu failed in %.2f s; warm-up %.1f s\n",
                       open_ok_, failed_, static_cast<double>(now_ - t0) / 1e9,
                       static_cast<double>(opt_.warmup_ns) / 1e9);
        phase_ = phase::warmup;
        // --hold: the warm-up starts once every first frame is acked (below).
        warmup_end = now_ + (opt_.hold ? 60'000'000'000 : opt_.warmup_ns);
        if (open_ok_ == 0) phase_ = phase::drain;
        for (std::size_t i = 0; i < conns_.size(); ++i) {
          connection& c = conns_[i];
          if (c.state != conn_state::open) continue;
          if (opt_.rate > 0)  // spread the connections' sends over one period
            c.next_due_ns = now_ + static_cast<std::int64_t>(
                                       next_random() % static_cast<std::uint64_t>(period_ns_));
          fill(i);
          flush(c);
        }
      }
    }
    if (opt_.hold && phase_ == phase::warmup && hold_unacked_ == 0 && hold_acked_ns_ == 0) {
      hold_acked_ns_ = now_;
      warmup_end = now_ + opt_.warmup_ns;
      if (!opt_.quiet)
        std::fprintf(stderr, "pulse-loadgen: every first frame acked; holding %zu connections\n",
                     live_);
    }
    if (phase_ == phase::warmup && now_ >= warmup_end) {
      enter_measure();
      measure_end = m_start_ns_ + opt_.duration_ns;
    }
    if (phase_ == phase::measure && (now_ >= measure_end || live_ == 0)) leave_measure();
    if (phase_ == phase::drain) {
      if (drain_end == 0) {
        drain_end = now_ + 1'500'000'000;
        for (auto& c : conns_) send_close(c);
      }
      if (live_ == 0 || now_ >= drain_end) break;
    }
    if ((phase_ == phase::warmup || phase_ == phase::measure) && live_ == 0) phase_ = phase::drain;

    // Paced sends that are due.
    while (!timers_.empty() && timers_.top().first <= now_) {
      std::size_t i = timers_.top().second;
      timers_.pop();
      conns_[i].timer_armed = false;
      fill(i);
      if (conns_[i].state == conn_state::open) flush(conns_[i]);
    }

    // Sleep until the next event, timer or phase change.
    std::int64_t wake = now_ + 100'000'000;
    if (phase_ == phase::ramp) wake = std::min(wake, now_ + 1'000'000);
    if (phase_ == phase::warmup) wake = std::min(wake, warmup_end);
    if (phase_ == phase::measure) wake = std::min(wake, measure_end);
    if (phase_ == phase::drain) wake = std::min(wake, drain_end);
    if (!timers_.empty()) wake = std::min(wake, timers_.top().first);
    int timeout_ms =
        static_cast<int>(std::max<std::int64_t>(0, (wake - now_ + 999'999) / 1'000'000));
    int n = epoll_wait(epfd_, events.data(), static_cast<int>(events.size()), timeout_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::perror("pulse-loadgen: epoll_wait");
      break;
    }
    for (int k = 0; k < n; ++k) {
      now_ = now_ns();
      on_event(static_cast<std::size_t>(events[static_cast<std::size_t>(k)].data.u64),
               events[static_cast<std::size_t>(k)].events);
    }
  }
  if (phase_ == phase::measure) leave_measure();
  for (auto& c : conns_)
    if (c.fd >= 0) ::close(c.fd);
  ::close(epfd_);
  if (node_stat_fd_ >= 0) ::close(node_stat_fd_);
  if (node_status_fd_ >= 0) ::close(node_status_fd_);
  for (int fd : also_stat_fds_) ::close(fd);
  freeaddrinfo(addr_);
  report();
  bool too_many_errors = errors_ * 100 > frames_sent_;
  if (opt_.hold)
    return open_ok_ == 0 || too_many_errors || hold_acked_ns_ == 0 || lost_ > 0 ? 1 : 0;
  return open_ok_ == 0 || too_many_errors || m_readings_acked_ == 0 ? 1 : 0;
}

void loadgen::report() {
  double secs = m_end_ns_ > m_start_ns_ ? static_cast<double>(m_end_ns_ - m_start_ns_) / 1e9 : 0;
  double rps = secs > 0 ? static_cast<double>(m_readings_acked_) / secs : 0;
  double fps = secs > 0 ? static_cast<double>(m_frames_acked_) / secs : 0;
  std::optional<double> node_us;
  if (m_node_cpu_ && m_readings_acked_ > 0)
    node_us = static_cast<double>(*m_node_cpu_) / static_cast<double>(m_readings_acked_);
  std::optional<double> client_us;
  if (m_frames_sent_ > 0)
    client_us = static_cast<double>(m_own_cpu_) / static_cast<double>(m_frames_sent_);
  std::optional<double> node_cores, also_us, also_cores;
  if (m_node_cpu_ && secs > 0) node_cores = static_cast<double>(*m_node_cpu_) / 1e6 / secs;
  if (m_also_cpu_ && m_readings_acked_ > 0)
    also_us = static_cast<double>(*m_also_cpu_) / static_cast<double>(m_readings_acked_);
  if (m_also_cpu_ && secs > 0) also_cores = static_cast<double>(*m_also_cpu_) / 1e6 / secs;
  std::optional<double> rss_before, rss_end, rss_per_conn;
  if (rss_before_kb_) rss_before = static_cast<double>(*rss_before_kb_);
  if (rss_end_kb_) rss_end = static_cast<double>(*rss_end_kb_);
  if (rss_before && rss_end && m_live_end_ > 0)
    rss_per_conn = (*rss_end - *rss_before) / static_cast<double>(m_live_end_);
  double p50 = latency_.quantile(0.50) / 1000, p99 = latency_.quantile(0.99) / 1000,
         p999 = latency_.quantile(0.999) / 1000, mx = static_cast<double>(latency_.max()) / 1000;

  if (!fail_reasons_.empty() && !opt_.quiet) {
    std::string why;
    for (auto& [reason, count] : fail_reasons_)
      why += (why.empty() ? "" : ", ") + reason + " x" + std::to_string(count);
    std::fprintf(stderr, "pulse-loadgen: failed connections: %s\n", why.c_str());
  }
  auto num = [](std::optional<double> v, const char* fmt) {
    if (!v) return std::string("null");
    char buf[64];
    std::snprintf(buf, sizeof(buf), fmt, *v);
    return std::string(buf);
  };
  if (opt_.json) {
    std::printf(
        "{\"connections\":%zu,\"failed\":%zu,\"lost\":%zu,\"acked\":%llu,\"readings_per_s\":%.1f,"
        "\"frames_per_s\":%.1f,\"node_cpu_us_per_reading\":%s,\"client_cpu_us_per_frame\":%s,"
        "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f,\"errors\":%llu,"
        "\"seconds\":%.3f,\"sent_readings_per_s\":%.1f,\"node_cpu_cores\":%s,\"also_cpu_us_per_reading\":%s,"
        "\"also_cpu_cores\":%s,\"hold\":%s,\"live_at_end\":%zu,\"node_rss_before_kb\":%s,"
        "\"node_rss_end_kb\":%s,\"node_rss_kb_per_connection\":%s}\n",
        open_ok_, failed_, lost_, static_cast<unsigned long long>(m_readings_acked_), rps, fps,
        num(node_us, "%.3f").c_str(), num(client_us, "%.3f").c_str(), p50, p99, p999, mx,
        static_cast<unsigned long long>(errors_), secs,
        secs > 0 ? static_cast<double>(m_frames_sent_) * opt_.batch / secs : 0.0,
        num(node_cores, "%.3f").c_str(),
        num(also_us, "%.3f").c_str(), num(also_cores, "%.3f").c_str(),
        opt_.hold ? "true" : "false", m_live_end_, num(rss_before, "%.0f").c_str(),
        num(rss_end, "%.0f").c_str(), num(rss_per_conn, "%.2f").c_str());
  } else if (opt_.hold) {
    std::printf(
        "pulse-loadgen --hold: %zu connections ok, %zu failed, %zu lost; %zu held for %.2f s; "
        "node VmRSS %s KiB before, %s KiB held: %s KiB per connection; node CPU while idle %s "
        "cores; errors %llu\n",
        open_ok_, failed_, lost_, m_live_end_, secs, num(rss_before, "%.0f").c_str(),
        num(rss_end, "%.0f").c_str(), num(rss_per_conn, "%.2f").c_str(),
        num(node_cores, "%.3f").c_str(), static_cast<unsigned long long>(errors_));
  } else {
    std::string node = node_us ? num(node_us, "%.2f") + " us/reading (" +
                                     num(static_cast<double>(*m_node_cpu_) / 1e6 / secs, "%.2f") +
                                     " cores)"
                               : std::string("n/a");
    if (also_us)
      node += "; other processes (--also-pid) " + num(also_us, "%.2f") + " us/reading (" +
              num(also_cores, "%.2f") + " cores)";
    std::printf(
        "pulse-loadgen: %zu connections ok, %zu failed, %zu lost; %llu readings acked in %.2f s: "
        "%.0f readings/s, %.0f frames/s; node CPU %s; client CPU %s; "
        "ack latency p50 %.2f ms p99 %.2f ms p999 %.2f ms max %.2f ms; errors %llu\n",
        open_ok_, failed_, lost_, static_cast<unsigned long long>(m_readings_acked_), secs, rps,
        fps, node.c_str(), client_us ? (num(client_us, "%.2f") + " us/frame").c_str() : "n/a", p50,
        p99, p999, mx, static_cast<unsigned long long>(errors_));
  }
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  if (!parse_options(argc, argv, o)) return 2;
  loadgen lg(o);
  return lg.run();
}
