// The master stops waiting for client ranks that died (master/clients.cc):
// the whole cluster in one process, with ranks placed on machines by their
// HostId and client "processes" that are either this test (alive) or a
// child that has already ended.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "common/hosts.h"
#include "tests/unit/inproc_cluster.h"

namespace gfs {
namespace {

// A process of this machine that has ended: a child, reaped.
HostId EndedProcessOn(const std::string& host, const std::string& boot) {
  const pid_t child = fork();
  if (child == 0) _exit(0);
  int status = 0;
  waitpid(child, &status, 0);
  HostId h{host, boot};
  h.pid = child;
  return h;
}

HostId ThisProcessOn(const std::string& host, const std::string& boot) {
  HostId h{host, boot};
  SelfProcess(&h.pid, &h.start_ticks);
  return h;
}

// Asks the master through client `c` until `rank` is among the gone
// clients, for up to `seconds`.
bool BecomesGone(Client* c, int rank, int seconds) {
  for (int i = 0; i < seconds * 20; ++i) {
    auto g = c->GoneClients();
    if (g.ok() && std::find(g->begin(), g->end(), rank) != g->end()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// Ranks: master 0, chunkservers 1..3, clients 4 (alive) and 5.
TEST(ClientGone, TheMasterSeesAClientOnItsMachineEnd) {
  std::vector<HostId> hosts = {
      ThisProcessOn("m", "b"), {"h1", "b"}, {"h2", "b"}, {"h3", "b"}, ThisProcessOn("m", "b"),
      EndedProcessOn("m", "b")};
  InProcCluster c(3, 1 << 20, 2, {}, nullptr, false, nullptr, hosts);
  c.SkipFinish(1);  // client rank 5 stands for the process that ended
  ASSERT_TRUE(BecomesGone(c.client(0), 5, 10));
  auto g = c.client(0)->GoneClients();
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(*g, std::vector<int>{5}) << "the live client is not gone";
  // The job ends with the one live client done: Finish returns (the master
  // shut the job down) instead of waiting for rank 5.
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.client(0)->Finish(0).ok());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(30));
  c.SkipFinish(0);
  EXPECT_EQ(c.master().stats().counters.get(Counter::kClientsGone), 1u);
}

TEST(ClientGone, AChunkserverNamesTheEndedClientsOfItsMachine) {
  // Client 5 runs on h2 with chunkserver 2; only that chunkserver can tell.
  std::vector<HostId> hosts = {
      ThisProcessOn("m", "b"),  {"h1", "b"}, {"h2", "b"}, {"h3", "b"}, ThisProcessOn("m", "b"),
      EndedProcessOn("h2", "b")};
  InProcCluster c(3, 1 << 20, 2, {}, nullptr, false, nullptr, hosts);
  c.SkipFinish(1);
  EXPECT_TRUE(BecomesGone(c.client(0), 5, 10));
}

TEST(ClientGone, AClientIsPresumedLostWithEveryChunkserverOfItsHost) {
  // Client 5 on h3 with chunkserver 3, and its process is alive as far as
  // anyone can tell (this test's). Chunkserver 3 stops (no heartbeats) and
  // client 5 says nothing: once the master takes chunkserver 3 as dead and
  // the client has been silent for two more such intervals, it is gone.
  std::vector<HostId> hosts = {ThisProcessOn("m", "b"),
                               {"h1", "b"},
                               {"h2", "b"},
                               ThisProcessOn("h3", "b"),
                               ThisProcessOn("m", "b"),
                               ThisProcessOn("h3", "b")};
  InProcCluster c(3, 1 << 20, 2, {}, nullptr, false, nullptr, hosts);
  // While its chunkserver runs, the silent client is not gone.
  std::this_thread::sleep_for(std::chrono::seconds(3));
  auto g = c.client(0)->GoneClients();
  ASSERT_TRUE(g.ok());
  EXPECT_TRUE(g->empty());
  c.Pause(2);
  EXPECT_TRUE(BecomesGone(c.client(0), 5, 20));
  // It speaks again before the job ends: a client again.
  EXPECT_TRUE(c.client(1)->GoneClients().ok());
  g = c.client(0)->GoneClients();
  ASSERT_TRUE(g.ok());
  EXPECT_TRUE(g->empty()) << "a presumed-lost client that speaks is back";
  c.Resume(2);
}

}  // namespace
}  // namespace gfs
