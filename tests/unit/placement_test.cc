#include "master/placement.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

namespace gfs {
namespace {

constexpr uint64_t kGiB = 1ull << 30;

// Builds "<prefix><i>" (via snprintf: GCC 12 -O2 gives a false -Wrestrict on
// "literal" + std::to_string).
std::string Name(const char* prefix, int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s%d", prefix, i);
  return buf;
}

ServerLoad S(int id, std::string rack, uint64_t used_gib = 10, uint64_t cap_gib = 100,
             std::string host = "") {
  ServerLoad s;
  s.id = id;
  s.rack = std::move(rack);
  s.host = host.empty() ? Name("h", id) : std::move(host);
  s.used_bytes = used_gib * kGiB;
  s.capacity_bytes = cap_gib * kGiB;
  s.alive = true;
  return s;
}

std::set<int> AsSet(const std::vector<int>& v) { return {v.begin(), v.end()}; }

TEST(PlacementTest, DistinctServersAndFewerOnlyWhenNotEnough) {
  DefaultPlacement p;
  std::vector<ServerLoad> v;
  for (int i = 0; i < 6; ++i) v.push_back(S(i, Name("r", i % 2)));
  for (uint64_t seed = 0; seed < 50; ++seed) {
    auto got = p.ChooseNew(v, 3, {}, seed);
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(AsSet(got).size(), 3u);
  }
  EXPECT_EQ(p.ChooseNew(v, 10, {}, 1).size(), 6u);
  EXPECT_TRUE(p.ChooseNew(v, 0, {}, 1).empty());
  EXPECT_TRUE(p.ChooseNew({}, 3, {}, 1).empty());
}

TEST(PlacementTest, SkipsDeadFullAndExcluded) {
  DefaultPlacement p;
  std::vector<ServerLoad> v = {S(0, "r0"), S(1, "r1"), S(2, "r2"), S(3, "r3"), S(4, "r4")};
  v[0].alive = false;
  v[1].used_bytes = v[1].capacity_bytes;               // full
  v[2].used_bytes = v[2].capacity_bytes - (1u << 20);  // less than min_free (64 MiB)
  for (uint64_t seed = 0; seed < 30; ++seed) {
    auto got = p.ChooseNew(v, 3, {3}, seed);
    EXPECT_EQ(got, std::vector<int>{4}) << "seed " << seed;
  }
}

TEST(PlacementTest, SpreadsAcrossRacksThenHosts) {
  DefaultPlacement p;
  // rack A: 4 servers, rack B: 1, rack C: 1.
  std::vector<ServerLoad> v = {S(0, "A"), S(1, "A"), S(2, "A"), S(3, "A"), S(4, "B"), S(5, "C")};
  for (uint64_t seed = 0; seed < 50; ++seed) {
    auto got = p.ChooseNew(v, 3, {}, seed);
    ASSERT_EQ(got.size(), 3u);
    std::set<std::string> racks;
    for (int id : got) racks.insert(v[id].rack);
    EXPECT_EQ(racks.size(), 3u) << "seed " << seed;
  }
  // Racks of excluded (already holding) servers count as used.
  for (uint64_t seed = 0; seed < 20; ++seed) {
    auto got = p.ChooseNew(v, 1, {0, 4}, seed);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0], 5) << "seed " << seed;
  }
  // Two servers on one host in rack X, one server on another host in X:
  // the second pick goes to the other host.
  std::vector<ServerLoad> w = {S(0, "X", 10, 100, "hA"), S(1, "X", 10, 100, "hA"),
                               S(2, "X", 10, 100, "hB")};
  for (uint64_t seed = 0; seed < 20; ++seed) {
    auto got = p.ChooseNew(w, 2, {}, seed);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(std::count(got.begin(), got.end(), 2), 1) << "seed " << seed;
  }
}

