// Collective: exchanges among a fixed group of ranks in which every member
// takes part, for a job's start-up (where every rank runs, the master group
// agreeing on the most advanced copy of the metadata, one error for all).
// MpiCollective (mpi_transport.h) is a thin adapter over an MPI communicator;
// InProcGroup (inproc_transport.h) serves threads of one process, so the
// start-up code (jobs/roles.h) runs in unit tests as it runs under MPI.
//
// Contract: every member makes the same calls in the same order, with the
// same sizes; a call returns once every member has made it (at least as far
// as this member's part is concerned). Nothing here has a deadline: a member
// that never calls holds the others, as MPI's collectives do.
#pragma once

#include <cstddef>

#include "common/status.h"

namespace gfs {

class Collective {
 public:
  virtual ~Collective() = default;
  // This member's index in the group (0-based) and the group's size.
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Every member gives the n bytes at `mine`; `all` (size() * n bytes) gets
  // member i's at offset i * n on every member.
  virtual Status AllGather(const void* mine, size_t n, void* all) = 0;
  // Like AllGather, but only member `root` gets `all`; the others may pass
  // null.
  virtual Status Gather(int root, const void* mine, size_t n, void* all) = 0;
  // Member `root`'s n bytes at `data` replace every other member's.
  virtual Status Broadcast(int root, void* data, size_t n) = 0;
};

}  // namespace gfs
