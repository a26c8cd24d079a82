#include "actors/bridge.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/actors.hpp"
#include "actors/atoms.hpp"
#include "storage/batcher.hpp"
#include "wire/codec.hpp"

namespace pulse {

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::int64_t node_context::now() const { return now_ms() + clock_offset_ms.load(); }

void node_context::init_shards(std::size_t shards) {
  shard_load = std::make_unique<std::atomic<std::uint64_t>[]>(shards);
  inboxes = std::make_unique<shard_inbox[]>(shards);
  shard_down = std::make_unique<std::atomic<bool>[]>(shards);
}

void node_context::set_live_members(std::vector<member_info> members) {
  for (auto& m : members) m.name_hash = device_hash(m.name);
  auto next = std::make_shared<const std::vector<member_info>>(std::move(members));
  std::lock_guard<std::mutex> guard{members_mtx_};
  members_ = std::move(next);
}

void node_context::set_down_members(std::vector<std::string> names) {
  auto next = std::make_shared<const std::vector<std::string>>(std::move(names));
  std::lock_guard<std::mutex> guard{members_mtx_};
  down_ = std::move(next);
}

std::shared_ptr<const std::vector<std::string>> node_context::down_members() const {
  std::lock_guard<std::mutex> guard{members_mtx_};
  return down_;
}

std::shared_ptr<const std::vector<member_info>> node_context::live_members() const {
  std::lock_guard<std::mutex> guard{members_mtx_};
  return members_;
}

void online_registry::add(const std::string& device) {
  std::lock_guard<std::mutex> guard{mtx_};
  ++count_[device];
}

void online_registry::remove(const std::string& device) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = count_.find(device);
  if (i != count_.end() && --i->second <= 0) count_.erase(i);
}

bool online_registry::contains(std::string_view device) const {
  std::lock_guard<std::mutex> guard{mtx_};
  return count_.count(std::string{device}) > 0;
}

void append_live_entry(std::string& out, const std::string& device, std::int64_t ts,
                       const std::vector<std::pair<std::string, double>>& values,
                       std::int64_t latency_ms) {
  wire::append_json_string(out, device);
  out += ":{\"timestamp\":";
  out += std::to_string(ts);
  for (auto& [name, value] : values) {
    out += ',';
    wire::append_json_string(out, name);
    out += ':';
    wire::append_json_number(out, value);
  }
  if (latency_ms >= 0) {
    out += ",\"latency_ms\":";
    out += std::to_string(latency_ms);
  }
  out += '}';
}

namespace {

// GET /api/v1/cluster: asks the cluster actor for its view (a short-lived
// actor, so that no I/O thread waits).
caf::behavior cluster_request(caf::event_based_actor* self, context_ptr ctx,
                              cluster_actor cluster, http_callback done) {
  self->request(cluster, std::chrono::seconds(5), members_atom::value)
    .then(
      [=](cluster_view& v) {
        done(http_reply{200, "application/json",
                        render_cluster(v, *ctx), {}});
        self->quit();
      },
      [=](caf::error& err) {
        done(http_reply{503, "application/json",
                        wire::encode_error("overloaded", "the cluster actor did not answer: " +
                                                           caf::to_string(err)),
                        {}});
        self->quit();
      });
  return {};
}

class actor_bridge final : public bridge {
 public:
  actor_bridge(caf::actor_system& sys, context_ptr ctx) : sys_(sys), ctx_(std::move(ctx)) {
    ctx_->hub = spawn_hub(sys_, ctx_);
    if (ctx_->settings.cluster.enabled()) forwarder_ = spawn_forwarder(sys_, ctx_);
    router_ = spawn_router(sys_, ctx_, forwarder_);
    supervisor_ = spawn_supervisor(sys_, ctx_, router_);
    if (ctx_->settings.cluster.enabled()) {
      owner_ = spawn_owner(sys_, ctx_, router_);
      query_peer_ = spawn_query_peer(sys_, ctx_);
      auto members = *ctx_->live_members();
      members.front().owner = owner_;
      members.front().query = query_peer_;
      ctx_->set_live_members(std::move(members));
    }
    query_ = spawn_query(sys_, ctx_);
    ctx_->query = query_;
    probe_ = spawn_storage_probe(sys_, ctx_);
    if (ctx_->settings.retention_ms > 0) retention_ = spawn_retention(sys_, ctx_);
  }

