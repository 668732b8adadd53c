// The master group in one process: a master, two shadow masters, three
// chunkservers and a client over the in-process transport, the group started
// by the job's own start-up code (jobs/roles.h). Log shipping,
// shadows answering reads, election and takeover when the master dies, and
// refusal of a deposed master's orders.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <functional>
#include <random>
#include <thread>

#include "chunk/chunk_server.h"
#include "io/client.h"
#include "jobs/roles.h"
#include "master/master_server.h"
#include "mpi/transport/inproc_transport.h"
#include "tests/unit/inproc_cluster.h"

namespace gfs {
namespace {

constexpr int kGroup = 3;     // ranks 0 (master), 1, 2 (shadows)
constexpr int kServers = 3;   // ranks 3..5
constexpr int kOutsider = 7;  // plays a deposed master in tests

// A master group of `group` ranks (0 = master), then kServers chunkservers,
// a client and an outsider: with group = 3 the ranks are those above. `dir`
// empty: a fresh directory, removed at the end; otherwise kept.
class GroupCluster {
 public:
  explicit GroupCluster(int group = kGroup, std::string dir = "")
      : group_(group), fabric_(group + kServers + 2) {
    if (dir.empty()) {
      char tmpl[] = "/tmp/gfs-group-XXXXXX";
      dir_ = mkdtemp(tmpl);
      owned_ = true;
    } else {
      dir_ = dir;
    }
    const int client = group_ + kServers;
    cfg_.data_dir = dir_;
    cfg_.chunk_size = 1 << 20;
    cfg_.replication = 3;
    cfg_.shadows = group_ - 1;
    cfg_.request_timeout_ms = 4000;
    cfg_.heartbeat_ms = 100;
    cfg_.lease_seconds = 2;
    cfg_.slice_size = 64 * 1024;
    cfg_.write_op_size = 256 * 1024;
    cfg_.read_size = 128 * 1024;
    // The job's start-up code brings the group up, each member in a thread
    // of its own (the exchange among them is collective). The outsider is
    // no part of the job's layout.
    RoleLayout layout;
    layout.world = group_ + kServers + 1;
    layout.shadows = group_ - 1;
    layout.chunkservers = kServers;
    layout.clients = 1;
    InProcGroup collective(group_);
    masters_.resize(static_cast<size_t>(group_));
    master_locks_.resize(static_cast<size_t>(group_));
    std::vector<Status> started(static_cast<size_t>(group_));
    std::vector<std::thread> starting;
    for (int r = 0; r < group_; ++r) {
      starting.emplace_back([this, r, &layout, &collective, &started] {
        const size_t i = static_cast<size_t>(r);
        started[i] = StartMasterGroupMember(Env::Posix(), cfg_, layout, r, fabric_.endpoint(r),
                                            collective.member(r), &master_locks_[i], &masters_[i]);
      });
    }
    for (auto& t : starting) t.join();
    for (const Status& st : started) EXPECT_TRUE(st.ok()) << st.ToString();
    for (int i = 0; i < kServers; ++i) {
      std::string d;
      uint64_t id = 0;
      locks_.emplace_back();
      EXPECT_TRUE(ClaimChunkserverDir(Env::Posix(), dir_, i, &d, &id, &locks_.back()).ok());
      servers_.push_back(std::make_unique<ChunkServer>(fabric_.endpoint(group_ + i), Env::Posix(),
                                                       cfg_, 0, d, id, "host"));
      EXPECT_TRUE(servers_.back()->Start().ok());
    }
    for (int r = 0; r < group_; ++r) Run(r, masters_[static_cast<size_t>(r)].get());
    for (int i = 0; i < kServers; ++i) Run(group_ + i, servers_[static_cast<size_t>(i)].get());
    client_ = std::make_unique<Client>(fabric_.endpoint(client), cfg_, 0,
                                       std::vector<HostId>(fabric_.size(), HostId{"host", "boot"}));
  }
  ~GroupCluster() {
    if (!finished_) Finish();
    for (auto& l : loops_) l->Stop();
    if (owned_) std::filesystem::remove_all(dir_);
  }
  void Finish() {
    finished_ = true;
    EXPECT_TRUE(client_->Finish(0).ok());
  }
  Client* client() { return client_.get(); }
  InProcFabric& fabric() { return fabric_; }
  MasterServer& member(int r) { return *masters_[static_cast<size_t>(r)]; }
  // Freezes a rank's event loop (a busy or stopped process) until resumed.
  void Pause(int r, bool on) { loops_[static_cast<size_t>(r)]->SetPaused(on); }
  // Stops every master-group loop so a test may read their state safely.
  void Quiesce(bool on) {
    for (int r = 0; r < group_; ++r) {
      if (on) {
        loops_[static_cast<size_t>(r)]->Pause();
      } else {
        loops_[static_cast<size_t>(r)]->Resume();
      }
    }
    if (on) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  int LeaderAmongShadows() {
    for (int r = 1; r < kGroup; ++r) {
      if (member(r).is_master()) return r;
    }
    return -1;
  }

 private:
  // Rank `rank` runs in a thread of its own (loops_ is by rank).
  void Run(int rank, Server* s) {
    loops_.push_back(std::make_unique<ServerThread>(&fabric_, rank, s));
  }

  int group_;
  InProcFabric fabric_;
  std::string dir_;
  bool owned_ = false;
  JobConfig cfg_;
  std::vector<std::unique_ptr<FileLock>> master_locks_;  // outlive the masters
  std::vector<std::unique_ptr<MasterServer>> masters_;
  std::vector<std::unique_ptr<FileLock>> locks_;
  std::vector<std::unique_ptr<ChunkServer>> servers_;
  std::unique_ptr<Client> client_;
  std::vector<std::unique_ptr<ServerThread>> loops_;
  bool finished_ = false;
};

std::vector<uint8_t> Bytes(size_t n, uint64_t seed) {
  std::vector<uint8_t> v(n);
  std::mt19937_64 rng(seed);
  for (auto& x : v) x = static_cast<uint8_t>(rng());
  return v;
}

void WriteFile(Client* c, const std::string& path, const std::vector<uint8_t>& data) {
  auto f = c->Create(path);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  ASSERT_TRUE(c->Write(&*f, 0, data.data(), data.size()).ok());
  ASSERT_TRUE(c->Close(&*f).ok());
}

void ExpectFile(Client* c, const std::string& path, const std::vector<uint8_t>& data) {
  auto f = c->Open(path);
  ASSERT_TRUE(f.ok()) << path << ": " << f.status().ToString();
  std::vector<uint8_t> back(data.size() + 10);
  auto n = c->Read(&*f, 0, back.data(), back.size());
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  back.resize(*n);
  EXPECT_EQ(back, data) << path;
}

TEST(ShadowMasters, ShadowsHoldEveryAcknowledgedRecord) {
  GroupCluster c;
  ASSERT_TRUE(c.client()->Mkdir("/a/b", true).ok());
  WriteFile(c.client(), "/a/b/f", Bytes(3 << 20, 1));
  ASSERT_TRUE(c.client()->Rename("/a/b/f", "/a/g").ok());
  // Acknowledged means durable on every synchronous shadow: their state is
  // the master's once the client has its answers.
  c.Quiesce(true);
  const std::string want = c.member(0).meta().DebugString();
  for (int r = 1; r < kGroup; ++r) EXPECT_EQ(c.member(r).meta().DebugString(), want) << r;
  c.Quiesce(false);
}

TEST(ShadowMasters, ShadowAnswersReadsWhileTheMasterIsBusy) {
  GroupCluster c;
  ASSERT_TRUE(c.client()->Mkdir("/d", false).ok());
  WriteFile(c.client(), "/d/f", Bytes(100000, 2));
  // One request per pause: a pause much longer than the election timeout
  // would (rightly) depose the master.
  c.Pause(0, true);
  auto st = c.client()->Stat("/d/f");
  c.Pause(0, false);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  c.Pause(0, true);
  auto ls = c.client()->List("/d");
  c.Pause(0, false);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(st->size, 100000u);
  ASSERT_TRUE(ls.ok()) << ls.status().ToString();
  ASSERT_EQ(ls->size(), 1u);
  EXPECT_GE(c.client()->stats().counters.get("answered_by_shadow"), 2u);
  c.Quiesce(true);
  uint64_t served = 0;
  for (int r = 1; r < kGroup; ++r) served += c.member(r).stats().counters.Named().count("req_stat");
  c.Quiesce(false);
  EXPECT_GE(served, 1u);
  EXPECT_TRUE(c.member(0).is_master());
}

TEST(ShadowMasters, ShadowTakesOverWhenTheMasterDies) {
  GroupCluster c;
  auto before = Bytes(2 << 20, 3);
  WriteFile(c.client(), "/before", before);
  c.fabric().Kill(0);
  // The client carries on: mutations, writes and reads go to the new master.
  Status mk = c.client()->Mkdir("/after", false);
  ASSERT_TRUE(mk.ok()) << mk.ToString();
  auto after = Bytes((3 << 20) + 777, 4);
  WriteFile(c.client(), "/after/f", after);
  ExpectFile(c.client(), "/before", before);
  ExpectFile(c.client(), "/after/f", after);
  // The other shadow follows the new master and holds its records (it got a
  // snapshot, then the records after it, before the client's answers).
  c.Quiesce(true);
  const int leader = c.LeaderAmongShadows();
  ASSERT_GT(leader, 0);
  EXPECT_GE(c.member(leader).epoch(), 2u);
  EXPECT_EQ(c.member(leader).stats().counters.Named().at("takeovers"), 1u);
  const int other = leader == 1 ? 2 : 1;
  EXPECT_FALSE(c.member(other).is_master());
  EXPECT_EQ(c.member(other).meta().DebugString(), c.member(leader).meta().DebugString());
  c.Quiesce(false);
}

// Snapshots and copies-on-write are logged records like any other: the
// shadows hold them, and the shadow that takes over serves both files
// (and copies the next shared chunk written) as the dead master would.
TEST(ShadowMasters, SnapshotsAndCopiesOnWriteSurviveATakeover) {
  GroupCluster c;
  auto orig = Bytes(2 << 20, 5);
  WriteFile(c.client(), "/f", orig);
  ASSERT_TRUE(c.client()->Snapshot("/f", "/s1").ok());
  auto f = c.client()->Open("/f");
  ASSERT_TRUE(f.ok());
  auto patch = Bytes(1000, 6);
  ASSERT_TRUE(c.client()->Write(&*f, 100, patch.data(), patch.size()).ok());  // chunk 0 copied
  ASSERT_TRUE(c.client()->Close(&*f).ok());
  auto changed = orig;
  std::copy(patch.begin(), patch.end(), changed.begin() + 100);
  c.Quiesce(true);
  const std::string want = c.member(0).meta().DebugString();
  for (int r = 1; r < kGroup; ++r) EXPECT_EQ(c.member(r).meta().DebugString(), want) << r;
  c.Quiesce(false);
  c.fabric().Kill(0);
  ExpectFile(c.client(), "/f", changed);
  ExpectFile(c.client(), "/s1", orig);
  // The new master copies chunk 1, still shared, on its first write.
  auto g = c.client()->Open("/s1");
  ASSERT_TRUE(g.ok());
  ASSERT_TRUE(c.client()->Write(&*g, (1 << 20) + 5, patch.data(), patch.size()).ok());
  ASSERT_TRUE(c.client()->Close(&*g).ok());
  auto snap = orig;
  std::copy(patch.begin(), patch.end(), snap.begin() + (1 << 20) + 5);
  ExpectFile(c.client(), "/s1", snap);
  ExpectFile(c.client(), "/f", changed);
}

TEST(ShadowMasters, TrashSurvivesAFailOver) {
  GroupCluster c;
  auto data = Bytes((2 << 20) + 5, 7);
  ASSERT_TRUE(c.client()->Mkdir("/d", false).ok());
  WriteFile(c.client(), "/d/f", data);
  auto where = c.client()->Trash("/d/f", false, false);
  ASSERT_TRUE(where.ok()) << where.status().ToString();
  // The move into the trash is one record every shadow holds.
  c.Quiesce(true);
  for (int r = 1; r < kGroup; ++r) {
    EXPECT_TRUE(c.member(r).meta().StatFile(*where).ok()) << r;
    EXPECT_FALSE(c.member(r).meta().Exists("/d/f")) << r;
  }
  c.Quiesce(false);
  c.fabric().Kill(0);
  // The new master undeletes it; its chunks were never freed.
  auto u = c.client()->Undelete("/d/f");
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->trash_path, *where);
  ExpectFile(c.client(), "/d/f", data);
}

// gfs setrep's record reaches the shadows: after a take-over the new master
// has the new replication and brings the replicas to it.
TEST(ShadowMasters, SetReplicationSurvivesATakeover) {
  GroupCluster c;
  auto data = Bytes(2 << 20, 5);
  WriteFile(c.client(), "/r", data);
  auto n = c.client()->SetReplication("/r", 1);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  c.fabric().Kill(0);
  auto st = c.client()->Stat("/r");
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(st->replication, 1u);
  auto settled = [&](uint32_t want) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < until) {
      auto rs = c.client()->ReplicationState("/r");
      if (rs.ok() && rs->off_target == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    auto fsck = c.client()->Fsck("/r", false);
    ASSERT_TRUE(fsck.ok()) << fsck.status().ToString();
    for (const FsckChunk& ch : fsck->files.at(0).chunks) EXPECT_EQ(ch.replicas.size(), want);
  };
  settled(1);
  ExpectFile(c.client(), "/r", data);
  ASSERT_TRUE(c.client()->SetReplication("/r", 3).ok());
  settled(3);
  ExpectFile(c.client(), "/r", data);
}

TEST(ShadowMasters, DeposedMasterOrdersAreRefused) {
  GroupCluster c;
  WriteFile(c.client(), "/x", Bytes(1 << 20, 5));
  c.fabric().Kill(0);
  ASSERT_TRUE(c.client()->Mkdir("/y", false).ok());  // forces the takeover
  ASSERT_GT(c.LeaderAmongShadows(), 0);
  // A master of epoch 1 (the deposed one) orders a chunkserver and ships a
  // log batch to a shadow: both refuse with kStaleEpoch.
  RpcClient old(c.fabric().endpoint(kOutsider));
  PrepareChunkReq prep;
  prep.handle = 1;
  prep.version = 99;
  auto id = old.Start(3, prep, 2000);
  ASSERT_TRUE(id.ok());
  // RpcClient stamps epoch 0 (older than any); also try epoch 1 explicitly.
  old.set_epoch(1);
  auto id2 = old.Start(4, prep, 2000);
  ASSERT_TRUE(id2.ok());
  LogBatchReq batch;
  batch.first_seq = 1000;
  auto id3 = old.Start(c.LeaderAmongShadows() == 1 ? 2 : 1, batch, 2000);
  ASSERT_TRUE(id3.ok());
  for (uint64_t i : {*id, *id2, *id3}) {
    auto m = old.Wait(i);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_EQ(m->status().code(), Code::kStaleEpoch) << m->status().ToString();
    EXPECT_GE(m->h.epoch, 2u);
  }
}

// The master logs a new chunk (shipped to the shadows) and dies before any
// chunkserver created it: its orders never arrive. The shadow that takes
// over knows the chunk but no replica of it; once every chunkserver has
// registered and none holds it, the chunk is created afresh and the write
// that was in flight when the master died succeeds.
TEST(ShadowMasters, ChunkLoggedButNeverCreatedIsCreatedAfterTakeover) {
  GroupCluster c;
  auto first = Bytes(1 << 20, 11);  // exactly one chunk
  auto f = c.client()->Create("/grow");
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  ASSERT_TRUE(c.client()->Write(&*f, 0, first.data(), first.size()).ok());
  for (int cs = kGroup; cs < kGroup + kServers; ++cs) c.fabric().Cut(0, cs, true);
  std::thread killer([&] {
    // Long enough for the lease request to reach the master, which logs
    // chunk 1, ships it, and orders its creation into the void.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    c.fabric().Kill(0);
  });
  auto second = Bytes((1 << 20) / 2 + 99, 12);
  Status w = c.client()->Write(&*f, first.size(), second.data(), second.size());
  killer.join();
  ASSERT_TRUE(w.ok()) << w.ToString();
  ASSERT_TRUE(c.client()->Close(&*f).ok());
  first.insert(first.end(), second.begin(), second.end());
  ExpectFile(c.client(), "/grow", first);
  c.Quiesce(true);
  const int leader = c.LeaderAmongShadows();
  ASSERT_GT(leader, 0);
  ASSERT_EQ(c.member(leader).stats().counters.Named().count("chunks_recreated"), 1u);
  EXPECT_EQ(c.member(leader).stats().counters.Named().at("chunks_recreated"), 1u);
  c.Quiesce(false);
}

// Appends to the op log of a job that has ended, as a master killed in the
// middle of an operation leaves it: `edit` gets the replayed state, the
// journal and /f; the records are synced after it.
void AppendToStoppedLog(
    const std::string& dir,
    const std::function<void(MetaState&, MetaJournal&, const FileInfo&)>& edit) {
  MetaState st;
  MetaJournal j(Env::Posix(), dir + "/master", JournalOptions{});
  uint64_t last = 0;
  std::string warn;
  ASSERT_TRUE(j.Open(&st, &last, &warn).ok());
  auto f = st.StatFile("/f");
  ASSERT_TRUE(f.ok());
  edit(st, j, *f);
  ASSERT_TRUE(j.Sync().ok());
}

// The master logged a new chunk version, then the whole job died before any
// replica recorded it. In the next job every replica is one version behind:
// none may be deleted as stale; they are brought forward and read.
TEST(VersionRecovery, ReplicasBehindAnUnpreparedVersionAreKept) {
  char tmpl[] = "/tmp/gfs-vrec-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  auto data = Bytes((2 << 20) + 4321, 9);
  {
    GroupCluster c(1, dir);
    WriteFile(c.client(), "/f", data);
  }
  // What a master that died mid-grant leaves in its log.
  ASSERT_NO_FATAL_FAILURE(
      AppendToStoppedLog(dir, [](MetaState& st, MetaJournal& j, const FileInfo& f) {
        for (uint64_t h : f.chunks) {
          const ChunkInfo* ci = st.FindChunk(h);
          ASSERT_NE(ci, nullptr);
          ASSERT_TRUE(j.Append(MetaOp::SetVersion(h, ci->version + 1), nullptr).ok());
        }
      }));
  {
    GroupCluster c(1, dir);
    ExpectFile(c.client(), "/f", data);
    // And the file takes writes again (a new lease on the revived replicas).
    auto g = c.client()->Open("/f");
    ASSERT_TRUE(g.ok());
    ASSERT_TRUE(c.client()->Write(&*g, 10, "xyz", 3).ok());
    ASSERT_TRUE(c.client()->Close(&*g).ok());
    std::memcpy(data.data() + 10, "xyz", 3);
    ExpectFile(c.client(), "/f", data);
    c.Quiesce(true);
    EXPECT_GE(c.member(0).stats().counters.Named().at("versions_recovered"), 3u);
    c.Quiesce(false);
  }
  std::filesystem::remove_all(dir);
}

// A killed job logged a chunk past its file's end (a write that never
// completed, its length never reported) and no chunkserver created it. The
// next job frees it before serving anyone: the file reads as it was, every
// chunk it lists has its replicas, and a write past the end finds zeros.
TEST(VersionRecovery, ChunksPastTheEndOfAKilledJobAreDropped) {
  char tmpl[] = "/tmp/gfs-pastend-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  auto data = Bytes((1 << 20) + 5000, 21);
  {
    GroupCluster c(1, dir);
    WriteFile(c.client(), "/f", data);
  }
  ASSERT_NO_FATAL_FAILURE(
      AppendToStoppedLog(dir, [](MetaState& st, MetaJournal& j, const FileInfo& f) {
        ASSERT_EQ(f.chunks.size(), 2u);
        for (uint32_t i = 2; i < 4; ++i) {
          ASSERT_TRUE(j.Append(MetaOp::AddChunk(f.id, i, st.NextHandle() + i, 1, 0), nullptr).ok());
        }
      }));
  {
    GroupCluster c(1, dir);
    ExpectFile(c.client(), "/f", data);
    auto st = c.client()->Stat("/f");
    ASSERT_TRUE(st.ok());
    EXPECT_EQ(st->chunks, 2u);
    auto fsck = c.client()->Fsck("/f", false);
    ASSERT_TRUE(fsck.ok()) << fsck.status().ToString();
    ASSERT_EQ(fsck->files.size(), 1u);
    ASSERT_EQ(fsck->files[0].chunks.size(), 2u);
    for (const auto& ch : fsck->files[0].chunks) EXPECT_EQ(ch.replicas.size(), 3u) << ch.index;
    // A write well past the end: the gap reads as zeros.
    auto g = c.client()->Open("/f");
    ASSERT_TRUE(g.ok());
    const uint64_t at = (3 << 20) + 10;
    ASSERT_TRUE(c.client()->Write(&*g, at, "end", 3).ok());
    ASSERT_TRUE(c.client()->Close(&*g).ok());
    data.resize(at, 0);
    data.insert(data.end(), {'e', 'n', 'd'});
    ExpectFile(c.client(), "/f", data);
    c.Quiesce(true);
    EXPECT_EQ(c.member(0).stats().counters.Named().at("chunks_past_end_dropped"), 2u);
    c.Quiesce(false);
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace gfs
