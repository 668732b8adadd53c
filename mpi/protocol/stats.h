// Per-rank counters written as JSON at the end of a job when --stats-dir is
// given (tests read them to prove the chain, the pipelining and that the
// master stays off the data path). Format in doc/wire-format.md#stats.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "mpi/transport/transport.h"

namespace gfs {

struct PushTimeline {
  int origin = -1;
  uint64_t data_id = 0;
  uint64_t first_us = 0, last_us = 0, bytes = 0;
};

struct RoleStats {
  std::map<std::string, uint64_t> counters;
  std::map<int, uint64_t> push_bytes_from;
  std::vector<PushTimeline> push_timeline;  // first pushes only (bounded)
};

Status WriteStatsJson(const std::string& dir, int rank, const std::string& role,
                      const RoleStats& stats, const Transport& t);

}  // namespace gfs
