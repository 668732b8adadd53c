// gfs setrep and rebalancing: the set-replication op, the choice of extra
// replicas to remove, and, on the in-process cluster, moves of replicas from
// fuller chunkservers to an empty one (threshold, rate bound, never fewer
// than R good replicas, racks kept) and setrep down and up.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "master/meta_state.h"
#include "master/placement.h"
#include "tests/unit/inproc_cluster.h"

namespace gfs {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<uint8_t> Bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

TEST(SetReplicationOp, SetsAFileOrEveryFileOfATreeAndRoundTrips) {
  MetaState m;
  ASSERT_TRUE(m.Apply(MetaOp::Mkdir("/d/e", true)).ok());
  ASSERT_TRUE(m.Apply(MetaOp::Create("/d/a", 1, 3, 1 << 20, 0)).ok());
  ASSERT_TRUE(m.Apply(MetaOp::Create("/d/e/b", 2, 3, 1 << 20, 0)).ok());
  ASSERT_TRUE(m.Apply(MetaOp::Create("/c", 3, 3, 1 << 20, 0)).ok());
  ASSERT_TRUE(m.Apply(MetaOp::SetReplication("/d", 1)).ok());
  EXPECT_EQ(m.StatFile("/d/a")->replication, 1u);
  EXPECT_EQ(m.StatFile("/d/e/b")->replication, 1u);
  EXPECT_EQ(m.StatFile("/c")->replication, 3u);
  ASSERT_TRUE(m.Apply(MetaOp::SetReplication("/c", 2)).ok());
  EXPECT_EQ(m.StatFile("/c")->replication, 2u);
  ASSERT_TRUE(m.Apply(MetaOp::SetReplication("/", 4)).ok());
  EXPECT_EQ(m.StatFile("/d/e/b")->replication, 4u);
  EXPECT_EQ(m.Check(MetaOp::SetReplication("/nope", 2)).code(), Code::kNotFound);
  EXPECT_EQ(m.Check(MetaOp::SetReplication("/c/x", 2)).code(), Code::kNotADirectory);
  EXPECT_EQ(m.Check(MetaOp::SetReplication("/c", 0)).code(), Code::kInvalidArgument);

  std::vector<uint8_t> enc;
  const MetaOp op = MetaOp::SetReplication("/d/e", 5);
  op.EncodeTo(&enc);
  EXPECT_EQ(enc[0], 2);  // encoding version 2, as replace
  auto back = MetaOp::Decode(enc.data(), enc.size());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, op);
  enc[0] = 1;  // the types of version 1 do not include it
  EXPECT_FALSE(MetaOp::Decode(enc.data(), enc.size()).ok());
}

ServerLoad Load(int id, std::string host, std::string rack, uint64_t used) {
  ServerLoad l;
  l.id = id;
  l.host = std::move(host);
  l.rack = std::move(rack);
  l.used_bytes = used;
  l.alive = true;
  return l;
}

TEST(ChooseExtraReplicas, KeepsTwoRacksAndPrefersSharedHostsThenTheFullest) {
  // Three on rack a, one on rack b: the one on b is never removed.
  std::vector<ServerLoad> v = {Load(1, "h1", "a", 10), Load(2, "h2", "a", 30),
                               Load(3, "h3", "a", 20), Load(4, "h4", "b", 99)};
  EXPECT_EQ(ChooseExtraReplicas(v, 1), std::vector<int>({2}));
  EXPECT_EQ(ChooseExtraReplicas(v, 2), std::vector<int>({2, 3}));
  // Down to one replica: the rack rule cannot hold.
  EXPECT_EQ(ChooseExtraReplicas(v, 3), std::vector<int>({2, 3, 4}));
  // A host holding two replicas loses one first (the fuller of the two),
  // even when another server is fuller.
  v = {Load(1, "h1", "a", 90), Load(2, "h2", "b", 60), Load(3, "h2", "b", 5)};
  EXPECT_EQ(ChooseExtraReplicas(v, 1), std::vector<int>({2}));
  // One rack: down to one replica, the fullest first.
  v = {Load(1, "h1", "a", 1), Load(2, "h2", "a", 3), Load(3, "h3", "a", 2)};
  EXPECT_EQ(ChooseExtraReplicas(v, 2), std::vector<int>({2, 3}));
}

