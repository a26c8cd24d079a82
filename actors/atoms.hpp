#pragma once
// Pulse's message tags, in one place (CAF 0.17 atoms: at most 10 characters).

#include <caf/atom.hpp>

namespace pulse {

using write_atom = caf::atom_constant<caf::atom("write")>;        // readings for a shard
using ack_atom = caf::atom_constant<caf::atom("ack")>;            // durable: shard -> session
using reject_atom = caf::atom_constant<caf::atom("reject")>;      // not taken: shard -> POST (actor writer)
using refuse_atom = caf::atom_constant<caf::atom("refuse")>;      // storage refuses writes: shard -> POST
using flush_atom = caf::atom_constant<caf::atom("pflush")>;       // shard timer
using checkpoint_atom = caf::atom_constant<caf::atom("checkpt")>; // shard: write the head out
using closed_atom = caf::atom_constant<caf::atom("closed")>;      // socket gone -> session
using last_seq_atom = caf::atom_constant<caf::atom("lastseq")>;   // ask a shard for a device's last_seq
using shards_atom = caf::atom_constant<caf::atom("shards")>;      // shard table (router)
using shard_up_atom = caf::atom_constant<caf::atom("shardup")>;   // a shard (re)started
using shard_down_atom = caf::atom_constant<caf::atom("shardown")>; // a shard left down for good
using join_atom = caf::atom_constant<caf::atom("join")>;          // register with router / hub
using leave_atom = caf::atom_constant<caf::atom("leave")>;        // unregister
using query_atom = caf::atom_constant<caf::atom("query")>;        // HTTP GET for the query actor
using post_atom = caf::atom_constant<caf::atom("post")>;          // HTTP POST of readings
using publish_atom = caf::atom_constant<caf::atom("publish")>;    // latest values -> hub
using subscribe_atom = caf::atom_constant<caf::atom("subscr")>;   // session -> hub
using unsubscribe_atom = caf::atom_constant<caf::atom("unsubscr")>;
using update_atom = caf::atom_constant<caf::atom("update")>;      // hub -> session
using stop_atom = caf::atom_constant<caf::atom("stop")>;          // orderly shutdown
using crash_atom = caf::atom_constant<caf::atom("crash")>;        // fault injection: a shard throws
using timeout_atom = caf::atom_constant<caf::atom("timeout")>;    // a deadline passed
using retry_atom = caf::atom_constant<caf::atom("retry")>;        // a session asks again (hello)
using inbox_atom = caf::atom_constant<caf::atom("inbox")>;        // writers -> shard: items wait
using hello_atom = caf::atom_constant<caf::atom("hello")>;        // ingest path -> session actor
using retention_atom = caf::atom_constant<caf::atom("retention")>; // drop expired buckets now
using heartbeat_atom = caf::atom_constant<caf::atom("heartbeat")>; // cluster: gossip + liveness
using members_atom = caf::atom_constant<caf::atom("members")>;     // cluster: the member view
using listening_atom = caf::atom_constant<caf::atom("listening")>; // cluster: HTTP listener is up

}  // namespace pulse
