#pragma once
// Internal helpers of the wire codec: padded input buffers, a small reusable
// hash index and number grammar checks. Not part of the module's interface;
// only wire/*.cpp and the wire tests include this.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pulse::wire::detail {

// simdjson reads up to this many bytes past the end of its input
// (SIMDJSON_PADDING in simdjson 3.0); kept here so headers need no simdjson.
inline constexpr std::size_t input_padding = 64;

// A growable byte buffer that keeps `input_padding` zero bytes after the text,
// as simdjson requires. Reused across frames, so a frame costs a memcpy, not
// an allocation; `release_if_larger` keeps one huge frame from pinning memory.
class padded_buffer {
 public:
  const char* assign(std::string_view s) {
    std::size_t need = s.size() + input_padding;
    if (need > capacity_) {
      std::size_t cap = capacity_ * 2 > need ? capacity_ * 2 : need;
      data_.reset(new char[cap]);
      capacity_ = cap;
    }
    if (!s.empty()) std::memcpy(data_.get(), s.data(), s.size());
    std::memset(data_.get() + s.size(), 0, input_padding);
    size_ = s.size();
    return data_.get();
  }
  const char* data() const { return data_.get(); }
  std::size_t size() const { return size_; }
  std::size_t capacity() const { return capacity_; }
  void release_if_larger(std::size_t limit) {
    if (capacity_ > limit) {
      data_.reset();
      capacity_ = size_ = 0;
    }
  }

 private:
  std::unique_ptr<char[]> data_;
  std::size_t capacity_ = 0;
  std::size_t size_ = 0;
};

// Open-addressing hash index from a caller-defined key to two 32-bit values.
// It stores only hashes and values; callers compare keys against their own
// storage in `eq`, so entries that point at storage which was rolled back
// simply stop matching. clear() is O(1) (generation counter), which keeps the
// per-frame reset free even when the table is large.
class index_table {
 public:
  struct entry {
    std::uint64_t hash = 0;
    std::uint32_t gen = 0;
    std::uint32_t a = 0;
    std::uint32_t b = 0;
  };

  void clear() {
    used_ = 0;
    if (++gen_ == 0) {
      for (auto& e : slots_) e.gen = 0;
      gen_ = 1;
    }
  }

  // Returns the first live entry with this hash for which eq(a, b) holds.
  template <class Eq>
  entry* find(std::uint64_t hash, Eq&& eq) {
    if (slots_.empty()) return nullptr;
    std::size_t mask = slots_.size() - 1;
    for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
      entry& e = slots_[i];
      if (e.gen != gen_) return nullptr;
      if (e.hash == hash && eq(e.a, e.b)) return &e;
    }
  }

  void insert(std::uint64_t hash, std::uint32_t a, std::uint32_t b) {
    if ((used_ + 1) * 2 > slots_.size()) grow();
    place(hash, a, b);
    ++used_;
  }

 private:
  void place(std::uint64_t hash, std::uint32_t a, std::uint32_t b) {
    std::size_t mask = slots_.size() - 1;
    std::size_t i = hash & mask;
    while (slots_[i].gen == gen_) i = (i + 1) & mask;
    slots_[i] = entry{hash, gen_, a, b};
  }
  void grow() {
    std::vector<entry> old;
    old.swap(slots_);
    slots_.assign(old.empty() ? 16 : old.size() * 2, entry{});
    std::uint32_t old_gen = gen_;
    gen_ = 1;
    for (const auto& e : old)
      if (e.gen == old_gen) place(e.hash, e.a, e.b);
  }

  std::vector<entry> slots_;
  std::size_t used_ = 0;
  std::uint32_t gen_ = 1;
};

inline std::uint64_t hash_text(std::string_view s) { return std::hash<std::string_view>{}(s); }
inline std::uint64_t hash_text(std::string_view s, std::uint32_t salt) {
  // Mixes a batch index into a name's hash so one table serves all batches.
  std::uint64_t h = hash_text(s) ^ ((std::uint64_t{salt} + 1) * 0x9E3779B97F4A7C15ull);
  h ^= h >> 29;
  return h * 0xBF58476D1CE4E5B9ull;
}

// What a JSON number token looks like; decides between invalid_json (bad
// grammar) and invalid_reading (valid JSON, unacceptable value).
struct number_shape {
  bool valid = false;     // matches the JSON number grammar
  bool negative = false;  // leading '-'
  bool integer = false;   // no fraction and no exponent
};
number_shape classify_number(std::string_view token);

// Names from the input, shortened for error messages so that a megabyte key
// does not become a megabyte error. Cuts on a UTF-8 boundary.
std::string shown(std::string_view s);

// Strips the JSON whitespace simdjson leaves after a scalar token.
std::string_view trim_json_ws(std::string_view s);

// A decimal number in a string, as OCPP sends sampled values ("219710.906250").
// Accepts an optional sign, digits with an optional fraction and exponent,
// surrounding spaces; rejects everything else and non-finite results.
std::optional<double> parse_decimal(std::string_view s);

// Appends an integer in decimal.
void append_uint(std::string& out, std::uint64_t v);
void append_int(std::string& out, std::int64_t v);

}  // namespace pulse::wire::detail