TEST(PlacementTest, PrefersLowerDiskUse) {
  DefaultPlacement p;
  std::vector<ServerLoad> v = {S(0, "A", 90), S(1, "A", 10), S(2, "A", 85), S(3, "A", 25),
                               S(4, "A", 95)};
  for (uint64_t seed = 0; seed < 50; ++seed) {
    auto got = p.ChooseNew(v, 2, {}, seed);
    EXPECT_EQ(AsSet(got), (std::set<int>{1, 3})) << "seed " << seed;
    auto one = p.ChooseNew(v, 1, {}, seed);
    EXPECT_EQ(one, std::vector<int>{1}) << "seed " << seed;
  }
}

TEST(PlacementTest, RecentCreationLimit) {
  DefaultPlacement::Options o;
  o.recent_creation_limit = 5;
  DefaultPlacement p(o);
  // Server 0 is the emptiest but is busy with recent creations.
  std::vector<ServerLoad> v = {S(0, "A", 1), S(1, "B", 40), S(2, "C", 40), S(3, "D", 40)};
  v[0].recent_creations = 5;
  for (uint64_t seed = 0; seed < 30; ++seed) {
    auto got = p.ChooseNew(v, 3, {}, seed);
    EXPECT_EQ(AsSet(got), (std::set<int>{1, 2, 3})) << "seed " << seed;
  }
  // When there are no others, the busy server is still used.
  auto got = p.ChooseNew(v, 4, {}, 7);
  EXPECT_EQ(AsSet(got), (std::set<int>{0, 1, 2, 3}));
  v[0].recent_creations = 4;  // under the limit again
  EXPECT_EQ(p.ChooseNew(v, 1, {}, 3), std::vector<int>{0});
}

TEST(PlacementTest, DistinctHostsBeforeTheRecentCreationLimit) {
  DefaultPlacement::Options o;
  o.recent_creation_limit = 5;
  DefaultPlacement p(o);
  // Two chunkservers on each of three hosts; both of host A are idle, those
  // of B and C busy with recent creations. Three replicas still go to three
  // hosts: one on A (an idle server), one on B, one on C.
  std::vector<ServerLoad> v = {S(0, "", 10, 100, "hA"), S(1, "", 10, 100, "hA"),
                               S(2, "", 10, 100, "hB"), S(3, "", 10, 100, "hB"),
                               S(4, "", 10, 100, "hC"), S(5, "", 10, 100, "hC")};
  for (size_t i = 2; i < v.size(); ++i) v[i].recent_creations = 5;
  for (uint64_t seed = 0; seed < 30; ++seed) {
    auto got = p.ChooseNew(v, 3, {}, seed);
    ASSERT_EQ(got.size(), 3u);
    std::set<std::string> hosts;
    for (int id : got) hosts.insert(v[static_cast<size_t>(id)].host);
    EXPECT_EQ(hosts, (std::set<std::string>{"hA", "hB", "hC"})) << "seed " << seed;
  }
  // Among the servers of hosts not used yet, the idle ones first.
  v[3].recent_creations = 0;
  v[5].recent_creations = 0;
  for (uint64_t seed = 0; seed < 30; ++seed) {
    auto got = p.ChooseNew(v, 3, {0}, seed);
    EXPECT_EQ(AsSet(got), (std::set<int>{3, 5, 1})) << "seed " << seed;
  }
}

TEST(PlacementTest, SeedRandomizesAmongEquals) {
  DefaultPlacement p;
  std::vector<ServerLoad> v;
  for (int i = 0; i < 8; ++i) v.push_back(S(i, Name("r", i)));
  std::map<int, int> first;
  for (uint64_t seed = 0; seed < 200; ++seed) ++first[p.ChooseNew(v, 1, {}, seed)[0]];
  EXPECT_GE(first.size(), 6u);  // spread, not always the same server
  EXPECT_EQ(p.ChooseNew(v, 3, {}, 42), p.ChooseNew(v, 3, {}, 42));  // deterministic
}

}  // namespace
}  // namespace gfs
