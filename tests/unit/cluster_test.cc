// Master, chunkservers and a client in one process over the in-process
// transport: the roles' logic without MPI.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "chunk/chunk_server.h"
#include "io/client.h"
#include "master/master_server.h"
#include "mpi/transport/inproc_transport.h"
#include "tests/unit/fault_env.h"
#include "tests/unit/inproc_cluster.h"

namespace gfs {
namespace {

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
  InProcCluster c(3);
  auto f = c.client()->Create("/f");
  ASSERT_TRUE(f.ok());
  auto data = RandomBytes(700000, 2);
  ASSERT_TRUE(c.client()->Write(&*f, 0, data.data(), data.size()).ok());
  EXPECT_EQ(c.client()->stats().counters.get("push_bytes_sent"), data.size());
  uint64_t from_client = 0, from_servers = 0;
  for (int i = 0; i < 3; ++i) {
    for (auto [peer, bytes] : c.server(i)->stats().push_bytes_from) {
      (peer == c.client_rank() ? from_client : from_servers) += bytes;
    }
  }
  EXPECT_EQ(from_client, data.size());       // only the chain head hears from the client
  EXPECT_EQ(from_servers, 2 * data.size());  // the rest flows server to server
  EXPECT_EQ(c.master().stats().counters.Named().at("file_bytes_received"), 0u);
}

// --push star (a benchmark mode): the client sends every replica its copy,
// with an empty forwarding list; the data, the order and the replicas end up
// as with the chain, only the bytes on the client's link are R times more.
TEST(InProcCluster, StarPushWritesAndAppendsLikeTheChain) {
  auto star = [](JobConfig* j) { j->push_mode = JobConfig::PushMode::kStar; };
  InProcCluster c(3, 1 << 20, 1, {}, nullptr, false, star);
  auto f = c.client()->Create("/f");
  ASSERT_TRUE(f.ok());
  auto data = RandomBytes(2 * (1 << 20) + 4321, 11);
  ASSERT_TRUE(c.client()->Write(&*f, 0, data.data(), data.size()).ok());
  EXPECT_EQ(c.client()->stats().counters.get("push_bytes_sent"), 3 * data.size());
  uint64_t from_client = 0, from_servers = 0, forwarded = 0;
  for (int i = 0; i < 3; ++i) {
    for (auto [peer, bytes] : c.server(i)->stats().push_bytes_from) {
      (peer == c.client_rank() ? from_client : from_servers) += bytes;
    }
    forwarded += c.server(i)->stats().counters.get("push_bytes_forwarded");
  }
  EXPECT_EQ(from_client, 3 * data.size());  // each replica hears from the client
  EXPECT_EQ(from_servers, 0u);
  EXPECT_EQ(forwarded, 0u);
  std::vector<uint8_t> back(data.size());
  auto n = c.client()->Read(&*f, 0, back.data(), back.size());
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  ASSERT_EQ(*n, data.size());
  EXPECT_EQ(back, data);

  // Record appends, enough to fill chunks so that some bounce to the next
  // one (where the replicas may keep the pushed data): every record lands
  // whole where its offset says.
  auto g = c.client()->Create("/log");
  ASSERT_TRUE(g.ok());
  std::vector<std::vector<uint8_t>> recs;
  std::vector<Client::Span> spans;
  for (int i = 0; i < 40; ++i) recs.push_back(RandomBytes(100000 + 1000 * i, 100 + i));
  for (const auto& r : recs) spans.push_back({r.data(), r.size()});
  std::vector<uint64_t> offsets;
  ASSERT_TRUE(c.client()->RecordAppendMany(&*g, spans, &offsets).ok());
  ASSERT_EQ(offsets.size(), recs.size());
  for (size_t i = 0; i < recs.size(); ++i) {
    std::vector<uint8_t> got(recs[i].size());
    auto m = c.client()->Read(&*g, offsets[i], got.data(), got.size());
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    ASSERT_EQ(*m, got.size());
    EXPECT_EQ(got, recs[i]) << "record " << i;
  }
  EXPECT_GT(c.client()->stats().counters.get("append_next_chunk"), 0u);
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

// A snapshot taken while the writer still holds its file open (and a cached
// lease): the next write is refused by the primary (lease revoked), goes
// back to the master, and lands in a copy of the chunk that every replica
// made locally; the snapshot keeps the old bytes.
TEST(InProcCluster, SnapshotThenWriteCopiesOnlyTheWrittenChunk) {
  InProcCluster c(3);
  auto f = c.client()->Create("/f");
  ASSERT_TRUE(f.ok());
  auto data = RandomBytes(3 << 20, 30);
  ASSERT_TRUE(c.client()->Write(&*f, 0, data.data(), data.size()).ok());
  ASSERT_TRUE(c.client()->Fsync(&*f).ok());
  ASSERT_TRUE(c.client()->Snapshot("/f", "/s").ok());
  EXPECT_EQ(c.client()->Snapshot("/f", "/s").code(), Code::kAlreadyExists);
  EXPECT_EQ(c.client()->Snapshot("/nothing", "/t").code(), Code::kNotFound);
  auto patch = RandomBytes(1024, 31);
  const uint64_t off = (1 << 20) + 4321;
  ASSERT_TRUE(c.client()->Write(&*f, off, patch.data(), patch.size()).ok());
  ASSERT_TRUE(c.client()->Close(&*f).ok());
  auto snap = data;
  std::copy(patch.begin(), patch.end(), data.begin() + static_cast<long>(off));
  for (const char* path : {"/f", "/s"}) {
    auto g = c.client()->Open(path);
    ASSERT_TRUE(g.ok());
    std::vector<uint8_t> back(data.size());
    auto n = c.client()->Read(&*g, 0, back.data(), back.size());
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    ASSERT_EQ(*n, data.size());
    EXPECT_TRUE(back == (std::string(path) == "/f" ? data : snap)) << path;
  }
  uint64_t copied = 0, clone_bytes = 0;
  size_t replicas = 0;
  for (int i = 0; i < 3; ++i) {
    const auto named = c.server(i)->stats().counters.Named();
    if (named.count("chunks_copied_local")) copied += named.at("chunks_copied_local");
    if (named.count("clone_bytes")) clone_bytes += named.at("clone_bytes");
    replicas += c.server(i)->store()->NumChunks();
  }
  EXPECT_EQ(copied, 3u);
  EXPECT_EQ(clone_bytes, 0u);
  EXPECT_EQ(replicas, 4u * 3u);  // three shared chunks and one copy, on each server
  auto st = c.client()->Stat("/s");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->size, snap.size());
}

// A writer keeps overwriting blocks while another client takes a snapshot:
// the snapshot holds every write acknowledged before it was asked for (none
// lost) and none begun after it returned (none lands in both); the original
// ends with every block's last write.
TEST(InProcCluster, WritesDuringASnapshotLandOnlyWhereTheyBelong) {
  InProcCluster c(3, 1 << 20, 2);
  constexpr size_t kBlock = 4096;
  constexpr int kBlocks = 64;
  {
    auto f = c.client(0)->Create("/f");
    ASSERT_TRUE(f.ok());
    std::vector<uint8_t> zeros(kBlock * kBlocks, 0);
    ASSERT_TRUE(c.client(0)->Write(&*f, 0, zeros.data(), zeros.size()).ok());
    ASSERT_TRUE(c.client(0)->Close(&*f).ok());
  }
  std::vector<std::atomic<uint32_t>> acked(kBlocks);  // last sequence acknowledged per block
  for (auto& a : acked) a = 0;
  std::atomic<bool> snapped{false};
  std::atomic<uint32_t> first_after{0};  // first sequence begun after the snapshot returned
  std::atomic<bool> failed{false};
  std::thread writer([&] {
    auto f = c.client(1)->Open("/f");
    if (!f.ok()) return void(failed = true);
    for (uint32_t i = 1;; ++i) {
      if (snapped && first_after == 0) first_after = i;
      if (first_after != 0 && i > first_after + 2 * kBlocks) break;
      std::vector<uint8_t> b(kBlock, static_cast<uint8_t>(i));
      std::memcpy(b.data(), &i, sizeof i);
      const size_t blk = i % kBlocks;
      if (!c.client(1)->Write(&*f, blk * kBlock, b.data(), b.size()).ok())
        return void(failed = true);
      acked[blk] = i;
    }
    if (!c.client(1)->Close(&*f).ok()) failed = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  std::vector<uint32_t> at_ask(kBlocks);
  for (int b = 0; b < kBlocks; ++b) at_ask[static_cast<size_t>(b)] = acked[static_cast<size_t>(b)];
  Status snap = c.client(0)->Snapshot("/f", "/s");
  snapped = true;
  writer.join();
  ASSERT_TRUE(snap.ok()) << snap.ToString();
  ASSERT_FALSE(failed);
  ASSERT_GT(first_after.load(), 0u);
  // The writer held a lease when the snapshot came: it was taken away.
  EXPECT_GE(c.master().stats().counters.Named().count("leases_revoked"), 1u);
  for (const char* path : {"/s", "/f"}) {
    auto f = c.client(0)->Open(path);
    ASSERT_TRUE(f.ok());
    std::vector<uint8_t> back(kBlock * kBlocks);
    auto n = c.client(0)->Read(&*f, 0, back.data(), back.size());
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    ASSERT_EQ(*n, back.size());
    for (size_t b = 0; b < kBlocks; ++b) {
      uint32_t seq = 0;
      std::memcpy(&seq, back.data() + b * kBlock, sizeof seq);
      if (std::string(path) == "/s") {
        EXPECT_GE(seq, at_ask[b]) << "block " << b << ": an acknowledged write is missing";
        EXPECT_LT(seq, first_after.load()) << "block " << b << ": a later write leaked in";
      } else {
        EXPECT_EQ(seq, acked[b].load()) << "block " << b;
      }
    }
  }
}

// A replica that cannot make its copy (its replica of the shared chunk is
// gone) is left out of the new chunk; re-replication restores R.
TEST(InProcCluster, AReplicaThatFailsTheCopyIsLeftOutAndReplaced) {
  // Short leases: re-replication waits for the write's lease to end.
  InProcCluster c(4, 1 << 20, 1, {}, [](JobConfig* j) { j->lease_seconds = 1; });
  auto f = c.client()->Create("/f");
  ASSERT_TRUE(f.ok());
  auto data = RandomBytes(300000, 40);
  ASSERT_TRUE(c.client()->Write(&*f, 0, data.data(), data.size()).ok());
  ASSERT_TRUE(c.client()->Close(&*f).ok());
  ASSERT_TRUE(c.client()->Snapshot("/f", "/s").ok());
  // Take the chunk's replica away from one of its servers, behind the
  // master's back (the server is paused meanwhile).
  int victim = -1;
  for (int i = 0; i < 4 && victim < 0; ++i) {
    c.Pause(i);
    auto list = c.server(i)->store()->List();
    if (!list.empty()) {
      ASSERT_TRUE(c.server(i)->store()->Delete(list[0].handle).ok());
      victim = i;
    }
    c.Resume(i);
  }
  ASSERT_GE(victim, 0);
  auto g = c.client()->Open("/f");
  ASSERT_TRUE(g.ok());
  auto patch = RandomBytes(100, 41);
  ASSERT_TRUE(c.client()->Write(&*g, 5000, patch.data(), patch.size()).ok());
  ASSERT_TRUE(c.client()->Close(&*g).ok());
  auto snap = data;
  std::copy(patch.begin(), patch.end(), data.begin() + 5000);
  for (const char* path : {"/f", "/s"}) {
    auto h = c.client()->Open(path);
    ASSERT_TRUE(h.ok());
    std::vector<uint8_t> back(data.size());
    auto n = c.client()->Read(&*h, 0, back.data(), back.size());
    ASSERT_TRUE(n.ok()) << path << ": " << n.status().ToString();
    EXPECT_TRUE(back == (std::string(path) == "/f" ? data : snap)) << path;
  }
  // Two replicas copied; a clone brings the copy back to three: two left of
  // the shared chunk, three of the copy.
  size_t replicas = 0;
  for (int t = 0; t < 300 && replicas != 5; ++t) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    replicas = 0;
    for (int i = 0; i < 4; ++i) {
      c.Pause(i);
      replicas += c.server(i)->store()->NumChunks();
      c.Resume(i);
    }
  }
  EXPECT_EQ(replicas, 5u);
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
  EXPECT_GT(k.get("replicas_avoided"), 0u);
  EXPECT_LE(k.get("read_ahead_failed") + k.get("read_retries"), 4u);
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
  EXPECT_GT(c.client()->stats().counters.get("write_retries"), 0u);
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
  InProcCluster c(1);
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
  EXPECT_GE(c.client()->stats().counters.get("writes_without_push_ack"), data.size() / kPiece);
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
    if (k.Named().count("appends_primary")) appends += k.Named().at("appends_primary");
    if (k.Named().count("append_batches")) batches += k.Named().at("append_batches");
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
  InProcCluster c(1, 1 << 20, 1, {nullptr, &cs_env});
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
  const uint64_t before = c.master().stats().counters.Named().at("mutations");
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
  const uint64_t logged = c.master().stats().counters.Named().at("mutations") - before;
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
  const uint64_t ahead = reader->stats().counters.get("bytes_read_ahead");
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
  EXPECT_GT(reader->stats().counters.get("read_ahead_expired"), 0u);
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
  InProcCluster c(3, 1 << 20, 2, envs);
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
  const uint64_t retries = c.client(0)->stats().counters.get("write_retries");
  write(0, &*f0, 2);
  EXPECT_GT(c.client(0)->stats().counters.get("write_retries"), retries);
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
  // Every rank on one host: the client reads the replicas' files itself.
  InProcCluster c(
      2, 1 << 20, 2, {}, [](JobConfig* j) { j->scrub_mb_per_s = 0; }, true);
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
  EXPECT_EQ(k.get("bytes_read_local"), data.size());
  EXPECT_EQ(k.get("local_read_fallbacks"), 0u);
  EXPECT_EQ(k.get("bytes_read_ahead"), 0u);

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
  const uint64_t fallbacks = k.get("local_read_fallbacks"), retries = k.get("read_retries");
  for (int round = 0; round < 2; ++round) {
    ASSERT_TRUE(reader->Close(&*r).ok());  // forgets the last answer
    r = reader->Open("/sc");
    ASSERT_TRUE(r.ok());
    std::vector<uint8_t> head(4096);
    n = reader->Read(&*r, 0, head.data(), head.size());
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    EXPECT_TRUE(std::equal(head.begin(), head.end(), data.begin())) << "round " << round;
  }
  EXPECT_GT(k.get("local_read_fallbacks"), fallbacks);
  // The fallback went to the same chunkserver, which refused the block.
  EXPECT_GT(k.get("read_retries"), retries);
}

// A client that cannot open the chunkservers' files (another node's disk
// under the same host name, no permission) reads everything through the
// chunkservers, and tries each chunkserver's files once, not once per read.
TEST(InProcCluster, UnreachableChunkFilesAreTriedOncePerServer) {
  InProcCluster c(2, 1 << 20, 2, {}, nullptr, /*one_host=*/true);
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
  EXPECT_EQ(k.get("bytes_read_local"), 0u);
  EXPECT_GE(blind.read_only_opens(), 1u);
  EXPECT_LE(blind.read_only_opens(), 2u);  // one per chunkserver at most
  EXPECT_EQ(k.get("local_read_unreachable"), blind.read_only_opens());
  reader->set_env(Env::Posix());
}

uint64_t CounterOf(const RoleStats& st, const char* name) { return st.counters.get(name); }

// Flips one bit of `path` at `offset` (media damage under a running server).
void FlipBit(const std::string& path, uint64_t offset) {
  std::unique_ptr<RandomRWFile> file;
  ASSERT_TRUE(Env::Posix()->OpenRandomRW(path, false, &file).ok());
  uint8_t b = 0;
  size_t got = 0;
  ASSERT_TRUE(file->Read(offset, 1, &b, &got).ok());
  b ^= 0x08;
  ASSERT_TRUE(file->Write(offset, &b, 1).ok());
}

// Polls fsck until `done` holds for it (at most ~10 s).
bool WaitFsck(Client* c, const std::string& path,
              const std::function<bool(const FsckReply&)>& done) {
  for (int i = 0; i < 200; ++i) {
    auto r = c->Fsck(path, false);
    if (r.ok() && done(*r)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// A damaged replica is kept and repaired in place: a bad block in two of the
// three replicas (different blocks) is found by verification, reads return
// the right bytes meanwhile, and the master has each damaged replica fetch
// its bad blocks from the others (at a new version, so nothing mutates the
// chunk meanwhile); the replicas' files are the same files afterwards, and
// each verifies. A write into a damaged block waits for the repair instead
// of failing.
TEST(InProcCluster, DamagedReplicasAreRepairedInPlaceFromTheirPeers) {
  InProcCluster c(3, 1 << 20, 1, {}, [](JobConfig* j) {
    j->scrub_mb_per_s = 0;
    j->lease_seconds = 2;
  });
  auto data = RandomBytes((2 << 20) + 777, 41);
  auto f = c.client()->Create("/d");
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(c.client()->Write(&*f, 0, data.data(), data.size()).ok());
  ASSERT_TRUE(c.client()->Close(&*f).ok());
  auto look = c.client()->Fsck("/d", false);
  ASSERT_TRUE(look.ok());
  const uint64_t h = look->files[0].chunks[0].handle;
  std::vector<std::string> paths;
  std::vector<ino_t> inodes;
  for (int i = 0; i < 3; ++i) {
    paths.push_back(c.server(i)->store()->DataPath(h));
    struct stat st {};
    ASSERT_EQ(::stat(paths.back().c_str(), &st), 0);
    inodes.push_back(st.st_ino);
  }
  ASSERT_NO_FATAL_FAILURE(FlipBit(paths[0], 2 * 65536 + 5));
  ASSERT_NO_FATAL_FAILURE(FlipBit(paths[1], 7 * 65536 + 9));
  auto v = c.client()->Fsck("/d", true);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->files[0].chunks[0].corrupt.size(), 2u);
  EXPECT_TRUE(v->files[0].chunks[0].unreadable.empty());
  auto r = c.client()->Open("/d");
  ASSERT_TRUE(r.ok());
  std::vector<uint8_t> back(data.size());
  auto n = c.client()->Read(&*r, 0, back.data(), back.size());
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(back, data);
  EXPECT_TRUE(WaitFsck(c.client(), "/d", [](const FsckReply& rep) {
    return rep.files[0].chunks[0].corrupt.empty() && rep.files[0].chunks[0].replicas.size() == 3;
  }));
  v = c.client()->Fsck("/d", true);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->files[0].chunks[0].corrupt.empty());
  EXPECT_EQ(v->files[0].chunks[0].replicas.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    struct stat st {};
    ASSERT_EQ(::stat(paths[i].c_str(), &st), 0) << "replica " << i << " is gone";
    EXPECT_EQ(st.st_ino, inodes[i]) << "replica " << i << " was replaced, not repaired in place";
  }
  EXPECT_GE(CounterOf(c.master().stats(), "replicas_repaired"), 2u);
  EXPECT_EQ(CounterOf(c.server(0)->stats(), "chunks_deleted"), 0u);
  EXPECT_EQ(CounterOf(c.server(1)->stats(), "chunks_deleted"), 0u);

  // A partial overwrite of a block damaged on one replica: the write waits
  // for that replica's repair, then lands on all three.
  ASSERT_NO_FATAL_FAILURE(FlipBit(paths[2], 3 * 65536 + 100));
  v = c.client()->Fsck("/d", true);
  ASSERT_TRUE(v.ok());
  ASSERT_EQ(v->files[0].chunks[0].corrupt.size(), 1u);
  auto w = c.client()->Open("/d");
  ASSERT_TRUE(w.ok());
  auto patch = RandomBytes(1000, 42);
  Status ws = c.client()->Write(&*w, 3 * 65536 + 50, patch.data(), patch.size());
  ASSERT_TRUE(ws.ok()) << ws.ToString();
  ASSERT_TRUE(c.client()->Close(&*w).ok());
  std::copy(patch.begin(), patch.end(), data.begin() + 3 * 65536 + 50);
  v = c.client()->Fsck("/d", true);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->files[0].chunks[0].corrupt.empty());
  r = c.client()->Open("/d");
  ASSERT_TRUE(r.ok());
  n = c.client()->Read(&*r, 0, back.data(), back.size());
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(back, data);
}

// The only replica of a block damaged: the replica is kept (never deleted),
// every other byte stays readable, a read of the damaged range fails naming
// the file and the range, and fsck lists it as unreadable.
TEST(InProcCluster, TheOnlyCopyOfADamagedBlockIsKeptAndReadAround) {
  InProcCluster c(1, 1 << 20, 1, {}, [](JobConfig* j) { j->scrub_mb_per_s = 0; });
  auto data = RandomBytes(1 << 20, 43);
  auto f = c.client()->Create("/one");
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(c.client()->Write(&*f, 0, data.data(), data.size()).ok());
  ASSERT_TRUE(c.client()->Close(&*f).ok());
  auto look = c.client()->Fsck("/one", false);
  ASSERT_TRUE(look.ok());
  const std::string path = c.server(0)->store()->DataPath(look->files[0].chunks[0].handle);
  ASSERT_NO_FATAL_FAILURE(FlipBit(path, 8 * 65536 + 1234));
  auto v = c.client()->Fsck("/one", true);
  ASSERT_TRUE(v.ok());
  const FsckChunk& ch = v->files[0].chunks[0];
  ASSERT_EQ(ch.unreadable.size(), 1u);
  EXPECT_EQ(ch.unreadable[0].offset, 8u * 65536);
  EXPECT_EQ(ch.unreadable[0].length, 65536u);
  auto r = c.client()->Open("/one");
  ASSERT_TRUE(r.ok());
  std::vector<uint8_t> back(data.size());
  auto n = c.client()->Read(&*r, 0, back.data(), back.size());
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().code(), Code::kCorruption);
  EXPECT_NE(n.status().message().find("/one: bytes 524288..589824"), std::string::npos)
      << n.status().message();
  n = c.client()->Read(&*r, 0, back.data(), 8 * 65536);  // before it
  ASSERT_TRUE(n.ok());
  EXPECT_TRUE(std::equal(back.begin(), back.begin() + 8 * 65536, data.begin()));
  n = c.client()->Read(&*r, 9 * 65536, back.data(), data.size() - 9 * 65536);  // after it
  ASSERT_TRUE(n.ok());
  EXPECT_TRUE(
      std::equal(back.begin(), back.begin() + static_cast<long>(*n), data.begin() + 9 * 65536));
  EXPECT_TRUE(std::filesystem::exists(path));
  EXPECT_EQ(CounterOf(c.server(0)->stats(), "chunks_deleted"), 0u);
  FlipBit(path, 8 * 65536 + 1234);  // the bit back: readable again, and verified clean
  n = c.client()->Read(&*r, 0, back.data(), back.size());
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(back, data);
  v = c.client()->Fsck("/one", true);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->files[0].chunks[0].corrupt.empty());
  EXPECT_TRUE(v->files[0].chunks[0].unreadable.empty());
}

