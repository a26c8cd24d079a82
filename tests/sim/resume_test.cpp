// Tests of pulse-sim's reconnect pieces that need no node: the backoff with
// full jitter, how a welcome's last_seq settles frames in flight, and reading
// the node's welcome and close codes.

#include <catch2/catch.hpp>
#include <random>

#include "sim/server_message.hpp"
#include "sim/sim.hpp"

using namespace pulse::sim;
using std::chrono::milliseconds;

TEST_CASE("backoff ceiling doubles from reconnect-min and stops at reconnect-max") {
  milliseconds min{100}, max{5000};
  CHECK(backoff_ceiling(0, min, max) == milliseconds(100));
  CHECK(backoff_ceiling(1, min, max) == milliseconds(200));
  CHECK(backoff_ceiling(5, min, max) == milliseconds(3200));
  CHECK(backoff_ceiling(6, min, max) == milliseconds(5000));
  CHECK(backoff_ceiling(1000, min, max) == milliseconds(5000));  // no overflow
}

TEST_CASE("backoff delay is spread over [0, ceiling] (full jitter)") {
  std::minstd_rand rng{42};
  milliseconds min{100}, max{5000};
  for (std::size_t attempt : {0u, 3u, 10u}) {
    auto ceiling = backoff_ceiling(attempt, min, max);
    milliseconds lo = ceiling, hi{0};
    for (int i = 0; i < 2000; ++i) {
      auto d = backoff_delay(attempt, min, max, rng);
      REQUIRE(d >= milliseconds(0));
      REQUIRE(d <= ceiling);
      lo = std::min(lo, d);
      hi = std::max(hi, d);
    }
    INFO("attempt " << attempt << " ceiling " << ceiling.count() << " ms");
    // Full jitter reaches both ends; "equal jitter" would never go below ceiling / 2.
    CHECK(lo <= ceiling / 10);
    CHECK(hi >= ceiling * 9 / 10);
  }
}

TEST_CASE("a welcome settles meter frames: stored, resent, or renumbered") {
  // Plain frames: stored when the node holds their last seq, else resent
  // (a partly stored frame is resent whole; the node skips what it has).
  CHECK(resume_frame(1, 10, false, 10) == resume_action::stored);
  CHECK(resume_frame(1, 10, false, 25) == resume_action::stored);
  CHECK(resume_frame(11, 20, false, 10) == resume_action::resend);
  CHECK(resume_frame(1, 10, false, 5) == resume_action::resend);
  // Refused frames: resent as they were while nothing at or past them is
  // stored; once later seqs are, their old seqs would count as duplicates.
  CHECK(resume_frame(11, 20, true, 10) == resume_action::resend);
  CHECK(resume_frame(11, 20, true, 30) == resume_action::renumber);
  CHECK(resume_frame(11, 20, true, 11) == resume_action::renumber);
}

TEST_CASE("replay frames without seq are stored when last_seq moved past them") {
  std::vector<reading_seq> ocpp(3);  // three readings, seqs left to the node
  CHECK(last_seq_after(0, ocpp) == 3);
  CHECK(last_seq_after(41, ocpp) == 44);
  // given seqs: the highest counts; one at or below the node's is a duplicate
  std::vector<reading_seq> given = {{true, 7}, {true, 9}};
  CHECK(last_seq_after(3, given) == 9);
  CHECK(last_seq_after(12, given) == 12);
  // mixed, in frame order, as the node assigns them
  std::vector<reading_seq> mixed = {{true, 10}, {false, 0}, {true, 5}};
  CHECK(last_seq_after(2, mixed) == 11);
  CHECK(last_seq_after(5, {}) == 5);
}

TEST_CASE("the simulator reads welcome, ack and overloaded errors with seq") {
  auto w = parse_server_message(R"({"welcome":{"node":"n","device":"m-1","last_seq":41}})");
  CHECK(w.kind == server_message::welcome);
  CHECK(w.device == "m-1");
  CHECK(w.seq == 41);
  auto e = parse_server_message(
      R"({"error":{"code":"overloaded","message":"shard is over batch.max-pending","seq":17}})");
  CHECK(e.kind == server_message::error);
  CHECK(e.code == "overloaded");
  CHECK(e.has_seq);
  CHECK(e.seq == 17);
  auto a = parse_server_message(R"({"ack":{"device":"m-1","seq":42}})");
  CHECK(a.kind == server_message::ack);
  CHECK(a.seq == 42);
  CHECK(parse_server_message("{oops").kind == server_message::malformed);
}

TEST_CASE("close causes: the server's code, our own close, or a lost connection") {
  CHECK(close_cause("closed by server: 1013 overloaded") == "1013");
  CHECK(close_cause("closed by server: 1001") == "1001");
  CHECK(close_cause("closed by client") == "client");
  CHECK(close_cause("read: Connection reset by peer") == "lost");
  CHECK(close_cause("connect: Connection refused") == "lost");
  CHECK(close_cause("closed by server: ") == "lost");
}
