// Crash and fault injection through the Env seam (tests/unit/fault_env.h):
// lost fsyncs, crashes with some files newer than others, torn writes,
// ENOSPC and transient write errors, for the master's op log and the
// chunkserver's chunk store. Deterministic: every randomized test runs a fixed
// set of seeds and names the seed of a failing round.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "chunk/chunk_store.h"
#include "master/meta_state.h"
#include "master/oplog.h"
#include "tests/unit/fault_env.h"

namespace gfs {
namespace {

using Rng = std::mt19937_64;
uint64_t Rand(Rng& r, uint64_t n) { return n == 0 ? 0 : r() % n; }
bool Coin(Rng& r, uint32_t one_in) { return Rand(r, one_in) == 0; }

std::vector<uint8_t> RandBytes(Rng& r, size_t n) {
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(r());
  return v;
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/gfs_fault_test.XXXXXX";
    EXPECT_NE(mkdtemp(tmpl), nullptr);
    path_ = tmpl;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// ---- op log ------------------------------------------------------------------

// Ops for the log (Replay decodes them; nothing applies them here). Some carry
// long paths so that the log's 256 KiB append buffer spills to the file
// before a Sync, and a crash has unsynced bytes in the file to drop.
MetaOp LogOp(Rng& r, int i) {
  std::string path = "/d";
  path += std::to_string(i);
  if (Coin(r, 3)) path.append(Rand(r, 4000), 'x');
  switch (Rand(r, 4)) {
    case 0:
      return MetaOp::Mkdir(path, Coin(r, 2));
    case 1:
      return MetaOp::Create(path, r(), 3, 1 << 20, static_cast<int64_t>(r() >> 1));
    case 2:
      return MetaOp::SetVersion(r(), r());
    default:
      return MetaOp::Rename(path, path + "/r");
  }
}

std::vector<MetaOp> ReplayAll(Env* env, const std::string& path, ReplayInfo* info, Status* status) {
  std::vector<MetaOp> ops;
  *status = OpLog::Replay(
      env, path,
      [&](uint64_t, const MetaOp& op) {
        ops.push_back(op);
        return Status::OK();
      },
      info);
  return ops;
}

std::vector<MetaOp> Prefix(const std::vector<MetaOp>& v, size_t n) {
  return std::vector<MetaOp>(v.begin(), v.begin() + static_cast<ptrdiff_t>(n));
}

TEST(FaultInjection, OpLogCrashKeepsExactlyTheSyncedRecords) {
  for (uint64_t seed = 1; seed <= 24; ++seed) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    Rng r(seed);
    TempDir dir;
    FaultEnv env(Env::Posix());
    const std::string path = dir.path() + "/oplog";
    std::vector<MetaOp> appended;
    size_t synced = 0;
    {
      OpLog log(&env, path);
      uint64_t last = 0;
      ASSERT_TRUE(log.Open(&last).ok());
      const int n = 1 + static_cast<int>(Rand(r, 150));
      for (int i = 0; i < n; ++i) {
        appended.push_back(LogOp(r, i));
        ASSERT_TRUE(log.Append(appended.back(), nullptr).ok());
        if (Coin(r, 6)) {
          ASSERT_TRUE(log.Sync().ok());
          synced = appended.size();
        }
        ASSERT_EQ(log.synced_seq(), synced);
      }
    }  // crash: the OpLog dies without Sync/Close
    ASSERT_TRUE(env.DropUnsyncedData().ok());

    ReplayInfo info;
    Status s;
    std::vector<MetaOp> got = ReplayAll(&env, path, &info, &s);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(got.size(), synced);
    EXPECT_TRUE(got == Prefix(appended, synced));
    EXPECT_TRUE(info.warning.empty()) << info.warning;

    // The log continues at the next sequence number.
    OpLog log(&env, path);
    uint64_t last = 0;
    ASSERT_TRUE(log.Open(&last).ok());
    EXPECT_EQ(last, synced);
    uint64_t seq = 0;
    ASSERT_TRUE(log.Append(MetaOp::Mkdir("/after", false), &seq).ok());
    EXPECT_EQ(seq, synced + 1);
    ASSERT_TRUE(log.Sync().ok());
    got = ReplayAll(&env, path, &info, &s);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(got.size(), synced + 1);
  }
}

TEST(FaultInjection, OpLogFailedSyncIsNeverAcknowledged) {
  TempDir dir;
  FaultEnv env(Env::Posix());
  const std::string path = dir.path() + "/oplog";
  Rng r(5);
  std::vector<MetaOp> ops;
  {
    OpLog log(&env, path);
    uint64_t last = 0;
    ASSERT_TRUE(log.Open(&last).ok());
    for (int i = 0; i < 5; ++i) {
      ops.push_back(LogOp(r, i));
      ASSERT_TRUE(log.Append(ops.back(), nullptr).ok());
    }
    ASSERT_TRUE(log.Sync().ok());
    for (int i = 5; i < 8; ++i) ASSERT_TRUE(log.Append(LogOp(r, i), nullptr).ok());
    env.SetSyncError(true);
    Status s = log.Sync();
    EXPECT_EQ(s.code(), Code::kIOError) << s.ToString();
    env.SetSyncError(false);
    // Poisoned: a retried fsync cannot be trusted, and nothing new is taken.
    EXPECT_FALSE(log.Sync().ok());
    EXPECT_FALSE(log.Append(MetaOp::Mkdir("/x", false), nullptr).ok());
    EXPECT_EQ(log.synced_seq(), 5u);
  }
  ASSERT_TRUE(env.DropUnsyncedData().ok());
  ReplayInfo info;
  Status s;
  std::vector<MetaOp> got = ReplayAll(&env, path, &info, &s);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(got == ops);  // exactly the acknowledged five
}

TEST(FaultInjection, OpLogTornAppendOnFullDisk) {
  for (uint64_t seed = 1; seed <= 12; ++seed) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    Rng r(seed * 7919);
    const bool crash = seed % 2 == 0;
    TempDir dir;
    FaultEnv env(Env::Posix());
    const std::string path = dir.path() + "/oplog";
    std::vector<MetaOp> appended;
    {
      OpLog log(&env, path);
      uint64_t last = 0;
      ASSERT_TRUE(log.Open(&last).ok());
      for (int i = 0; i < 10; ++i) {
        appended.push_back(LogOp(r, i));
        ASSERT_TRUE(log.Append(appended.back(), nullptr).ok());
      }
      ASSERT_TRUE(log.Sync().ok());
      // The disk fills part-way through the next batch: the write is torn.
      env.SetSpaceBudget(static_cast<int64_t>(1 + Rand(r, 3000)));
      Status s;
      for (int i = 10; i < 40 && s.ok(); ++i) {
        std::string big = "/big";
        big.append(2000 + Rand(r, 2000), 'y');
        appended.push_back(MetaOp::Mkdir(big, false));
        s = log.Append(appended.back(), nullptr);
      }
      if (s.ok()) s = log.Sync();
      EXPECT_EQ(s.code(), Code::kNoSpace) << s.ToString();
      EXPECT_FALSE(log.Append(MetaOp::Mkdir("/x", false), nullptr).ok());
      EXPECT_EQ(log.synced_seq(), 10u);
    }
    env.SetNoSpace(false);
    if (crash) {
      ASSERT_TRUE(env.DropUnsyncedData().ok());
    }

    ReplayInfo info;
    Status s;
    std::vector<MetaOp> got = ReplayAll(&env, path, &info, &s);
    ASSERT_TRUE(s.ok()) << s.ToString();
    // Everything acknowledged is there; anything more is a whole record that
    // was written but never acknowledged; a torn record is dropped with a warning.
    ASSERT_GE(got.size(), 10u);
    if (crash) {
      EXPECT_EQ(got.size(), 10u);
    }
    EXPECT_TRUE(got == Prefix(appended, got.size()));
    EXPECT_EQ(info.warning.empty(), info.valid_bytes == info.file_bytes);

    // Open cuts the torn tail; appends work again once there is space.
    OpLog log(&env, path);
    uint64_t last = 0;
    ASSERT_TRUE(log.Open(&last).ok());
    EXPECT_EQ(last, got.size());
    ASSERT_TRUE(log.Append(MetaOp::Mkdir("/again", false), nullptr).ok());
    ASSERT_TRUE(log.Sync().ok());
    std::vector<MetaOp> after = ReplayAll(&env, path, &info, &s);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(after.size(), got.size() + 1);
    EXPECT_TRUE(info.warning.empty());
  }
}

// ---- chunk store -------------------------------------------------------------

constexpr uint64_t kBS = ChunkStore::kBlockSize;

// A chunk's expected bytes.
using Model = std::vector<uint8_t>;

void Apply(Model* m, uint64_t off, const std::vector<uint8_t>& d) {
  if (m->size() < off + d.size()) m->resize(off + d.size(), 0);
  std::copy(d.begin(), d.end(), m->begin() + static_cast<ptrdiff_t>(off));
}

// True if m holds bytes [bs, bs+n) and they equal p.
bool BlockIs(const Model& m, uint64_t bs, const std::vector<uint8_t>& p) {
  return m.size() >= bs + p.size() &&
         std::equal(p.begin(), p.end(), m.begin() + static_cast<ptrdiff_t>(bs));
}

// Reads every block of `h` on its own. Each one must verify with bytes one of
// the models allows, or fail with Corruption; returns how many failed.
int CheckBlocks(ChunkStore* store, uint64_t h, const std::vector<const Model*>& allowed) {
  const uint64_t len = store->Meta(h)->length;
  int bad = 0;
  for (uint64_t bs = 0; bs < len; bs += kBS) {
    std::vector<uint8_t> out;
    Status s = store->Read(h, bs, kBS, &out);
    if (!s.ok()) {
      EXPECT_EQ(s.code(), Code::kCorruption) << s.ToString();
      EXPECT_TRUE(out.empty());
      ++bad;
      continue;
    }
    bool ok = false;
    for (const Model* m : allowed) ok = ok || BlockIs(*m, bs, out);
    EXPECT_TRUE(ok) << "chunk " << h << " block " << bs / kBS << " verifies with wrong bytes";
  }
  return bad;
}

// A random write: mostly small and unaligned, sometimes whole blocks, past the
// end (a gap) or as a gather list of several slices.
struct RandomWrite {
  uint64_t off = 0;
  std::vector<uint8_t> data;
  std::vector<ConstSlice> slices;
};

RandomWrite MakeWrite(Rng& r, uint64_t len) {
  RandomWrite w;
  w.off = Rand(r, len + (Coin(r, 5) ? 2 * kBS : 100));
  if (Coin(r, 4)) w.off -= w.off % kBS;
  if (Coin(r, 8)) {
    // Slices of 256 KiB and more go out as one pwrite each (no copy), so a
    // failure can land between two of them, inside a block.
    const size_t k = 256 * 1024 + Rand(r, 3 * kBS);
    const int parts = 2 + static_cast<int>(Rand(r, 2));
    w.data = RandBytes(r, k * static_cast<size_t>(parts));
    for (int i = 0; i < parts; ++i) {
      w.slices.push_back(ConstSlice{w.data.data() + k * static_cast<size_t>(i), k});
    }
    return w;
  }
  const uint64_t n = Coin(r, 3) ? 1 + Rand(r, 3 * kBS) : 1 + Rand(r, 5000);
  w.data = RandBytes(r, n);
  size_t at = 0;
  while (at < n) {
    const size_t k = Coin(r, 2) ? n - at : std::min<size_t>(n - at, 1 + Rand(r, n));
    w.slices.push_back(ConstSlice{w.data.data() + at, k});
    at += k;
  }
  return w;
}

TEST(FaultInjection, ChunkStoreCrashWithSomeFilesNewer) {
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    Rng r(seed);
    TempDir dir;
    FaultEnv env(Env::Posix());
    std::map<uint64_t, Model> synced, latest;
    {
      ChunkStore store(&env, dir.path());
      ASSERT_TRUE(store.Open().ok());
      for (uint64_t h = 1; h <= 3; ++h) {
        ASSERT_TRUE(store.Create(h, 1).ok());
        synced[h] = Model();
        latest[h] = Model();
      }
      const int steps = 5 + static_cast<int>(Rand(r, 30));
      for (int i = 0; i < steps; ++i) {
        const uint64_t h = 1 + Rand(r, 3);
        if (Coin(r, 5)) {
          ASSERT_TRUE(store.Sync(h).ok());
          synced[h] = latest[h];
          continue;
        }
        if (Coin(r, 12)) {
          ASSERT_TRUE(store.SyncAll().ok());
          synced = latest;
          continue;
        }
        RandomWrite w = MakeWrite(r, latest[h].size());
        ASSERT_TRUE(store.Write(h, w.off, w.slices).ok());
        Apply(&latest[h], w.off, w.data);
      }
    }
    // Crash. Either nothing unsynced survives, or a random subset of files
    // kept their newest content (data newer than checksums or the reverse).
    const bool partial = seed % 3 != 0;
    std::map<std::string, bool> keep;
    ASSERT_TRUE(env.DropUnsyncedData([&](const std::string& p) {
                     if (!partial) return false;
                     auto it = keep.find(p);
                     if (it == keep.end()) it = keep.emplace(p, Coin(r, 2)).first;
                     return it->second;
                   })
                    .ok());

    ChunkStore store(&env, dir.path());
    ASSERT_TRUE(store.Open().ok());
    for (uint64_t h = 1; h <= 3; ++h) {
      ASSERT_TRUE(store.Has(h));
      if (!partial) {
        // Exactly the synced state, every block verifying.
        EXPECT_EQ(store.Meta(h)->length, synced[h].size());
        std::vector<uint8_t> out;
        ASSERT_TRUE(store.Read(h, 0, 1 << 30, &out).ok());
        EXPECT_TRUE(out == synced[h]) << "chunk " << h;
        EXPECT_TRUE(store.Verify(h).ok());
      } else {
        // Data and checksums may disagree: such blocks are Corruption, never data.
        CheckBlocks(&store, h, {&synced[h], &latest[h]});
      }
    }
  }
}

