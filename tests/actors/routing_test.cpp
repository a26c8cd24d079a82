#include <catch2/catch.hpp>

#include <map>
#include <string>

#include "actors/routing.hpp"

using namespace pulse;

TEST_CASE("rendezvous hashing spreads devices and is stable") {
  std::map<std::size_t, int> per_shard;
  for (int i = 0; i < 10000; ++i) per_shard[shard_of("meter-" + std::to_string(i), 4)]++;
  REQUIRE(per_shard.size() == 4);
  for (auto& [shard, n] : per_shard) CHECK(n > 2000);  // 2,500 each if perfectly even
  CHECK(shard_of("meter-7", 4) == shard_of("meter-7", 4));
  CHECK(shard_of("anything", 1) == 0);
}

TEST_CASE("adding a shard moves only the devices the new shard wins") {
  int moved = 0, moved_elsewhere = 0;
  for (int i = 0; i < 10000; ++i) {
    auto id = "dev-" + std::to_string(i);
    auto before = shard_of(id, 4), after = shard_of(id, 5);
    if (before != after) {
      ++moved;
      if (after != 4) ++moved_elsewhere;
    }
  }
  CHECK(moved > 1500);   // about a fifth
  CHECK(moved < 2500);
  CHECK(moved_elsewhere == 0);
}
