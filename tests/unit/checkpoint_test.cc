#include "master/checkpoint.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <random>

#include "common/coding.h"
#include "tests/unit/meta_workload.h"

namespace gfs {
namespace {

void Build(MetaState* st, int ops, uint32_t seed) {
  MetaWorkload w(seed);
  for (int i = 0; i < ops; ++i) w.Next(st);
}

TEST(CheckpointTest, RoundTripEqualsState) {
  MetaState live;
  Build(&live, 3000, 7);
  ASSERT_GT(live.NumFiles(), 50u);
  ASSERT_GT(live.NumChunks(), 50u);
  ASSERT_GT(live.NumDirs(), 5u);
  const std::string bytes = EncodeCheckpointToString(live, 3000, 4);
  MetaState loaded;
  CheckpointInfo info;
  ASSERT_TRUE(DecodeCheckpoint(bytes, &loaded, &info).ok());
  EXPECT_EQ(loaded.DebugString(), live.DebugString());
  EXPECT_EQ(info.seq, 3000u);
  EXPECT_EQ(info.epoch, 4u);
  EXPECT_EQ(info.files, live.NumFiles());
  EXPECT_EQ(info.chunks, live.NumChunks());
  EXPECT_EQ(info.dirs + 1, live.NumDirs());
  EXPECT_EQ(info.bytes, bytes.size());
  // The loaded state keeps working like the live one.
  MetaWorkload w1(99), w2(99);
  for (int i = 0; i < 300; ++i) {
    MetaOp a = w1.Next(&live);
    MetaOp b = w2.Next(&loaded);
    ASSERT_EQ(a, b) << i;
  }
  EXPECT_EQ(loaded.DebugString(), live.DebugString());
}

// Snapshots share chunks between files: the checkpoint names a shared chunk
// in every file, and loading it rebuilds the reference counts.
TEST(CheckpointTest, SharedChunksOfSnapshotsRoundTrip) {
  MetaState live;
  ASSERT_TRUE(live.Apply(MetaOp::Mkdir("/d", false)).ok());
  ASSERT_TRUE(live.Apply(MetaOp::Create("/d/f", 1, 3, 100, 10)).ok());
  ASSERT_TRUE(live.Apply(MetaOp::AddChunk(1, 0, 1, 1, 11)).ok());
  ASSERT_TRUE(live.Apply(MetaOp::AddChunk(1, 1, 2, 1, 12)).ok());
  ASSERT_TRUE(live.Apply(MetaOp::Snapshot("/d", "/s1", 2)).ok());
  ASSERT_TRUE(live.Apply(MetaOp::Snapshot("/d/f", "/s2", 3)).ok());
  ASSERT_TRUE(live.Apply(MetaOp::CopyOnWrite(1, 0, 3, 1)).ok());
  ASSERT_TRUE(live.Apply(MetaOp::SetVersion(2, 5)).ok());
  const std::string bytes = EncodeCheckpointToString(live, 9, 1);
  MetaState loaded;
  CheckpointInfo info;
  ASSERT_TRUE(DecodeCheckpoint(bytes, &loaded, &info).ok());
  EXPECT_EQ(loaded.DebugString(), live.DebugString());
  EXPECT_EQ(info.chunks, 6u);  // three files of two chunks each
  EXPECT_EQ(loaded.NumChunks(), 3u);
  EXPECT_EQ(loaded.RefCount(1), 2u);
  EXPECT_EQ(loaded.RefCount(2), 3u);
  EXPECT_EQ(loaded.RefCount(3), 1u);
  // Deleting every file but one frees exactly the chunks nobody else holds.
  std::vector<uint64_t> freed;
  ASSERT_TRUE(loaded.Apply(MetaOp::Delete("/d", true), &freed).ok());
  EXPECT_EQ(freed, (std::vector<uint64_t>{3}));
  freed.clear();
  ASSERT_TRUE(loaded.Apply(MetaOp::Delete("/s1", true), &freed).ok());
  EXPECT_TRUE(freed.empty());
}

TEST(CheckpointTest, EmptyStateRoundTrips) {
  MetaState empty, loaded;
  const std::string bytes = EncodeCheckpointToString(empty, 0, 0);
  EXPECT_EQ(bytes.size(), kCheckpointHeaderSize + kCheckpointFooterSize);
  ASSERT_TRUE(DecodeCheckpoint(bytes, &loaded, nullptr).ok());
  EXPECT_EQ(loaded.DebugString(), empty.DebugString());
}

TEST(CheckpointTest, EveryTruncationIsCorruption) {
  MetaState live;
  Build(&live, 400, 3);
  const std::string bytes = EncodeCheckpointToString(live, 400, 1);
  for (size_t cut = 0; cut < bytes.size(); cut += 1 + cut / 16) {
    MetaState st;
    Status s = DecodeCheckpoint(std::string_view(bytes).substr(0, cut), &st, nullptr);
    ASSERT_EQ(s.code(), Code::kCorruption) << "cut at " << cut;
  }
}

TEST(CheckpointTest, FlippedBitAnywhereIsCorruption) {
  MetaState live;
  Build(&live, 400, 5);
  const std::string bytes = EncodeCheckpointToString(live, 400, 1);
  for (size_t at = 0; at < bytes.size(); at += 7) {
    std::string bad = bytes;
    bad[at] = static_cast<char>(bad[at] ^ 0x10);
    MetaState st;
    ASSERT_EQ(DecodeCheckpoint(bad, &st, nullptr).code(), Code::kCorruption) << "byte " << at;
  }
}

TEST(CheckpointTest, DecodeNeedsFreshState) {
  MetaState live;
  Build(&live, 50, 1);
  const std::string bytes = EncodeCheckpointToString(live, 50, 0);
  MetaState used;
  ASSERT_TRUE(used.Apply(MetaOp::Mkdir("/x", false)).ok());
  EXPECT_EQ(DecodeCheckpoint(bytes, &used, nullptr).code(), Code::kInvalidArgument);
}

// Writes a checkpoint body by hand (header counts given) and seals it.
class Crafted {
 public:
  void Dir(uint64_t parent, const std::string& name) {
    body_.push_back(1);
    Varint(parent);
    Varint(name.size());
    body_.append(name);
  }
  void File(uint64_t parent, const std::string& name, uint64_t id, uint64_t nchunks,
            const std::vector<uint64_t>& hv) {
    body_.push_back(2);
    Varint(parent);
    Varint(name.size());
    body_.append(name);
    Varint(id);
    Varint(3);    // replication
    Varint(100);  // chunk size
    Varint(0);    // length
    Varint(0);    // mtime
    Varint(nchunks);
    for (uint64_t x : hv) Varint(x);
  }
  void Varint(uint64_t v) {
    while (v >= 0x80) {
      body_.push_back(static_cast<char>(v | 0x80));
      v >>= 7;
    }
    body_.push_back(static_cast<char>(v));
  }
  std::string body_;

