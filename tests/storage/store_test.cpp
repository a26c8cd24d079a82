#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <random>

#include "storage/batcher.hpp"
#include "storage/keys.hpp"
#include "storage/meta.hpp"
#include "tests/storage/test_db.hpp"

using namespace pulse;
using namespace pulse::storage;
using namespace pulse::storage::test;

TEST_CASE("store opens, reopens and reports an unusable path", "[store]") {
  test_db t;
  CHECK(t.db().db() != nullptr);
  CHECK(t.db().readings_cf()->GetName() == "readings");
  CHECK(t.db().rollups_cf()->GetName() == "rollups");
  CHECK(t.db().meta_cf()->GetName() == "meta");
  CHECK_FALSE(t.db().sync());
  t.reopen();
  CHECK(t.db().meta_cf()->GetName() == "meta");

  status st;
  auto bad = store::open({"/proc/pulse-cannot-create-here/db", true}, st);
  CHECK(bad == nullptr);
  CHECK_FALSE(st.ok);
  CHECK_FALSE(st.message.empty());
}

TEST_CASE("store write honours the batch and load_device decodes meta", "[store]") {
  test_db t;
  meta_record rec;
  rec.last_seq = 42;
  rec.first_seen = 1000;
  rec.last_seen = 2000;
  rec.metrics = {"voltage", "current"};
  rec.meta = R"({"fw":"1.2"})";
  rec.earliest_ts = 5;
  rec.latest_ts = 77;
  rec.latest_seq = 42;
  rec.latest = {{1, 5.1}, {0, 230.4}};
  std::string v;
  encode_meta(rec, v);
  rocksdb::WriteBatch wb;
  REQUIRE(wb.Put(t.db().meta_cf(), meta_key("meter-7"), v).ok());
  REQUIRE(t.db().write(wb));

  status st;
  auto d = t.db().load_device("meter-7", st);
  REQUIRE(st);
  REQUIRE(d);
  CHECK(d->id == "meter-7");
  CHECK(d->last_seq == 42);
  CHECK(d->first_seen == 1000);
  CHECK(d->last_seen == 2000);
  CHECK(d->metrics == std::vector<std::string>{"voltage", "current"});
  CHECK(d->meta == R"({"fw":"1.2"})");
  CHECK(d->latest_ts == 77);
  REQUIRE(d->latest.size() == 2);
  CHECK(d->latest[0] == std::pair<std::string, double>{"current", 5.1});
  CHECK(d->latest[1] == std::pair<std::string, double>{"voltage", 230.4});

  CHECK_FALSE(t.db().load_device("nobody", st));
  CHECK(st);
  CHECK_FALSE(t.db().load_device("", st));
  CHECK(st);

  // A corrupt record is an error, not a silent "not found".
  rocksdb::WriteBatch bad;
  REQUIRE(bad.Put(t.db().meta_cf(), meta_key("broken"), "\x01\x05").ok());
  REQUIRE(t.db().write(bad));
  CHECK_FALSE(t.db().load_device("broken", st));
  CHECK_FALSE(st);
}

TEST_CASE("meta record decoder rejects garbage", "[store]") {
  meta_record rec;
  rec.last_seq = UINT64_MAX;
  rec.first_seen = -5;
  rec.last_seen = INT64_MAX;
  rec.metrics = {"a", "b.c"};
  rec.latest_ts = max_ts;
  rec.latest = {{1, -0.0}};
  std::string v;
  encode_meta(rec, v);
  meta_record out;
  REQUIRE(decode_meta(v, out));
  CHECK(out.last_seq == UINT64_MAX);
  CHECK(out.first_seen == -5);
  CHECK(out.last_seen == INT64_MAX);
  CHECK(out.metrics == rec.metrics);
  CHECK(out.latest_ts == max_ts);
  for (std::size_t n = 0; n < v.size(); ++n) CHECK_FALSE(decode_meta(v.substr(0, n), out));
  CHECK_FALSE(decode_meta(v + "x", out));
  auto bad_id = rec;
  bad_id.latest = {{2, 1.0}};  // outside the dictionary
  std::string e;
  encode_meta(bad_id, e);
  CHECK_FALSE(decode_meta(e, out));
  std::mt19937_64 rng(1);
  for (int i = 0; i < 20000; ++i) {
    std::string s = v;
    for (int f = 0; f < 2; ++f) s[rng() % s.size()] ^= static_cast<char>(1 << (rng() % 8));
    if (decode_meta(s, out))
      for (const auto& l : out.latest) CHECK(l.metric < out.metrics.size());
  }
}

