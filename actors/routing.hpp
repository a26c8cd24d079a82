#pragma once
// Device -> shard by rendezvous (highest random weight) hashing: every device
// goes to the shard whose hash(device, shard) is highest, so adding members
// later moves only the devices that the new member wins.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace pulse {

// 64-bit FNV-1a of the device id, finished with a splitmix64 round per shard.
inline std::uint64_t rendezvous_weight(std::uint64_t device_hash, std::uint64_t shard) {
  std::uint64_t z = device_hash + 0x9e3779b97f4a7c15ULL * (shard + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

inline std::uint64_t device_hash(std::string_view device) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : device) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

inline std::size_t shard_of(std::string_view device, std::size_t shards) {
  auto h = device_hash(device);
  std::size_t best = 0;
  std::uint64_t best_w = 0;
  for (std::size_t i = 0; i < shards; ++i) {
    auto w = rendezvous_weight(h, i);
    if (i == 0 || w > best_w) {
      best = i;
      best_w = w;
    }
  }
  return best;
}

}  // namespace pulse
