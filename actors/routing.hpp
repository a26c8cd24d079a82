#pragma once
// Device -> shard by rendezvous (highest random weight) hashing: every device
// goes to the shard whose hash(device, shard) is highest, so adding members
// later moves only the devices that the new member wins.

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>
#include <algorithm>

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

namespace pulse {

// In a cluster the owner of a device is the (member, shard) pair of highest
// weight over every live member's shards; a member's shards are salted with
// the hash of its name, so that every node computes the same owner from the
// same member list, and a member joining or leaving moves only the devices
// it wins or held.
struct route_member {
  std::uint64_t name_hash = 0;
  std::uint32_t shards = 0;
};

struct device_owner {
  std::size_t member = 0;  // index into the member list
  std::size_t shard = 0;   // that member's shard
};

inline std::uint64_t member_weight(std::uint64_t device_h, std::uint64_t name_hash,
                                   std::size_t shard) {
  return rendezvous_weight(device_h ^ name_hash, shard);
}

template <class Members>
device_owner owner_of(std::string_view device, const Members& members) {
  auto h = device_hash(device);
  device_owner best;
  std::uint64_t best_w = 0;
  bool any = false;
  for (std::size_t m = 0; m < members.size(); ++m)
    for (std::size_t s = 0; s < members[m].shards; ++s) {
      auto w = member_weight(h, members[m].name_hash, s);
      if (!any || w > best_w) {
        best = {m, s};
        best_w = w;
        any = true;
      }
    }
  return best;
}

// A member's shard of highest weight for a device (hashed), and that weight.
inline std::pair<std::size_t, std::uint64_t> member_best_shard(std::uint64_t device_h,
                                                               std::uint64_t name_hash,
                                                               std::size_t shards) {
  std::size_t best = 0;
  std::uint64_t best_w = 0;
  for (std::size_t s = 0; s < shards; ++s) {
    auto w = member_weight(device_h, name_hash, s);
    if (s == 0 || w > best_w) {
      best = s;
      best_w = w;
    }
  }
  return {best, best_w};
}

// This member's shard for a device it owns (the shard owner_of names when it
// picks this member).
inline std::size_t member_shard_of(std::string_view device, std::uint64_t name_hash,
                                   std::size_t shards) {
  return member_best_shard(device_hash(device), name_hash, shards).first;
}

}  // namespace pulse

namespace pulse {

// With cluster.replicas = r: the members that hold a device, best first —
// the r (or all, when fewer are live) of highest weight for it, a member's
// weight being that of its best shard. The first is owner_of's member.
template <class Members>
void replicas_of(std::string_view device, const Members& members, std::size_t r,
                 std::vector<std::size_t>& out) {
  auto h = device_hash(device);
  std::vector<std::pair<std::uint64_t, std::size_t>> ranked;  // (weight, member)
  ranked.reserve(members.size());
  for (std::size_t m = 0; m < members.size(); ++m)
    if (members[m].shards > 0)
      ranked.emplace_back(member_best_shard(h, members[m].name_hash, members[m].shards).second, m);
  r = std::min(r, ranked.size());
  std::partial_sort(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(r), ranked.end(),
                    [](auto& a, auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
  out.clear();
  for (std::size_t i = 0; i < r; ++i) out.push_back(ranked[i].second);
}

}  // namespace pulse
