#pragma once
// Fixtures for the storage tests: a RocksDB store in a fresh directory under
// /tmp that is removed afterwards, and a builder for reading_batch.

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "storage/model.hpp"
#include "storage/store.hpp"

namespace pulse::storage::test {

// The bit pattern of a double: round trips must keep -0.0, NaN payloads and denormals exactly.
inline std::uint64_t bits(double d) {
  std::uint64_t b;
  std::memcpy(&b, &d, 8);
  return b;
}

class temp_dir {
 public:
  temp_dir() {
    std::string tmpl = "/tmp/pulse-storage-test-XXXXXX";
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A store in its own temp dir; reopen() closes and opens it again, as a
// restarted node would.
class test_db {
 public:
  test_db() { reopen(); }
  void reopen() {
    db_.reset();
    status st;
    db_ = store::open({dir_.path() + "/db", false}, st);
    if (!db_) throw std::runtime_error("open failed: " + st.message);
  }
  void close() { db_.reset(); }
  store& db() { return *db_; }
  const std::string& path() const { return dir_.path(); }

 private:
  temp_dir dir_;  // declared first: destroyed after the store is closed
  std::unique_ptr<store> db_;
};

struct reading_spec {
  std::int64_t ts;
  std::uint64_t seq;  // 0 with has_seq false: server-assigned
  bool has_seq;
  std::vector<std::pair<std::string, double>> values;
};

inline reading_spec r(std::int64_t ts, std::uint64_t seq,
                      std::vector<std::pair<std::string, double>> values) {
  return {ts, seq, true, std::move(values)};
}

inline reading_spec r_noseq(std::int64_t ts, std::vector<std::pair<std::string, double>> values) {
  return {ts, 0, false, std::move(values)};
}

// Lays readings out as a session would: batch-local metric indices in
// first-use order.
inline reading_batch make_batch(const std::string& device, const std::vector<reading_spec>& rs,
                                std::string meta = {}) {
  reading_batch b;
  b.device = device;
  b.meta = std::move(meta);
  for (const auto& spec : rs) {
    reading_row row;
    row.ts = spec.ts;
    row.seq = spec.seq;
    row.has_seq = spec.has_seq;
    row.first = static_cast<std::uint32_t>(b.samples.size());
    row.count = static_cast<std::uint16_t>(spec.values.size());
    for (const auto& [name, v] : spec.values) {
      std::uint16_t idx = 0;
      while (idx < b.metrics.size() && b.metrics[idx] != name) ++idx;
      if (idx == b.metrics.size()) b.metrics.push_back(name);
      b.samples.push_back({idx, v});
    }
    b.rows.push_back(row);
  }
  return b;
}

// 2024-11-17T00:00:00Z, an hour boundary.
inline constexpr std::int64_t t0 = 1'731'801'600'000;

}  // namespace pulse::storage::test