TEST(FaultInjection, ChunkStoreCrashBetweenDataAndChecksumSync) {
  TempDir dir;
  FaultEnv env(Env::Posix());
  Rng r(11);
  Model synced = RandBytes(r, 3 * kBS + 500), latest;
  {
    ChunkStore store(&env, dir.path());
    ASSERT_TRUE(store.Open().ok());
    ASSERT_TRUE(store.Create(1, 1).ok());
    ASSERT_TRUE(store.Write(1, 0, synced.data(), synced.size()).ok());
    ASSERT_TRUE(store.Sync(1).ok());
    latest = synced;
    const std::vector<uint8_t> w = RandBytes(r, kBS);
    ASSERT_TRUE(store.Write(1, kBS + 100, w.data(), w.size()).ok());  // blocks 1 and 2
    Apply(&latest, kBS + 100, w);
    // The data file's fsync works, the checksum file's fails: poisoned.
    env.SetSyncErrorAfter(1);
    EXPECT_EQ(store.Sync(1).code(), Code::kIOError);
    env.SetSyncError(false);
    std::vector<uint8_t> out;
    EXPECT_FALSE(store.Read(1, 0, 10, &out).ok());
  }
  ASSERT_TRUE(env.DropUnsyncedData().ok());  // new data, old checksums
  ChunkStore store(&env, dir.path());
  ASSERT_TRUE(store.Open().ok());
  EXPECT_EQ(CheckBlocks(&store, 1, {&synced}), 2);  // blocks 1 and 2
  std::vector<uint8_t> out;
  ASSERT_TRUE(store.Read(1, 0, kBS, &out).ok());
  ASSERT_TRUE(store.Read(1, 3 * kBS, kBS, &out).ok());
  EXPECT_EQ(store.Verify(1).code(), Code::kCorruption);
}

