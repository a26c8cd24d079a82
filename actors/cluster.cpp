// cluster: membership over CAF's middleman (see actors/cluster.hpp).
//
// Lifecycle: spawned by the bridge when cluster.port is set, published on
// that port, stopped with the other actors at shutdown. Concurrency: one
// event-based actor; everything it shares with the rest of the node is the
// member table in node_context (members_, written only here) and the
// `cluster_joined` flag /readyz reads.
//
// Timers: one tick every cluster.heartbeat-interval sends a heartbeat to each
// member that is up (at most one in flight each), marks down a member not
// heard from within cluster.heartbeat-timeout, and retries the members and
// seeds that are not up once their backoff has passed (100 ms doubling up to
// cluster.reconnect-max, reset once they answer).

#include "actors/cluster.hpp"

#include <algorithm>
#include <map>
#include <set>

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>
#include <caf/io/middleman_actor.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "actors/actors.hpp"

namespace pulse {

void add_cluster_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<member_info>("pulse::member_info");
  cfg.add_message_type<member_status>("pulse::member_status");
  cfg.add_message_type<reading_batch>("pulse::reading_batch");
  cfg.add_message_type<ack_list>("pulse::ack_list");
  cfg.add_message_type<latest_value>("pulse::latest_value");
}

bool parse_endpoint(const std::string& text, std::string& host, std::uint16_t& port) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 >= text.size()) return false;
  unsigned long p = 0;
  for (auto i = colon + 1; i < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
    p = p * 10 + static_cast<unsigned long>(text[i] - '0');
    if (p > 65535) return false;
  }
  if (p == 0) return false;
  host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  port = static_cast<std::uint16_t>(p);
  return true;
}

namespace {

using clock_type = std::chrono::steady_clock;
constexpr std::chrono::milliseconds first_backoff{100};

enum class phase { joining, up, down };

const char* phase_name(phase p) {
  switch (p) {
    case phase::joining: return "joining";
    case phase::up: return "up";
    case phase::down: return "down";
  }
  return "?";
}

// A way to reach a node: a known member, or a seed whose name is not known yet.
struct contact {
  std::string host;
  std::uint16_t port = 0;
  bool connecting = false;  // a connect is in flight
  clock_type::time_point next_attempt{};
  std::chrono::milliseconds backoff{0};

  void failed(std::chrono::milliseconds cap) {
    backoff = backoff.count() == 0 ? first_backoff : std::min(backoff * 2, cap);
    next_attempt = clock_type::now() + backoff;
  }
};

struct peer {
  member_info info;
  cluster_actor handle;  // set while up
  phase state = phase::joining;
  std::int64_t since_ms = 0;
  clock_type::time_point last_heard{};
  bool heard = false;
  bool heartbeat_out = false;
  contact reach;
};

}  // namespace

struct cluster_state {
  static inline const char* name = "cluster";
  context_ptr ctx;
  member_info self;
  std::int64_t since_ms = 0;
  std::map<std::string, peer> peers;  // by name
  std::vector<contact> seeds;         // until they answer (then they are peers)
};

