// Blocking HTTP client on Boost.Beast: the async operations of Beast's
// http_client_async example, run on a private io_context until a deadline.

#include "net/http_client.hpp"

#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace pulse::net {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr std::uint32_t max_header_bytes = 64 * 1024;
constexpr const char* user_agent = "pulse-net-client";

std::string host_port(const std::string& host, std::uint16_t port) {
  bool v6 = host.find(':') != std::string::npos && host.front() != '[';
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

// One request in flight: do_x/on_x steps that record the first error and stop.
class http_call {
 public:
  http_call(asio::io_context& ioc, http::request<http::string_body>& req, std::string host,
            std::uint16_t port)
      : resolver_(ioc), stream_(ioc), req_(req), host_(std::move(host)), port_(port) {
    parser_.body_limit(max_http_response_bytes);
    parser_.header_limit(max_header_bytes);
  }

  void start() {
    beast::error_code ec;
    auto addr = asio::ip::make_address(host_, ec);
    if (!ec) {  // a literal address needs no resolver
      do_connect({tcp::endpoint(addr, port_)});
      return;
    }
    stage_ = "resolving " + host_;
    resolver_.async_resolve(host_, std::to_string(port_),
                            [this](beast::error_code e, const tcp::resolver::results_type& r) {
                              if (e) return finish(e);
                              std::vector<tcp::endpoint> eps;
                              for (auto& entry : r) eps.push_back(entry.endpoint());
                              do_connect(std::move(eps));
                            });
  }

  void do_connect(std::vector<tcp::endpoint> endpoints) {
    stage_ = "connecting to " + host_port(host_, port_);
    endpoints_ = std::move(endpoints);
    stream_.async_connect(endpoints_, [this](beast::error_code e, const tcp::endpoint&) {
      if (e) return finish(e);
      beast::error_code ignored;
      stream_.socket().set_option(tcp::no_delay(true), ignored);
      stage_ = "writing the request";
      http::async_write(stream_, req_, [this](beast::error_code e2, std::size_t) {
        if (e2) return finish(e2);
        stage_ = "reading the response";
        http::async_read(stream_, buffer_, parser_,
                         [this](beast::error_code e3, std::size_t) { finish(e3); });
      });
    });
  }

  // Stops whatever is pending; its handler then runs with operation_aborted.
  void abort() {
    beast::error_code ignored;
    resolver_.cancel();
    stream_.socket().close(ignored);
  }

  bool done() const { return done_; }
  const beast::error_code& result() const { return result_; }
  const std::string& stage() const { return stage_; }
  http::response<http::string_body>& response() { return parser_.get(); }

 private:
  void finish(beast::error_code ec) {
    if (done_) return;
    done_ = true;
    result_ = ec;
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
  }

  tcp::resolver resolver_;
  beast::tcp_stream stream_;
  http::request<http::string_body>& req_;
  std::string host_;
  std::uint16_t port_;
  std::vector<tcp::endpoint> endpoints_;
  beast::flat_buffer buffer_;
  http::response_parser<http::string_body> parser_;
  std::string stage_ = "connecting";
  bool done_ = false;
  beast::error_code result_;
};

}  // namespace

std::string http_response::header(std::string_view name) const {
  for (auto& [k, v] : headers)
    if (boost::beast::iequals(k, name)) return v;
  return {};
}

std::string url_encode(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '_' || c == '.' || c == '~';
    if (plain) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

bool http_request(const std::string& host, std::uint16_t port, const std::string& method,
                  const std::string& target, const std::string& body, http_response& out,
                  std::string& error, std::chrono::milliseconds timeout,
                  const std::string& content_type,
                  const std::vector<std::pair<std::string, std::string>>& headers) {
  http::request<http::string_body> req;
  auto verb = http::string_to_verb(method);
  if (verb == http::verb::unknown) {
    if (method.empty()) {
      error = "no HTTP method";
      return false;
    }
    req.method_string(method);
  } else {
    req.method(verb);
  }
  req.target(target.empty() ? "/" : target);
  req.version(11);
  req.set(http::field::host, host_port(host, port));
  req.set(http::field::user_agent, user_agent);
  req.keep_alive(false);
  if (!body.empty() || verb == http::verb::post || verb == http::verb::put ||
      verb == http::verb::patch) {
    req.set(http::field::content_type, content_type);
    req.body() = body;
  }
  for (auto& [name, value] : headers) req.set(name, value);
  req.prepare_payload();

  asio::io_context ioc;
  http_call call{ioc, req, host, port};
  call.start();
  ioc.run_for(timeout);
  if (!call.done()) {
    // Let the aborted handlers run so nothing outlives this frame.
    call.abort();
    ioc.restart();
    ioc.run();
    error = "timed out after " + std::to_string(timeout.count()) + " ms while " + call.stage();
    return false;
  }
  if (auto ec = call.result()) {
    error = call.stage() + ": " + ec.message();
    if (ec == http::error::body_limit)
      error += " (limit " + std::to_string(max_http_response_bytes >> 20) + " MiB)";
    return false;
  }
  auto& res = call.response();
  out.status = res.result_int();
  out.content_type = std::string(res[http::field::content_type]);
  out.body = std::move(res.body());
  out.headers.clear();
  for (auto& f : res) out.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
  return true;
}

}  // namespace pulse::net