TEST(FaultInjection, ChunkStoreTornWritesAndNoSpace) {
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    Rng r(seed * 31);
    TempDir dir;
    FaultEnv env(Env::Posix());
    auto store = std::make_unique<ChunkStore>(&env, dir.path());
    ASSERT_TRUE(store->Open().ok());
    ASSERT_TRUE(store->Create(1, 1).ok());
    Model m = RandBytes(r, 1 + Rand(r, 3 * kBS));
    ASSERT_TRUE(store->Write(1, 0, m.data(), m.size()).ok());
    ASSERT_TRUE(store->Sync(1).ok());
    for (int i = 0; i < 6; ++i) {
      RandomWrite w = MakeWrite(r, m.size());
      const uint64_t end = w.off + w.data.size();
      const bool grows = end > m.size();
      // No space at all, or a budget that runs out part-way through the
      // growth (a torn write; the checksum file grows too).
      if (Coin(r, 3) || !grows) {
        env.SetNoSpace(true);
      } else {
        // Half the time the data fits and the checksum entries do not.
        const uint64_t growth = end - m.size();
        const uint64_t crc_growth = 4 * ((end + kBS - 1) / kBS - (m.size() + kBS - 1) / kBS);
        env.SetSpaceBudget(static_cast<int64_t>(
            Coin(r, 2) && crc_growth > 0 ? growth + Rand(r, crc_growth) : Rand(r, growth)));
      }
      Status s = store->Write(1, w.off, w.slices);
      if (grows) {
        EXPECT_EQ(s.code(), Code::kNoSpace) << s.ToString();
      } else {
        EXPECT_TRUE(s.ok()) << s.ToString();  // an overwrite needs no space
      }
      env.SetNoSpace(false);
      if (!s.ok()) {
        // Not acknowledged: the length is unchanged and no block reads wrong.
        // Blocks the write overlapped hold old or new bytes; anything torn
        // inside a block is Corruption.
        EXPECT_EQ(store->Meta(1)->length, m.size());
        Model next = m;
        Apply(&next, w.off, w.data);
        // The same on disk as in memory: check, reopen (dropping cached
        // checksums), check again.
        for (int pass = 0; pass < 2; ++pass) {
          SCOPED_TRACE(pass == 0 ? "cached" : "reopened");
          CheckBlocks(store.get(), 1, {&m, &next});
          // Blocks before the write's first block are intact.
          for (uint64_t b = 0; b < std::min(w.off, m.size()) / kBS; ++b) {
            std::vector<uint8_t> out;
            EXPECT_TRUE(store->Read(1, b * kBS, kBS, &out).ok()) << "block " << b;
          }
          // A write that starts at or past the end leaves every old byte readable.
          if (w.off >= m.size()) {
            std::vector<uint8_t> out;
            EXPECT_TRUE(store->Read(1, 0, 1 << 30, &out).ok());
            EXPECT_TRUE(out == m);
          }
          if (pass == 0) {
            store.reset();
            store = std::make_unique<ChunkStore>(&env, dir.path());
            ASSERT_TRUE(store->Open().ok());
            ASSERT_EQ(store->Meta(1)->length, m.size());
          }
        }
        // With space back, the same write goes through.
        s = store->Write(1, w.off, w.slices);
        if (!s.ok()) {
          // Only possible if a torn edge block is now corrupt.
          EXPECT_EQ(s.code(), Code::kCorruption) << s.ToString();
          break;
        }
      } else {
        ASSERT_TRUE(s.ok());
      }
      Apply(&m, w.off, w.data);
      std::vector<uint8_t> out;
      ASSERT_TRUE(store->Read(1, 0, 1 << 30, &out).ok());
      ASSERT_TRUE(out == m);
    }
  }
}

