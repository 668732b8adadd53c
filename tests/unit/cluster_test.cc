// Master, chunkservers and a client in one process over the in-process
// transport: the roles' logic without MPI.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "chunk/chunk_server.h"
#include "io/client.h"
#include "master/master_server.h"
#include "mpi/inproc_transport.h"
#include "tests/unit/fault_env.h"

namespace gfs {
namespace {

class InProcCluster {
 public:
  // envs[rank]: the Env (disk and clock) of the master (rank 0) and of each
  // chunkserver (ranks 1..k); missing or null: the real one. `tweak` may
  // change the job's settings. Every rank is on one host, so clients read
  // short-circuit unless the tweak turns it off.
  explicit InProcCluster(int chunkservers, uint64_t chunk_size = 1 << 20, int clients = 1,
                         std::vector<Env*> envs = {},
                         const std::function<void(JobConfig*)>& tweak = nullptr)
      : k_(chunkservers), fabric_(chunkservers + 1 + clients), envs_(std::move(envs)) {
    char tmpl[] = "/tmp/gfs-cluster-XXXXXX";
    dir_ = mkdtemp(tmpl);
    cfg_.data_dir = dir_;
    cfg_.chunk_size = chunk_size;
    cfg_.replication = static_cast<uint32_t>(std::min(3, k_));
    cfg_.request_timeout_ms = 1500;
    cfg_.heartbeat_ms = 50;
    cfg_.slice_size = 64 * 1024;
    cfg_.write_op_size = 256 * 1024;
    cfg_.read_size = 128 * 1024;
    if (tweak) tweak(&cfg_);
    std::vector<int> cs, client_ranks;
    for (int i = 1; i <= k_; ++i) cs.push_back(i);
    for (int i = 0; i < clients; ++i) client_ranks.push_back(k_ + 1 + i);
    master_ = std::make_unique<MasterServer>(fabric_.endpoint(0), env(0), cfg_, dir_ + "/master",
                                             cs, client_ranks);
    std::string warn;
    EXPECT_TRUE(master_->Start(&warn).ok());
    threads_.emplace_back([this] { RunServer(fabric_.endpoint(0), master_.get(), 2000); });
    for (int i = 1; i <= k_; ++i) {
      std::string d;
      uint64_t id = 0;
      locks_.emplace_back();
      EXPECT_TRUE(ClaimChunkserverDir(Env::Posix(), dir_, i - 1, &d, &id, &locks_.back()).ok());
      servers_.push_back(
          std::make_unique<ChunkServer>(fabric_.endpoint(i), env(i), cfg_, 0, d, id, "host"));
      EXPECT_TRUE(servers_.back()->Start().ok());
    }
    for (int i = 1; i <= k_; ++i) {
      ChunkServer* s = servers_[static_cast<size_t>(i - 1)].get();
      Transport* t = fabric_.endpoint(i);
      threads_.emplace_back([this, s, t, i] {
        // A "killed" server stops serving but its thread exits at shutdown.
        Idler idler;
        while (!s->done() && !stop_) {
          if (fabric_.dead(i)) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
            continue;
          }
          bool busy = false;
          Incoming in;
          while (t->Poll(&in)) {
            Message m;
            if (ParseMessage(std::move(in), &m).ok()) s->Handle(m);
            busy = true;
          }
          s->AfterBatch();
          s->Tick(MonoMicros());
          busy ? idler.Busy() : idler.Idle();
        }
      });
    }
    for (int i = 0; i < clients; ++i) {
      clients_.push_back(std::make_unique<Client>(
          fabric_.endpoint(k_ + 1 + i), cfg_, 0,
          std::vector<std::string>(static_cast<size_t>(k_ + 1 + clients), "host")));
    }
  }
  ~InProcCluster() {
    // Clients finish concurrently: the master answers only once all are done.
    std::vector<std::thread> done;
    for (auto& c : clients_) {
      done.emplace_back([&c] { EXPECT_TRUE(c->Finish(0).ok()); });
    }
    for (auto& t : done) t.join();
    stop_ = true;
    for (auto& t : threads_) t.join();
    std::filesystem::remove_all(dir_);
  }
  Client* client(int i = 0) { return clients_[static_cast<size_t>(i)].get(); }
  InProcFabric& fabric() { return fabric_; }
  ChunkServer* server(int i) { return servers_[static_cast<size_t>(i)].get(); }
  const MasterServer& master() { return *master_; }
  int client_rank() const { return k_ + 1; }

 private:
  Env* env(int rank) const {
    const auto r = static_cast<size_t>(rank);
    return r < envs_.size() && envs_[r] != nullptr ? envs_[r] : Env::Posix();
  }

  int k_;
  InProcFabric fabric_;
  std::vector<Env*> envs_;
  std::string dir_;
  JobConfig cfg_;
  std::unique_ptr<MasterServer> master_;
  std::vector<std::unique_ptr<FileLock>> locks_;
  std::vector<std::unique_ptr<ChunkServer>> servers_;
  std::vector<std::unique_ptr<Client>> clients_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
};

// Reads all of `f` (size bytes) front to back in 48 KiB calls: not a divisor
// of read_size, and blocks are read in part at both ends.
void ReadInPieces(Client* reader, File* f, std::vector<uint8_t>* back) {
  constexpr size_t kPiece = 48 * 1024;
  for (size_t off = 0; off < back->size(); off += kPiece) {
    auto n = reader->Read(f, off, back->data() + off, kPiece);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    ASSERT_EQ(*n, std::min(kPiece, back->size() - off));
  }
}

// For tests of reads through the chunkservers (read-ahead, replica choice).
void NoShortCircuit(JobConfig* j) { j->short_circuit_reads = false; }
void NoShortCircuitWrites(JobConfig* j) { j->short_circuit_writes = false; }
void ShortCircuitAppends(JobConfig* j) { j->short_circuit_appends = true; }

std::vector<uint8_t> RandomBytes(size_t n, uint64_t seed) {
  std::vector<uint8_t> v(n);
  std::mt19937_64 rng(seed);
  for (auto& x : v) x = static_cast<uint8_t>(rng());
  return v;
}

TEST(InProcCluster, WriteAcrossChunksAndReadBack) {
  InProcCluster c(4);
  ASSERT_TRUE(c.client()->Mkdir("/d", false).ok());
  auto f = c.client()->Create("/d/f");
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  auto data = RandomBytes(3 * (1 << 20) + 12345, 1);
  ASSERT_TRUE(c.client()->Write(&*f, 0, data.data(), data.size()).ok());
  ASSERT_TRUE(c.client()->Close(&*f).ok());
  auto st = c.client()->Stat("/d/f");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->size, data.size());
  EXPECT_EQ(st->chunks, 4u);
  auto g = c.client()->Open("/d/f");
  ASSERT_TRUE(g.ok());
  std::vector<uint8_t> back(data.size() + 100);
  auto n = c.client()->Read(&*g, 0, back.data(), back.size());
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  ASSERT_EQ(*n, data.size());
  back.resize(*n);
  EXPECT_EQ(back, data);
  // Every chunk is on exactly 3 of the 4 servers.
  size_t replicas = 0;
  for (int i = 0; i < 4; ++i) replicas += c.server(i)->store()->NumChunks();
  EXPECT_EQ(replicas, 4u * 3u);
}

TEST(InProcCluster, ClientSendsEachByteOnceIntoTheChain) {
  InProcCluster c(3, 1 << 20, 1, {}, NoShortCircuitWrites);
  auto f = c.client()->Create("/f");
  ASSERT_TRUE(f.ok());
  auto data = RandomBytes(700000, 2);
  ASSERT_TRUE(c.client()->Write(&*f, 0, data.data(), data.size()).ok());
  EXPECT_EQ(c.client()->stats().counters["push_bytes_sent"], data.size());
  uint64_t from_client = 0, from_servers = 0;
  for (int i = 0; i < 3; ++i) {
    for (auto [peer, bytes] : c.server(i)->stats().push_bytes_from) {
      (peer == c.client_rank() ? from_client : from_servers) += bytes;
    }
  }
  EXPECT_EQ(from_client, data.size());       // only the chain head hears from the client
  EXPECT_EQ(from_servers, 2 * data.size());  // the rest flows server to server
  EXPECT_EQ(c.master().stats().counters.at("file_bytes_received"), 0u);
}

TEST(InProcCluster, OverwriteStraddlingAChunkBoundary) {
  InProcCluster c(3);
  auto f = c.client()->Create("/f");
  ASSERT_TRUE(f.ok());
  auto data = RandomBytes(2 << 20, 3);
  ASSERT_TRUE(c.client()->Write(&*f, 0, data.data(), data.size()).ok());
  auto patch = RandomBytes(5000, 4);
  uint64_t off = (1 << 20) - 1000;
  ASSERT_TRUE(c.client()->Write(&*f, off, patch.data(), patch.size()).ok());
  std::copy(patch.begin(), patch.end(), data.begin() + static_cast<long>(off));
  // Extend past the end with a gap: the gap reads as zeros.
  auto tail = RandomBytes(100, 5);
  uint64_t toff = data.size() + 3000;
  ASSERT_TRUE(c.client()->Write(&*f, toff, tail.data(), tail.size()).ok());
  data.resize(toff, 0);
  data.insert(data.end(), tail.begin(), tail.end());
  std::vector<uint8_t> back(data.size());
  auto n = c.client()->Read(&*f, 0, back.data(), back.size());
  ASSERT_TRUE(n.ok());
  ASSERT_EQ(*n, data.size());
  EXPECT_EQ(back, data);
}

TEST(InProcCluster, TruncateCutsTheLastChunkOnEveryReplica) {
  InProcCluster c(3);
  auto f = c.client()->Create("/f");
  ASSERT_TRUE(f.ok());
  auto data = RandomBytes(3 << 20, 6);
  ASSERT_TRUE(c.client()->Write(&*f, 0, data.data(), data.size()).ok());
  uint64_t cut = (1 << 20) + 777;
  ASSERT_TRUE(c.client()->Truncate(&*f, cut).ok());
  auto st = c.client()->Stat("/f");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->size, cut);
  EXPECT_EQ(st->chunks, 2u);
  // Growing again must show zeros, not the old bytes.
  std::vector<uint8_t> one = {0xAB};
  ASSERT_TRUE(c.client()->Write(&*f, (2 << 20) - 1, one.data(), 1).ok());
  std::vector<uint8_t> back(2 << 20);
  auto n = c.client()->Read(&*f, 0, back.data(), back.size());
  ASSERT_TRUE(n.ok());
  ASSERT_EQ(*n, back.size());
  EXPECT_TRUE(std::equal(data.begin(), data.begin() + static_cast<long>(cut), back.begin()));
  for (size_t i = cut; i + 1 < back.size(); ++i) ASSERT_EQ(back[i], 0) << "at " << i;
  EXPECT_EQ(back.back(), 0xAB);
}

