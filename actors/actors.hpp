#pragma once
// The actor vocabulary of a node: who exists, what each accepts, how they are
// spawned. Message tags live in actors/atoms.hpp.
//
//   session  (one per WebSocket; scheduler thread). Readings do not pass
//     through it: the connection's ingest path (session.cpp) parses frames on
//     the socket's strand, sends readings to the shards and gets their acks
//     (shard_writer) on that strand. The actor does the rest:
//     <- (hello_atom, device)                 answer with a welcome (asks the shard)
//     <- (subscribe_atom, patterns)           register with the hub, then the snapshot
//     <- (unsubscribe_atom, patterns)
//     <- (closed_atom)                        socket gone
//     <- (shard_up_atom, uint64_t, actor)     router: shard n restarted; the ingest path resends
//     <- (shard_down_atom, uint64_t)          router: shard n is down for good; what this
//                                             connection has unacked there is refused (1013)
//     <- (stop_atom) -> bool                  node stopping
//   shard    (one per storage.shards; detached thread, blocks on RocksDB)
//     Readings come through its shard_inbox (actors/inbox.hpp):
//     <- (inbox_atom, bool now)               items wait: drain at the next flush (or now)
//     <- (write_atom, ticket, reading_batch, writer_ptr)   the same for one batch, directly
//     After the flush: writer->acked(); writer->rejected() for what storage cannot hold.
//     <- (last_seq_atom, std::string) -> uint64_t   flushes first, then answers
//     <- (flush_atom, uint64_t generation)    batch.max-delay timer
//     <- (crash_atom)                         fault injection: throws
//     <- (stop_atom)                          flush and quit
//     A flush that fails on a storage fault (full disk, I/O error) marks
//     storage unwritable (ctx->storage) and refuses its writers
//     (writer->refused(): storage_unavailable, close 1013 / HTTP 503); the
//     shard stays up, refusing writes until the storage probe finds the disk
//     taking writes again. Any other failed flush takes the shard down: the
//     supervisor restarts it and the writers resend their windows.
//   supervisor  spawns and monitors shards, restarts them, tells the router;
//     past supervisor.max-restarts it leaves the shard down, marks the node
//     unhealthy and the shard down (ctx->shard_down), and tells the router
//     <- (stop_atom) -> bool                  stop every shard after its last flush
//     <- (shards_atom) -> bool                whether the node is healthy
//     <- (crash_atom, uint64_t n) -> bool     fault injection: crash shard n
//   router   shard table; pushes changes to the writers that joined
//     <- (shards_atom, std::vector<actor>)    supervisor: the initial table
//     <- (shards_atom) -> std::vector<actor>  current table
//     <- (shard_up_atom, uint64_t, actor)     supervisor: a restarted shard
//     <- (shard_down_atom, uint64_t)          supervisor: a shard left down; told to every writer
//     <- (join_atom, actor)                   a session or ingest wants table updates
//     <- (stop_atom) -> bool                  asks every joined session (stop_atom), then answers
//   hub      live values: latest per device, subscriptions, pushes
//     <- (subscribe_atom, patterns)           from a session
//     <- (unsubscribe_atom, patterns)
//     <- (publish_atom, std::vector<latest_value>)   shard, after a flush
//     -> session: (update_atom, std::string)   a snapshot or update frame, ready to send
//   retention (detached; only with storage.retention)
//     <- (retention_atom)                     a pass, then again in a minute
//     <- (retention_atom, http_callback)      a pass now (POST /admin/clock)
//   cluster  (only with cluster.port; actors/cluster.hpp has its typed interface,
//     which is what other nodes see) membership: heartbeats, gossip, reconnects
//   query    (detached; reads RocksDB)
//     <- (query_atom, http_request, http_callback)   runs the GET on a detached worker;
//                                             answers 503 if query.timeout passes first
//     <- (timeout_atom, uint64_t id)          that GET's deadline
//     <- (subscribe_atom, patterns, actor session)  -> session: (update_atom, snapshot frame)

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/fwd.hpp>
#include <caf/meta/type_name.hpp>

#include "actors/bridge.hpp"
#include "actors/cluster.hpp"
#include "actors/inbox.hpp"
#include "actors/metrics.hpp"
#include "actors/routing.hpp"
#include "actors/storage_guard.hpp"
#include "storage/model.hpp"
#include "storage/store.hpp"