TEST(FaultInjection, FailedOverwriteDoesNotLaunderACorruptBlock) {
  TempDir dir;
  FaultEnv env(Env::Posix());
  ChunkStore store(&env, dir.path());
  ASSERT_TRUE(store.Open().ok());
  ASSERT_TRUE(store.Create(1, 1).ok());
  Rng r(3);
  const Model d = RandBytes(r, 3 * kBS);
  ASSERT_TRUE(store.Write(1, 0, d.data(), d.size()).ok());
  ASSERT_TRUE(store.Sync(1).ok());
  ASSERT_TRUE(env.FlipByte(store.DataPath(1), kBS + 7).ok());  // block 1 goes bad on disk

  // An overwrite covering block 1 entirely (its edges, blocks 0 and 2, are
  // verified first) whose data write fails with a transient error.
  const std::vector<uint8_t> w = RandBytes(r, 3 * kBS - 200);
  env.FailWriteAt(0);
  Status s = store.Write(1, 100, w.data(), w.size());
  EXPECT_EQ(s.code(), Code::kIOError) << s.ToString();
  // Block 1 still holds the corrupt bytes: it must not come back verified.
  std::vector<uint8_t> out;
  s = store.Read(1, kBS, 10, &out);
  EXPECT_EQ(s.code(), Code::kCorruption) << s.ToString();
  EXPECT_TRUE(out.empty());
  ASSERT_TRUE(store.Read(1, 0, kBS, &out).ok());
  EXPECT_TRUE(std::equal(out.begin(), out.end(), d.begin()));
  // The retry replaces the bad block.
  ASSERT_TRUE(store.Write(1, 100, w.data(), w.size()).ok());
  EXPECT_TRUE(store.Verify(1).ok());
  ASSERT_TRUE(store.Read(1, 100, w.size(), &out).ok());
  EXPECT_TRUE(out == w);
}