TEST(InProcCluster, ReadFailsOverToAnotherReplica) {
  InProcCluster c(3);
  auto f = c.client()->Create("/f");
  ASSERT_TRUE(f.ok());
  auto data = RandomBytes(600000, 7);
  ASSERT_TRUE(c.client()->Write(&*f, 0, data.data(), data.size()).ok());
  c.fabric().Kill(1);  // rank 1 = the first chunkserver
  std::vector<uint8_t> back(data.size());
  auto n = c.client()->Read(&*f, 0, back.data(), back.size());
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(back, data);
}

// A sequential reader (read-ahead on) with a dead replica in its cached
// locations: it reads the right bytes, and each chunk's cache learns of the
// silent replica once, instead of every third request waiting out the
// deadline on it.
TEST(InProcCluster, ReadsStopAskingASilentReplica) {
  InProcCluster c(3, 1 << 20, 1, {}, NoShortCircuit);
  auto f = c.client()->Create("/f");
  ASSERT_TRUE(f.ok());
  auto data = RandomBytes(2 << 20, 17);  // 2 chunks of 1 MiB, 8 read requests each
  ASSERT_TRUE(c.client()->Write(&*f, 0, data.data(), data.size()).ok());
  auto r = c.client()->Open("/f");
  ASSERT_TRUE(r.ok());
  std::vector<uint8_t> back(data.size());
  ASSERT_TRUE(c.client()->Read(&*r, 0, back.data(), 1).ok());  // locations cached
  c.fabric().Kill(1);                                          // a replica of both chunks
  constexpr size_t kPiece = 64 * 1024;
  for (size_t off = 0; off < data.size(); off += kPiece) {
    auto n = c.client()->Read(&*r, off, back.data() + off, kPiece);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
  }
  EXPECT_EQ(back, data);
  auto& k = c.client()->stats().counters;
  EXPECT_GT(k["replicas_avoided"], 0u);
  EXPECT_LE(k["read_ahead_failed"] + k["read_retries"], 4u);
}

TEST(InProcCluster, WriteWhoseChainHasADeadServerIsRetriedOnTheLiveOnes) {
  InProcCluster c(3);
  auto f = c.client()->Create("/f");
  ASSERT_TRUE(f.ok());
  auto first = RandomBytes(300000, 8);
  ASSERT_TRUE(c.client()->Write(&*f, 0, first.data(), first.size()).ok());
  c.fabric().Kill(2);  // a replica (maybe the primary) of the file's only chunk
  auto second = RandomBytes(300000, 9);
  Status s = c.client()->Write(&*f, 100000, second.data(), second.size());
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_GT(c.client()->stats().counters["write_retries"], 0u);
  ASSERT_TRUE(c.client()->Close(&*f).ok());
  std::vector<uint8_t> want(first);
  want.resize(100000 + second.size());
  std::copy(second.begin(), second.end(), want.begin() + 100000);
  std::vector<uint8_t> back(want.size());
  auto n = c.client()->Read(&*f, 0, back.data(), back.size());
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(back, want);
}

TEST(InProcCluster, NamespaceErrorsComeBackAsStatuses) {
  InProcCluster c(3);
  EXPECT_EQ(c.client()->Stat("/nope").status().code(), Code::kNotFound);
  EXPECT_EQ(c.client()->Mkdir("/a/b", false).code(), Code::kNotFound);
  ASSERT_TRUE(c.client()->Mkdir("/a/b", true).ok());
  ASSERT_TRUE(c.client()->Create("/a/b/f").ok());
  EXPECT_EQ(c.client()->Create("/a/b/f").status().code(), Code::kAlreadyExists);
  EXPECT_EQ(c.client()->Remove("/a", false).code(), Code::kNotEmpty);
  ASSERT_TRUE(c.client()->Rename("/a/b/f", "/a/g").ok());
  EXPECT_EQ(c.client()->Stat("/a/b/f").status().code(), Code::kNotFound);
  auto l = c.client()->List("/a");
  ASSERT_TRUE(l.ok());
  ASSERT_EQ(l->size(), 2u);
  EXPECT_EQ((*l)[0].path, "b");
  EXPECT_EQ((*l)[1].path, "g");
  ASSERT_TRUE(c.client()->Remove("/a", true).ok());
  EXPECT_EQ(c.client()->Stat("/a").status().code(), Code::kNotFound);
  CreateOptions bad;
  bad.replication = 4;
  EXPECT_EQ(c.client()->Create("/r4", bad).status().code(), Code::kInvalidArgument);
}

// Reads chunk `handle` from every server that has it; all copies must match.
std::vector<std::vector<uint8_t>> Replicas(InProcCluster& c, int servers, uint64_t handle) {
  std::vector<std::vector<uint8_t>> out;
  for (int i = 0; i < servers; ++i) {
    ChunkStore* st = c.server(i)->store();
    if (!st->Has(handle)) continue;
    std::vector<uint8_t> d;
    EXPECT_TRUE(st->Read(handle, 0, 1 << 30, &d).ok());
    out.push_back(std::move(d));
  }
  return out;
}

TEST(InProcCluster, RecordAppendPadsChunkEndsAndNeverSplitsARecord) {
  const uint64_t cs = 256 * 1024;
  InProcCluster c(3, cs);
  auto f = c.client()->Create("/log");
  ASSERT_TRUE(f.ok());
  std::mt19937_64 rng(11);
  std::vector<std::pair<uint64_t, std::vector<uint8_t>>> recs;
  for (int i = 0; i < 200; ++i) {
    auto data = RandomBytes(1 + rng() % 20000, 100 + static_cast<uint64_t>(i));
    auto off = c.client()->RecordAppend(&*f, data.data(), data.size());
    ASSERT_TRUE(off.ok()) << off.status().ToString();
    // A record never straddles a chunk boundary.
    EXPECT_EQ(*off / cs, (*off + data.size() - 1) / cs) << "record " << i;
    recs.emplace_back(*off, std::move(data));
  }
  auto committed = c.client()->CommittedLength(&*f);
  ASSERT_TRUE(committed.ok()) << committed.status().ToString();
  EXPECT_EQ(*committed, recs.back().first + recs.back().second.size());
  std::vector<uint8_t> all(*committed);
  auto n = c.client()->Read(&*f, 0, all.data(), all.size());
  ASSERT_TRUE(n.ok());
  ASSERT_EQ(*n, all.size());
  for (const auto& [off, data] : recs) {
    ASSERT_TRUE(std::equal(data.begin(), data.end(), all.begin() + static_cast<long>(off)));
  }
  // Bytes not covered by a record are padding (zeros), and only at chunk ends.
  std::vector<bool> covered(all.size());
  for (const auto& [off, data] : recs) {
    for (size_t i = 0; i < data.size(); ++i) covered[off + i] = true;
  }
  for (size_t i = 0; i < all.size(); ++i) {
    if (covered[i]) continue;
    ASSERT_EQ(all[i], 0) << "at " << i;
    // The rest of this chunk must be uncovered too.
    size_t end = std::min<size_t>((i / cs + 1) * cs, all.size());
    for (size_t j = i; j < end; ++j) ASSERT_FALSE(covered[j]) << "padding before a record at " << i;
    i = end - 1;
  }
  ASSERT_TRUE(c.client()->Close(&*f).ok());
  auto st = c.client()->Stat("/log");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->size, *committed);  // close brings the master's length up to date
}

TEST(InProcCluster, RecordAppendLimitIsAQuarterChunk) {
  const uint64_t cs = 256 * 1024;
  InProcCluster c(3, cs);
  auto f = c.client()->Create("/log");
  ASSERT_TRUE(f.ok());
  std::vector<uint8_t> big(cs / 4 + 1, 7);
  auto r = c.client()->RecordAppend(&*f, big.data(), big.size());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kTooLarge);
  EXPECT_NE(r.status().message().find(std::to_string(cs / 4)), std::string::npos);
  r = c.client()->RecordAppend(&*f, big.data(), big.size() - 1);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
}

TEST(InProcCluster, ConcurrentAppendsLeaveIdenticalReplicas) {
  const uint64_t cs = 256 * 1024;
  const int kClients = 3, kRecords = 150;
  InProcCluster c(3, cs, kClients);
  ASSERT_TRUE(c.client(0)->Create("/log").ok());
  std::vector<std::vector<std::pair<uint64_t, std::vector<uint8_t>>>> got(kClients);
  std::vector<std::thread> producers;
  for (int p = 0; p < kClients; ++p) {
    producers.emplace_back([&, p] {
      auto f = c.client(p)->Open("/log");
      ASSERT_TRUE(f.ok());
      std::mt19937_64 rng(static_cast<uint64_t>(p));
      for (int i = 0; i < kRecords; ++i) {
        auto data = RandomBytes(1 + rng() % 9000, rng());
        auto off = c.client(p)->RecordAppend(&*f, data.data(), data.size());
        ASSERT_TRUE(off.ok()) << off.status().ToString();
        got[static_cast<size_t>(p)].emplace_back(*off, std::move(data));
      }
    });
  }
  for (auto& t : producers) t.join();
  // No two acknowledged records overlap.
  std::map<uint64_t, size_t> spans;
  for (const auto& g : got) {
    for (const auto& [off, data] : g) EXPECT_TRUE(spans.emplace(off, data.size()).second);
  }
  uint64_t prev_end = 0;
  for (const auto& [off, len] : spans) {
    EXPECT_GE(off, prev_end);
    prev_end = off + len;
  }
  // Every replica holds identical bytes at every returned offset.
  auto f = c.client(0)->Open("/log");
  ASSERT_TRUE(f.ok());
  auto committed = c.client(0)->CommittedLength(&*f);
  ASSERT_TRUE(committed.ok());
  EXPECT_GE(*committed, prev_end);
  auto info = c.master().meta().StatFile("/log");
  ASSERT_TRUE(info.ok());
  for (const auto& g : got) {
    for (const auto& [off, data] : g) {
      uint64_t handle = info->chunks[off / cs];
      auto reps = Replicas(c, 3, handle);
      ASSERT_EQ(reps.size(), 3u);
      for (const auto& r : reps) {
        ASSERT_GE(r.size(), off % cs + data.size());
        ASSERT_TRUE(std::equal(data.begin(), data.end(), r.begin() + static_cast<long>(off % cs)));
      }
    }
  }
}

