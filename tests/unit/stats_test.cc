// Numbered counters keep the stats file's names: a counter is listed once
// touched (also at 0), request counts as "req_<message name>".
#include "mpi/protocol/stats.h"

#include <gtest/gtest.h>

#include <cstring>
#include <set>
#include <string>

#include "mpi/protocol/wire.h"

namespace gfs {
namespace {

TEST(Counters, ListTouchedCountersByTheirStatsFileNames) {
  Counters c;
  EXPECT_TRUE(c.Named().empty());
  c[Counter::kBytesReadLocal] += 4096;
  c[Counter::kWriteRetries] += 0;  // touched, still 0
  ++c.requests(static_cast<uint16_t>(MsgType::kStat));
  ++c.requests(static_cast<uint16_t>(MsgType::kStat) | kReplyBit);
  auto named = c.Named();
  ASSERT_EQ(named.size(), 3u);
  EXPECT_EQ(named.at("bytes_read_local"), 4096u);
  EXPECT_EQ(named.at("write_retries"), 0u);
  EXPECT_EQ(named.at("req_stat"), 2u);
  EXPECT_EQ(c.get("bytes_read_local"), 4096u);
  EXPECT_EQ(c.get("never_seen"), 0u);
  EXPECT_EQ(c.get(Counter::kBytesReadLocal), 4096u);
}

TEST(Counters, EveryNameIsDistinctAndInTheFilesStyle) {
  std::set<std::string> names;
  for (size_t i = 0; i < kNumCounters; ++i) {
    const char* n = CounterName(static_cast<Counter>(i));
    EXPECT_STRNE(n, "unknown");
    EXPECT_TRUE(names.insert(n).second) << n;
    for (const char* p = n; *p != 0; ++p) {
      EXPECT_TRUE((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_') << n;
    }
  }
}

}  // namespace
}  // namespace gfs