TEST(FaultInjection, TransientWriteErrorsKeepEveryBlockOldOrNew) {
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    Rng r(seed * 101);
    TempDir dir;
    FaultEnv env(Env::Posix());
    ChunkStore store(&env, dir.path());
    ASSERT_TRUE(store.Open().ok());
    ASSERT_TRUE(store.Create(1, 1).ok());
    // Start long enough that writes land inside old bytes.
    Model m = RandBytes(r, 1536 * 1024 + Rand(r, kBS));
    ASSERT_TRUE(store.Write(1, 0, m.data(), m.size()).ok());
    for (int i = 0; i < 10; ++i) {
      RandomWrite w = MakeWrite(r, m.size());
      // Large slices go out as one pwrite each: fail one of them, or the
      // checksum write after the data.
      if (Coin(r, 2)) env.FailWriteAt(static_cast<int64_t>(Rand(r, w.slices.size() + 1)));
      Status s = store.Write(1, w.off, w.slices);
      env.FailWriteAt(-1);
      Model next = m;
      Apply(&next, w.off, w.data);
      if (s.ok()) {
        m = next;
        continue;
      }
      EXPECT_EQ(s.code(), Code::kIOError) << s.ToString();
      EXPECT_EQ(store.Meta(1)->length, m.size());
      if (CheckBlocks(&store, 1, {&m, &next}) > 0) break;  // torn inside a block
      // Every block verified: the chunk is usable, continue from what it holds.
      std::vector<uint8_t> out;
      ASSERT_TRUE(store.Read(1, 0, 1 << 30, &out).ok());
      m = out;
    }
  }
}

}  // namespace
}  // namespace gfs
namespace gfs {
namespace {
TEST(FaultInjection, TornChecksumWriteOfAnAppendIsUndoneOnDisk) {
  TempDir dir;
  FaultEnv env(Env::Posix());
  auto store = std::make_unique<ChunkStore>(&env, dir.path());
  ASSERT_TRUE(store->Open().ok());
  ASSERT_TRUE(store->Create(1, 1).ok());
  Rng r(9);
  const Model d = RandBytes(r, 1000);
  ASSERT_TRUE(store->Write(1, 0, d.data(), d.size()).ok());
  ASSERT_TRUE(store->Sync(1).ok());
  // The appended data fits; the checksum entries after it do not. The entry
  // of the old partial block 0 is rewritten in place before space runs out.
  const std::vector<uint8_t> w = RandBytes(r, 200000);
  env.SetSpaceBudget(200000 + 1);
  EXPECT_EQ(store->Write(1, 1000, w.data(), w.size()).code(), Code::kNoSpace);
  env.SetNoSpace(false);
  std::vector<uint8_t> out;
  ASSERT_TRUE(store->Read(1, 0, 1 << 20, &out).ok());
  EXPECT_TRUE(out == d);
  // On disk too: a fresh store (no cached checksums) reads the old bytes.
  store = std::make_unique<ChunkStore>(&env, dir.path());
  ASSERT_TRUE(store->Open().ok());
  Status s = store->Read(1, 0, 1 << 20, &out);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(out == d);
}
}  // namespace
}  // namespace gfs