// With one replica the write request follows the pushed data without
// waiting for the push's acknowledgement; the bytes land all the same, and
// an overwrite in place is applied in order.
TEST(InProcCluster, SingleReplicaWritesSkipThePushAckRoundTrip) {
  InProcCluster c(1, 1 << 20, 1, {}, NoShortCircuitWrites);
  auto f = c.client()->Create("/one");
  ASSERT_TRUE(f.ok());
  auto data = RandomBytes((2 << 20) + 777, 21);
  constexpr size_t kPiece = 100 * 1024;
  for (size_t off = 0; off < data.size(); off += kPiece) {
    const size_t n = std::min(kPiece, data.size() - off);
    ASSERT_TRUE(c.client()->Write(&*f, off, data.data() + off, n).ok());
  }
  std::vector<uint8_t> patch(5000, 0x77);
  ASSERT_TRUE(c.client()->Write(&*f, 123456, patch.data(), patch.size()).ok());
  std::copy(patch.begin(), patch.end(), data.begin() + 123456);
  ASSERT_TRUE(c.client()->Fsync(&*f).ok());
  EXPECT_GE(c.client()->stats().counters["writes_without_push_ack"], data.size() / kPiece);
  std::vector<uint8_t> back(data.size());
  auto n = c.client()->Read(&*f, 0, back.data(), back.size());
  ASSERT_TRUE(n.ok());
  ASSERT_EQ(*n, data.size());
  EXPECT_EQ(back, data);
}

// Appends that wait at the primary together are written together (one
// write per chunk for the batch) and still each land once, whole, at their
// own offset, identically on every replica, across chunk ends.
TEST(InProcCluster, QueuedAppendsAreWrittenTogether) {
  const uint64_t cs = 256 * 1024;
  InProcCluster c(3, cs, 1);
  auto f = c.client()->Create("/batch");
  ASSERT_TRUE(f.ok());
  std::vector<std::vector<uint8_t>> recs;
  std::vector<Client::Span> spans;
  for (int i = 0; i < 300; ++i) recs.push_back(RandomBytes(2000 + 7 * i, 100 + i));
  for (const auto& r : recs) spans.push_back({r.data(), r.size()});
  std::vector<uint64_t> offsets;
  ASSERT_TRUE(c.client()->RecordAppendMany(&*f, spans, &offsets).ok());
  ASSERT_EQ(offsets.size(), recs.size());
  std::map<uint64_t, size_t> at;
  for (size_t i = 0; i < recs.size(); ++i) {
    EXPECT_TRUE(at.emplace(offsets[i], i).second);
    EXPECT_LE(offsets[i] % cs + recs[i].size(), cs) << "record split at a chunk end";
  }
  uint64_t prev_end = 0;
  for (const auto& [off, i] : at) {
    EXPECT_GE(off, prev_end);
    prev_end = off + recs[i].size();
  }
  auto info = c.master().meta().StatFile("/batch");
  ASSERT_TRUE(info.ok());
  for (size_t i = 0; i < recs.size(); ++i) {
    auto reps = Replicas(c, 3, info->chunks[offsets[i] / cs]);
    ASSERT_EQ(reps.size(), 3u);
    for (const auto& r : reps) {
      ASSERT_GE(r.size(), offsets[i] % cs + recs[i].size());
      ASSERT_TRUE(std::equal(recs[i].begin(), recs[i].end(),
                             r.begin() + static_cast<long>(offsets[i] % cs)));
    }
  }
  uint64_t appends = 0, batches = 0;
  for (int i = 0; i < 3; ++i) {
    const auto& k = c.server(i)->stats().counters;
    if (k.count("appends_primary")) appends += k.at("appends_primary");
    if (k.count("append_batches")) batches += k.at("append_batches");
  }
  EXPECT_GE(appends, recs.size());
  EXPECT_GT(batches, 0u);
  EXPECT_LT(batches, appends);  // some batch held more than one record
}

// The disk refuses the write of a batch of queued appends: the appends of
// the batch fail (none is acknowledged), the replica is restored and stays
// usable, and the same records then append and read back whole, next to the
// record acknowledged before.
TEST(InProcCluster, FailedAppendBatchAcknowledgesNone) {
  FaultEnv cs_env(Env::Posix());
  // Through the chunkserver's disk: the batch path, not short-circuit appends.
  InProcCluster c(1, 1 << 20, 1, {nullptr, &cs_env}, NoShortCircuitWrites);
  auto f = c.client()->Create("/failing");
  ASSERT_TRUE(f.ok());
  std::vector<std::vector<uint8_t>> recs;
  std::vector<Client::Span> spans;
  for (int i = 0; i < 40; ++i) recs.push_back(RandomBytes(3000 + i, 300 + i));
  for (const auto& r : recs) spans.push_back({r.data(), r.size()});
  std::vector<uint64_t> offsets;
  // The chunk exists (and its first record is in) before the disk fails.
  ASSERT_TRUE(c.client()->RecordAppendMany(&*f, {spans[0]}, &offsets).ok());
  const uint64_t first = offsets[0];
  cs_env.FailWriteAt(0);  // the next write on the chunkserver's disk: a batch's data
  EXPECT_FALSE(c.client()->RecordAppendMany(&*f, spans, &offsets).ok());
  cs_env.FailWriteAt(-1);
  offsets.clear();
  Status again = c.client()->RecordAppendMany(&*f, spans, &offsets);
  ASSERT_TRUE(again.ok()) << again.ToString();
  ASSERT_EQ(offsets.size(), recs.size());
  for (size_t i = 0; i < recs.size(); ++i) {
    std::vector<uint8_t> back(recs[i].size());
    auto n = c.client()->Read(&*f, offsets[i], back.data(), back.size());
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    EXPECT_EQ(back, recs[i]) << "record " << i;
  }
  std::vector<uint8_t> back(recs[0].size());
  ASSERT_TRUE(c.client()->Read(&*f, first, back.data(), back.size()).ok());
  EXPECT_EQ(back, recs[0]);
}

// A write past the end does not cost a logged master update each: the
// writer sees its new length at once, the master (and other clients) at
// fsync, close or a rename of the file, in one update.
TEST(InProcCluster, LengthsAreReportedAtFsyncCloseAndRename) {
  InProcCluster c(3, 1 << 20, 2);
  auto f = c.client(0)->Create("/grow");
  ASSERT_TRUE(f.ok());
  const uint64_t before = c.master().stats().counters.at("mutations");
  auto data = RandomBytes(64 * 1024, 7);
  for (int i = 0; i < 40; ++i) {  // 2.5 MiB in 40 writes, over 3 chunks
    ASSERT_TRUE(c.client(0)->Write(&*f, i * data.size(), data.data(), data.size()).ok());
  }
  const uint64_t end = 40 * data.size();
  EXPECT_EQ(f->length, end);
  auto mine = c.client(0)->Stat("/grow");
  ASSERT_TRUE(mine.ok());
  EXPECT_EQ(mine->size, end);  // the writer's own view
  auto theirs = c.client(1)->Stat("/grow");
  ASSERT_TRUE(theirs.ok());
  EXPECT_EQ(theirs->size, 0u);  // not reported yet
  ASSERT_TRUE(c.client(0)->Fsync(&*f).ok());
  theirs = c.client(1)->Stat("/grow");
  ASSERT_TRUE(theirs.ok());
  EXPECT_EQ(theirs->size, end);
  // Chunk creations and leases are logged too; lengths added one record.
  const uint64_t logged = c.master().stats().counters.at("mutations") - before;
  EXPECT_LE(logged, 3u /* chunks */ + 3u /* lease versions */ + 1u);
  // Unreported, then renamed: the length follows the file.
  ASSERT_TRUE(c.client(0)->Write(&*f, end, data.data(), 100).ok());
  ASSERT_TRUE(c.client(0)->Rename("/grow", "/moved").ok());
  theirs = c.client(1)->Stat("/moved");
  ASSERT_TRUE(theirs.ok()) << theirs.status().ToString();
  EXPECT_EQ(theirs->size, end + 100);
  auto g = c.client(1)->Open("/moved");
  ASSERT_TRUE(g.ok());
  std::vector<uint8_t> back(100);
  auto n = c.client(1)->Read(&*g, end, back.data(), back.size());
  ASSERT_TRUE(n.ok());
  ASSERT_EQ(*n, 100u);
  EXPECT_TRUE(std::equal(back.begin(), back.end(), data.begin()));
}

// Sequential reads are served from read-ahead, and read-ahead never hands
// out bytes older than what the reader could have seen: its own writes drop
// it, and bytes read ahead long ago are read anew (another client's
// overwrite in between is seen).
TEST(InProcCluster, SequentialReadsAreReadAhead) {
  InProcCluster c(3, 1 << 20, 2, {}, NoShortCircuit);
  auto data = RandomBytes((3 << 20) + 54321, 11);
  auto w = c.client(0)->Create("/ra");
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(c.client(0)->Write(&*w, 0, data.data(), data.size()).ok());
  ASSERT_TRUE(c.client(0)->Fsync(&*w).ok());
  auto r = c.client(1)->Open("/ra");
  ASSERT_TRUE(r.ok());
  Client* reader = c.client(1);
  constexpr size_t kPiece = 48 * 1024;
  std::vector<uint8_t> back(data.size());
  ASSERT_NO_FATAL_FAILURE(ReadInPieces(reader, &*r, &back));
  EXPECT_EQ(back, data);
  const uint64_t ahead = reader->stats().counters["bytes_read_ahead"];
  EXPECT_GT(ahead, data.size() * 3 / 4);

  // A jump back reads the right bytes (and starts over).
  std::vector<uint8_t> piece(kPiece);
  auto n = reader->Read(&*r, 1000, piece.data(), kPiece);
  ASSERT_TRUE(n.ok());
  EXPECT_TRUE(std::equal(piece.begin(), piece.end(), data.begin() + 1000));

  // The reader's own write lands ahead of its position: it reads it back.
  const uint64_t base = 1 << 20;
  for (uint64_t off = base; off < base + 2 * kPiece; off += kPiece) {
    ASSERT_TRUE(reader->Read(&*r, off, piece.data(), kPiece).ok());
  }
  std::vector<uint8_t> mine(kPiece, 0xA5);
  ASSERT_TRUE(reader->Write(&*r, base + 4 * kPiece, mine.data(), mine.size()).ok());
  std::copy(mine.begin(), mine.end(), data.begin() + static_cast<long>(base + 4 * kPiece));
  for (uint64_t off = base + 2 * kPiece; off < base + 6 * kPiece; off += kPiece) {
    ASSERT_TRUE(reader->Read(&*r, off, piece.data(), kPiece).ok());
    EXPECT_TRUE(std::equal(piece.begin(), piece.end(), data.begin() + static_cast<long>(off)))
        << "at " << off;
  }

  // Another client overwrites bytes already read ahead; after the read-ahead
  // age the reader sees the new bytes.
  const uint64_t at = base + 8 * kPiece;
  std::vector<uint8_t> theirs(kPiece, 0x3C);
  ASSERT_TRUE(c.client(0)->Write(&*w, at, theirs.data(), theirs.size()).ok());
  std::copy(theirs.begin(), theirs.end(), data.begin() + static_cast<long>(at));
  // (The reader's stream is at base + 6 pieces and has read up to 16 MiB ahead.)
  std::this_thread::sleep_for(std::chrono::microseconds(Client::kAheadMaxAgeUs + 100000));
  for (uint64_t off = base + 6 * kPiece; off < at + 2 * kPiece; off += kPiece) {
    ASSERT_TRUE(reader->Read(&*r, off, piece.data(), kPiece).ok());
    EXPECT_TRUE(std::equal(piece.begin(), piece.end(), data.begin() + static_cast<long>(off)))
        << "at " << off;
  }
  EXPECT_GT(reader->stats().counters["read_ahead_expired"], 0u);
}

