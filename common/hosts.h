// Where a rank runs, and whether a process of this host is still alive.
#ifndef GFS_COMMON_HOSTS_H_
#define GFS_COMMON_HOSTS_H_

#include <cstdint>
#include <string>

namespace gfs {

// Where a rank runs: its host name (for distance) and the machine's boot id
// (/proc/sys/kernel/random/boot_id), so that two hosts given the same name
// are not taken for one (a short-circuit read needs both to match). `pid`
// and `start_ticks` (field 22 of /proc/PID/stat: when the process started,
// in clock ticks since boot) name the rank's process on that host, so that a
// storage rank of the same host can tell that it has ended (0: unknown).
struct HostId {
  std::string name;
  std::string boot_id;
  int64_t pid = 0;
  uint64_t start_ticks = 0;
};

// Both ranks run on one machine: the same name and the same (known) boot id.
bool SameMachine(const HostId& a, const HostId& b);

// This process's pid and start time, as HostId records them.
void SelfProcess(int64_t* pid, uint64_t* start_ticks);

// Whether the process `pid`, started at `start_ticks`, has ended on this
// machine: no such process, a zombie (killed, not yet reaped by its parent),
// or another process that took the number since. False when unknown (pid 0).
bool ProcessEnded(int64_t pid, uint64_t start_ticks);

}  // namespace gfs

#endif  // GFS_COMMON_HOSTS_H_
