// The job's role split and master-group start-up (jobs/roles.h) in one
// process: every rank a thread, messages over the in-process transport and
// collectives over InProcGroup, the same code gfs::Init runs over MPI.
#include "jobs/roles.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "io/client.h"
#include "master/master_server.h"
#include "mpi/transport/inproc_transport.h"

namespace gfs {
namespace {

std::string TempDir(const char* name) {
  std::string tmpl = std::string("/tmp/gfs-") + name + "-XXXXXX";
  return mkdtemp(tmpl.data());
}

JobConfig Config(const std::string& dir, int shadows) {
  JobConfig cfg;
  cfg.data_dir = dir;
  cfg.shadows = shadows;
  cfg.chunkservers = 3;
  cfg.clients = 1;
  cfg.replication = 3;
  cfg.chunk_size = 1 << 20;
  cfg.request_timeout_ms = 4000;
  cfg.heartbeat_ms = 100;
  cfg.slice_size = 64 * 1024;
  cfg.write_op_size = 256 * 1024;
  cfg.read_size = 128 * 1024;
  return cfg;
}

// Runs a whole job, one thread per rank, through StartRank and ServeRank;
// `work` runs on the client rank between its start and Finish. Returns each
// rank's outcome (index = rank).
std::vector<Status> RunJob(const JobConfig& cfg, const std::function<void(Client*)>& work) {
  const int world = 1 + cfg.shadows + cfg.chunkservers + cfg.clients;
  auto layout = ComputeLayout(world, cfg);
  EXPECT_TRUE(layout.ok()) << layout.status().ToString();
  InProcFabric fabric(world);
  InProcGroup everyone(world), group(1 + cfg.shadows);
  std::vector<Status> out(static_cast<size_t>(world));
  std::vector<std::thread> ranks;
  for (int r = 0; r < world; ++r) {
    ranks.emplace_back([&, r] {
      RankContext ctx;
      ctx.rank = r;
      ctx.transport = fabric.endpoint(r);
      ctx.world = everyone.member(r);
      ctx.group = r <= cfg.shadows ? group.member(r) : nullptr;
      ctx.host_name = "host";
      ctx.env = Env::Posix();
      StartedRank started;
      Status& st = out[static_cast<size_t>(r)];
      st = StartRank(ctx, cfg, *layout, &started);
      if (!st.ok()) return;
      if (started.client) {
        work(started.client.get());
        st = started.client->Finish(0);
      } else {
        st = ServeRank(ctx, cfg, *layout, &started);
      }
    });
  }
  for (auto& t : ranks) t.join();
  return out;
}

std::vector<uint8_t> Bytes(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 131 + seed);
  return v;
}

TEST(InProcGroup, CollectivesInRounds) {
  constexpr int kN = 4;
  InProcGroup g(kN);
  std::vector<std::string> failures(kN);
  std::vector<std::thread> members;
  for (int i = 0; i < kN; ++i) {
    members.emplace_back([&, i] {
      Collective* c = g.member(i);
      std::string& bad = failures[static_cast<size_t>(i)];
      for (uint64_t round = 0; round < 50; ++round) {
        uint64_t mine[2] = {static_cast<uint64_t>(i), round};
        uint64_t all[2 * kN] = {};
        if (!c->AllGather(mine, sizeof mine, all).ok()) bad = "allgather failed";
        for (int j = 0; j < kN; ++j) {
          if (all[2 * j] != static_cast<uint64_t>(j) || all[2 * j + 1] != round) bad = "allgather";
        }
        const int root = static_cast<int>(round % kN);
        uint64_t v = c->rank() == root ? 1000 + round : 0;
        if (!c->Broadcast(root, &v, sizeof v).ok() || v != 1000 + round) bad = "broadcast";
        uint64_t got[kN] = {};
        if (!c->Gather(root, &mine[0], sizeof mine[0], c->rank() == root ? got : nullptr).ok()) {
          bad = "gather failed";
        }
        if (c->rank() == root) {
          for (int j = 0; j < kN; ++j) {
            if (got[j] != static_cast<uint64_t>(j)) bad = "gather";
          }
        }
      }
    });
  }
  for (auto& t : members) t.join();
  for (int i = 0; i < kN; ++i) EXPECT_EQ(failures[static_cast<size_t>(i)], "") << i;
}

TEST(RoleSplit, AJobWritesAndTheNextReadsWithShadows) {
  const std::string dir = TempDir("roles");
  const auto data = Bytes((2 << 20) + 77, 5);
  auto first = RunJob(Config(dir, 2), [&](Client* c) {
    ASSERT_TRUE(c->Mkdir("/d", false).ok());
    auto f = c->Create("/d/f");
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    ASSERT_TRUE(c->Write(&*f, 0, data.data(), data.size()).ok());
    ASSERT_TRUE(c->Close(&*f).ok());
  });
  for (size_t r = 0; r < first.size(); ++r)
    EXPECT_TRUE(first[r].ok()) << r << ": " << first[r].ToString();
  auto second = RunJob(Config(dir, 2), [&](Client* c) {
    auto f = c->Open("/d/f");
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    std::vector<uint8_t> back(data.size() + 10);
    auto n = c->Read(&*f, 0, back.data(), back.size());
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    back.resize(*n);
    EXPECT_EQ(back, data);
  });
  for (size_t r = 0; r < second.size(); ++r)
    EXPECT_TRUE(second[r].ok()) << r << ": " << second[r].ToString();
  std::filesystem::remove_all(dir);
}

// Another job holds the master's directory: every rank of the job, storage
// or client, gets the same error and nothing is served.
TEST(RoleSplit, ALockedDataDirectoryStopsEveryRankWithOneError) {
  const std::string dir = TempDir("roles-locked");
  ASSERT_TRUE(Env::Posix()->CreateDirs(dir + "/master").ok());
  std::unique_ptr<FileLock> other_job;
  ASSERT_TRUE(Env::Posix()->LockFile(dir + "/master/LOCK", &other_job).ok());
  bool worked = false;
  auto out = RunJob(Config(dir, 1), [&](Client*) { worked = true; });
  EXPECT_FALSE(worked);
  for (size_t r = 0; r < out.size(); ++r) {
    EXPECT_EQ(out[r].code(), Code::kBusy) << r << ": " << out[r].ToString();
    EXPECT_EQ(out[r].message(), "data directory " + dir + " is in use by another job") << r;
  }
  std::filesystem::remove_all(dir);
}

// The master's copy of the metadata is ahead of a new shadow directory's:
// the start-up exchange sends it to the shadow, and both begin one new epoch.
TEST(MasterGroupStartup, TheMostAdvancedCopyGoesToEveryMember) {
  const std::string dir = TempDir("roles-copy");
  auto first = RunJob(Config(dir, 0), [&](Client* c) {
    ASSERT_TRUE(c->Mkdir("/a/b", true).ok());
    ASSERT_TRUE(c->Mkdir("/c", false).ok());
  });
  for (size_t r = 0; r < first.size(); ++r)
    EXPECT_TRUE(first[r].ok()) << r << ": " << first[r].ToString();

  const JobConfig cfg = Config(dir, 1);
  auto layout = ComputeLayout(1 + 1 + cfg.chunkservers + cfg.clients, cfg);
  ASSERT_TRUE(layout.ok());
  InProcFabric fabric(layout->world);
  InProcGroup group(2);
  std::unique_ptr<FileLock> locks[2];
  std::unique_ptr<MasterServer> members[2];
  Status st[2];
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      st[r] = StartMasterGroupMember(Env::Posix(), cfg, *layout, r, fabric.endpoint(r),
                                     group.member(r), &locks[r], &members[r]);
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE(st[0].ok()) << st[0].ToString();
  ASSERT_TRUE(st[1].ok()) << st[1].ToString();
  EXPECT_EQ(members[1]->meta().DebugString(), members[0]->meta().DebugString());
  EXPECT_EQ(members[1]->journal()->last_seq(), members[0]->journal()->last_seq());
  EXPECT_GT(members[0]->journal()->last_seq(), 0u);
  EXPECT_EQ(members[1]->epoch(), members[0]->epoch());
  EXPECT_NE(members[0]->store_id(), 0u);
  EXPECT_EQ(members[1]->store_id(), members[0]->store_id());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace gfs
