// The client's one retry rule: how many tries an operation gets, until when,
// and how long it waits between them. Every place the client retries a
// failed step (writes, record appends, truncations, fsync) holds a
// RetryPolicy and counts its failures in a Retry; only the numbers differ
// (RetryPolicy::ForMutations, ForTruncate, ForSync).
#pragma once

#include <cstdint>

#include "common/status.h"
#include "mpi/protocol/config.h"

namespace gfs {

// Errors worth another try: the replica set or the primary changed, a peer
// was slow or gone, or the pushed data is not there (yet). Everything else
// (a missing file, no space, a bad request) fails the operation at once.
bool Retryable(Code c);

struct RetryPolicy {
  // Tries always allowed (the first one included).
  int attempts = 1;
  // Past `attempts`, tries go on until this long after the first failure
  // (0: no more). A fail-over or a chunkserver re-registering can take
  // longer than a few quick tries.
  uint64_t deadline_us = 0;
  // The wait after the f-th failure: backoff_us * f^growth, at most
  // max_backoff_us (growth 1: linear, 2: quadratic; backoff_us 0: none).
  uint64_t backoff_us = 0;
  int growth = 1;
  uint64_t max_backoff_us = 0;

  // The wait after `failures` failures (failures >= 1).
  uint64_t Backoff(int failures) const;

  // Writes and record appends: 6 tries, then on until one request timeout
  // after the first failure; 20 ms x f^2 between tries, at most 0.5 s.
  static RetryPolicy ForMutations(const JobConfig& cfg);
  // Truncation of a chunk on its replicas: 6 tries, one after the other
  // (each asks the master for the lease again).
  static RetryPolicy ForTruncate();
  // fsync of a replica that failed: 6 rounds, 100 ms x f between them.
  static RetryPolicy ForSync();
};

// The tries of one operation under a policy.
class Retry {
 public:
  explicit Retry(const RetryPolicy& policy = RetryPolicy()) : policy_(policy) {}

  // A try failed at now_us. Returns false when the operation should give up;
  // else not_before_us() says when to try again.
  bool Failed(uint64_t now_us);
  int failures() const { return failures_; }
  uint64_t not_before_us() const { return not_before_us_; }
  // Whether the next try is due at now_us.
  bool Due(uint64_t now_us) const { return now_us >= not_before_us_; }

 private:
  RetryPolicy policy_;
  int failures_ = 0;
  uint64_t first_failure_us_ = 0;
  uint64_t not_before_us_ = 0;
  bool failed_before_ = false;
};

}  // namespace gfs
