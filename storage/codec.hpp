#pragma once
// Byte-level helpers shared by the storage codecs: big-endian fixed ints (for
// keys, so that byte order equals numeric order), little-endian doubles,
// LEB128 varints and zigzag. Internal to pulse_storage.
//
// Readers work on a `reader` cursor over a string_view and never read past
// its end: every get_* returns false on truncated or malformed input, so the
// decoders built on top can reject garbage without undefined behaviour.

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace pulse::storage::codec {

inline void put_u32_be(std::string& out, std::uint32_t v) {
  char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
               static_cast<char>(v)};
  out.append(b, 4);
}

inline void put_u64_be(std::string& out, std::uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(v >> (56 - 8 * i));
  out.append(b, 8);
}

inline void put_varint(std::string& out, std::uint64_t v) {
  char b[10];
  std::size_t n = 0;
  while (v >= 0x80) {
    b[n++] = static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  b[n++] = static_cast<char>(v);
  out.append(b, n);
}

// Zigzag maps small magnitudes of either sign to small unsigned numbers.
inline std::uint64_t zigzag(std::int64_t v) {
  return (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
}
inline std::int64_t unzigzag(std::uint64_t v) {
  return static_cast<std::int64_t>(v >> 1) ^ -static_cast<std::int64_t>(v & 1);
}

inline void put_double(std::string& out, double v) {
  std::uint64_t bits;
  std::memcpy(&bits, &v, 8);
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(bits >> (8 * i));
  out.append(b, 8);
}

inline void put_bytes(std::string& out, std::string_view s) {
  put_varint(out, s.size());
  out.append(s.data(), s.size());
}

// Cursor over encoded bytes; every read is bounds-checked.
class reader {
 public:
  explicit reader(std::string_view data) : p_(data.data()), end_(data.data() + data.size()) {}

  std::size_t remaining() const { return static_cast<std::size_t>(end_ - p_); }
  bool done() const { return p_ == end_; }

  bool get_u8(std::uint8_t& v) {
    if (p_ == end_) return false;
    v = static_cast<std::uint8_t>(*p_++);
    return true;
  }

  bool get_u32_be(std::uint32_t& v) {
    if (remaining() < 4) return false;
    v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<std::uint8_t>(p_[i]);
    p_ += 4;
    return true;
  }

  bool get_u64_be(std::uint64_t& v) {
    if (remaining() < 8) return false;
    v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<std::uint8_t>(p_[i]);
    p_ += 8;
    return true;
  }

  // Rejects varints longer than 10 bytes and 10th bytes that overflow 64 bits.
  bool get_varint(std::uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) return false;
      auto byte = static_cast<std::uint8_t>(*p_++);
      if (shift == 63 && byte > 1) return false;
      v |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return true;
    }
    return false;
  }

  bool get_varint32(std::uint32_t& v) {
    std::uint64_t x;
    if (!get_varint(x) || x > UINT32_MAX) return false;
    v = static_cast<std::uint32_t>(x);
    return true;
  }

  bool get_zigzag(std::int64_t& v) {
    std::uint64_t x;
    if (!get_varint(x)) return false;
    v = unzigzag(x);
    return true;
  }

  bool get_double(double& v) {
    if (remaining() < 8) return false;
    std::uint64_t bits = 0;
    for (int i = 0; i < 8; ++i)
      bits |= static_cast<std::uint64_t>(static_cast<std::uint8_t>(p_[i])) << (8 * i);
    p_ += 8;
    std::memcpy(&v, &bits, 8);
    return true;
  }

  bool get_raw(std::size_t n, std::string_view& out) {
    if (remaining() < n) return false;
    out = std::string_view(p_, n);
    p_ += n;
    return true;
  }

  // A varint length followed by that many bytes, at most `max_len`.
  bool get_bytes(std::string_view& out, std::size_t max_len) {
    std::uint64_t n;
    if (!get_varint(n) || n > max_len) return false;
    return get_raw(static_cast<std::size_t>(n), out);
  }

 private:
  const char* p_;
  const char* end_;
};

}  // namespace pulse::storage::codec