namespace {

using cluster_ptr = cluster_actor::stateful_pointer<cluster_state>;

const cluster_settings& settings(cluster_ptr self) { return self->state.ctx->settings.cluster; }

member_list gossip(cluster_ptr self) {
  member_list out{self->state.self};
  for (auto& [name, p] : self->state.peers)
    if (p.state == phase::up) out.push_back(p.info);
  return out;
}

// Tells the node (readiness, routing) which members are up.
void publish_members(cluster_ptr self) {
  auto& st = self->state;
  std::vector<member_info> up{st.self};
  std::vector<std::string> down;
  for (auto& [name, p] : st.peers)
    if (p.state == phase::up) up.push_back(p.info);
    else down.push_back(name);
  std::uint64_t peer_subs = 0;
  for (auto i = std::next(up.begin()); i != up.end(); ++i) peer_subs += i->subscribers;
  st.ctx->peer_subscribers = peer_subs;
  st.ctx->set_live_members(std::move(up));
  st.ctx->set_down_members(std::move(down));
}

void set_state(cluster_ptr self, peer& p, phase s, const std::string& why) {
  if (p.state == s) return;
  auto was = p.state;
  p.state = s;
  p.since_ms = now_ms();
  if (s == phase::up)
    spdlog::info("cluster: {} is up ({}:{}, http {})", p.info.name, p.info.host, p.info.port,
                 p.info.http.empty() ? "-" : p.info.http);
  else if (s == phase::down && was == phase::up)
    spdlog::warn("cluster: {} is down: {}", p.info.name, why);
  if (s == phase::up) self->state.ctx->cluster_joined = true;
  publish_members(self);
}

void mark_down(cluster_ptr self, peer& p, const std::string& why) {
  if (p.handle) self->demonitor(p.handle.address());
  p.handle = nullptr;
  p.heartbeat_out = false;
  p.reach.connecting = false;
  p.reach.failed(settings(self).reconnect_max);
  set_state(self, p, phase::down, why);
}

// Learns members from a gossip list: unknown ones are added (and contacted at
// the next tick); a newer incarnation replaces what was known of a member.
void learn(cluster_ptr self, const member_list& members) {
  auto& st = self->state;
  for (auto& m : members) {
    if (m.name.empty() || m.name == st.self.name) continue;
    auto i = st.peers.find(m.name);
    if (i == st.peers.end()) {
      peer p;
      p.info = m;
      p.since_ms = now_ms();
      p.reach.host = m.host;
      p.reach.port = m.port;
      st.peers.emplace(m.name, std::move(p));
      spdlog::info("cluster: learnt of {} ({}:{})", m.name, m.host, m.port);
      publish_members(self);
      continue;
    }
    auto& p = i->second;
    if (m.incarnation > p.info.incarnation ||
        (m.incarnation == p.info.incarnation && p.info.http.empty())) {
      p.info = m;
      p.reach.host = m.host;
      p.reach.port = m.port;
    }
  }
}

// A member answered (or called): it is up, reachable through `h`.
void contacted(cluster_ptr self, cluster_actor h, const member_list& theirs) {
  auto& st = self->state;
  if (theirs.empty() || theirs.front().name.empty()) return;
  auto& who = theirs.front();
  if (who.name == st.self.name) {
    if (who.incarnation != st.self.incarnation)
      spdlog::error("cluster: another node is also named {} ({}:{}): node.name must be unique",
                    who.name, who.host, who.port);
    return;
  }
  learn(self, theirs);
  auto& p = st.peers[who.name];
  bool changed = p.info.subscribers != who.subscribers || p.info.http != who.http;
  p.info = who;
  p.reach.host = who.host;
  p.reach.port = who.port;
  p.reach.backoff = std::chrono::milliseconds{0};
  p.reach.connecting = false;
  p.last_heard = clock_type::now();
  p.heard = true;
  if (p.handle != h) {
    if (p.handle) self->demonitor(p.handle.address());
    p.handle = h;
    self->monitor(h);
  }
  if (p.state == phase::up && changed) publish_members(self);
  set_state(self, p, phase::up, "");
  // A seed with this address is now known by name.
  auto& seeds = st.seeds;
  seeds.erase(std::remove_if(seeds.begin(), seeds.end(),
                             [&](const contact& c) {
                               return c.host == who.host && c.port == who.port;
                             }),
              seeds.end());
}

// Connects to host:port (middleman), checks the interface, then sends the
// first heartbeat; `done(ok)` in any case.
template <class Done>
void connect(cluster_ptr self, const std::string& host, std::uint16_t port, Done done) {
  auto mm = self->system().middleman().actor_handle();
  auto timeout = settings(self).heartbeat_timeout;
  self->request(mm, timeout, caf::connect_atom::value, host, port)
    .then(
      [=](caf::node_id&, caf::strong_actor_ptr& ptr, std::set<std::string>& ifs) mutable {
        if (!ptr) {
          done(false, "no actor published there");
          return;
        }
        if (!self->system().assignable<cluster_actor>(ifs)) {
          spdlog::error("cluster: {}:{} is not a pulse-node cluster port (or another version)",
                        host, port);
          done(false, "wrong interface");
          return;
        }
        auto h = caf::actor_cast<cluster_actor>(ptr);
        self->request(h, timeout, heartbeat_atom::value, gossip(self))
          .then(
            [=](member_list& theirs) mutable {
              contacted(self, h, theirs);
              done(true, "");
            },
            [=](caf::error& err) mutable { done(false, caf::to_string(err)); });
      },
      [=](caf::error& err) mutable { done(false, caf::to_string(err)); });
}

void heartbeat(cluster_ptr self, peer& p) {
  if (p.heartbeat_out || !p.handle) return;
  p.heartbeat_out = true;
  auto name = p.info.name;
  auto h = p.handle;
  self->request(p.handle, settings(self).heartbeat_timeout, heartbeat_atom::value, gossip(self))
    .then(
      [=](member_list& theirs) {
        auto i = self->state.peers.find(name);
        if (i != self->state.peers.end() && i->second.handle == h) i->second.heartbeat_out = false;
        contacted(self, h, theirs);
      },
      [=](caf::error&) {
        // A late answer is judged by the tick (heartbeat-timeout since the last one).
        auto i = self->state.peers.find(name);
        if (i != self->state.peers.end() && i->second.handle == h) i->second.heartbeat_out = false;
      });
}

void tick(cluster_ptr self) {
  auto& st = self->state;
  // Our subscribers travel with the next heartbeats: members send us live
  // updates only while we have some.
  auto subs = static_cast<std::uint32_t>(st.ctx->subscribers.load());
  if (subs != st.self.subscribers) {
    st.self.subscribers = subs;
    publish_members(self);
  }
  auto now = clock_type::now();
  auto timeout = settings(self).heartbeat_timeout;
  for (auto& [name, p] : st.peers) {
    if (p.state == phase::up) {
      if (now - p.last_heard > timeout) {
        mark_down(self, p, "no heartbeat answer for " + std::to_string(timeout.count()) + " ms");
        continue;
      }
      heartbeat(self, p);
      continue;
    }
    if (p.reach.connecting || now < p.reach.next_attempt) continue;
    p.reach.connecting = true;
    auto n = name;
    connect(self, p.reach.host, p.reach.port, [=](bool ok, const std::string& why) {
      auto i = self->state.peers.find(n);
      if (ok || i == self->state.peers.end()) return;
      auto& q = i->second;
      q.reach.connecting = false;
      q.reach.failed(settings(self).reconnect_max);
      if (q.state == phase::joining) set_state(self, q, phase::down, why);
    });
  }
  for (auto& s : st.seeds) {
    if (s.connecting || now < s.next_attempt) continue;
    s.connecting = true;
    auto host = s.host;
    auto port = s.port;
    connect(self, host, port, [=](bool ok, const std::string& why) {
      for (auto& c : self->state.seeds)
        if (c.host == host && c.port == port) {
          c.connecting = false;
          if (!ok) {
            if (c.backoff.count() == 0 || c.backoff >= settings(self).reconnect_max)
              spdlog::info("cluster: seed {}:{} not reachable yet ({})", host, port, why);
            c.failed(settings(self).reconnect_max);
          }
        }
    });
  }
}

cluster_view view(cluster_ptr self) {
  auto& st = self->state;
  cluster_view out;
  out.push_back(member_status{st.self, "self", st.since_ms, 0});
  auto now = clock_type::now();
  for (auto& [name, p] : st.peers) {
    std::int64_t ago = -1;
    if (p.heard)
      ago = std::chrono::duration_cast<std::chrono::milliseconds>(now - p.last_heard).count();
    out.push_back(member_status{p.info, phase_name(p.state), p.since_ms, ago});
  }
  return out;
}

}  // namespace

