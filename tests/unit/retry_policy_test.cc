// The client's retry rule (io/client/retry_policy.h): tries end at the
// deadline, not before their minimum count; the wait between tries grows
// with the failures and stops at its cap. Times are passed in, so nothing
// here sleeps.
#include "io/client/retry_policy.h"

#include <gtest/gtest.h>

namespace gfs {
namespace {

RetryPolicy Policy(int attempts, uint64_t deadline_us, uint64_t backoff_us, int growth,
                   uint64_t max_backoff_us) {
  RetryPolicy p;
  p.attempts = attempts;
  p.deadline_us = deadline_us;
  p.backoff_us = backoff_us;
  p.growth = growth;
  p.max_backoff_us = max_backoff_us;
  return p;
}

TEST(RetryPolicy, GivesUpAfterTheAttemptsWithoutADeadline) {
  Retry r(Policy(3, 0, 0, 1, 0));
  EXPECT_TRUE(r.Failed(1000));
  EXPECT_TRUE(r.Failed(1000));
  EXPECT_FALSE(r.Failed(1000));
  EXPECT_EQ(r.failures(), 3);
}

TEST(RetryPolicy, KeepsTryingUntilTheDeadlineAfterTheFirstFailure) {
  // 2 tries at least, then on until 1 s after the first failure.
  Retry r(Policy(2, 1000000, 10000, 1, 100000));
  const uint64_t t0 = 5000000;
  EXPECT_TRUE(r.Failed(t0));
  EXPECT_TRUE(r.Failed(t0 + 100));
  EXPECT_TRUE(r.Failed(t0 + 500000));
  EXPECT_TRUE(r.Failed(t0 + 999999));
  EXPECT_FALSE(r.Failed(t0 + 1000000));
}

TEST(RetryPolicy, TheDeadlineDoesNotCutTheMinimumTries) {
  // The deadline has long passed, yet the first `attempts` tries are made.
  Retry r(Policy(4, 10, 0, 1, 0));
  EXPECT_TRUE(r.Failed(0));
  EXPECT_TRUE(r.Failed(1000000));
  EXPECT_TRUE(r.Failed(2000000));
  EXPECT_FALSE(r.Failed(3000000));
}

TEST(RetryPolicy, BackoffGrowsAndIsCapped) {
  const RetryPolicy quad = Policy(6, 0, 20000, 2, 500000);
  EXPECT_EQ(quad.Backoff(1), 20000u);
  EXPECT_EQ(quad.Backoff(2), 80000u);
  EXPECT_EQ(quad.Backoff(3), 180000u);
  EXPECT_EQ(quad.Backoff(4), 320000u);
  EXPECT_EQ(quad.Backoff(5), 500000u);
  EXPECT_EQ(quad.Backoff(6), 500000u);
  EXPECT_EQ(quad.Backoff(1 << 30), 500000u);  // no overflow past the cap
  const RetryPolicy lin = Policy(6, 0, 100000, 1, 250000);
  EXPECT_EQ(lin.Backoff(1), 100000u);
  EXPECT_EQ(lin.Backoff(2), 200000u);
  EXPECT_EQ(lin.Backoff(3), 250000u);
  EXPECT_EQ(Policy(6, 0, 0, 2, 500000).Backoff(3), 0u);
}

TEST(RetryPolicy, NextTryWaitsForTheBackoff) {
  Retry r(Policy(10, 0, 1000, 1, 1000000));
  ASSERT_TRUE(r.Failed(50000));
  EXPECT_EQ(r.not_before_us(), 51000u);
  EXPECT_FALSE(r.Due(50999));
  EXPECT_TRUE(r.Due(51000));
  ASSERT_TRUE(r.Failed(60000));
  EXPECT_EQ(r.not_before_us(), 62000u);
}

TEST(RetryPolicy, TheClientsPolicies) {
  JobConfig cfg;
  cfg.request_timeout_ms = 30000;
  const RetryPolicy m = RetryPolicy::ForMutations(cfg);
  EXPECT_EQ(m.attempts, 6);
  EXPECT_EQ(m.deadline_us, 30000000u);
  EXPECT_EQ(m.Backoff(1), 20000u);
  EXPECT_EQ(m.Backoff(10), 500000u);
  // A mutation that keeps failing quickly is tried until the deadline.
  Retry w(m);
  uint64_t now = 0;
  int tries = 0;
  while (w.Failed(now)) {
    ++tries;
    now = w.not_before_us();
  }
  EXPECT_GE(now, 30000000u);
  EXPECT_LT(now, 30000000u + 500000u);
  EXPECT_GT(tries, 6);
  // fsync: 6 rounds, 100 ms more each time.
  Retry s(RetryPolicy::ForSync());
  for (int f = 1; f < 6; ++f) {
    ASSERT_TRUE(s.Failed(0));
    EXPECT_EQ(s.not_before_us(), 100000u * static_cast<uint64_t>(f));
  }
  EXPECT_FALSE(s.Failed(0));
  // truncate: 6 tries, no wait.
  Retry t(RetryPolicy::ForTruncate());
  for (int f = 1; f < 6; ++f) {
    ASSERT_TRUE(t.Failed(7));
    EXPECT_EQ(t.not_before_us(), 7u);
  }
  EXPECT_FALSE(t.Failed(7));
}

TEST(RetryPolicy, WhichErrorsAreRetried) {
  EXPECT_TRUE(Retryable(Code::kNotPrimary));
  EXPECT_TRUE(Retryable(Code::kStaleVersion));
  EXPECT_TRUE(Retryable(Code::kTimeout));
  EXPECT_TRUE(Retryable(Code::kUnavailable));
  EXPECT_TRUE(Retryable(Code::kDataMissing));
  EXPECT_TRUE(Retryable(Code::kBusy));
  EXPECT_FALSE(Retryable(Code::kNotFound));
  EXPECT_FALSE(Retryable(Code::kNoSpace));
  EXPECT_FALSE(Retryable(Code::kTooLarge));
}

}  // namespace
}  // namespace gfs