// A replica that ends before the others at the same version is read only up
// to its end: the rest comes from a replica that holds it, never as zeros.
// Only when every replica ends there is the rest a hole, read as zeros.
TEST(InProcCluster, AShortReplicaIsNeverReadAsZeros) {
  InProcCluster c(3, 1 << 20, 1, {}, [](JobConfig* j) {
    j->short_circuit_reads = false;
    j->read_ahead = 0;
  });
  auto data = RandomBytes(300000, 44);
  auto f = c.client()->Create("/s");
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(c.client()->Write(&*f, 0, data.data(), data.size()).ok());
  ASSERT_TRUE(c.client()->Close(&*f).ok());
  auto look = c.client()->Fsck("/s", false);
  ASSERT_TRUE(look.ok());
  const uint64_t h = look->files[0].chunks[0].handle;
  c.Pause(0);
  ASSERT_TRUE(c.server(0)->store()->Truncate(h, 100000).ok());
  c.Resume(0);
  for (int round = 0; round < 6; ++round) {  // reads spread over the replicas
    auto r = c.client()->Open("/s");
    ASSERT_TRUE(r.ok());
    std::vector<uint8_t> back(data.size());
    auto n = c.client()->Read(&*r, 0, back.data(), back.size());
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    ASSERT_EQ(back, data) << "round " << round;
  }
  EXPECT_GT(c.client()->stats().counters.get("read_short_replies"), 0u);
  for (int i = 1; i < 3; ++i) {
    c.Pause(i);
    ASSERT_TRUE(c.server(i)->store()->Truncate(h, 100000).ok());
    c.Resume(i);
  }
  auto r = c.client()->Open("/s");
  ASSERT_TRUE(r.ok());
  std::vector<uint8_t> back(data.size());
  auto n = c.client()->Read(&*r, 0, back.data(), back.size());
  ASSERT_TRUE(n.ok());
  EXPECT_TRUE(std::equal(back.begin(), back.begin() + 100000, data.begin()));
  EXPECT_TRUE(std::all_of(back.begin() + 100000, back.end(), [](uint8_t b) { return b == 0; }));
}