  std::unique_ptr<session> open_session(std::shared_ptr<session_sink> sink,
                                        std::string peer) override {
    return pulse::open_session(sys_, ctx_, std::move(sink), router_, std::move(peer));
  }

  void http(http_request req, std::optional<auth::grant> writer, http_callback done) override {
    auto path = std::string_view(req.target).substr(0, req.target.find('?'));
    if (req.method == "POST" && path == "/admin/clock") {
      handle_clock(ctx_, retention_, req.target, std::move(done));
      return;
    }
    if (req.method == "POST" && path == "/admin/backup") {
      spawn_backup(sys_, ctx_, std::move(req), std::move(done));
      return;
    }
    if (req.method == "GET" && path == "/api/v1/cluster") {
      if (!cluster_) {
        cluster_view v{member_status{ctx_->live_members()->front(), "self", 0, 0}};
        done(http_reply{200, "application/json", render_cluster(v, *ctx_), {}});
        return;
      }
      sys_.spawn(cluster_request, ctx_, cluster_, std::move(done));
      return;
    }
    if (req.method == "POST") {
      spawn_ingest(sys_, ctx_, router_, std::move(req), std::move(writer), std::move(done));
      return;
    }
    caf::anon_send(query_, query_atom::value, std::move(req), std::move(done));
  }

  std::string not_ready() const override {
    if (!ctx_->healthy.load()) return "shards failed past supervisor.max-restarts";
    if (ctx_->shards_up.load() != ctx_->settings.shards) return "shards starting";
    if (auto why = ctx_->storage.reason(); !why.empty()) return "storage refuses writes: " + why;
    if (!ctx_->cluster_joined.load()) return "cluster not joined: no seed reachable yet";
    return {};
  }

  void listening(const std::string& address, std::uint16_t port) override {
    auto http = address + ":" + std::to_string(port);
    auto members = *ctx_->live_members();
    if (!members.empty()) {
      members.front().http = http;
      ctx_->set_live_members(std::move(members));
    }
    if (cluster_) caf::anon_send(cluster_, listening_atom::value, std::move(http));
  }

  bool inject_storage_fault(std::string_view mode) override {
    auto& f = ctx_->faults;
    if (!ctx_->settings.fault_injection || !f) return false;
    using storage::injected_fault;
    if (mode == "eio-write") f->mode = injected_fault::eio_write;
    else if (mode == "eio-sync") f->mode = injected_fault::eio_sync;
    else if (mode == "no-space") f->mode = injected_fault::no_space;
    else if (mode == "off") f->mode = injected_fault::off;
    else return false;
    spdlog::warn("storage: fault injection mode {}", mode);
    return true;
  }

  void crash_shard(std::uint64_t n, http_callback done) override {
    caf::anon_send(supervisor_, crash_atom::value, n, std::move(done));
  }

