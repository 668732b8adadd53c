#include "common/hosts.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

namespace gfs {
namespace {

// Reads the state letter and the start time of /proc/PID/stat (fields 3 and
// 22). The second field, the command name, is in parentheses and may hold
// spaces: the fields after it are counted from the last ')'.
bool ReadStat(int64_t pid, char* state, uint64_t* start_ticks) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%lld/stat", static_cast<long long>(pid));
  std::FILE* f = std::fopen(path, "r");
  if (f == nullptr) return false;
  char buf[1024];
  const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = 0;
  const char* p = std::strrchr(buf, ')');
  if (p == nullptr) return false;
  // After ") ": field 3 (state), then fields 4..21, then 22 (starttime).
  unsigned long long start = 0;
  char st = 0;
  if (std::sscanf(p + 1,
                  " %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d "
                  "%*d %llu",
                  &st, &start) != 2) {
    return false;
  }
  *state = st;
  *start_ticks = start;
  return true;
}

}  // namespace

bool SameMachine(const HostId& a, const HostId& b) {
  return !a.boot_id.empty() && a.name == b.name && a.boot_id == b.boot_id;
}

void SelfProcess(int64_t* pid, uint64_t* start_ticks) {
  *pid = static_cast<int64_t>(getpid());
  char state = 0;
  if (!ReadStat(*pid, &state, start_ticks)) *start_ticks = 0;
}

bool ProcessEnded(int64_t pid, uint64_t start_ticks) {
  if (pid <= 0) return false;
  char state = 0;
  uint64_t start = 0;
  if (!ReadStat(pid, &state, &start)) {
    // No /proc entry: ended, unless /proc itself is not there to ask.
    return access("/proc/self/stat", R_OK) == 0;
  }
  if (state == 'Z' || state == 'X') return true;
  return start_ticks != 0 && start != start_ticks;
}

}  // namespace gfs
