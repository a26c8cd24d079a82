#include "sim/watchers.hpp"

#include <atomic>
#include <chrono>

#include <nlohmann/json.hpp>

#include "net/ws_client.hpp"
#include "wire/codec.hpp"

namespace pulse::sim {

struct watchers::impl {
  boost::asio::io_context* ioc;
  std::string host;
  std::uint16_t port;
  std::string token;
  std::string pattern;
  std::shared_ptr<push_stats> stats;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  std::atomic<bool> stopping{false};
  std::vector<std::shared_ptr<net::ws_client>> clients;
};

namespace {

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

void on_push(watchers::impl& w, std::string_view text) {
  auto arrived = now_ms();
  auto j = nlohmann::json::parse(text, nullptr, false);
  auto& st = *w.stats;
  std::lock_guard<std::mutex> guard{st.mtx};
  if (j.is_discarded() || !j.is_object()) {
    if (st.problems.size() < 10) st.problems.push_back("unreadable push: " + std::string(text.substr(0, 100)));
    return;
  }
  if (auto s = j.find("snapshot"); s != j.end() && s->is_object()) {
    st.snapshots++;
    st.snapshot_devices += s->size();
    return;
  }
  if (auto e = j.find("error"); e != j.end()) {
    if (st.problems.size() < 10) st.problems.push_back("node said: " + e->dump());
    return;
  }
  auto u = j.find("update");
  if (u == j.end() || !u->is_object()) return;  // welcome and the like
  auto sec = static_cast<std::uint32_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                          std::chrono::steady_clock::now() - w.start).count());
  for (auto& [device, values] : u->items()) {
    if (!values.is_object()) continue;
    st.updates++;
    auto ts = values.find("timestamp");
    auto lat = values.find("latency_ms");
    if (ts != values.end() && ts->is_number()) {
      st.e2e_ms.push_back(static_cast<float>(arrived - ts->get<std::int64_t>()));
      st.second.push_back(sec);
      st.server_ms.push_back(lat != values.end() && lat->is_number() ? lat->get<float>() : -1.0f);
    }
  }
}

}  // namespace

watchers::watchers(boost::asio::io_context& ioc, std::string host, std::uint16_t port,
                   std::string token, std::string pattern, std::shared_ptr<push_stats> stats)
    : impl_(std::make_shared<impl>()) {
  impl_->ioc = &ioc;
  impl_->host = std::move(host);
  impl_->port = port;
  impl_->token = std::move(token);
  impl_->pattern = std::move(pattern);
  impl_->stats = std::move(stats);
}

watchers::~watchers() { stop(); }

void watchers::start(std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    std::weak_ptr<impl> weak = impl_;
    net::ws_client::handlers h;
    h.on_open = [weak] {
      if (auto w = weak.lock()) {
        std::lock_guard<std::mutex> guard{w->stats->mtx};
        w->stats->opened++;
      }
    };
    h.on_message = [weak](std::string_view text) {
      if (auto w = weak.lock()) on_push(*w, text);
    };
    h.on_close = [weak](const std::string& reason) {
      auto w = weak.lock();
      if (!w || w->stopping.load()) return;
      std::lock_guard<std::mutex> guard{w->stats->mtx};
      if (w->stats->problems.size() < 10) w->stats->problems.push_back("subscriber lost: " + reason);
    };
    auto c = net::ws_client::create(*impl_->ioc, std::move(h));
    c->connect(impl_->host, impl_->port);
    // Queued until the handshake is done; the node handles them in order.
    if (!impl_->token.empty()) {
      std::string hello = "{\"hello\":{\"token\":";
      wire::append_json_string(hello, impl_->token);
      c->send(hello + "}}");
    }
    std::string sub = "{\"subscribe\":[";
    wire::append_json_string(sub, impl_->pattern);
    c->send(sub + "]}");
    impl_->clients.push_back(std::move(c));
  }
}

void watchers::stop() {
  impl_->stopping = true;
  for (auto& c : impl_->clients) c->close();
  impl_->clients.clear();
}

}  // namespace pulse::sim
