// Integration: the WebSocket close handshake when a client sends a frame far
// over net.max-frame-bytes and keeps sending it. RFC 6455 (7.1.1, 7.1.7): the
// node answers with close 1009 and reads on, discarding, until the client's
// close, so the client gets the close frame and a clean end (FIN), not a
// reset. A plain socket client, to see exactly what TCP delivers.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>
#include <signal.h>

#include "net/http_client.hpp"
#include "net/ws_client.hpp"
#include "tests/support/process.hpp"

using namespace pulse;
using namespace std::chrono_literals;

namespace {

// What one client saw.
struct outcome {
  std::size_t sent = 0;      // bytes of the big frame written
  std::string received;      // bytes after the handshake
  bool reset = false;        // ECONNRESET on read or write
  bool eof = false;          // the node's FIN
  int close_code = 0;        // first close frame's code (0: none)
  std::string error;         // set up failed (no Catch macros: runs in threads)
};

int first_close_code(const std::string& bytes) {
  std::size_t pos = 0;
  while (pos + 2 <= bytes.size()) {
    auto op = static_cast<unsigned char>(bytes[pos]) & 0x0f;
    std::uint64_t len = static_cast<unsigned char>(bytes[pos + 1]) & 0x7f;
    std::size_t hdr = 2;
    if (len == 126) {
      if (pos + 4 > bytes.size()) return 0;
      len = (static_cast<unsigned char>(bytes[pos + 2]) << 8) | static_cast<unsigned char>(bytes[pos + 3]);
      hdr = 4;
    } else if (len == 127) {
      return 0;  // the node sends nothing that big here
    }
    if (pos + hdr + len > bytes.size()) return 0;
    if (op == 0x8)
      return len < 2 ? 1005
                     : (static_cast<unsigned char>(bytes[pos + hdr]) << 8) |
                         static_cast<unsigned char>(bytes[pos + hdr + 1]);
    pos += hdr + len;
  }
  return 0;
}

std::string masked_frame_header(unsigned char first, std::uint64_t len) {
  std::string h;
  h.push_back(static_cast<char>(first));
  h.push_back(static_cast<char>(0x80 | 127));
  for (int i = 7; i >= 0; --i) h.push_back(static_cast<char>((len >> (8 * i)) & 0xff));
  h += std::string("\x11\x22\x33\x44", 4);  // the mask key
  return h;
}

// Connects, upgrades, then sends one text frame of `frame_bytes` in 64 KiB
// writes while reading what the node sends; answers the node's close with
// its own and reads to the end. Bounded by `timeout` overall.
outcome send_oversized(std::uint16_t port, std::uint64_t frame_bytes, std::chrono::seconds timeout) {
  outcome o;
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return o.error = "socket failed", o;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return o.error = "connect failed", o;
  }
  std::string hs = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  std::string head;
  char buf[65536];
  bool upgraded = ::write(fd, hs.data(), hs.size()) == static_cast<ssize_t>(hs.size());
  while (upgraded && head.find("\r\n\r\n") == std::string::npos) {
    auto n = ::read(fd, buf, sizeof buf);
    if (n <= 0) upgraded = false;
    else head.append(buf, static_cast<std::size_t>(n));
  }
  if (!upgraded || head.rfind("HTTP/1.1 101", 0) != 0) {
    ::close(fd);
    return o.error = "no upgrade: " + head, o;
  }
  o.received = head.substr(head.find("\r\n\r\n") + 4);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);

  std::string out = masked_frame_header(0x81, frame_bytes);
  const std::string chunk(64 * 1024, 'x');
  std::uint64_t payload_left = frame_bytes;
  bool close_sent = false, write_done = false;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  // The node may half-close (its FIN after its close frame) while the frame
  // is still going out: the client sends on, then its own close.
  while (!o.reset && !(o.eof && write_done) && std::chrono::steady_clock::now() < deadline) {
    if (out.empty() && payload_left > 0) {
      auto n = std::min<std::uint64_t>(payload_left, chunk.size());
      out.assign(chunk, 0, static_cast<std::size_t>(n));
      payload_left -= n;
    }
    if (out.empty() && payload_left == 0 && !close_sent && o.close_code != 0) {
      // The whole frame is out and the node's close is here: answer it.
      // masked with a zero key, so the code goes as it is
      out = std::string("\x88\x82\x00\x00\x00\x00", 6) +
            std::string{static_cast<char>(o.close_code >> 8), static_cast<char>(o.close_code & 0xff)};
      close_sent = true;
    }
    write_done = out.empty() && payload_left == 0;
    pollfd p{fd, static_cast<short>((o.eof ? 0 : POLLIN) | (write_done ? 0 : POLLOUT)), 0};
    ::poll(&p, 1, 100);
    if (!o.eof && (p.revents & (POLLIN | POLLERR | POLLHUP))) {
      auto n = ::read(fd, buf, sizeof buf);
      if (n > 0) {
        o.received.append(buf, static_cast<std::size_t>(n));
        if (o.close_code == 0) o.close_code = first_close_code(o.received);
      } else if (n == 0) {
        o.eof = true;
      } else if (errno == ECONNRESET) {
        o.reset = true;
      }
    }
    if (!write_done && (p.revents & POLLOUT)) {
      auto n = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL);
      if (n > 0) {
        o.sent += static_cast<std::size_t>(n);
        out.erase(0, static_cast<std::size_t>(n));
      } else if (n < 0 && (errno == ECONNRESET || errno == EPIPE)) {
        o.reset = true;
      }
    }
  }
  ::close(fd);
  return o;
}

}  // namespace

