// The client's retry rules for mutations and syncs (private to io/client).
#pragma once

#include <algorithm>
#include <cstdint>

#include "common/clock.h"
#include "common/status.h"

namespace gfs {

inline bool Retryable(Code c) {
  switch (c) {
    case Code::kNotPrimary:
    case Code::kStaleVersion:
    case Code::kTimeout:
    case Code::kUnavailable:
    case Code::kDataMissing:
    case Code::kBusy:
      return true;
    default:
      return false;
  }
}

inline constexpr int kMaxAttempts = 6;

// Retry budget of one write or append op: at least kMaxAttempts tries, and
// tries go on until one request timeout after the first failure (a fail-over
// or a chunkserver re-registering can take longer than quick retries last).
// Returns false when the op should give up; else sets when to try again
// (a backoff growing with the tries, at most half a second).
inline bool RetryLater(int failures, uint64_t* first_failure_us, uint64_t timeout_us,
                       uint64_t* not_before_us) {
  const uint64_t now = MonoMicros();
  if (*first_failure_us == 0) *first_failure_us = now;
  if (failures >= kMaxAttempts && now - *first_failure_us >= timeout_us) return false;
  const uint64_t f = static_cast<uint64_t>(failures);
  *not_before_us = now + std::min<uint64_t>(20000ull * f * f, 500000);
  return true;
}

}  // namespace gfs