  Status Decode(uint64_t dirs, uint64_t files, uint64_t chunks, uint64_t next_id = 1000,
                uint64_t next_handle = 1000) {
    MetaState empty;
    std::string b = EncodeCheckpointToString(empty, 1, 0);
    auto* h = reinterpret_cast<uint8_t*>(b.data());
    StoreU64(h + 32, dirs);
    StoreU64(h + 40, files);
    StoreU64(h + 48, chunks);
    StoreU64(h + 56, next_id);
    StoreU64(h + 64, next_handle);
    b.insert(kCheckpointHeaderSize, body_);
    ResealCheckpoint(&b);
    MetaState st;
    return DecodeCheckpoint(b, &st, nullptr);
  }
};

TEST(CheckpointTest, HostileContentWithValidChecksumsIsCorruption) {
  {
    Crafted c;  // well-formed control
    c.Dir(0, "a");
    c.File(1, "f", 5, 2, {7, 1, 0});
    EXPECT_TRUE(c.Decode(1, 1, 1).ok());
  }
  {
    Crafted c;  // header counts lie (huge): nothing is allocated from them
    c.Dir(0, "a");
    EXPECT_EQ(c.Decode(uint64_t{1} << 60, uint64_t{1} << 60, uint64_t{1} << 60).code(),
              Code::kCorruption);
  }
  struct Case {
    const char* what;
    std::function<void(Crafted*)> fill;
    uint64_t dirs, files, chunks;
  };
  const Case cases[] = {
      {"parent not loaded", [](Crafted* c) { c->Dir(5, "a"); }, 1, 0, 0},
      {"name with slash", [](Crafted* c) { c->Dir(0, "a/b"); }, 1, 0, 0},
      {"dot name", [](Crafted* c) { c->Dir(0, ".."); }, 1, 0, 0},
      {"empty name", [](Crafted* c) { c->Dir(0, ""); }, 1, 0, 0},
      {"duplicate name",
       [](Crafted* c) {
         c->Dir(0, "a");
         c->File(0, "a", 4, 0, {});
       },
       1, 1, 0},
      {"file id 0", [](Crafted* c) { c->File(0, "f", 0, 0, {}); }, 0, 1, 0},
      {"duplicate id",
       [](Crafted* c) {
         c->File(0, "f", 4, 0, {});
         c->File(0, "g", 4, 0, {});
       },
       0, 2, 0},
      {"duplicate handle",
       [](Crafted* c) {
         c->File(0, "f", 4, 2, {9, 1, 9, 1});
       },
       0, 1, 2},
      {"shared handle at another version",
       [](Crafted* c) {
         c->File(0, "f", 4, 1, {9, 1});
         c->File(0, "g", 5, 1, {9, 2});
       },
       0, 2, 2},
      {"shared handle twice in one file",
       [](Crafted* c) {
         c->File(0, "f", 4, 1, {9, 1});
         c->File(0, "g", 5, 2, {9, 1, 9, 1});
       },
       0, 2, 3},
      {"chunk count beyond input",
       [](Crafted* c) {
         c->File(0, "f", 4, 1u << 23, {9, 1});
       },
       0, 1, 1},
      {"chunk count above limit", [](Crafted* c) { c->File(0, "f", 4, uint64_t{1} << 40, {}); }, 0,
       1, 0},
      {"unknown record kind", [](Crafted* c) { c->body_ += '\x07'; }, 0, 0, 0},
      {"overlong varint",
       [](Crafted* c) {
         c->body_ += std::string("\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 11);
       },
       1, 0, 0},
      {"counts short of header", [](Crafted* c) { c->Dir(0, "a"); }, 2, 0, 0},
      {"more files than header", [](Crafted* c) { c->File(0, "f", 4, 0, {}); }, 0, 0, 0},
  };
  for (const Case& k : cases) {
    Crafted c;
    k.fill(&c);
    EXPECT_EQ(c.Decode(k.dirs, k.files, k.chunks).code(), Code::kCorruption) << k.what;
  }
  {
    Crafted c;  // next ids below ones in use
    c.File(0, "f", 50, 1, {60, 1});
    EXPECT_EQ(c.Decode(0, 1, 1, 10, 1000).code(), Code::kCorruption);
    Crafted d;
    d.File(0, "f", 50, 1, {60, 1});
    EXPECT_EQ(d.Decode(0, 1, 1, 1000, 10).code(), Code::kCorruption);
  }
}

// Mutated and truncated checkpoints, resealed so the CRCs pass and the
// decoder's own checks are what stand between the bytes and the state.
TEST(CheckpointTest, RandomizedDecoderNeverCrashes) {
  MetaState live;
  Build(&live, 600, 11);
  const std::string good = EncodeCheckpointToString(live, 600, 2);
  double seconds = 0;
  if (const char* e = std::getenv("GFS_FUZZ_SECONDS")) seconds = std::atof(e);
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds > 0 ? seconds : 3);
  const int min_iters = seconds > 0 ? 0 : 3000;
  std::mt19937_64 rng(1234);
  int iters = 0, rejected = 0;
  while (iters < min_iters || (seconds > 0 && std::chrono::steady_clock::now() < deadline)) {
    if (seconds <= 0 && std::chrono::steady_clock::now() > deadline && iters >= 500) break;
    std::string b = good;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      if (b.size() < kCheckpointHeaderSize + kCheckpointFooterSize + 1) break;
      const size_t body = b.size() - kCheckpointHeaderSize - kCheckpointFooterSize;
      auto body_pos = [&] { return kCheckpointHeaderSize + rng() % body; };
      switch (rng() % 5) {
        case 0:  // flip bits
          b[body_pos()] ^= static_cast<char>(1 + rng() % 255);
          break;
        case 1:  // random byte
          b[body_pos()] = static_cast<char>(rng());
          break;
        case 2:  // cut a piece out of the body
          b.erase(body_pos(), 1 + rng() % 16);
          break;
        case 3:  // header field (counts, ids)
          b[32 + rng() % 40] = static_cast<char>(rng());
          break;
        case 4:  // truncate (the footer goes too; reseal adds a fake one)
          b.resize(kCheckpointHeaderSize + rng() % body);
          b.append(kCheckpointFooterSize, '\0');
          break;
      }
    }
    ResealCheckpoint(&b);
    MetaState st;
    Status s = DecodeCheckpoint(b, &st, nullptr);
    if (!s.ok()) {
      ASSERT_EQ(s.code(), Code::kCorruption) << s.ToString();
      ++rejected;
    } else {
      // Accepted: it must be a coherent state that round-trips.
      MetaState again;
      ASSERT_TRUE(DecodeCheckpoint(EncodeCheckpointToString(st, 1, 0), &again, nullptr).ok());
      ASSERT_EQ(again.DebugString(), st.DebugString());
    }
    ++iters;
  }
  EXPECT_GT(iters, 0);
  EXPECT_GT(rejected, iters / 4);
}

TEST(CheckpointTest, MetaStateMemoryPerFileAndChunk) {
  // The budget: <= 128 B per file and <= 64 B per chunk (bench/
  // meta_bench.cc measures it at a million; this keeps it from regressing).
  MetaState st;
  const int dirs = 20, per = 2000;
  uint64_t id = 1;
  for (int d = 0; d < dirs; ++d) {
    const std::string dn = "/dir" + std::to_string(d);
    ASSERT_TRUE(st.Apply(MetaOp::Mkdir(dn, false)).ok());
    for (int f = 0; f < per; ++f) {
      ASSERT_TRUE(st.Apply(MetaOp::Create(dn + "/file" + std::to_string(f), id++, 3, 64, 1)).ok());
    }
  }
  const size_t after_files = st.MemoryBytes();
  for (uint64_t i = 1; i < id; ++i) ASSERT_TRUE(st.Apply(MetaOp::AddChunk(i, 0, i, 1, 2)).ok());
  const size_t after_chunks = st.MemoryBytes();
  const double per_file = static_cast<double>(after_files) / static_cast<double>(id - 1);
  const double per_chunk =
      static_cast<double>(after_chunks - after_files) / static_cast<double>(id - 1);
  EXPECT_LE(per_file, 128.0);
  EXPECT_LE(per_chunk, 64.0);
}

}  // namespace
}  // namespace gfs