TEST(SpreadOk, DistinctHostsAndTwoRacksWhenThereAreTwo) {
  EXPECT_TRUE(SpreadOk({Load(1, "h1", "a", 0), Load(2, "h2", "b", 0)}, 2, 4));
  EXPECT_FALSE(SpreadOk({Load(1, "h1", "a", 0), Load(2, "h2", "a", 0)}, 2, 4));
  EXPECT_TRUE(SpreadOk({Load(1, "h1", "a", 0), Load(2, "h2", "a", 0)}, 1, 4));
  EXPECT_FALSE(SpreadOk({Load(1, "h1", "a", 0), Load(2, "h1", "b", 0)}, 2, 4));
  EXPECT_TRUE(SpreadOk({Load(1, "h", "h", 0), Load(2, "h", "h", 0)}, 1, 1));  // one host
}

// A cluster whose last chunkserver is silent while files are written (the
// master takes it for dead), then comes back empty.
class RebalanceCluster {
 public:
  RebalanceCluster(int k, uint32_t replication, double threshold, uint32_t moves,
                   std::vector<HostId> hosts = {}, std::string topology = "")
      : k_(k) {
    if (!topology.empty()) {
      char name[] = "/tmp/gfs-topology-XXXXXX";
      const int fd = mkstemp(name);
      EXPECT_GE(fd, 0);
      EXPECT_EQ(write(fd, topology.data(), topology.size()), static_cast<ssize_t>(topology.size()));
      close(fd);
      topo_ = name;
    }
    const std::string topo = topo_;
    c_ = std::make_unique<InProcCluster>(
        k, 64 * 1024, 1, std::vector<Env*>{},
        [=](JobConfig* j) {
          j->replication = replication;
          j->rebalance_threshold = threshold;
          j->rebalance_moves = moves;
          j->topology_file = topo;
          j->short_circuit_reads = false;
          // Chunks under a lease are neither moved nor trimmed nor cloned:
          // short leases, so the files just written can move soon.
          j->lease_seconds = 1;
        },
        false, nullptr, std::move(hosts));
  }
  ~RebalanceCluster() {
    c_.reset();
    if (!topo_.empty()) unlink(topo_.c_str());
  }
  InProcCluster& c() { return *c_; }
  Client* client() { return c_->client(); }

