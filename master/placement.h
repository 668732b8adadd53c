// Replica placement for new chunks (and re-replication targets).
//
// The policy sees a snapshot of chunkserver load (built by the master from
// heartbeats) and returns chunkserver ids. It keeps no state between calls:
// the caller bumps recent_creations of the servers it used, and decays it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gfs {

struct ServerLoad {
  int id = -1;       // chunkserver index
  std::string host;  // "" = unknown (all unknown hosts count as one host)
  // The host's rack from --topology (the host's own name when not listed);
  // "" = unknown (all unknown racks count as one rack).
  std::string rack;
  uint64_t used_bytes = 0;
  uint64_t capacity_bytes = 0;
  uint32_t chunks = 0;
  uint32_t recent_creations = 0;  // chunks created on it recently
  bool alive = false;
};

class PlacementPolicy {
 public:
  virtual ~PlacementPolicy() = default;
  // Chooses up to `replicas` distinct server ids from `servers` for a new
  // replica set, never one listed in `exclude` (typically the servers that
  // already hold the chunk; their racks and hosts count as already used when
  // they appear in `servers`). Returns fewer than asked only when not enough
  // eligible servers exist; the caller turns that into an error. The result
  // is deterministic for a given input and seed.
  virtual std::vector<int> ChooseNew(const std::vector<ServerLoad>& servers, int replicas,
                                     const std::vector<int>& exclude, uint64_t seed) = 0;
};

// The paper's placement:
//  - eligible: alive, not excluded, free space (capacity - used) >= min_free_bytes;
//  - then, per replica picked, in this order of priority:
//      1. a rack not used yet by this replica set,
//      2. a host not used yet (so R replicas land on R hosts whenever R hosts
//         have an eligible server, also with several chunkservers per host),
//      3. not over the recent-creation limit (used only while others exist),
//      4. disk use (used/capacity) at or below the average of live servers,
//      5. lower disk use, in buckets of 10% (so near-equal servers tie),
//      6. random tie-break from `seed`.
class DefaultPlacement : public PlacementPolicy {
 public:
  struct Options {
    uint64_t min_free_bytes = 64ull << 20;  // room for one default chunk
    uint32_t recent_creation_limit = 8;
  };
  DefaultPlacement() = default;
  explicit DefaultPlacement(Options o) : opt_(o) {}

  std::vector<int> ChooseNew(const std::vector<ServerLoad>& servers, int replicas,
                             const std::vector<int>& exclude, uint64_t seed) override;

 private:
  Options opt_;
};

// Which `n` of a chunk's replicas (`replicas`, one entry each) to remove
// when it has more than its replication: one at a time, never leaving fewer
// racks than min(2, racks it spans, replicas kept); preferring a replica whose host holds
// another replica of the chunk, then one whose rack holds the most, then the
// fullest server (used_bytes), then the lower id. Returns fewer than `n`
// only when the rack rule allows no more.
std::vector<int> ChooseExtraReplicas(const std::vector<ServerLoad>& replicas, int n);

// Whether a chunk's replica set (`replicas`, as after a rebalancing move)
// keeps the placement rules: min(size, live_hosts) distinct hosts and
// min(2, size, live_racks) distinct racks, where live_hosts and live_racks
// count those of the live chunkservers.
bool SpreadOk(const std::vector<ServerLoad>& replicas, int live_racks, int live_hosts);

}  // namespace gfs