// Short-circuit reads open only the chunk's own data file under the job's
// data directory, on the same machine (host name and boot id): a client
// configured with another data directory, or on a host of the same name
// with another boot id, reads every byte through the chunkservers.
TEST(InProcCluster, ShortCircuitReadsOpenOnlyTheChunksOwnFileOnTheSameMachine) {
  auto data = RandomBytes(700000, 45);
  {
    InProcCluster c(1, 1 << 20, 1, {}, nullptr, /*one_host=*/true,
                    [](JobConfig* j) { j->data_dir = "/tmp/gfs-not-this-store"; });
    auto f = c.client()->Create("/p");
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(c.client()->Write(&*f, 0, data.data(), data.size()).ok());
    ASSERT_TRUE(c.client()->Close(&*f).ok());
    auto r = c.client()->Open("/p");
    ASSERT_TRUE(r.ok());
    std::vector<uint8_t> back(data.size());
    ASSERT_TRUE(c.client()->Read(&*r, 0, back.data(), back.size()).ok());
    EXPECT_EQ(back, data);
    auto& k = c.client()->stats().counters;
    EXPECT_EQ(k.get("bytes_read_local"), 0u);
    // Refused once per request in flight when the first answer came (the
    // read window), never after.
    EXPECT_GE(k.get("local_read_refused_paths"), 1u);
    EXPECT_LE(k.get("local_read_refused_paths"), 4u);
  }
  {
    // Ranks 0, 1 on one machine; the client (rank 2) on another of the same name.
    std::vector<HostId> hosts = {{"node", "boot-a"}, {"node", "boot-a"}, {"node", "boot-b"}};
    InProcCluster c(1, 1 << 20, 1, {}, nullptr, false, nullptr, hosts);
    auto f = c.client()->Create("/q");
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(c.client()->Write(&*f, 0, data.data(), data.size()).ok());
    ASSERT_TRUE(c.client()->Close(&*f).ok());
    auto r = c.client()->Open("/q");
    ASSERT_TRUE(r.ok());
    std::vector<uint8_t> back(data.size());
    ASSERT_TRUE(c.client()->Read(&*r, 0, back.data(), back.size()).ok());
    EXPECT_EQ(back, data);
    EXPECT_EQ(c.client()->stats().counters.get("bytes_read_local"), 0u);
    EXPECT_EQ(CounterOf(c.server(0)->stats(), "local_reads"), 0u);
  }
}