std::string render_cluster(const cluster_view& view, const node_context& ctx) {
  using nlohmann::json;
  auto& cs = ctx.settings.cluster;
  json members = json::array();
  std::uint64_t live_shards = 0;
  std::size_t live = 0;
  for (auto& m : view) {
    bool up = m.state == "self" || m.state == "up";
    if (up) {
      ++live;
      live_shards += m.info.shards;
    }
    json j = {{"name", m.info.name},
              {"state", m.state},
              {"http", m.info.http.empty() ? json(nullptr) : json(m.info.http)},
              {"shards", m.info.shards},
              {"since", m.since_ms}};
    j["cluster"] = cs.enabled() ? json(m.info.host + ":" + std::to_string(m.info.port))
                                : json(nullptr);
    if (m.state != "self") j["heard_ms_ago"] = m.heard_ms_ago < 0 ? json(nullptr) : json(m.heard_ms_ago);
    members.push_back(std::move(j));
  }
  json out = {{"node", ctx.settings.node_name},
              {"state", !cs.enabled() ? "single" : ctx.cluster_joined.load() ? "joined" : "joining"},
              {"members", std::move(members)},
              {"live", live},
              {"shards", {{"per_node", ctx.settings.shards}, {"live", live_shards}}},
              {"heartbeat_timeout_ms", cs.heartbeat_timeout.count()}};
  return out.dump();
}

