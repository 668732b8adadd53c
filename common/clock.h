// Monotonic time in microseconds (comparable across processes on one host).
#pragma once

#include <cstdint>
#include <ctime>

namespace gfs {

inline uint64_t MonoMicros() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

// Time from `since` to `now`, zero when `since` is later (a clock that
// jumped back must not read as an age of 580,000 years).
inline uint64_t Elapsed(uint64_t now, uint64_t since) { return now > since ? now - since : 0; }

}  // namespace gfs