  ReplicationStateReply State() {
    auto s = client()->ReplicationState("/");
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? *s : ReplicationStateReply{};
  }
  // Silences the last chunkserver until the master no longer counts it.
  void SilenceLast() {
    while (State().servers.size() < static_cast<size_t>(k_)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    c_->Pause(k_ - 1);
    const auto until = Clock::now() + std::chrono::seconds(20);
    while (State().servers.size() != static_cast<size_t>(k_ - 1) && Clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_EQ(State().servers.size(), static_cast<size_t>(k_ - 1));
  }
  void Write(int files, size_t bytes) {
    for (int i = 0; i < files; ++i) {
      data_.push_back(Bytes(bytes, 100 + static_cast<uint64_t>(i)));
      auto f = client()->Create("/f" + std::to_string(i));
      ASSERT_TRUE(f.ok());
      ASSERT_TRUE(client()->Write(&*f, 0, data_.back().data(), bytes).ok());
      ASSERT_TRUE(client()->Close(&*f).ok());
    }
  }
  void BackAgain() {
    c_->Resume(k_ - 1);
    const auto until = Clock::now() + std::chrono::seconds(20);
    while (State().servers.size() != static_cast<size_t>(k_) && Clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_EQ(State().servers.size(), static_cast<size_t>(k_));
  }
  void ExpectFilesIntact() {
    for (size_t i = 0; i < data_.size(); ++i) {
      auto f = client()->Open("/f" + std::to_string(i));
      ASSERT_TRUE(f.ok());
      std::vector<uint8_t> back(data_[i].size());
      auto n = client()->Read(&*f, 0, back.data(), back.size());
      ASSERT_TRUE(n.ok()) << n.status().ToString();
      EXPECT_EQ(back, data_[i]) << "file " << i;
    }
  }
  uint64_t BytesOfLast() {
    for (const ServerBytes& b : State().servers) {
      if (b.rank == k_) return b.chunk_bytes;
    }
    return 0;
  }

 private:
  int k_;
  std::string topo_;
  std::unique_ptr<InProcCluster> c_;
  std::vector<std::vector<uint8_t>> data_;
};

// An empty chunkserver gets replicas until every server is within the
// threshold; sampled all along, no chunk ever has fewer than R good
// replicas (the source's copy goes only once the clone is complete).
TEST(Rebalance, MovesReplicasToAnEmptyServerNeverBelowR) {
  RebalanceCluster r(4, 2, 0.1, 8);
  r.SilenceLast();
  r.Write(3, 1 << 20);  // 48 chunks of 64K, 96 replicas on 3 servers
  EXPECT_EQ(r.BytesOfLast(), 0u);
  r.BackAgain();
  const auto until = Clock::now() + std::chrono::seconds(60);
  ReplicationStateReply s;
  uint64_t samples = 0;
  for (;;) {
    s = r.State();
    ++samples;
    ASSERT_EQ(s.under, 0u) << "a chunk below R during rebalancing";
    if ((s.balanced && s.off_target == 0) || Clock::now() > until) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_TRUE(s.balanced);
  EXPECT_EQ(s.off_target, 0u);
  EXPECT_GT(s.moves_done, 0u);
  EXPECT_GT(samples, 10u);
  // Within 10% of the mean (3 MiB of replicas on 4 servers).
  for (const ServerBytes& b : s.servers) {
    EXPECT_NEAR(static_cast<double>(b.chunk_bytes), 6.0 * (1 << 20) / 4, 0.1 * 6.0 * (1 << 20) / 4)
        << "rank " << b.rank;
  }
  r.ExpectFilesIntact();
}

// --rebalance-moves bounds the moves started per second: rounds at least a
// second apart, at most one move each.
TEST(Rebalance, MovesAtTheStatedRate) {
  RebalanceCluster r(4, 2, 0.1, 1);
  r.SilenceLast();
  r.Write(3, 1 << 20);
  r.BackAgain();
  // The time before the last request that still saw no move: the first
  // round came after it.
  auto zero = Clock::now();
  uint64_t moves = 0;
  const auto end = Clock::now() + std::chrono::seconds(8);
  while (Clock::now() < end) {
    const auto asked = Clock::now();
    moves = r.State().moves_done;
    if (moves == 0) {
      zero = asked;
      continue;
    }
    const double secs = std::chrono::duration<double>(Clock::now() - zero).count();
    ASSERT_LE(static_cast<double>(moves), std::floor(secs) + 1.0) << "after " << secs << " s";
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_GE(moves, 2u);
  EXPECT_LE(moves, 9u);
}

// Within the threshold (or with rebalancing off) nothing moves.
TEST(Rebalance, NothingMovesWithinTheThresholdOrWhenOff) {
  for (double threshold : {0.0, 1.0}) {
    RebalanceCluster r(4, 2, threshold, 8);
    r.SilenceLast();
    r.Write(3, 1 << 20);
    r.BackAgain();
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));
    ReplicationStateReply s = r.State();
    EXPECT_TRUE(s.balanced) << "threshold " << threshold;  // |0 - mean| is 1.0 x mean
    EXPECT_EQ(s.moves_done, 0u) << "threshold " << threshold;
    EXPECT_EQ(r.BytesOfLast(), 0u) << "threshold " << threshold;
  }
}

// Six servers on two racks, R = 3, the sixth empty: after rebalancing every
// chunk still spans both racks and three hosts.
TEST(Rebalance, MovedReplicasKeepBothRacks) {
  std::vector<HostId> hosts;
  for (int r = 0; r < 8; ++r) {
    // (appended, not "h" + ...: GCC 12's -Wrestrict misfires on that here)
    std::string name(1, 'h');
    name.append(std::to_string(r));
    hosts.push_back(HostId{name, "boot-1"});
  }
  const std::string topo = "h1 ra\nh2 ra\nh3 ra\nh4 rb\nh5 rb\nh6 rb\n";
  RebalanceCluster r(6, 3, 0.1, 8, hosts, topo);
  r.SilenceLast();
  r.Write(4, 1 << 20);  // 64 chunks, 192 replicas on 5 servers
  r.BackAgain();
  const auto until = Clock::now() + std::chrono::seconds(60);
  ReplicationStateReply s;
  for (;;) {
    s = r.State();
    ASSERT_EQ(s.under, 0u);
    if ((s.balanced && s.off_target == 0) || Clock::now() > until) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(s.balanced);
  EXPECT_GT(s.moves_done, 0u);
  EXPECT_GT(r.BytesOfLast(), 0u);
  auto fsck = r.client()->Fsck("/", false);
  ASSERT_TRUE(fsck.ok());
  for (const FsckFile& f : fsck->files) {
    for (const FsckChunk& c : f.chunks) {
      std::set<int> racks, ranks(c.replicas.begin(), c.replicas.end());
      for (int32_t rank : c.replicas) racks.insert(rank <= 3 ? 0 : 1);
      EXPECT_EQ(ranks.size(), 3u) << f.path << " chunk " << c.index;
      EXPECT_EQ(racks.size(), 2u) << f.path << " chunk " << c.index;
    }
  }
  r.ExpectFilesIntact();
}

// setrep down then up on a tree: the replica counts follow, the bytes stay.
TEST(Setrep, DownAndUpOnATree) {
  RebalanceCluster r(4, 3, 0.0, 0);
  r.Write(2, 512 * 1024);
  auto wait_exact = [&] {
    const auto until = Clock::now() + std::chrono::seconds(30);
    ReplicationStateReply s;
    do {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      s = r.State();
    } while (s.off_target != 0 && Clock::now() < until);
    return s.off_target;
  };
  auto n = r.client()->SetReplication("/", 1);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 2u);
  EXPECT_EQ(wait_exact(), 0u);
  auto fsck = r.client()->Fsck("/", false);
  ASSERT_TRUE(fsck.ok());
  for (const FsckFile& f : fsck->files) {
    for (const FsckChunk& c : f.chunks) EXPECT_EQ(c.replicas.size(), 1u);
  }
  r.ExpectFilesIntact();
  ASSERT_TRUE(r.client()->SetReplication("/f1", 4).ok());
  EXPECT_EQ(wait_exact(), 0u);
  fsck = r.client()->Fsck("/", false);
  ASSERT_TRUE(fsck.ok());
  for (const FsckFile& f : fsck->files) {
    for (const FsckChunk& c : f.chunks) {
      EXPECT_EQ(c.replicas.size(), f.path == "/f1" ? 4u : 1u) << f.path;
    }
  }
  EXPECT_EQ(r.client()->SetReplication("/nope", 2).status().code(), Code::kNotFound);
  EXPECT_EQ(r.client()->SetReplication("/f0", 5).status().code(), Code::kInvalidArgument);
  r.ExpectFilesIntact();
}

}  // namespace
}  // namespace gfs