cluster_actor::behavior_type cluster_actor_fn(cluster_ptr self, context_ptr ctx) {
  auto& st = self->state;
  st.ctx = ctx;
  auto& cs = ctx->settings.cluster;
  st.self.name = ctx->settings.node_name;
  st.self.host = cs.address;
  st.self.port = cs.port;
  st.self.incarnation = static_cast<std::uint64_t>(now_ms());
  st.self.shards = static_cast<std::uint32_t>(ctx->settings.shards);
  st.self.owner = ctx->live_members()->front().owner;
  st.self.query = ctx->live_members()->front().query;
  st.self.hub = caf::actor_cast<peer_hub_actor>(ctx->hub);
  st.since_ms = now_ms();
  for (auto& s : cs.seeds) {
    contact c;
    if (!parse_endpoint(s, c.host, c.port)) continue;  // checked by the config
    if (c.port == cs.port && (c.host == cs.address || c.host == "localhost")) continue;  // us
    st.seeds.push_back(std::move(c));
  }
  ctx->cluster_joined = st.seeds.empty();  // the first node of a cluster has nobody to join
  publish_members(self);
  self->set_down_handler([=](caf::down_msg& dm) {
    for (auto& [name, p] : self->state.peers)
      if (p.handle && p.handle.address() == dm.source) {
        p.handle = nullptr;  // the monitor is gone with it
        mark_down(self, p, "connection lost (" + caf::to_string(dm.reason) + ")");
      }
  });
  self->send(self, caf::tick_atom::value);
  return {
    [=](heartbeat_atom, member_list& theirs) -> member_list {
      // A member that calls us is up, whatever we thought: reachable through
      // the sender (its cluster actor), so no connect of our own is needed.
      if (auto sender = caf::actor_cast<cluster_actor>(self->current_sender()))
        contacted(self, sender, theirs);
      return gossip(self);
    },
    [=](members_atom) -> cluster_view { return view(self); },
    [=](listening_atom, std::string& http) {
      self->state.self.http = std::move(http);
      publish_members(self);
    },
    [=](caf::tick_atom) {
      tick(self);
      self->delayed_send(self, settings(self).heartbeat_interval, caf::tick_atom::value);
    },
  };
}

cluster_actor spawn_cluster(caf::actor_system& sys, context_ptr ctx, std::string& error) {
  auto a = sys.spawn(cluster_actor_fn, ctx);
  auto& cs = ctx->settings.cluster;
  auto port = sys.middleman().publish(a, cs.port, cs.address.c_str(), true);
  if (!port) {
    error = "cannot publish the cluster actor on " + cs.address + ":" + std::to_string(cs.port) +
            ": " + sys.render(port.error());
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    return {};
  }
  spdlog::info("cluster: {} published on {}:{}, seeds: {}", ctx->settings.node_name, cs.address,
               *port, cs.seeds.empty() ? std::string{"none"} : [&] {
                 std::string s;
                 for (auto& x : cs.seeds) s += (s.empty() ? "" : ", ") + x;
                 return s;
               }());
  return a;
}

}  // namespace pulse
