// The client's cache of what the master said about chunks: leases (which
// replica is primary, for writes) and locations (which chunkservers hold a
// chunk, at which version, for reads), keyed by (file id, chunk index).
// Leases are trusted for half their term; locations for kLocationTtlUs, or
// until a failure shows them wrong.
#pragma once

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "mpi/protocol/messages.h"

namespace gfs {

struct ChunkLease {
  uint64_t handle = 0, version = 0;
  int32_t primary = -1;
  std::vector<int32_t> replicas;
  uint64_t expires_us = 0;
};

class LeaseCache {
 public:
  // How long a location answer is used before the master is asked again.
  static constexpr uint64_t kLocationTtlUs = 30ull * 1000 * 1000;

  struct Location {
    ChunkLocation loc;
    uint64_t expires_us = 0;
  };

  // The lease of (file, chunk) if it is still good at now_us, else null.
  const ChunkLease* Lease(uint64_t file, uint32_t index, uint64_t now_us) const;
  void PutLease(uint64_t file, uint32_t index, const ChunkLease& lease);
  void DropLease(uint64_t file, uint32_t index);

  // The cached location of (file, chunk), expired or not; null if none.
  Location* Find(uint64_t file, uint32_t index);
  // A location the master gave at now_us.
  void PutLocation(uint64_t file, ChunkLocation loc, uint64_t now_us);
  void DropLocation(uint64_t file, uint32_t index);
  void DropLocations(uint64_t file);
  // handle -> replicas, of every chunk of `file` with a cached location.
  std::map<uint64_t, std::vector<int32_t>> ReplicasOf(uint64_t file) const;
  // Takes `rank` out of the chunk's cached replicas, unless it is the last
  // one (the master decides about that); true if it was taken out.
  bool DropReplica(uint64_t file, uint32_t index, int32_t rank);

 private:
  using Key = std::pair<uint64_t, uint32_t>;  // (file id, chunk index)
  std::map<Key, ChunkLease> leases_;
  std::map<Key, Location> locs_;
};

}  // namespace gfs