TEST_CASE("a client sending 10 MB in one frame gets close 1009 and a clean end, not a reset") {
  test::temp_dir dir;
  auto node = test::start_node(dir.path() + "/db", {"--net.max-frame-bytes=1048576"});
  const std::uint64_t big = 10 * 1000 * 1000;
  for (int round = 0; round < 3; ++round) {
    INFO("round " << round);
    auto o = send_oversized(node.port, big, 60s);
    INFO("sent " << o.sent << " bytes, received " << o.received.size() << ", reset " << o.reset
                 << ", eof " << o.eof << " " << o.error);
    REQUIRE(o.error.empty());
    CHECK_FALSE(o.reset);
    CHECK(o.close_code == 1009);
    CHECK(o.sent >= big);  // the node read (and dropped) the whole frame
    CHECK(o.eof);
  }
  SECTION("eight at once, while pulse-sim keeps the node busy") {
    test::child sim(test::sim_binary(),
                    {"--node=127.0.0.1:" + std::to_string(node.port), "--devices=50", "--rate=0",
                     "--batch=10", "--duration=20s", "--quiet"});
    std::this_thread::sleep_for(1s);
    std::vector<outcome> results(8);
    std::vector<std::thread> clients;
    for (std::size_t i = 0; i < results.size(); ++i)
      clients.emplace_back([&, i] { results[i] = send_oversized(node.port, big, 60s); });
    for (auto& t : clients) t.join();
    for (auto& o : results) {
      INFO("sent " << o.sent << " bytes, received " << o.received.size() << ", reset " << o.reset
                   << ", eof " << o.eof << " " << o.error);
      REQUIRE(o.error.empty());
      CHECK_FALSE(o.reset);
      CHECK(o.close_code == 1009);
      CHECK(o.sent >= big);
      CHECK(o.eof);
    }
    sim.stop(SIGTERM, 30s);
  }
  SECTION("a client that sends on past 64 MiB after the close is cut off") {
    const std::uint64_t endless = std::uint64_t{1} << 40;  // 1 TiB claimed
    auto o = send_oversized(node.port, endless, 60s);
    INFO("sent " << o.sent << " bytes, reset " << o.reset << ", eof " << o.eof << " " << o.error);
    REQUIRE(o.error.empty());
    CHECK(o.close_code == 1009);
    CHECK(o.sent > 64u * 1024 * 1024);            // drained up to the bound...
    CHECK(o.sent < (64u + 32u) * 1024 * 1024);  // ...and not much further
    CHECK((o.reset || o.eof));
  }
  // The node still serves.
  net::http_response res;
  std::string err;
  REQUIRE(net::http_request(node.host, node.port, "GET", "/healthz", "", res, err));
  CHECK(res.status == 200);
}

