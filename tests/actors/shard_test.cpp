// The shard actor against a real RocksDB in a temp dir: flush policy (size
// and time), acks after the write, dedupe, last_seq, restarts and resends.

#include <catch2/catch.hpp>

#include <thread>

#include <caf/all.hpp>

#include "actors/actors.hpp"
#include "actors/atoms.hpp"
#include "storage/query.hpp"
#include "tests/support/process.hpp"

using namespace pulse;
using namespace std::chrono_literals;

namespace {

reading_batch make_batch(const std::string& device, std::uint64_t first_seq, std::size_t n) {
  reading_batch b;
  b.device = device;
  b.metrics = {"v"};
  for (std::size_t i = 0; i < n; ++i) {
    reading_row r;
    r.ts = 1731801600000 + static_cast<std::int64_t>(first_seq + i) * 1000;
    r.seq = first_seq + i;
    r.has_seq = true;
    r.first = static_cast<std::uint32_t>(b.samples.size());
    r.count = 1;
    b.rows.push_back(r);
    b.samples.push_back({0, static_cast<double>(first_seq + i)});
  }
  return b;
}


// The router's current shard table.
std::vector<caf::actor> shard_table(caf::scoped_actor& self, const caf::actor& router) {
  std::vector<caf::actor> out;
  self->request(router, 5s, shards_atom::value)
    .receive([&](std::vector<caf::actor>& s) { out = std::move(s); },
             [](caf::error& e) { FAIL(caf::to_string(e)); });
  return out;
}

struct fixture {
  test::temp_dir dir;
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  context_ptr ctx = std::make_shared<node_context>();

  explicit fixture(std::size_t max_readings, std::chrono::milliseconds max_delay,
                   std::size_t max_pending = 1000000) {
    ctx->init_shards(4);
    ctx->settings.batch_max_readings = max_readings;
    ctx->settings.batch_max_delay = max_delay;
    ctx->settings.batch_max_pending = max_pending;
    storage::status st;
    ctx->db = storage::store::open({dir.path() + "/db", false}, st);
    REQUIRE(ctx->db);
  }
  ~fixture() { ctx->hub = nullptr; }
  writer_ptr writer;  // the test's scoped actor, as one writer
};

// Sends like a session: (write_atom, ticket, batch, writer); the acks come
// back to `self` as (ack_atom, ...) messages.
void write(fixture& f, caf::scoped_actor& self, const caf::actor& shard, std::uint64_t ticket,
           reading_batch b) {
  if (!f.writer) f.writer = make_actor_writer(caf::actor_cast<caf::actor>(self));
  self->send(shard, write_atom::value, ticket, std::move(b), f.writer);
}

}  // namespace

TEST_CASE("a shard flushes when batch.max-readings is reached, and acks after the write") {
  fixture f{3, 10s};
  auto shard = spawn_shard(f.sys, f.ctx, 0);
  caf::scoped_actor self{f.sys};
  write(f, self, shard, 1, make_batch("d", 1, 2));
  bool acked = false;
  self->receive([&](ack_atom, std::uint64_t, ack_list&, std::uint64_t) { acked = true; },
                caf::after(std::chrono::milliseconds(300)) >> [] {});
  CHECK_FALSE(acked);  // 2 < 3 readings and the delay is 10 s: still buffered
  write(f, self, shard, 2, make_batch("d", 3, 1));
  self->receive(
    [&](ack_atom, std::uint64_t index, ack_list& acks, std::uint64_t ticket) {
      CHECK(index == 0);
      CHECK(ticket == 2);  // both writes are done
      REQUIRE(acks.size() == 1);
      CHECK(acks[0] == std::make_pair(std::string{"d"}, std::uint64_t{3}));
      storage::status st;
      auto rec = f.ctx->db->load_device("d", st);
      REQUIRE(rec);
      CHECK(rec->last_seq == 3);  // durable before the ack
    },
    caf::after(std::chrono::seconds(5)) >> [] { FAIL("no ack"); });
  self->send_exit(shard, caf::exit_reason::user_shutdown);
}

TEST_CASE("a shard flushes batch.max-delay after the first buffered reading") {
  fixture f{1000, 100ms};
  auto shard = spawn_shard(f.sys, f.ctx, 0);
  caf::scoped_actor self{f.sys};
  auto t0 = std::chrono::steady_clock::now();
  write(f, self, shard, 7, make_batch("d", 1, 1));
  self->receive([&](ack_atom, std::uint64_t, ack_list&, std::uint64_t ticket) { CHECK(ticket == 7); },
                caf::after(std::chrono::seconds(5)) >> [] { FAIL("no ack"); });
  auto waited = std::chrono::steady_clock::now() - t0;
  CHECK(waited >= 90ms);
  CHECK(waited < 3s);
  self->send_exit(shard, caf::exit_reason::user_shutdown);
}

TEST_CASE("duplicates are acked but not stored, last_seq answers what is durable") {
  fixture f{1, 10s};
  auto shard = spawn_shard(f.sys, f.ctx, 0);
  caf::scoped_actor self{f.sys};
  auto expect_ack = [&](std::uint64_t seq) {
    self->receive([&](ack_atom, std::uint64_t, ack_list& acks, std::uint64_t) {
                    REQUIRE(acks.size() == 1);
                    CHECK(acks[0].second == seq);
                  },
                  caf::after(std::chrono::seconds(5)) >> [] { FAIL("no ack"); });
  };
  write(f, self, shard, 1, make_batch("d", 1, 5));
  expect_ack(5);
  write(f, self, shard, 2, make_batch("d", 4, 1));
  expect_ack(4);
  self->request(shard, 5s, last_seq_atom::value, std::string{"d"})
    .receive([](std::uint64_t s) { CHECK(s == 5); }, [](caf::error& e) { FAIL(caf::to_string(e)); });
  storage::status st;
  auto rec = f.ctx->db->load_device("d", st);
  REQUIRE(rec);
  CHECK(rec->last_seq == 5);
  self->send_exit(shard, caf::exit_reason::user_shutdown);
}

