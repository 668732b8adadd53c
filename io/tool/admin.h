// Administration commands of the gfs tool: report, df, fsck (what the
// master knows of the chunkservers and of every chunk's replicas).
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "common/topology.h"
#include "io/client.h"
#include "jobs/options.h"

namespace gfs::tool {

// `report`: one line (or JSON object) per chunkserver and the totals; returns
// the exit status, *s the error if any.
int Report(Client* c, const JobConfig& job, const CommandArgs& a, Status* s);
// `df`: capacity, used and free space of the store.
int Df(Client* c, const JobConfig& job, const CommandArgs& a, Status* s);

// `setrep R PATH...`: sets the replication; with -w waits until every chunk
// of the paths has exactly R good replicas. *err_path: the path an error is
// about.
int Setrep(Client* c, const CommandArgs& a, Status* s, std::string* err_path);
// `balance`: bytes of chunks per chunkserver and whether they are within
// the rebalance threshold (exit 0) or not (exit 4); --wait first waits.
int Balance(Client* c, const JobConfig& job, const CommandArgs& a, Status* s);

struct FsckTotals {
  uint64_t files = 0, chunks = 0, healthy = 0, under = 0, missing = 0, corrupt = 0, stale = 0;
  uint64_t unreadable_bytes = 0;  // bytes no replica holds a good copy of
};

// Chunks of the fsck answer counted as healthy, under-replicated, missing.
FsckTotals CountFsck(const std::vector<FsckFile>& files);
// The job's racks (--topology); every host a rack of its own when none was
// given or the file cannot be read (the launcher checked it before the job).
Topology JobTopology(const JobConfig& job);
// Prints an fsck answer (names: the chunkservers by rank, topo: their racks);
// `locations` lists every chunk with its replicas' hosts and racks, not only
// the unhealthy ones. Returns the command's exit status (0 healthy, 4
// under-replicated, 5 missing).
int PrintFsck(const FsckReply& rep, const std::map<int32_t, ServerReport>& names,
              const Topology& topo, bool json, bool locations);

}  // namespace gfs::tool