// A master with no metadata beside a chunkserver holding chunks refuses
// every request with one error naming what it found, makes no store and
// deletes nothing.
TEST(InProcCluster, AMasterWithoutMetadataBesideChunksRefusesAndDeletesNothing) {
  std::string dir;
  {
    InProcCluster c(1);
    dir = c.dir() + "-kept";
    auto data = RandomBytes(3000, 46);
    auto f = c.client()->Create("/x");
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(c.client()->Write(&*f, 0, data.data(), data.size()).ok());
    ASSERT_TRUE(c.client()->Close(&*f).ok());
    EXPECT_NE(c.master().store_id(), 0u);
    std::filesystem::copy(c.dir(), dir, std::filesystem::copy_options::recursive);
  }
  std::filesystem::remove_all(dir + "/master");
  size_t chunk_files = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    chunk_files += e.path().extension() == ".chunk";
  }
  ASSERT_EQ(chunk_files, 1u);
  // A new cluster on that data directory: the chunkserver's chunks, no master.
  InProcCluster c(1, 1 << 20, 1, {}, [&](JobConfig* j) { j->data_dir = dir; });
  auto st = c.client()->Stat("/x");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), Code::kWrongStore);
  EXPECT_NE(st.status().message().find("refusing to start"), std::string::npos)
      << st.status().message();
  EXPECT_NE(st.status().message().find("holds 1 chunks of store"), std::string::npos)
      << st.status().message();
  EXPECT_EQ(c.master().store_id(), 0u);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // heartbeats come and go
  EXPECT_EQ(CounterOf(c.server(0)->stats(), "chunks_deleted"), 0u);
  EXPECT_TRUE(std::filesystem::exists(c.server(0)->store()->DataPath(1)));
  EXPECT_FALSE(std::filesystem::exists(dir + "/master/VERSION"));
}

// An fsync of a file of several chunks: the chunkserver starts the device
// writes of every chunk written since its last sync before it waits on the
// first one (one batch for the disk, not one chunk after another).
void FsyncStartsEveryDirtyChunk(InProcCluster* cp, FaultEnv* fep);

TEST(InProcCluster, FsyncStartsEveryDirtyChunkBeforeTheFirstSync) {
  FaultEnv fe(Env::Posix());
  InProcCluster c(1, 1 << 20, 1, {nullptr, &fe});
  FsyncStartsEveryDirtyChunk(&c, &fe);
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

// One client's fsync waits for a slow disk in the chunkserver's sync thread;
// meanwhile another client's writes and reads through the same chunkserver
// go on.
TEST(InProcCluster, SlowSyncHoldsNoOtherRequest) {
  FaultEnv fe(Env::Posix());
  InProcCluster c(1, 1 << 20, 2, {nullptr, &fe});
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
  for (int i = 0; i < 1000 && CounterOf(c.server(0)->stats(), "syncs_in_thread") == 0; ++i) {
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

}  // namespace
}  // namespace gfs
