#include "io/client/retry_policy.h"

#include <algorithm>

namespace gfs {

bool Retryable(Code c) {
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

uint64_t RetryPolicy::Backoff(int failures) const {
  if (backoff_us == 0 || failures <= 0) return 0;
  // backoff_us * f^growth, stopping at the cap before it could overflow.
  const auto f = static_cast<uint64_t>(failures);
  uint64_t wait = backoff_us;
  for (int i = 0; i < growth && wait < max_backoff_us; ++i) {
    wait = wait > max_backoff_us / f ? max_backoff_us : wait * f;
  }
  return std::min(wait, max_backoff_us);
}

RetryPolicy RetryPolicy::ForMutations(const JobConfig& cfg) {
  RetryPolicy p;
  p.attempts = 6;
  p.deadline_us = static_cast<uint64_t>(cfg.request_timeout_ms) * 1000;
  p.backoff_us = 20000;
  p.growth = 2;
  p.max_backoff_us = 500000;
  return p;
}

RetryPolicy RetryPolicy::ForTruncate() {
  RetryPolicy p;
  p.attempts = 6;
  return p;
}

RetryPolicy RetryPolicy::ForSync() {
  RetryPolicy p;
  p.attempts = 6;
  p.backoff_us = 100000;
  p.growth = 1;
  p.max_backoff_us = 500000;
  return p;
}

bool Retry::Failed(uint64_t now_us) {
  if (!failed_before_) {
    failed_before_ = true;
    first_failure_us_ = now_us;
  }
  ++failures_;
  const uint64_t since = now_us >= first_failure_us_ ? now_us - first_failure_us_ : 0;
  if (failures_ >= policy_.attempts && since >= policy_.deadline_us) return false;
  not_before_us_ = now_us + policy_.Backoff(failures_);
  return true;
}

}  // namespace gfs