// Leases across clock jumps of the Env clock (the one every server keeps
// its times on). A primary whose clock jumped past its lease refuses
// mutations until a heartbeat has the master extend it; a master whose clock
// jumped past a lease grants a new one at a new version, and a client still
// holding the old lease is refused (stale version) and retries; clocks that
// jump back are not taken for a long silence (no chunkserver declared dead).
// Every acknowledged write ends on every replica.
TEST(InProcCluster, LeasesAcrossClockJumps) {
  constexpr int64_t kHour = 3600ll * 1000 * 1000;
  FaultEnv master_env(Env::Posix());
  std::vector<std::unique_ptr<FaultEnv>> cs_env;
  std::vector<Env*> envs{&master_env};
  for (int i = 0; i < 3; ++i) {
    cs_env.push_back(std::make_unique<FaultEnv>(Env::Posix()));
    envs.push_back(cs_env.back().get());
  }
  InProcCluster c(3, 1 << 20, 2, envs,
                  NoShortCircuitWrites);  // leases of writes through the primary
  constexpr size_t kPiece = 64 * 1024;
  std::vector<uint8_t> want;
  auto f0 = c.client(0)->Create("/f");
  ASSERT_TRUE(f0.ok()) << f0.status().ToString();
  auto f1 = c.client(1)->Open("/f");
  ASSERT_TRUE(f1.ok()) << f1.status().ToString();
  // Piece i at offset i * kPiece, by the given client.
  auto write = [&](int client, File* f, uint64_t seed) {
    const size_t at = want.size();
    auto d = RandomBytes(kPiece, seed);
    Status s = c.client(client)->Write(f, at, d.data(), d.size());
    ASSERT_TRUE(s.ok()) << "piece " << at / kPiece << ": " << s.ToString();
    want.resize(at + kPiece);
    std::copy(d.begin(), d.end(), want.begin() + static_cast<long>(at));
  };
  auto version = [&] {
    auto st = c.master().meta().StatFile("/f");
    EXPECT_TRUE(st.ok());
    const ChunkInfo* ci = c.master().meta().FindChunk(st->chunks.at(0));
    return ci == nullptr ? 0 : ci->version;
  };
  write(0, &*f0, 1);
  const uint64_t v1 = version();

  // 1. Every chunkserver's clock two hours ahead: the primary's lease has
  // ended by its clock, not by the master's. (First a few heartbeats, so the
  // extension the write asked for is done and no other is pending.)
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  for (auto& e : cs_env) e->SetClockOffset(2 * kHour);
  const uint64_t retries = c.client(0)->stats().counters["write_retries"];
  write(0, &*f0, 2);
  EXPECT_GT(c.client(0)->stats().counters["write_retries"], retries);
  EXPECT_EQ(version(), v1);  // the master's lease was extended, not replaced

  // 2. The master's clock two hours ahead: its lease has ended. Another
  // client gets a new lease at a new version; client 0's cached lease is
  // refused and it retries.
  master_env.SetClockOffset(2 * kHour);
  write(1, &*f1, 3);
  const uint64_t v2 = version();
  EXPECT_GT(v2, v1);
  write(0, &*f0, 4);

  // 3. Clocks jump back (the master by 30 s, the chunkservers to real time):
  // heartbeats go on, nobody is declared dead, writes go on.
  master_env.SetClockOffset(2 * kHour - 30ll * 1000 * 1000);
  for (auto& e : cs_env) e->SetClockOffset(0);
  std::this_thread::sleep_for(std::chrono::milliseconds(600));  // > 5 heartbeats + timeout/3
  write(0, &*f0, 5);
  write(1, &*f1, 6);
  auto reps = Replicas(c, 3, c.master().meta().StatFile("/f")->chunks.at(0));
  ASSERT_EQ(reps.size(), 3u);
  for (const auto& r : reps) EXPECT_TRUE(r == want);
  std::vector<uint8_t> back(want.size() + 1);
  auto n = c.client(1)->Read(&*f1, 0, back.data(), back.size());
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  back.resize(*n);
  EXPECT_TRUE(back == want);
  EXPECT_EQ(version(), v2);  // no replica left the chain after the jumps back
  ASSERT_TRUE(c.client(0)->Close(&*f0).ok());
  ASSERT_TRUE(c.client(1)->Close(&*f1).ok());
}

// Short-circuit reads: a client on a replica's host reads the chunk file
// itself and checks every block against the chunkserver's checksums. It gets
// the right bytes at any alignment; bytes another client overwrote after the
// checksums came are read anew; a block corrupt on disk is never handed out:
// the read goes through that chunkserver, which verifies and reports it, and
// the bytes come from the good replica.
TEST(InProcCluster, ShortCircuitReadsVerifyEveryBlock) {
  InProcCluster c(2, 1 << 20, 2, {}, [](JobConfig* j) { j->scrub_mb_per_s = 0; });
  auto data = RandomBytes((3 << 20) + 54321, 21);
  auto w = c.client(0)->Create("/sc");
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(c.client(0)->Write(&*w, 0, data.data(), data.size()).ok());
  ASSERT_TRUE(c.client(0)->Fsync(&*w).ok());
  Client* reader = c.client(1);
  auto r = reader->Open("/sc");
  ASSERT_TRUE(r.ok());
  constexpr size_t kPiece = 48 * 1024;
  std::vector<uint8_t> back(data.size());
  ASSERT_NO_FATAL_FAILURE(ReadInPieces(reader, &*r, &back));
  EXPECT_EQ(back, data);
  auto& k = reader->stats().counters;
  EXPECT_EQ(k["bytes_read_local"], data.size());
  EXPECT_EQ(k["local_read_fallbacks"], 0u);
  EXPECT_EQ(k["bytes_read_ahead"], 0u);

  // An overwrite by another client right after the reader's answer came.
  std::vector<uint8_t> piece(kPiece);
  ASSERT_TRUE(reader->Read(&*r, 0, piece.data(), kPiece).ok());
  auto fresh = RandomBytes(100000, 22);
  ASSERT_TRUE(c.client(0)->Write(&*w, 200000, fresh.data(), fresh.size()).ok());
  std::copy(fresh.begin(), fresh.end(), data.begin() + 200000);
  std::vector<uint8_t> mid(100010);
  auto n = reader->Read(&*r, 199995, mid.data(), mid.size());
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_TRUE(std::equal(mid.begin(), mid.end(), data.begin() + 199995));

  // Media corruption in block 0 of every chunk on server 0, read twice:
  // requests take equally near replicas in turn, so one of the two meets it.
  ChunkStore* bad = c.server(0)->store();
  for (const ChunkMeta& m : bad->List()) {
    std::unique_ptr<RandomRWFile> file;
    ASSERT_TRUE(Env::Posix()->OpenRandomRW(bad->DataPath(m.handle), false, &file).ok());
    uint8_t b = 0;
    size_t got = 0;
    ASSERT_TRUE(file->Read(100, 1, &b, &got).ok());
    b ^= 0x40;
    ASSERT_TRUE(file->Write(100, &b, 1).ok());
  }
  const uint64_t fallbacks = k["local_read_fallbacks"], retries = k["read_retries"];
  for (int round = 0; round < 2; ++round) {
    ASSERT_TRUE(reader->Close(&*r).ok());  // forgets the last answer
    r = reader->Open("/sc");
    ASSERT_TRUE(r.ok());
    std::vector<uint8_t> head(4096);
    n = reader->Read(&*r, 0, head.data(), head.size());
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    EXPECT_TRUE(std::equal(head.begin(), head.end(), data.begin())) << "round " << round;
  }
  EXPECT_GT(k["local_read_fallbacks"], fallbacks);
  // The fallback went to the same chunkserver, which refused the block.
  EXPECT_GT(k["read_retries"], retries);
}

// A client that cannot open the chunkservers' files (another node's disk
// under the same host name, no permission) reads everything through the
// chunkservers, and tries each chunkserver's files once, not once per read.
TEST(InProcCluster, UnreachableChunkFilesAreTriedOncePerServer) {
  InProcCluster c(2, 1 << 20, 2);
  auto data = RandomBytes((2 << 20) + 4321, 23);
  auto w = c.client(0)->Create("/u");
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(c.client(0)->Write(&*w, 0, data.data(), data.size()).ok());
  ASSERT_TRUE(c.client(0)->Fsync(&*w).ok());
  FaultEnv blind(Env::Posix());
  blind.SetReadOnlyOpenError(true);
  Client* reader = c.client(1);
  reader->set_env(&blind);
  auto r = reader->Open("/u");
  ASSERT_TRUE(r.ok());
  std::vector<uint8_t> back(data.size());
  ASSERT_NO_FATAL_FAILURE(ReadInPieces(reader, &*r, &back));
  EXPECT_EQ(back, data);
  auto& k = reader->stats().counters;
  EXPECT_EQ(k["bytes_read_local"], 0u);
  EXPECT_GE(blind.read_only_opens(), 1u);
  EXPECT_LE(blind.read_only_opens(), 2u);  // one per chunkserver at most
  EXPECT_EQ(k["local_read_unreachable"], blind.read_only_opens());
  reader->set_env(Env::Posix());
}

// An fsync of a file of several chunks: the chunkserver starts the device
// writes of every chunk written since its last sync before it waits on the
// first one (one batch for the disk, not one chunk after another).
void FsyncStartsEveryDirtyChunk(InProcCluster* cp, FaultEnv* fep);