  void shutdown(std::chrono::milliseconds timeout) override {
    // Connections take no more readings; the shards' last flush acks what they have.
    ctx_->stopping = true;
    caf::scoped_actor self{sys_};
    self->request(supervisor_, timeout, stop_atom::value)
      .receive([](bool) {},
               [](caf::error& err) {
                 spdlog::error("shutdown: shards did not stop in time: {}", caf::to_string(err));
               });
    self->request(router_, std::chrono::seconds(10), stop_atom::value)
      .receive([](bool) {},
               [](caf::error& err) {
                 spdlog::warn("shutdown: sessions did not confirm their acks: {}",
                              caf::to_string(err));
               });
    // ctx_->hub and ctx_->query stay set: sessions may still read them (see node_context).
    self->request(query_, std::chrono::seconds(5), stop_atom::value)
      .receive([](bool) {}, [](caf::error&) {});
    for (auto& a : {supervisor_, router_, query_, probe_, ctx_->hub})
      self->send_exit(a, caf::exit_reason::user_shutdown);
    if (cluster_) self->send_exit(cluster_, caf::exit_reason::user_shutdown);
    if (owner_) self->send_exit(owner_, caf::exit_reason::user_shutdown);
    if (query_peer_) self->send_exit(query_peer_, caf::exit_reason::user_shutdown);
    if (forwarder_) self->send_exit(forwarder_, caf::exit_reason::user_shutdown);
    if (retention_) self->send_exit(retention_, caf::exit_reason::user_shutdown);
  }

  node_metrics& metrics() override { return ctx_->metrics; }
  std::string metrics_text() const override {
    auto out = ctx_->metrics.render();
    ctx_->storage.render(out);
    return out + ctx_->db->stats_text();
  }
  const node_settings& settings() const override { return ctx_->settings; }

 private:
  caf::actor_system& sys_;
  context_ptr ctx_;
  caf::actor router_;
  caf::actor supervisor_;
  caf::actor query_;
  caf::actor probe_;
  caf::actor retention_;  // only with storage.retention
  // Only with cluster.port:
  cluster_actor cluster_;
  owner_actor owner_;
  query_peer_actor query_peer_;
  caf::actor forwarder_;

 public:
  // Publishes the cluster actor (after the owner endpoint exists: members
  // learn of it from this node's member_info). False, `error` set, if the
  // port cannot be opened.
  bool start_cluster(std::string& error) {
    cluster_ = spawn_cluster(sys_, ctx_, error);
    return static_cast<bool>(cluster_);
  }
};

}  // namespace

std::unique_ptr<bridge> bridge::start(caf::actor_system& sys, const node_settings& settings,
                                      std::string& error) {
  auto ctx = std::make_shared<node_context>();
  ctx->settings = settings;
  // In a cluster the forwarder is one more slot after the shards (never down).
  ctx->init_shards(settings.shards + (settings.cluster.enabled() ? 1 : 0));
  storage::status st;
  storage::store_options so;
  so.path = settings.storage_path;
  so.sync = settings.storage_sync;
  so.wal_recovery = settings.storage_wal_recovery;
  so.cache_bytes = settings.storage_cache_bytes;
  if (settings.fault_injection) so.faults = ctx->faults = std::make_shared<storage::fault_injector>();
  ctx->db = storage::store::open(so, st);
  if (!ctx->db) {
    error = "cannot open storage at " + settings.storage_path + ": " + st.message;
    return nullptr;
  }
  {
    // Whatever the head logs of the last run hold (acked, not yet in chunks)
    // is checkpointed before the shards start, whatever storage.shards was then.
    auto t0 = std::chrono::steady_clock::now();
    storage::batcher all(*ctx->db, 0, {}, true);
    std::size_t replayed = 0;
    st = all.recover(replayed);
    if (!st) {
      error = "cannot replay the head log at " + settings.storage_path + ": " + st.message;
      return nullptr;
    }
    if (replayed > 0)
      spdlog::info("storage: replayed {} readings from the head log in {} ms", replayed,
                   std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - t0).count());
  }
  member_info self;
  self.name = settings.node_name;
  self.host = settings.cluster.address;
  self.port = settings.cluster.port;
  self.shards = static_cast<std::uint32_t>(settings.shards);
  ctx->set_live_members({self});
  auto b = std::make_unique<actor_bridge>(sys, std::move(ctx));
  if (settings.cluster.enabled() && !b->start_cluster(error)) {
    b->shutdown(std::chrono::seconds(10));
    return nullptr;
  }
  return b;
}

}  // namespace pulse