TEST_CASE("a crashed shard loses only its buffer, the writer's resend stores every reading once") {
  fixture f{1000, 10s};  // nothing flushes by itself: stop or last_seq do
  f.ctx->settings.shards = 1;
  f.ctx->settings.fault_injection = true;
  auto router = spawn_router(f.sys, f.ctx);
  auto sup = spawn_supervisor(f.sys, f.ctx, router);
  caf::scoped_actor self{f.sys};
  auto table = [&] { return shard_table(self, router); };
  auto first = table().at(0);
  // 1..3 made durable (last_seq flushes first), 4..6 only buffered
  write(f, self, first, 1, make_batch("d", 1, 3));
  self->request(first, 5s, last_seq_atom::value, std::string{"d"})
    .receive([](std::uint64_t s) { CHECK(s == 3); }, [](caf::error& e) { FAIL(caf::to_string(e)); });
  self->receive([&](ack_atom, std::uint64_t, ack_list&, std::uint64_t ticket) { CHECK(ticket == 1); },
                caf::after(5s) >> [] { FAIL("no ack"); });
  write(f, self, first, 2, make_batch("d", 4, 3));
  self->request(sup, 5s, crash_atom::value, std::uint64_t{0})
    .receive([](bool ok) { CHECK(ok); }, [](caf::error& e) { FAIL(caf::to_string(e)); });
  caf::actor second;
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < deadline && (!second || second == first)) {
    second = table().at(0);
    std::this_thread::sleep_for(10ms);
  }
  REQUIRE(second != first);
  CHECK(f.ctx->metrics.shard_restarts.load() == 1);
  // the writer resends everything unacked, here both writes (the first one
  // again on purpose: a resend of what is stored must not store it twice)
  write(f, self, second, 1, make_batch("d", 1, 3));
  write(f, self, second, 2, make_batch("d", 4, 3));
  self->send(second, stop_atom::value);
  self->receive(
    [&](ack_atom, std::uint64_t, ack_list& acks, std::uint64_t ticket) {
      CHECK(ticket == 2);
      REQUIRE(acks.size() == 1);
      CHECK(acks[0].second == 6);
    },
    caf::after(5s) >> [] { FAIL("no ack from the restarted shard"); });
  storage::status st;
  auto rec = f.ctx->db->load_device("d", st);
  REQUIRE(rec);
  CHECK(rec->last_seq == 6);
  std::string next;
  auto rows = storage::read_readings(*f.ctx->db, "d", 0, INT64_MAX, 100, "", next, st);
  CHECK(rows.size() == 6);
  self->send_exit(sup, caf::exit_reason::user_shutdown);
  self->send_exit(router, caf::exit_reason::user_shutdown);
}

TEST_CASE("crash requests are refused when fault injection is off") {
  fixture f{1000, 10s};
  f.ctx->settings.shards = 1;
  auto router = spawn_router(f.sys, f.ctx);
  auto sup = spawn_supervisor(f.sys, f.ctx, router);
  caf::scoped_actor self{f.sys};
  self->request(sup, 5s, crash_atom::value, std::uint64_t{0})
    .receive([](bool ok) { CHECK_FALSE(ok); }, [](caf::error& e) { FAIL(caf::to_string(e)); });
  self->request(sup, 5s, stop_atom::value)
    .receive([](bool ok) { CHECK(ok); }, [](caf::error& e) { FAIL(caf::to_string(e)); });
  CHECK(f.ctx->metrics.shard_restarts.load() == 0);
  self->send_exit(router, caf::exit_reason::user_shutdown);
}

TEST_CASE("the supervisor restarts a killed shard, and marks the node unhealthy past max-restarts") {
  fixture f{1, 10s};
  f.ctx->settings.shards = 2;
  f.ctx->settings.supervisor_max_restarts = 1;
  auto router = spawn_router(f.sys, f.ctx);
  auto sup = spawn_supervisor(f.sys, f.ctx, router);
  caf::scoped_actor self{f.sys};
  auto table = [&] { return shard_table(self, router); };
  auto wait_for_new = [&](const caf::actor& old) {
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto t = table();
      if (t.at(0) != old) return t.at(0);
      std::this_thread::sleep_for(10ms);
    }
    FAIL("shard 0 was not restarted");
    return caf::actor{};
  };
  auto first = table().at(0);
  self->send_exit(first, caf::exit_reason::kill);
  auto second = wait_for_new(first);
  CHECK(f.ctx->metrics.shard_restarts.load() == 1);
  CHECK(f.ctx->healthy.load());
  // the new instance takes writes and acks them
  write(f, self, second, 1, make_batch("d", 1, 1));
  self->receive([&](ack_atom, std::uint64_t, ack_list&, std::uint64_t ticket) { CHECK(ticket == 1); },
                caf::after(std::chrono::seconds(5)) >> [] { FAIL("no ack from the restarted shard"); });
  // a second death within the window is one too many: unhealthy, not restarted again
  self->send_exit(second, caf::exit_reason::kill);
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (f.ctx->healthy.load() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  CHECK_FALSE(f.ctx->healthy.load());
  CHECK(f.ctx->metrics.shard_restarts.load() == 1);
  // stopping still completes with a shard left down
  self->request(sup, 5s, stop_atom::value)
    .receive([](bool ok) { CHECK(ok); }, [](caf::error& e) { FAIL(caf::to_string(e)); });
  self->send_exit(router, caf::exit_reason::user_shutdown);
}
