#pragma once
// What crosses nodes in a cluster: the message types (registered with CAF by
// add_cluster_types, so that they arrive whole on the other side: an
// unregistered type arrives as an empty message in CAF 0.17) and the typed
// interface of the actor each node publishes on cluster.port.
//
// Membership (actors/cluster.cpp): every node publishes its cluster actor
// with CAF's middleman, connects to cluster.seeds, and then exchanges
// heartbeats with every member it knows. A heartbeat carries the sender's
// member list (gossip), so a node that joined through one seed learns every
// other member and connects to it too. A member is down when its connection
// drops (CAF's down_msg for its proxy, at once on kill -9) or when it has not
// answered a heartbeat for cluster.heartbeat-timeout (a hung or partitioned
// node); the others then try to reach it again with exponential backoff.

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <caf/fwd.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "actors/atoms.hpp"
#include "actors/bridge.hpp"
#include "storage/model.hpp"

namespace pulse {

// CAF inspection: readings cross nodes on their way to their owner.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, sample& x) {
  return f(caf::meta::type_name("sample"), x.metric, x.value);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, reading_row& x) {
  return f(caf::meta::type_name("reading_row"), x.ts, x.seq, x.first, x.count, x.has_seq);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, reading_batch& x) {
  return f(caf::meta::type_name("reading_batch"), x.device, x.metrics, x.rows, x.samples,
           x.meta);
}

// Durable up to seq, per device (cumulative).
using ack_list = std::vector<std::pair<std::string, std::uint64_t>>;

// Each node's owner endpoint: writes readings of the devices it owns into
// its shards, and answers for their last_seq (actors/owner.cpp).
//   <- (write_atom, std::vector<reading_batch>) -> ack_list   once durable
//   <- (last_seq_atom, std::string device) -> uint64_t
//   local only (its write window and the router):
//   <- (ack_atom, uint64_t shard, ack_list, uint64_t ticket)
//   <- (reject_atom, std::string device, uint64_t count, std::string why)
//   <- (refuse_atom, uint64_t shard, std::string why)
//   <- (shard_up_atom, uint64_t shard, caf::actor)
//   <- (shard_down_atom, uint64_t shard)     left down past supervisor.max-restarts
//   <- (stop_atom) -> bool
using owner_actor =
  caf::typed_actor<caf::replies_to<write_atom, std::vector<reading_batch>>::with<ack_list>,
                   caf::replies_to<last_seq_atom, std::string>::with<std::uint64_t>,
                   caf::reacts_to<ack_atom, std::uint64_t, ack_list, std::uint64_t>,
                   caf::reacts_to<reject_atom, std::string, std::uint64_t, std::string>,
                   caf::reacts_to<refuse_atom, std::uint64_t, std::string>,
                   caf::reacts_to<shard_up_atom, std::uint64_t, caf::actor>,
                   caf::reacts_to<shard_down_atom, std::uint64_t>,
                   caf::replies_to<stop_atom>::with<bool>>;

// Each node's query endpoint: answers a GET of the query API from its own
// store; coordinators send it the partials=1 form (actors/query.cpp).
//   <- (query_atom, std::string target) -> (int32_t status, std::string body)
using query_peer_actor =
  caf::typed_actor<caf::replies_to<query_atom, std::string>::with<std::int32_t, std::string>>;

// The newest reading of a device, as the hub keeps and pushes it; and each node's hub, as the other members see it: latest values of devices
// another member owns, for this node's subscribers (actors/hub.cpp).
//   <- (update_atom, std::vector<latest_value>)
struct latest_value {
  std::string device;
  std::int64_t ts = 0;
  std::int64_t received_ms = 0;  // server receive time, for latency_ms
  std::vector<std::pair<std::string, double>> values;
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, latest_value& x) {
  return f(caf::meta::type_name("latest_value"), x.device, x.ts, x.received_ms, x.values);
}

using peer_hub_actor = caf::typed_actor<caf::reacts_to<update_atom, std::vector<latest_value>>>;

// One node as the others know it.
struct member_info {
  std::string name;          // node.name, unique in the cluster
  std::string host;          // where its cluster actor is published (cluster.address)
  std::uint16_t port = 0;    // cluster.port
  std::string http;          // address:port of its HTTP/WebSocket listener ("" until it listens)
  std::uint64_t incarnation = 0;  // start time (ms): a restarted node has a higher one
  std::uint32_t shards = 0;       // storage.shards
  owner_actor owner;              // its owner endpoint
  query_peer_actor query;         // its query endpoint
  peer_hub_actor hub;             // its hub
  std::uint32_t subscribers = 0;  // sessions subscribed there (updates are sent only then)
  std::uint64_t name_hash = 0;    // device_hash(name), for routing (not sent)
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, member_info& x) {
  return f(caf::meta::type_name("pulse::member_info"), x.name, x.host, x.port, x.http,
           x.incarnation, x.shards, x.owner, x.query, x.hub, x.subscribers);
}
// Gossip: the sender first, then every member it holds up.
using member_list = std::vector<member_info>;

// One member as this node sees it (GET /api/v1/cluster).
struct member_status {
  member_info info;
  std::string state;              // self, up, down, joining
  std::int64_t since_ms = 0;      // wall clock of the last change of state
  std::int64_t heard_ms_ago = -1; // since the last heartbeat answer (-1: never)
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, member_status& x) {
  return f(caf::meta::type_name("pulse::member_status"), x.info, x.state, x.since_ms,
           x.heard_ms_ago);
}
using cluster_view = std::vector<member_status>;

// The actor a node publishes on cluster.port.
//   <- (heartbeat_atom, member_list) -> member_list   a peer's view (first: the
//        peer itself) for ours; also how a node joins
//   <- (members_atom) -> cluster_view                  local: GET /api/v1/cluster
//   <- (listening_atom, std::string http)              local: the HTTP listener is up
//   <- (tick_atom)                                     local: heartbeat/reconnect timer
using cluster_actor =
  caf::typed_actor<caf::replies_to<heartbeat_atom, member_list>::with<member_list>,
                   caf::replies_to<members_atom>::with<cluster_view>,
                   caf::reacts_to<listening_atom, std::string>,
                   caf::reacts_to<caf::tick_atom>>;

// Registers every type above with CAF; called in the config's constructor
// (the names are the wire identity: the same on every node).
void add_cluster_types(caf::actor_system_config& cfg);

}  // namespace pulse