// Through the chunkserver, and by the client itself for chunks it wrote
// short-circuit.
TEST(InProcCluster, FsyncStartsEveryDirtyChunkBeforeTheFirstSync) {
  for (bool local : {false, true}) {
    SCOPED_TRACE(local ? "short-circuit writes" : "writes through the chunkserver");
    FaultEnv fe(Env::Posix());
    InProcCluster c(1, 1 << 20, 1, {nullptr, &fe}, local ? nullptr : NoShortCircuitWrites);
    if (local) c.client()->set_env(&fe);
    FsyncStartsEveryDirtyChunk(&c, &fe);
    EXPECT_EQ(c.client()->stats().counters["local_syncs"], local ? 4u : 0u);
  }
}

void FsyncStartsEveryDirtyChunk(InProcCluster* cp, FaultEnv* fep) {
  InProcCluster& c = *cp;
  FaultEnv& fe = *fep;
  auto data = RandomBytes((3 << 20) + 999, 29);
  auto w = c.client()->Create("/b");
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(c.client()->Write(&*w, 0, data.data(), data.size()).ok());
  fe.RecordEvents(true);
  ASSERT_TRUE(c.client()->Fsync(&*w).ok());
  fe.RecordEvents(false);
  std::set<std::string> started, synced;
  bool synced_before_all_started = false;
  for (const std::string& e : fe.TakeEvents()) {
    std::istringstream in(e);
    std::string what, path;
    in >> what >> path;
    if (path.size() < 6 || path.compare(path.size() - 6, 6, ".chunk") != 0) continue;
    if (what == "writeback") {
      started.insert(path);
      if (!synced.empty()) synced_before_all_started = true;
    } else {
      synced.insert(path);
    }
  }
  EXPECT_EQ(started.size(), 4u);  // every chunk of the file
  EXPECT_EQ(synced, started);
  EXPECT_FALSE(synced_before_all_started);
  auto r = c.client()->Open("/b");
  ASSERT_TRUE(r.ok());
  std::vector<uint8_t> back(data.size());
  auto n = c.client()->Read(&*r, 0, back.data(), back.size());
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(back, data);
}

uint64_t Counter(const RoleStats& st, const char* name) {
  auto it = st.counters.find(name);
  return it == st.counters.end() ? 0 : it->second;
}

