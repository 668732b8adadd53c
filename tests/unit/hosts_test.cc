// Whether a process of this machine has ended (common/hosts.h): the test the
// master and the chunkservers use so that a dead client rank does not hang
// the job.
#include "common/hosts.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

namespace gfs {
namespace {

TEST(Hosts, ThisProcessIsAlive) {
  int64_t pid = 0;
  uint64_t start = 0;
  SelfProcess(&pid, &start);
  EXPECT_EQ(pid, static_cast<int64_t>(getpid()));
  EXPECT_GT(start, 0u);
  EXPECT_FALSE(ProcessEnded(pid, start));
  EXPECT_FALSE(ProcessEnded(pid, 0));  // start time unknown: the pid alone
  EXPECT_FALSE(ProcessEnded(0, 0));    // nothing known: never "ended"
}

TEST(Hosts, AnotherStartTimeIsAnotherProcess) {
  int64_t pid = 0;
  uint64_t start = 0;
  SelfProcess(&pid, &start);
  // The number now names a process that started at another time: the one
  // that had it ended and the number was reused.
  EXPECT_TRUE(ProcessEnded(pid, start + 1));
}

TEST(Hosts, AZombieAndAReapedChildHaveEnded) {
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(0);
  // Not reaped yet: a zombie, as a SIGKILLed rank is until its parent (the
  // MPI daemon) collects it. Wait until the kernel shows it so.
  bool ended = false;
  for (int i = 0; i < 500 && !ended; ++i) {
    ended = ProcessEnded(child, 0);
    if (!ended) usleep(2000);
  }
  EXPECT_TRUE(ended) << "a zombie child counts as ended";
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(ProcessEnded(child, 0)) << "a reaped child is gone";
}

TEST(Hosts, SameMachineNeedsTheNameAndTheBootId) {
  HostId a{"node1", "boot-a"}, b{"node1", "boot-a"}, c{"node1", "boot-b"}, d{"node2", "boot-a"};
  HostId unknown{"node1", ""};
  EXPECT_TRUE(SameMachine(a, b));
  EXPECT_FALSE(SameMachine(a, c));
  EXPECT_FALSE(SameMachine(a, d));
  EXPECT_FALSE(SameMachine(unknown, unknown));  // no boot id: cannot tell
}

}  // namespace
}  // namespace gfs