namespace pulse {

class write_window;

// Who a shard answers for the readings it was sent: a WebSocket connection's
// ingest path or a POST. Called from the shard's thread; implementations only
// hand the answer on (post to a strand, send to an actor), never block.
class shard_writer {
 public:
  virtual ~shard_writer() = default;
  // Shard `shard` has done this writer's writes up to `ticket`; `acks` are
  // durable (cumulative per device).
  virtual void acked(std::uint64_t shard, ack_list acks, std::uint64_t ticket) = 0;
  // `count` readings of `device` are outside what storage can hold.
  virtual void rejected(std::string device, std::uint64_t count, std::string why) = 0;
  // Storage cannot take writes now (a full disk, I/O errors): nothing this
  // writer has unacked at `shard` was stored, and the shard dropped it.
  virtual void refused(std::uint64_t shard, std::string why) = 0;
};
using writer_ptr = std::shared_ptr<shard_writer>;

// A writer that forwards to an actor as (ack_atom, shard, acks, ticket),
// (reject_atom, device, count, why) and (refuse_atom, shard, why). Holds the
// actor weakly.
writer_ptr make_actor_writer(const caf::actor& a);

// Devices with an open session, for `online` in /api/v1/devices.
class online_registry {
 public:
  void add(const std::string& device);
  void remove(const std::string& device);
  bool contains(std::string_view device) const;

 private:
  mutable std::mutex mtx_;
  std::unordered_map<std::string, int> count_;
};

// What every actor of a node shares. Created by the bridge before any actor,
// destroyed after the last one.
struct node_context {
  node_settings settings;
  std::unique_ptr<storage::store> db;
  std::shared_ptr<storage::fault_injector> faults;  // debug.fault-injection only
  node_metrics metrics;
  storage_guard storage;  // whether storage takes writes now
  online_registry online;
  std::atomic<bool> healthy{true};
  std::atomic<std::size_t> shards_up{0};
  std::atomic<std::size_t> subscribers{0};  // sessions with subscriptions (hub)
  // Per shard: readings writers have sent it and not yet seen answered (the
  // writers keep it: + on send, - on ack or when they stop). Admission checks
  // it against batch.max-pending, so a shard's mailbox cannot grow unbounded.
  std::unique_ptr<std::atomic<std::uint64_t>[]> shard_load;
  // Per shard: where writers put readings for it (actors/inbox.hpp).
  std::unique_ptr<shard_inbox[]> inboxes;
  // Per shard: set (never cleared) when the supervisor leaves the shard down
  // past supervisor.max-restarts. Admission refuses readings for it
  // (overloaded: 1013 / 503) instead of queueing them where nobody answers.
  std::unique_ptr<std::atomic<bool>[]> shard_down;
  // Allocates the per-shard tables above for `shards` shards (once, before
  // any actor exists).
  void init_shards(std::size_t shards);
  // Set when the node starts to stop: connections take no more readings.
  std::atomic<bool> stopping{false};
  // Set once by the bridge before any session or shard exists and never
  // changed after: sessions and shards read them from their own threads
  // until the very end (resetting them at shutdown was a data race). The
  // actors' states are gone once they exit, so these handles hold no cycle.
  caf::actor hub;
  caf::actor query;
  // Added to the system clock: the node's notion of now (retention, relative
  // query times). Only POST /admin/clock (debug.fault-injection) moves it.
  std::atomic<std::int64_t> clock_offset_ms{0};
  std::int64_t now() const;

  // Cluster (cluster.port set): whether this node has reached a member
  // (/readyz), and the members up now, this node first. Written by the
  // cluster actor only; true and just this node without a cluster.
  std::atomic<bool> cluster_joined{true};
  // Sessions subscribed on the other live members (their hubs get this
  // node's latest values only while it is above 0).
  std::atomic<std::uint64_t> peer_subscribers{0};
  void set_live_members(std::vector<member_info> members);
  std::shared_ptr<const std::vector<member_info>> live_members() const;
  // Members known and not up now (down or not reached yet), by name.
  void set_down_members(std::vector<std::string> names);
  std::shared_ptr<const std::vector<std::string>> down_members() const;