// For a test that plays a client by hand on `raw`: the next reply (to request
// `id`, when given), or an empty message after about five seconds.
Message AwaitReply(Transport* raw, uint64_t id = 0) {
  for (int i = 0; i < 5000; ++i) {
    Incoming in;
    if (raw->Poll(&in)) {
      Message m;
      if (ParseMessage(std::move(in), &m).ok() && m.is_reply() && (id == 0 || m.h.id == id)) {
        return m;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return Message();
}

// A lone replica on the client's host is written by the client into its file;
// the chunkserver keeps every block checksummed (the writer's checksums for
// whole new blocks, its own for edges), and the data reads back both ways.
TEST(InProcCluster, ShortCircuitWritesKeepChunksChecksummed) {
  InProcCluster c(1, 1 << 20, 1);
  auto f = c.client()->Create("/sc");
  ASSERT_TRUE(f.ok());
  std::vector<uint8_t> model;
  auto write = [&](uint64_t off, size_t n, uint64_t seed) {
    auto d = RandomBytes(n, seed);
    ASSERT_TRUE(c.client()->Write(&*f, off, d.data(), d.size()).ok());
    if (model.size() < off + n) model.resize(off + n, 0);
    std::copy(d.begin(), d.end(), model.begin() + static_cast<ptrdiff_t>(off));
  };
  write(0, (2 << 20) + 12345, 1);     // across chunks, several ops each
  write(100000, 70000, 2);            // inside old data, both edges partial
  write((3 << 20) + 5000, 30000, 3);  // past the end: a gap in a new chunk
  write((1 << 20) - 100, 200, 4);     // across a chunk boundary
  ASSERT_TRUE(c.client()->Fsync(&*f).ok());
  const RoleStats& cs = c.server(0)->stats();
  EXPECT_GE(Counter(cs, "local_writes"), 6u);
  EXPECT_EQ(Counter(cs, "local_writes_given_up"), 0u);
  EXPECT_EQ(Counter(cs, "push_slices_recv"), 0u);
  EXPECT_EQ(c.client()->stats().counters["bytes_written_local"],
            (2u << 20) + 12345 + 70000 + 30000 + 200);
  for (const ChunkMeta& m : c.server(0)->store()->List()) {
    EXPECT_TRUE(c.server(0)->store()->Verify(m.handle).ok()) << m.handle;
  }
  for (bool short_circuit_reads : {true, false}) {
    auto g = c.client()->Open("/sc");
    ASSERT_TRUE(g.ok());
    EXPECT_EQ(g->length, model.size());
    std::vector<uint8_t> back(model.size());
    if (short_circuit_reads) {
      ReadInPieces(c.client(), &*g, &back);
    } else {
      auto n = c.client()->Read(&*g, 0, back.data(), back.size());
      ASSERT_TRUE(n.ok());
    }
    EXPECT_EQ(back, model);
  }
  EXPECT_EQ(Counter(cs, "corrupt_found"), 0u);
}

// Sequential writes into a chunk whose only replica is on the host go on
// under the grant the first of them got (a held grant): one grant per chunk,
// every block checksummed, also with pieces that do not follow the blocks.
// Another client's read of a chunk under a held grant waits until the grant
// ends (here: it expires, the writer being idle) and sees every byte.
TEST(InProcCluster, HeldGrantCarriesSequentialWritesAndEndsForOthers) {
  InProcCluster c(1, 1 << 20, 2);
  auto f = c.client(0)->Create("/held");
  ASSERT_TRUE(f.ok());
  const RoleStats& cs = c.server(0)->stats();
  std::vector<uint8_t> model;
  const size_t piece = 100000;    // not a multiple of the 64 KiB block
  for (int i = 0; i < 15; ++i) {  // 1.5 MB: all of chunk 0, part of chunk 1
    auto d = RandomBytes(piece, 200 + static_cast<uint64_t>(i));
    ASSERT_TRUE(c.client(0)->Write(&*f, model.size(), d.data(), d.size()).ok());
    model.insert(model.end(), d.begin(), d.end());
  }
  // 16 pieces (the 11th crosses into chunk 1): two of them asked for grants.
  EXPECT_EQ(Counter(cs, "local_write_grants"), 2u);
  EXPECT_EQ(Counter(cs, "local_write_grants_held"), 2u);
  EXPECT_EQ(c.client(0)->stats().counters["local_writes_held"], 14u);
  EXPECT_EQ(Counter(cs, "local_writes"), 1u);  // chunk 0's, ended on moving on
  ASSERT_TRUE(c.client(0)->Fsync(&*f).ok());
  EXPECT_EQ(Counter(cs, "local_writes"), 2u);
  EXPECT_EQ(Counter(cs, "push_slices_recv"), 0u);
  // The writer appends a little and then does nothing, holding the grant;
  // the second client's read of that chunk waits for the grant's expiry
  // (write_hold_ms) and sees every byte.
  ASSERT_TRUE(c.client(0)->Write(&*f, model.size(), model.data(), 10).ok());
  EXPECT_EQ(Counter(cs, "local_write_grants_held"), 3u);
  auto g = c.client(1)->Open("/held");
  ASSERT_TRUE(g.ok());
  std::vector<uint8_t> back(model.size());
  const uint64_t t0 = MonoMicros();
  auto n = c.client(1)->Read(&*g, 0, back.data(), back.size());
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, model.size());
  EXPECT_EQ(back, model);
  EXPECT_GE(MonoMicros() - t0, 500000u);
  EXPECT_EQ(Counter(cs, "local_write_grants_expired"), 1u);
  EXPECT_GE(Counter(cs, "held_for_local_write"), 1u);
  model.insert(model.end(), model.begin(), model.begin() + 10);
  // The writer's late end is no error: the chunk was checksummed with all
  // its bytes. A write inside old bytes gets no window.
  ASSERT_TRUE(c.client(0)->Fsync(&*f).ok());
  ASSERT_TRUE(c.client(0)->Write(&*f, 5, model.data(), 10).ok());
  std::copy(model.begin(), model.begin() + 10, model.begin() + 5);
  EXPECT_EQ(Counter(cs, "local_write_grants"), 4u);
  EXPECT_EQ(Counter(cs, "local_write_grants_held"), 3u);
  EXPECT_EQ(Counter(cs, "local_writes"), 3u);
  ASSERT_TRUE(c.client(0)->Fsync(&*f).ok());
  for (const ChunkMeta& m : c.server(0)->store()->List()) {
    EXPECT_TRUE(c.server(0)->store()->Verify(m.handle).ok()) << m.handle;
  }
  auto h = c.client(1)->Open("/held");
  ASSERT_TRUE(h.ok());
  back.assign(model.size(), 0);
  ReadInPieces(c.client(1), &*h, &back);
  EXPECT_EQ(back, model);
  EXPECT_EQ(Counter(cs, "corrupt_found"), 0u);
}

// Another client's request for a chunk under a held grant makes the primary
// recall it: the holder ends the grant before its next write there (and asks
// again, after the waiting request), instead of keeping the other waiting
// for the grant's whole life.
TEST(InProcCluster, HeldGrantIsRecalledWhenAnotherClientWaits) {
  InProcCluster c(1, 1 << 20, 2, {}, [](JobConfig* j) {
    j->request_timeout_ms = 20000;  // no grant expires during the test
    j->write_hold_ms = 20000;
  });
  const RoleStats& cs = c.server(0)->stats();
  auto f = c.client(0)->Create("/recall");
  ASSERT_TRUE(f.ok());
  auto d = RandomBytes(300000, 11);
  ASSERT_TRUE(c.client(0)->Write(&*f, 0, d.data(), 100000).ok());
  ASSERT_TRUE(c.client(0)->Fsync(&*f).ok());  // the reader can see 100000 bytes
  ASSERT_TRUE(c.client(0)->Write(&*f, 100000, d.data() + 100000, 100000).ok());
  EXPECT_EQ(Counter(cs, "local_write_grants_held"), 2u);
  auto g = c.client(1)->Open("/recall");
  ASSERT_TRUE(g.ok());
  std::vector<uint8_t> back(100000);
  std::thread reader([&] {
    auto n = c.client(1)->Read(&*g, 0, back.data(), back.size());
    EXPECT_TRUE(n.ok() && *n == back.size());
  });
  for (int i = 0; i < 10000 && Counter(cs, "local_write_grants_recalled") == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(Counter(cs, "local_write_grants_recalled"), 1u);
  ASSERT_TRUE(c.client(0)->Write(&*f, 200000, d.data() + 200000, 100000).ok());
  reader.join();
  EXPECT_TRUE(std::equal(back.begin(), back.end(), d.begin()));
  EXPECT_EQ(Counter(cs, "local_write_grants_expired"), 0u);
  EXPECT_EQ(Counter(cs, "local_write_grants"), 3u);
  EXPECT_EQ(Counter(cs, "local_writes"), 2u);  // ended by the fsync, then by the recall
  EXPECT_EQ(c.client(0)->stats().counters["local_writes_held"], 0u);
  ASSERT_TRUE(c.client(0)->Fsync(&*f).ok());
  auto h = c.client(1)->Open("/recall");
  ASSERT_TRUE(h.ok());
  std::vector<uint8_t> all(d.size());
  ReadInPieces(c.client(1), &*h, &all);
  EXPECT_EQ(all, d);
  EXPECT_TRUE(c.server(0)->store()->Verify(c.server(0)->store()->List()[0].handle).ok());
}

// Every replica on the client's host (one node, R = 3): the primary gets a
// grant from each secondary, and the client writes the same bytes into every
// replica's file, checksummed once; each replica stores the checksums when
// the client ends its grant. Nothing is pushed, every replica verifies and
// holds the same bytes, and a reader's request at any replica recalls the
// held grant.
TEST(InProcCluster, ReplicatedShortCircuitWritesFillEveryReplica) {
  InProcCluster c(3, 1 << 20, 2);
  auto f = c.client(0)->Create("/r3");
  ASSERT_TRUE(f.ok());
  std::vector<uint8_t> model;
  for (int i = 0; i < 15; ++i) {  // 1.5 MB in pieces off the block boundaries
    auto d = RandomBytes(100000, 300 + static_cast<uint64_t>(i));
    ASSERT_TRUE(c.client(0)->Write(&*f, model.size(), d.data(), d.size()).ok());
    model.insert(model.end(), d.begin(), d.end());
  }
  ASSERT_TRUE(c.client(0)->Fsync(&*f).ok());
  uint64_t grants = 0, replicated = 0, ended = 0, pushed = 0;
  for (int i = 0; i < 3; ++i) {
    const RoleStats& cs = c.server(i)->stats();
    grants += Counter(cs, "local_write_grants");
    replicated += Counter(cs, "local_write_grants_replicated");
    ended += Counter(cs, "local_writes");
    pushed += Counter(cs, "push_slices_recv");
  }
  EXPECT_EQ(replicated, 2u);  // one per chunk, by its primary
  EXPECT_EQ(grants, 6u);      // and one per replica
  EXPECT_EQ(ended, 6u);
  EXPECT_EQ(pushed, 0u);
  EXPECT_EQ(c.client(0)->stats().counters["local_writes_held"], 14u);
  EXPECT_EQ(c.client(0)->stats().counters["local_syncs"], 6u);  // every replica's files
  std::map<uint64_t, std::vector<uint8_t>> first;  // handle -> bytes of the first replica
  for (int i = 0; i < 3; ++i) {
    for (const ChunkMeta& m : c.server(i)->store()->List()) {
      EXPECT_TRUE(c.server(i)->store()->Verify(m.handle).ok()) << i << " " << m.handle;
      std::vector<uint8_t> bytes;
      ASSERT_TRUE(c.server(i)->store()->Read(m.handle, 0, m.length, &bytes).ok());
      if (first.count(m.handle) == 0) {
        first[m.handle] = bytes;
      } else {
        EXPECT_EQ(bytes, first[m.handle]) << "replica " << i << " of " << m.handle;
      }
    }
  }
  ASSERT_EQ(first.size(), 2u);
  // A held grant again; the second client's read waits at whichever replica
  // it asks, which recalls the grant; the writer's next write ends it.
  ASSERT_TRUE(c.client(0)->Write(&*f, model.size(), model.data(), 1000).ok());
  auto g = c.client(1)->Open("/r3");
  ASSERT_TRUE(g.ok());
  std::vector<uint8_t> back(model.size());
  std::thread reader([&] { ReadInPieces(c.client(1), &*g, &back); });
  uint64_t recalled = 0;
  for (int t = 0; t < 10000 && recalled == 0; ++t) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    for (int i = 0; i < 3; ++i)
      recalled += Counter(c.server(i)->stats(), "local_write_grants_recalled");
  }
  EXPECT_EQ(recalled, 1u);
  ASSERT_TRUE(c.client(0)->Write(&*f, model.size() + 1000, model.data(), 1000).ok());
  reader.join();
  EXPECT_EQ(back, model);
}

// A secondary that cannot grant (an old byte of a block the write covers in
// part fails its checksum there): the write fails as through the push path,
// and the primary undoes its own grant and the other secondary's at once
// instead of leaving them to expire.
TEST(InProcCluster, ASecondaryThatRefusesUndoesTheWholeGrant) {
  InProcCluster c(3, 1 << 20, 1, {}, [](JobConfig* j) {
    j->request_timeout_ms = 20000;  // an undone grant would otherwise stay this long
    j->write_hold_ms = 20000;
  });
  auto f = c.client()->Create("/refuse");
  ASSERT_TRUE(f.ok());
  auto d = RandomBytes(100000, 12);
  ASSERT_TRUE(c.client()->Write(&*f, 0, d.data(), d.size()).ok());
  ASSERT_TRUE(c.client()->Fsync(&*f).ok());
  int primary = -1;
  for (int i = 0; i < 3; ++i) {
    if (Counter(c.server(i)->stats(), "local_write_grants_replicated") == 1) primary = i;
  }
  ASSERT_GE(primary, 0);
  const int bad = (primary + 1) % 3, other = (primary + 2) % 3;
  const uint64_t handle = c.server(bad)->store()->List().at(0).handle;
  FaultEnv flip(Env::Posix());
  ASSERT_TRUE(flip.FlipByte(c.server(bad)->store()->DataPath(handle), 70000).ok());
  // Starts inside block 1 (65536..100000), whose old bytes each replica checks.
  Status s = c.client()->Write(&*f, 100000, d.data(), 10);
  EXPECT_EQ(s.code(), Code::kCorruption) << s.ToString();
  for (int t = 0; t < 5000 && Counter(c.server(other)->stats(), "local_writes_given_up") == 0;
       ++t) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(Counter(c.server(other)->stats(), "local_writes_given_up"), 1u);
  EXPECT_EQ(Counter(c.server(primary)->stats(), "local_writes_given_up"), 1u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(Counter(c.server(i)->stats(), "local_write_grants_expired"), 0u) << i;
  }
  // Nothing holds the chunk: the good replicas still read back at once.
  auto g = c.client()->Open("/refuse");
  ASSERT_TRUE(g.ok());
  std::vector<uint8_t> back(d.size());
  auto n = c.client()->Read(&*g, 0, back.data(), back.size());
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(back, d);
}

// A held grant whose chunkserver dies before it ends: the checksums of what
// was written under it were never stored, so the fsync fails instead of
// calling those bytes durable.
TEST(InProcCluster, HeldGrantOfADeadChunkserverFailsTheFsync) {
  InProcCluster c(1, 1 << 20, 1);
  auto f = c.client()->Create("/dead");
  ASSERT_TRUE(f.ok());
  auto data = RandomBytes(200000, 9);
  ASSERT_TRUE(c.client()->Write(&*f, 0, data.data(), data.size()).ok());
  ASSERT_TRUE(c.client()->Write(&*f, data.size(), data.data(), data.size()).ok());
  EXPECT_EQ(c.client()->stats().counters["local_writes_held"], 1u);
  c.fabric().Kill(1);
  // Nothing more goes into the dead chunkserver's file.
  EXPECT_FALSE(c.client()->Write(&*f, 2 * data.size(), data.data(), data.size()).ok());
  EXPECT_EQ(c.client()->stats().counters["local_writes_held"], 1u);
  Status s = c.client()->Fsync(&*f);
  EXPECT_EQ(s.code(), Code::kUnavailable) << s.ToString();
  EXPECT_NE(s.message().find("was not answered"), std::string::npos) << s.ToString();
}

// A client that cannot write the chunkserver's files writes through it.
TEST(InProcCluster, ShortCircuitWriteFallsBackWhenTheFileIsNotWritable) {
  InProcCluster c(1, 1 << 20, 1);
  FaultEnv fe(Env::Posix());
  fe.SetWriteError(true);
  c.client()->set_env(&fe);
  auto f = c.client()->Create("/fb");
  ASSERT_TRUE(f.ok());
  auto data = RandomBytes(700000, 5);
  ASSERT_TRUE(c.client()->Write(&*f, 0, data.data(), data.size()).ok());
  // Each of the call's ops already asking failed once (3 of 256 KiB).
  const uint64_t failed = c.client()->stats().counters["local_write_unreachable"];
  EXPECT_GE(failed, 1u);
  EXPECT_LE(failed, 3u);
  ASSERT_TRUE(c.client()->Write(&*f, 0, data.data(), 1000).ok());
  ASSERT_TRUE(c.client()->Fsync(&*f).ok());
  EXPECT_EQ(c.client()->stats().counters["local_write_unreachable"], failed);  // not tried again
  const RoleStats& cs = c.server(0)->stats();
  EXPECT_EQ(Counter(cs, "local_writes_given_up"), failed);
  EXPECT_EQ(Counter(cs, "local_writes"), 0u);
  EXPECT_GE(Counter(cs, "push_slices_recv"), 1u);
  fe.SetWriteError(false);
  std::vector<uint8_t> back(data.size());
  auto n = c.client()->Read(&*f, 0, back.data(), back.size());
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(back, data);
  for (const ChunkMeta& m : c.server(0)->store()->List()) {
    EXPECT_TRUE(c.server(0)->store()->Verify(m.handle).ok());
  }
}

// A producer that cannot write the chunk's file gives its ranges back (the
// primary checksums them as the file holds them) and appends through the
// chunkserver from then on: every record lands, where the call said.
TEST(InProcCluster, ShortCircuitAppendFallsBackWhenTheFileIsNotWritable) {
  InProcCluster c(1, 1 << 20, 1, {}, ShortCircuitAppends);
  FaultEnv fe(Env::Posix());
  fe.SetWriteError(true);
  c.client()->set_env(&fe);
  auto f = c.client()->Create("/afb");
  ASSERT_TRUE(f.ok());
  std::vector<std::vector<uint8_t>> recs;
  std::vector<Client::Span> spans;
  for (uint64_t i = 0; i < 24; ++i) recs.push_back(RandomBytes(40000 + 1000 * i, 100 + i));
  for (const auto& r : recs) spans.push_back({r.data(), r.size()});
  std::vector<uint64_t> offsets;
  Status s = c.client()->RecordAppendMany(&*f, spans, &offsets);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(offsets.size(), recs.size());
  const uint64_t failed = c.client()->stats().counters["local_write_unreachable"];
  EXPECT_GE(failed, 1u);
  const RoleStats& cs = c.server(0)->stats();
  EXPECT_EQ(Counter(cs, "local_appends_given_up"), failed);
  EXPECT_EQ(Counter(cs, "local_appends"), 0u);
  EXPECT_GE(Counter(cs, "appends_primary"), recs.size());
  ASSERT_TRUE(c.client()->Fsync(&*f).ok());
  fe.SetWriteError(false);
  for (size_t i = 0; i < recs.size(); ++i) {
    std::vector<uint8_t> back(recs[i].size());
    auto n = c.client()->Read(&*f, offsets[i], back.data(), back.size());
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    EXPECT_EQ(back, recs[i]) << "record " << i << " at " << offsets[i];
  }
  for (const ChunkMeta& m : c.server(0)->store()->List()) {
    EXPECT_TRUE(c.server(0)->store()->Verify(m.handle).ok());
  }
}

// Producers on the host of a chunk's only replica write their records into
// ranges the primary reserves for them, many at once: each record lands
// once, whole, at its own offset, nothing goes through the chunkserver, the
// chunks are padded at their ends, and every block verifies.
TEST(InProcCluster, ShortCircuitAppendsOfManyClientsLandOnceEachAcrossChunkEnds) {
  const uint64_t cs = 256 * 1024;
  const int kClients = 4, kBatches = 12;
  InProcCluster c(1, cs, kClients, {}, ShortCircuitAppends);
  ASSERT_TRUE(c.client(0)->Create("/log").ok());
  std::vector<std::vector<std::pair<uint64_t, std::vector<uint8_t>>>> got(kClients);
  std::vector<std::thread> producers;
  for (int p = 0; p < kClients; ++p) {
    producers.emplace_back([&, p] {
      auto f = c.client(p)->Open("/log");
      ASSERT_TRUE(f.ok());
      std::mt19937_64 rng(static_cast<uint64_t>(p) + 40);
      for (int b = 0; b < kBatches; ++b) {
        std::vector<std::vector<uint8_t>> recs;
        std::vector<Client::Span> spans;
        for (int i = 0; i < 8; ++i) recs.push_back(RandomBytes(1 + rng() % 30000, rng()));
        for (const auto& r : recs) spans.push_back({r.data(), r.size()});
        std::vector<uint64_t> offsets;
        Status s = c.client(p)->RecordAppendMany(&*f, spans, &offsets);
        ASSERT_TRUE(s.ok()) << s.ToString();
        for (size_t i = 0; i < recs.size(); ++i) {
          got[static_cast<size_t>(p)].emplace_back(offsets[i], std::move(recs[i]));
        }
      }
      Status s = c.client(p)->Fsync(&*f);
      EXPECT_TRUE(s.ok()) << s.ToString();
    });
  }
  for (auto& t : producers) t.join();
  std::map<uint64_t, const std::vector<uint8_t>*> at;
  for (const auto& g : got) {
    for (const auto& [off, data] : g) {
      EXPECT_TRUE(at.emplace(off, &data).second) << "two records at " << off;
      EXPECT_EQ(off / cs, (off + data.size() - 1) / cs) << "a record across a chunk end";
    }
  }
  uint64_t end = 0;
  for (const auto& [off, data] : at) {
    EXPECT_GE(off, end) << "records overlap";
    end = off + data->size();
  }
  auto f = c.client(0)->Open("/log");
  ASSERT_TRUE(f.ok());
  auto committed = c.client(0)->CommittedLength(&*f);
  ASSERT_TRUE(committed.ok()) << committed.status().ToString();
  EXPECT_GE(*committed, end);
  EXPECT_GE(end, 2 * cs);  // the test crosses chunk ends
  // Every byte read back verified; records where they were acknowledged,
  // zeros (padding) everywhere else.
  std::vector<uint8_t> all(*committed);
  auto n = c.client(0)->Read(&*f, 0, all.data(), all.size());
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  ASSERT_EQ(*n, all.size());
  std::vector<bool> covered(all.size());
  for (const auto& [off, data] : at) {
    ASSERT_TRUE(std::equal(data->begin(), data->end(), all.begin() + static_cast<long>(off)))
        << "record at " << off;
    for (size_t i = 0; i < data->size(); ++i) covered[off + i] = true;
  }
  for (size_t i = 0; i < all.size(); ++i) {
    if (!covered[i]) {
      ASSERT_EQ(all[i], 0) << "at " << i;
    }
  }
  const RoleStats& st = c.server(0)->stats();
  EXPECT_EQ(Counter(st, "local_append_grants"), Counter(st, "local_appends"));
  EXPECT_GE(Counter(st, "local_appends"), uint64_t{kClients * kBatches});
  EXPECT_EQ(Counter(st, "local_append_grants_expired"), 0u);
  EXPECT_GE(Counter(st, "append_pads"), 1u);
  uint64_t local = 0, pushed = 0;
  for (int p = 0; p < kClients; ++p) {
    local += Counter(c.client(p)->stats(), "local_append_bytes");
    pushed += Counter(c.client(p)->stats(), "push_bytes_sent");
  }
  uint64_t appended = 0;
  for (const auto& [off, data] : at) appended += data->size();
  EXPECT_GE(local, appended);
  EXPECT_EQ(pushed, 0u);
}

// A write to a chunk that producers keep appending to short-circuit waits
// only for the ranges open when it came: new append grants wait behind it,
// so it goes through while the producers are still appending, and the
// appends go on after it.
TEST(InProcCluster, WriteIsNotStarvedByShortCircuitAppends) {
  InProcCluster c(1, 4 << 20, 3, {}, ShortCircuitAppends);
  auto f0 = c.client(0)->Create("/mixed");
  ASSERT_TRUE(f0.ok());
  auto first = RandomBytes(10000, 3);
  ASSERT_TRUE(c.client(0)->RecordAppend(&*f0, first.data(), first.size()).ok());
  std::atomic<bool> stop{false};
  std::atomic<int> appended{0};
  std::vector<std::thread> producers;
  for (int p = 1; p <= 2; ++p) {
    producers.emplace_back([&, p] {
      auto f = c.client(p)->Open("/mixed");
      ASSERT_TRUE(f.ok());
      auto rec = RandomBytes(3000, static_cast<uint64_t>(p));
      std::vector<Client::Span> spans(16, Client::Span{rec.data(), rec.size()});
      std::vector<uint64_t> offsets;
      while (!stop) {
        Status s = c.client(p)->RecordAppendMany(&*f, spans, &offsets);
        ASSERT_TRUE(s.ok()) << s.ToString();
        appended += 16;
      }
    });
  }
  while (appended < 64) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::vector<uint8_t> patch(500, 0xEE);
  Status w = c.client(0)->Write(&*f0, 100, patch.data(), patch.size());
  const int at_write = appended;
  EXPECT_TRUE(w.ok()) << w.ToString();
  while (appended < at_write + 64) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  stop = true;
  for (auto& t : producers) t.join();
  ASSERT_TRUE(c.client(0)->Fsync(&*f0).ok());
  std::vector<uint8_t> back(first.size());
  auto n = c.client(0)->Read(&*f0, 0, back.data(), back.size());
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  std::copy(patch.begin(), patch.end(), first.begin() + 100);
  EXPECT_EQ(back, first);
  EXPECT_GE(Counter(c.server(0)->stats(), "local_appends"), 128u);
}

// A file whose first chunk holds one record of 5000 bytes, and an append
// grant for `length` bytes after it that a test takes by hand on the second
// client's rank (which then vanishes, or answers by hand).
struct HandGrant {
  File file;
  std::vector<uint8_t> first;
  Transport* raw = nullptr;
  AppendLocalReq req;
  AppendLocalReply rep;
};

void TakeGrantByHand(InProcCluster* c, const std::string& path, uint64_t chunk_size,
                     uint64_t length, HandGrant* g) {
  auto f = c->client()->Create(path);
  ASSERT_TRUE(f.ok());
  g->file = *f;
  g->first = RandomBytes(5000, length);
  ASSERT_TRUE(c->client()->RecordAppend(&g->file, g->first.data(), g->first.size()).ok());
  auto chunks = c->server(0)->store()->List();
  ASSERT_EQ(chunks.size(), 1u);
  g->raw = c->fabric().endpoint(c->client_rank() + 1);
  g->req.handle = chunks[0].handle;
  g->req.version = chunks[0].version;
  g->req.chunk_size = chunk_size;
  g->req.length = length;
  ASSERT_TRUE(SendRequest(g->raw, 1, g->req, 1, 5000).ok());
  Message granted = AwaitReply(g->raw);
  ASSERT_TRUE(granted.is_reply());
  ASSERT_TRUE(granted.status().ok()) << granted.status().ToString();
  ASSERT_TRUE(granted.Decode(&g->rep).ok());
  ASSERT_EQ(g->rep.offset, g->first.size());
}

// A producer that takes an append grant and vanishes: the records after its
// range are acknowledged but not yet under the chunk's length, so an fsync
// waits until the grant runs out; then the range is checksummed as the file
// holds it (the vanished writer's bytes, zeros after) and everything reads.
TEST(InProcCluster, VanishedShortCircuitAppenderHoldsSyncsUntilItsGrantRunsOut) {
  InProcCluster c(1, 1 << 20, 2, {}, ShortCircuitAppends);
  HandGrant g;
  ASSERT_NO_FATAL_FAILURE(TakeGrantByHand(&c, "/v", 1 << 20, 70000, &g));
  File* f = &g.file;
  const std::vector<uint8_t>& first = g.first;
  const AppendLocalReq& req = g.req;
  const AppendLocalReply& rep = g.rep;
  std::vector<uint8_t> junk(30000, 0xAB);  // part of its range, then gone
  {
    std::unique_ptr<RandomRWFile> file;
    ASSERT_TRUE(Env::Posix()->OpenRandomRW(rep.path, false, &file).ok());
    ASSERT_TRUE(file->Write(rep.offset, junk.data(), junk.size()).ok());
  }
  auto later = RandomBytes(9000, 2);
  auto off = c.client()->RecordAppend(f, later.data(), later.size());
  ASSERT_TRUE(off.ok()) << off.status().ToString();
  EXPECT_EQ(*off, rep.offset + req.length);
  auto committed = c.client()->CommittedLength(f);
  ASSERT_TRUE(committed.ok());
  EXPECT_EQ(*committed, rep.offset);  // not past the open range
  const uint64_t t0 = MonoMicros();
  Status s = c.client()->Fsync(f);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_GE(MonoMicros() - t0, 700000u);  // the grant's 1.5 s, less what had passed
  const RoleStats& cs = c.server(0)->stats();
  EXPECT_EQ(Counter(cs, "local_append_grants_expired"), 1u);
  EXPECT_GE(Counter(cs, "syncs_waiting_for_appends"), 1u);
  committed = c.client()->CommittedLength(f);
  ASSERT_TRUE(committed.ok());
  EXPECT_EQ(*committed, *off + later.size());
  std::vector<uint8_t> back(*committed);
  auto n = c.client()->Read(f, 0, back.data(), back.size());
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  ASSERT_EQ(*n, back.size());
  std::vector<uint8_t> want = first;
  want.insert(want.end(), junk.begin(), junk.end());
  want.resize(rep.offset + req.length, 0);
  want.insert(want.end(), later.begin(), later.end());
  EXPECT_EQ(back, want);
  // The late answer of the vanished writer is refused.
  AppendLocalDoneReq d;
  d.handle = req.handle;
  d.grant = rep.grant;
  d.written = 1;
  ASSERT_TRUE(SendRequest(g.raw, 1, d, 2, 5000).ok());
  Message late = AwaitReply(g.raw);
  ASSERT_TRUE(late.is_reply());
  EXPECT_EQ(late.status().code(), Code::kTimeout);
}

// Readers take a chunk with a successor as whole (CommittedLength counts only
// the last chunk's committed prefix). So an append sent on to the next chunk
// while a short-circuit range before the padding is still open must not be
// answered before that range lands: here it waits for a vanished appender's
// grant to run out, and then the first chunk reads whole.
TEST(InProcCluster, NoAppendMovesToTheNextChunkBeforeOpenRangesLand) {
  constexpr uint64_t kChunk = 1 << 20;
  InProcCluster c(1, kChunk, 2, {}, ShortCircuitAppends);
  HandGrant g;
  ASSERT_NO_FATAL_FAILURE(TakeGrantByHand(&c, "/n", kChunk, 200000, &g));
  File* f = &g.file;
  const std::vector<uint8_t>& first = g.first;
  const AppendLocalReq& req = g.req;
  const AppendLocalReply& rep = g.rep;
  // Four records fit after the open range; the fifth pads the chunk.
  auto rec = RandomBytes(200000, 5);
  for (uint64_t i = 0; i < 4; ++i) {
    auto off = c.client()->RecordAppend(f, rec.data(), rec.size());
    ASSERT_TRUE(off.ok()) << off.status().ToString();
    EXPECT_EQ(*off, first.size() + req.length + i * rec.size());
  }
  auto next = c.client()->RecordAppend(f, rec.data(), rec.size());
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  EXPECT_EQ(*next, kChunk);
  const RoleStats& cs = c.server(0)->stats();
  EXPECT_EQ(Counter(cs, "local_append_grants_expired"), 1u);  // before the answer came
  EXPECT_GE(Counter(cs, "pads_waiting_for_appends"), 1u);
  std::vector<uint8_t> back(kChunk);
  auto n = c.client()->Read(f, 0, back.data(), back.size());
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  ASSERT_EQ(*n, kChunk);  // whole: the vanished range reads as zeros
  EXPECT_TRUE(std::equal(first.begin(), first.end(), back.begin()));
  EXPECT_TRUE(std::all_of(back.begin() + static_cast<ptrdiff_t>(rep.offset),
                          back.begin() + static_cast<ptrdiff_t>(rep.offset + req.length),
                          [](uint8_t b) { return b == 0; }));
  for (uint64_t i = 0; i < 4; ++i) {
    const uint64_t at = first.size() + req.length + i * rec.size();
    EXPECT_TRUE(std::equal(rec.begin(), rec.end(), back.begin() + static_cast<ptrdiff_t>(at)));
  }
  auto committed = c.client()->CommittedLength(f);
  ASSERT_TRUE(committed.ok());
  EXPECT_EQ(*committed, kChunk + rec.size());
}

// A writer that takes its grant and vanishes: requests for the chunk wait,
// the grant expires, the chunk is checksummed as the file is (the vanished
// writer's bytes, like any failed write's, are undefined but readable), and
// the held requests go on. No replica is called corrupt.
TEST(InProcCluster, VanishedShortCircuitWriterIsGivenUpOnAndHoldsNothing) {
  InProcCluster c(1, 1 << 20, 2);  // the second client's rank sends by hand
  auto f = c.client()->Create("/v");
  ASSERT_TRUE(f.ok());
  auto data = RandomBytes(300000, 6);
  ASSERT_TRUE(c.client()->Write(&*f, 0, data.data(), data.size()).ok());
  ASSERT_TRUE(c.client()->Fsync(&*f).ok());  // ends the grant it held for what follows
  auto chunks = c.server(0)->store()->List();
  ASSERT_EQ(chunks.size(), 1u);
  Transport* raw = c.fabric().endpoint(c.client_rank() + 1);
  auto call = [&](const auto& req, uint64_t id) -> Message {
    EXPECT_TRUE(SendRequest(raw, 1, req, id, 5000).ok());
    Message m = AwaitReply(raw, id);
    if (!m.is_reply()) ADD_FAILURE() << "no reply";
    return m;
  };
  WriteLocalReq w;
  w.handle = chunks[0].handle;
  w.version = chunks[0].version;
  w.offset = 1000;
  w.length = 5000;
  Message granted = call(w, 1);
  ASSERT_TRUE(granted.status().ok()) << granted.status().ToString();
  WriteLocalReply rep;
  ASSERT_TRUE(granted.Decode(&rep).ok());
  std::vector<uint8_t> junk(3000, 0xAB);  // part of its range, then gone
  {
    std::unique_ptr<RandomRWFile> file;
    ASSERT_TRUE(Env::Posix()->OpenRandomRW(rep.path, false, &file).ok());
    ASSERT_TRUE(file->Write(1000, junk.data(), junk.size()).ok());
  }
  // A read of the chunk is held until the grant expires (1.5 s here).
  const uint64_t t0 = MonoMicros();
  std::vector<uint8_t> back(data.size());
  auto n = c.client()->Read(&*f, 0, back.data(), back.size());
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_GE(MonoMicros() - t0, 1000000u);
  std::copy(junk.begin(), junk.end(), data.begin() + 1000);
  EXPECT_EQ(back, data);
  const RoleStats& cs = c.server(0)->stats();
  EXPECT_EQ(Counter(cs, "local_write_grants_expired"), 1u);
  EXPECT_GE(Counter(cs, "held_for_local_write"), 1u);
  EXPECT_EQ(Counter(cs, "corrupt_found"), 0u);
  EXPECT_TRUE(c.server(0)->store()->Verify(chunks[0].handle).ok());
  // Its late word is refused, and writes go on.
  WriteLocalDoneReq d;
  d.handle = chunks[0].handle;
  d.grant = rep.grant;
  d.written = 1;
  Message late = call(d, 2);
  EXPECT_EQ(late.status().code(), Code::kTimeout);
  ASSERT_TRUE(c.client()->Write(&*f, 0, data.data(), 100).ok());
  ASSERT_TRUE(c.client()->Fsync(&*f).ok());
}

// A sync waits on the disk in the chunkserver's sync thread: meanwhile the
// chunkserver serves another client's writes and reads, and the sync is
// answered only once it is done.
TEST(InProcCluster, SlowSyncHoldsNoOtherRequest) {
  FaultEnv fe(Env::Posix());
  InProcCluster c(1, 1 << 20, 2, {nullptr, &fe}, NoShortCircuitWrites);
  auto a = c.client(0)->Create("/a");
  auto b = c.client(1)->Create("/b");
  ASSERT_TRUE(a.ok() && b.ok());
  auto data = RandomBytes(300000, 7);
  ASSERT_TRUE(c.client(0)->Write(&*a, 0, data.data(), data.size()).ok());
  ASSERT_TRUE(c.client(1)->Write(&*b, 0, data.data(), 1000).ok());
  fe.SetSyncDelayMs(1500);  // per file: the data and checksum files of /a
  std::atomic<bool> synced{false};
  std::thread fsync([&] {
    EXPECT_TRUE(c.client(0)->Fsync(&*a).ok());
    synced = true;
  });
  // Let the sync reach the disk, then write and read through the same
  // chunkserver: done while the sync still waits.
  for (int i = 0; i < 1000 && Counter(c.server(0)->stats(), "syncs_in_thread") == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(c.client(1)->Write(&*b, 1000, data.data(), data.size()).ok());
  std::vector<uint8_t> back(data.size());
  auto n = c.client(1)->Read(&*b, 1000, back.data(), back.size());
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(back, data);
  EXPECT_FALSE(synced.load());
  fsync.join();
  EXPECT_TRUE(synced.load());
  fe.SetSyncDelayMs(0);
  // Written after the sync began: still to be synced.
  fe.ResetCounters();
  ASSERT_TRUE(c.client(1)->Fsync(&*b).ok());
  EXPECT_GE(fe.syncs(), 1u);
}

// A chunk written short-circuit is synced by the client: a failed sync fails
// the fsync (not retried through the chunkserver, whose descriptor may not see
// the error), and the chunk stays to be synced by the next one.
TEST(InProcCluster, FailedClientSyncOfAShortCircuitWriteFailsTheFsync) {
  InProcCluster c(1, 1 << 20, 1);
  FaultEnv fe(Env::Posix());
  c.client()->set_env(&fe);
  auto f = c.client()->Create("/fs");
  ASSERT_TRUE(f.ok());
  auto data = RandomBytes(200000, 8);
  ASSERT_TRUE(c.client()->Write(&*f, 0, data.data(), data.size()).ok());
  fe.SetSyncError(true);
  Status s = c.client()->Fsync(&*f);
  EXPECT_EQ(s.code(), Code::kIOError) << s.ToString();
  EXPECT_EQ(Counter(c.server(0)->stats(), "local_writes"), 1u);  // the held grant ended first
  EXPECT_EQ(Counter(c.server(0)->stats(), "syncs_in_thread"), 0u);
  fe.SetSyncError(false);
  fe.ResetCounters();
  ASSERT_TRUE(c.client()->Fsync(&*f).ok());
  EXPECT_GE(fe.syncs(), 3u);  // data, checksums, directory
}

}  // namespace
}  // namespace gfs
