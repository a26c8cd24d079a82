#include "storage/keys.hpp"

#include "storage/codec.hpp"

namespace pulse::storage {

namespace {

void append_device(std::string& out, std::string_view device) {
  out.push_back(static_cast<char>(static_cast<std::uint8_t>(device.size())));
  out.append(device.data(), device.size());
}

bool get_device(codec::reader& r, std::string_view& device) {
  std::uint8_t len;
  if (!r.get_u8(len) || len == 0 || len > max_device_len) return false;
  return r.get_raw(len, device);
}

}  // namespace

void append_readings_prefix(std::string& out, std::uint32_t bucket, std::string_view device) {
  codec::put_u32_be(out, bucket);
  append_device(out, device);
}

void append_readings_key(std::string& out, std::uint32_t bucket, std::string_view device,
                         std::int64_t first_ts, std::uint64_t first_seq) {
  append_readings_prefix(out, bucket, device);
  codec::put_u64_be(out, static_cast<std::uint64_t>(first_ts));
  codec::put_u64_be(out, first_seq);
}

void append_rollup_key(std::string& out, resolution res, std::uint32_t bucket,
                       std::string_view device) {
  out.push_back(static_cast<char>(res));
  codec::put_u32_be(out, bucket);
  append_device(out, device);
}

void append_meta_key(std::string& out, std::string_view device) {
  out.push_back('d');
  out.append(device.data(), device.size());
}

std::string readings_key(std::uint32_t bucket, std::string_view device, std::int64_t first_ts,
                         std::uint64_t first_seq) {
  std::string out;
  out.reserve(readings_key_fixed + device.size());
  append_readings_key(out, bucket, device, first_ts, first_seq);
  return out;
}

std::string readings_prefix(std::uint32_t bucket, std::string_view device) {
  std::string out;
  append_readings_prefix(out, bucket, device);
  return out;
}

std::string rollup_key(resolution res, std::uint32_t bucket, std::string_view device) {
  std::string out;
  append_rollup_key(out, res, bucket, device);
  return out;
}

std::string meta_key(std::string_view device) {
  std::string out;
  append_meta_key(out, device);
  return out;
}

bool decode_readings_key(std::string_view key, readings_key_parts& out) {
  codec::reader r(key);
  std::uint64_t ts;
  if (!r.get_u32_be(out.bucket) || !get_device(r, out.device) || !r.get_u64_be(ts) ||
      !r.get_u64_be(out.first_seq) || !r.done())
    return false;
  if (ts > static_cast<std::uint64_t>(max_ts)) return false;
  out.first_ts = static_cast<std::int64_t>(ts);
  // A chunk's first reading lies in the chunk's bucket; anything else is not our key.
  return hour_bucket(out.first_ts) == out.bucket;
}

bool decode_rollup_key(std::string_view key, rollup_key_parts& out) {
  codec::reader r(key);
  std::uint8_t tag;
  if (!r.get_u8(tag)) return false;
  if (tag == static_cast<std::uint8_t>(resolution::minute))
    out.res = resolution::minute;
  else if (tag == static_cast<std::uint8_t>(resolution::hour))
    out.res = resolution::hour;
  else
    return false;
  return r.get_u32_be(out.bucket) && get_device(r, out.device) && r.done();
}

bool decode_meta_key(std::string_view key, std::string_view& device) {
  if (key.size() < 2 || key.size() > 1 + max_device_len || key[0] != 'd') return false;
  device = key.substr(1);
  return true;
}

std::string prefix_successor(std::string_view prefix) {
  std::string out(prefix);
  while (!out.empty()) {
    auto& c = reinterpret_cast<unsigned char&>(out.back());
    if (c != 0xff) {
      ++c;
      return out;
    }
    out.pop_back();
  }
  return out;
}

}  // namespace pulse::storage