TEST_CASE("meta summary (fleet queries) agrees with the full decoder and rejects garbage", "[store]") {
  meta_record rec;
  rec.last_seq = 42;
  rec.metrics = {"voltage", "current", "e.l1"};
  rec.meta = R"({"model":"x"})";
  rec.earliest_ts = 1000;
  rec.latest_ts = 5000;
  rec.latest = {{2, 1.5}};
  std::string v;
  encode_meta(rec, v);
  meta_summary sum;
  REQUIRE(decode_meta_summary(v, "e.l1", sum));
  CHECK(sum.found);
  CHECK(sum.id == 2);
  CHECK(sum.earliest_ts == 1000);
  CHECK(sum.latest_ts == 5000);
  REQUIRE(decode_meta_summary(v, "voltage", sum));
  CHECK(sum.id == 0);
  REQUIRE(decode_meta_summary(v, "power", sum));
  CHECK_FALSE(sum.found);
  // Truncations never read past the end; a record the summary accepts is
  // never one the full decoder calls malformed in the part the summary reads.
  for (std::size_t n = 0; n < v.size(); ++n) {
    decode_meta_summary(v.substr(0, n), "current", sum);
    meta_record out;
    if (decode_meta(v.substr(0, n), out)) CHECK(false);
  }
  std::mt19937_64 rng(2);
  meta_record out;
  for (int i = 0; i < 20000; ++i) {
    std::string s = v;
    for (int f = 0; f < 3; ++f) s[rng() % s.size()] ^= static_cast<char>(1 << (rng() % 8));
    bool full = decode_meta(s, out);
    bool skim = decode_meta_summary(s, "current", sum);
    if (full) {  // whatever the full decoder accepts, the summary reads the same way
      REQUIRE(skim);
      auto at = std::find(out.metrics.begin(), out.metrics.end(), "current");
      CHECK(sum.found == (at != out.metrics.end()));
      if (sum.found) CHECK(sum.id == static_cast<std::uint32_t>(at - out.metrics.begin()));
      CHECK(sum.earliest_ts == out.earliest_ts);
      CHECK(sum.latest_ts == out.latest_ts);
    }
  }
}

TEST_CASE("list_devices pages by id within a prefix", "[store]") {
  test_db t;
  batcher b(t.db());
  for (const char* d : {"meter-1", "meter-10", "meter-2", "battery:1:data", "host-a", "meter"}) {
    b.add(1, make_batch(d, {r(t0, 1, {{"v", 1.0}})}), 1000);
  }
  std::vector<ack_entry> acks;
  flush_stats fs;
  REQUIRE(b.flush(acks, fs));

  status st;
  auto all = t.db().list_devices("", "", 100, st);
  REQUIRE(st);
  std::vector<std::string> ids;
  for (auto& d : all) ids.push_back(d.id);
  CHECK(ids == std::vector<std::string>{"battery:1:data", "host-a", "meter", "meter-1", "meter-10",
                                        "meter-2"});

  auto p1 = t.db().list_devices("meter-", "", 2, st);
  REQUIRE(p1.size() == 2);
  CHECK(p1[0].id == "meter-1");
  CHECK(p1[1].id == "meter-10");
  CHECK(p1[0].last_seq == 1);
  auto p2 = t.db().list_devices("meter-", p1.back().id, 2, st);
  REQUIRE(p2.size() == 1);
  CHECK(p2[0].id == "meter-2");
  CHECK(t.db().list_devices("meter-", "meter-2", 2, st).empty());
  CHECK(t.db().list_devices("zzz", "", 10, st).empty());
  CHECK(t.db().list_devices("", "", 0, st).empty());
  // `after` below the prefix starts at the prefix.
  CHECK(t.db().list_devices("meter-", "a", 10, st).size() == 3);
}

TEST_CASE("stats_text reports per column family properties", "[store]") {
  test_db t;
  batcher b(t.db());
  b.add(1, make_batch("d", {r(t0, 1, {{"v", 1.0}})}), 1000);
  std::vector<ack_entry> acks;
  flush_stats fs;
  REQUIRE(b.flush(acks, fs));
  auto text = t.db().stats_text();
  CHECK(text.find("pulse_rocksdb_estimate_num_keys{cf=\"readings\"} ") != std::string::npos);
  CHECK(text.find("pulse_rocksdb_estimate_num_keys{cf=\"meta\"} 1\n") != std::string::npos);
  CHECK(text.find("pulse_rocksdb_memtable_bytes{cf=\"rollups\"} ") != std::string::npos);
}