 private:
  mutable std::mutex members_mtx_;
  std::shared_ptr<const std::vector<std::string>> down_ =
    std::make_shared<const std::vector<std::string>>();
  std::shared_ptr<const std::vector<member_info>> members_ =
    std::make_shared<const std::vector<member_info>>();
};
using context_ptr = std::shared_ptr<node_context>;

// Where a writer puts a device's readings: its shard (single node: shard_of,
// as it always was), or in a cluster the device's shard here when this node
// owns it, else the forwarder's slot (index storage.shards), which sends it
// on to its owner. In a cluster, a device with readings still unacked in the
// writer's window goes where those went (write_window::slot_of), whoever
// owns it now. With cluster.replicas above 1 every reading goes to the
// forwarder, which writes it on each of its replicas (this node's owner
// endpoint among them). Takes the member list once: make one per frame or body.
class slot_router {
 public:
  slot_router(const node_context& ctx, const write_window& window)
      : shards_(ctx.settings.shards),
        replicated_(ctx.settings.cluster.replicas > 1),
        window_(window) {
    if (ctx.settings.cluster.enabled()) members_ = ctx.live_members();
  }
  std::size_t operator()(const std::string& device) const;

 private:
  std::size_t shards_;
  bool replicated_;
  const write_window& window_;
  std::shared_ptr<const std::vector<member_info>> members_;
};

// Spawners (the state types are private to each actor's .cpp).
caf::actor spawn_shard(caf::actor_system& sys, context_ptr ctx, std::size_t index);
caf::actor spawn_supervisor(caf::actor_system& sys, context_ptr ctx, caf::actor router);
// `forwarder` (cluster only, else null) is appended to the shard table.
caf::actor spawn_router(caf::actor_system& sys, context_ptr ctx, caf::actor forwarder = {});
// A WebSocket connection's session: its ingest path and its actor.
std::unique_ptr<bridge::session> open_session(caf::actor_system& sys, context_ptr ctx,
                                              std::shared_ptr<session_sink> sink,
                                              caf::actor router, std::string peer);
caf::actor spawn_query(caf::actor_system& sys, context_ptr ctx);
// The cluster actor, published on cluster.port; null (and `error` set) if
// the port cannot be opened.
cluster_actor spawn_cluster(caf::actor_system& sys, context_ptr ctx, std::string& error);
// Cluster only: the owner endpoint (writes for devices this node owns) and
// the forwarder (drains the forward slot's inbox towards the owners).
owner_actor spawn_owner(caf::actor_system& sys, context_ptr ctx, caf::actor router);
// Cluster only: answers other members' partial queries from this node's store.
query_peer_actor spawn_query_peer(caf::actor_system& sys, context_ptr ctx);
caf::actor spawn_forwarder(caf::actor_system& sys, context_ptr ctx);
// The body of GET /api/v1/cluster (docs/api.md).
std::string render_cluster(const cluster_view& view, const node_context& ctx);
caf::actor spawn_hub(caf::actor_system& sys, context_ptr ctx);
// Checks free space and brings storage back after a fault (storage_guard.hpp).
caf::actor spawn_storage_probe(caf::actor_system& sys, context_ptr ctx);
// POST /api/v1/readings (JSON) or /write, /api/v2/write (line protocol).
void spawn_ingest(caf::actor_system& sys, context_ptr ctx, caf::actor router, http_request req,
                  std::optional<auth::grant> writer, http_callback done);
// The retention actor (detached): drops expired buckets once a minute;
// (retention_atom, http_callback) runs a pass now and answers with it.
caf::actor spawn_retention(caf::actor_system& sys, context_ptr ctx);
// POST /admin/clock?offset= (debug.fault-injection): moves ctx->now(), then a
// retention pass (when `retention` is set) answers `done`.
void handle_clock(context_ptr ctx, caf::actor retention, const std::string& target,
                  http_callback done);
// POST /admin/backup on a detached actor of its own (the checkpoint blocks).
void spawn_backup(caf::actor_system& sys, context_ptr ctx, http_request req, http_callback done);

std::int64_t now_ms();

// Appends `"device":{"timestamp":ts,"metric":value,...}` (+ `"latency_ms"` when
// latency_ms >= 0): one entry of a snapshot or update frame.
void append_live_entry(std::string& out, const std::string& device, std::int64_t ts,
                       const std::vector<std::pair<std::string, double>>& values,
                       std::int64_t latency_ms);

}  // namespace pulse

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(pulse::http_callback)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(pulse::http_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(pulse::writer_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::optional<pulse::auth::grant>)
