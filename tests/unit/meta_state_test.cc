#include "master/meta_state.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace gfs {
namespace {

class MetaStateTest : public ::testing::Test {
 protected:
  // Applies op after checking that Check agrees; returns Apply's status.
  Status Do(const MetaOp& op, std::vector<uint64_t>* freed = nullptr) {
    Status c = st_.Check(op);
    Status a = st_.Apply(op, freed);
    EXPECT_EQ(c.code(), a.code()) << op.ToString() << ": check=" << c.ToString()
                                  << " apply=" << a.ToString();
    return a;
  }
  uint64_t NewFile(const std::string& path, uint32_t repl = 3, uint64_t cs = 100) {
    uint64_t id = st_.NextFileId();
    EXPECT_TRUE(Do(MetaOp::Create(path, id, repl, cs, 1000)).ok()) << path;
    return id;
  }
  uint64_t AddChunk(uint64_t file, uint32_t index) {
    uint64_t h = st_.NextHandle();
    EXPECT_TRUE(Do(MetaOp::AddChunk(file, index, h, 1, 2000)).ok());
    return h;
  }
  MetaState st_;
};

TEST(MetaPathTest, Normalization) {
  std::string out;
  std::vector<std::string> comps;
  ASSERT_TRUE(NormalizePath("//a///b/", &out, &comps).ok());
  EXPECT_EQ(out, "/a/b");
  EXPECT_EQ(comps, (std::vector<std::string>{"a", "b"}));
  ASSERT_TRUE(NormalizePath("/", &out).ok());
  EXPECT_EQ(out, "/");
  ASSERT_TRUE(NormalizePath("///", &out).ok());
  EXPECT_EQ(out, "/");
  EXPECT_EQ(NormalizePath("a/b", &out).code(), Code::kInvalidArgument);
  EXPECT_EQ(NormalizePath("", &out).code(), Code::kInvalidArgument);
  EXPECT_EQ(NormalizePath("/a/./b", &out).code(), Code::kInvalidArgument);
  EXPECT_EQ(NormalizePath("/a/../b", &out).code(), Code::kInvalidArgument);
  EXPECT_EQ(NormalizePath("/" + std::string(300, 'x'), &out).code(), Code::kInvalidArgument);
  EXPECT_EQ(NormalizePath(std::string("/a\0b", 4), &out).code(), Code::kInvalidArgument);
}

TEST_F(MetaStateTest, RootAlwaysExists) {
  EXPECT_TRUE(st_.IsDir("/"));
  EXPECT_TRUE(st_.Exists("/"));
  EXPECT_EQ(st_.NumDirs(), 1u);
  EXPECT_EQ(st_.StatFile("/").status().code(), Code::kIsADirectory);
  EXPECT_EQ(Do(MetaOp::Mkdir("/", false)).code(), Code::kAlreadyExists);
  EXPECT_TRUE(Do(MetaOp::Mkdir("/", true)).ok());
  EXPECT_EQ(Do(MetaOp::Delete("/", true)).code(), Code::kInvalidArgument);
  EXPECT_EQ(Do(MetaOp::Rename("/", "/x")).code(), Code::kInvalidArgument);
  auto l = st_.List("/");
  ASSERT_TRUE(l.ok());
  EXPECT_TRUE(l->empty());
}

TEST_F(MetaStateTest, MkdirSuccessAndErrors) {
  EXPECT_TRUE(Do(MetaOp::Mkdir("/a", false)).ok());
  EXPECT_TRUE(st_.IsDir("/a"));
  EXPECT_TRUE(st_.IsDir("//a/"));
  EXPECT_EQ(Do(MetaOp::Mkdir("/a", false)).code(), Code::kAlreadyExists);
  EXPECT_TRUE(Do(MetaOp::Mkdir("/a", true)).ok());  // existing dir is fine with parents
  EXPECT_EQ(Do(MetaOp::Mkdir("/x/y", false)).code(), Code::kNotFound);
  EXPECT_FALSE(st_.Exists("/x"));
  EXPECT_TRUE(Do(MetaOp::Mkdir("/x/y/z", true)).ok());
  EXPECT_TRUE(st_.IsDir("/x"));
  EXPECT_TRUE(st_.IsDir("/x/y"));
  EXPECT_TRUE(st_.IsDir("/x/y/z"));
  EXPECT_EQ(st_.NumDirs(), 5u);
  NewFile("/a/f");
  EXPECT_EQ(Do(MetaOp::Mkdir("/a/f/g", true)).code(), Code::kNotADirectory);
  EXPECT_EQ(Do(MetaOp::Mkdir("/a/f/g", false)).code(), Code::kNotADirectory);
  EXPECT_EQ(Do(MetaOp::Mkdir("/a/f", true)).code(), Code::kAlreadyExists);
  EXPECT_EQ(Do(MetaOp::Mkdir("/a/f", false)).code(), Code::kAlreadyExists);
  EXPECT_EQ(Do(MetaOp::Mkdir("rel", false)).code(), Code::kInvalidArgument);
  EXPECT_EQ(Do(MetaOp::Mkdir("/a/..", false)).code(), Code::kInvalidArgument);
  EXPECT_EQ(st_.NumDirs(), 5u);
}

TEST_F(MetaStateTest, CreateSuccessAndErrors) {
  ASSERT_TRUE(Do(MetaOp::Mkdir("/d", false)).ok());
  uint64_t id = st_.NextFileId();
  EXPECT_EQ(id, 1u);
  ASSERT_TRUE(Do(MetaOp::Create("/d//f/", id, 2, 4096, 77)).ok());
  EXPECT_EQ(st_.NextFileId(), 2u);
  auto fi = st_.StatFile("/d/f");
  ASSERT_TRUE(fi.ok());
  EXPECT_EQ(fi->id, id);
  EXPECT_EQ(fi->replication, 2u);
  EXPECT_EQ(fi->chunk_size, 4096u);
  EXPECT_EQ(fi->length, 0u);
  EXPECT_EQ(fi->mtime_ms, 77);
  EXPECT_TRUE(fi->chunks.empty());
  EXPECT_EQ(st_.NumFiles(), 1u);
  ASSERT_NE(st_.FindFile(id), nullptr);
  EXPECT_EQ(st_.FindFile(id)->chunk_size, 4096u);

  EXPECT_EQ(Do(MetaOp::Create("/d/f", 9, 3, 1, 0)).code(), Code::kAlreadyExists);
  EXPECT_EQ(Do(MetaOp::Create("/d", 9, 3, 1, 0)).code(), Code::kAlreadyExists);
  EXPECT_EQ(Do(MetaOp::Create("/d/g", id, 3, 1, 0)).code(), Code::kAlreadyExists);  // id reuse
  EXPECT_EQ(Do(MetaOp::Create("/nope/g", 9, 3, 1, 0)).code(), Code::kNotFound);
  EXPECT_EQ(Do(MetaOp::Create("/d/f/g", 9, 3, 1, 0)).code(), Code::kNotADirectory);
  EXPECT_EQ(Do(MetaOp::Create("/d/g", 0, 3, 1, 0)).code(), Code::kInvalidArgument);
  EXPECT_EQ(Do(MetaOp::Create("/d/g", 9, 0, 1, 0)).code(), Code::kInvalidArgument);
  EXPECT_EQ(Do(MetaOp::Create("/d/g", 9, 3, 0, 0)).code(), Code::kInvalidArgument);
  EXPECT_EQ(Do(MetaOp::Create("/", 9, 3, 1, 0)).code(), Code::kAlreadyExists);
  EXPECT_EQ(st_.NumFiles(), 1u);

  EXPECT_EQ(st_.StatFile("/d").status().code(), Code::kIsADirectory);
  EXPECT_EQ(st_.StatFile("/d/zz").status().code(), Code::kNotFound);
  EXPECT_EQ(st_.StatFile("/d/f/x").status().code(), Code::kNotADirectory);
}

TEST_F(MetaStateTest, ListSortedAndFile) {
  ASSERT_TRUE(Do(MetaOp::Mkdir("/d", false)).ok());
  NewFile("/d/c");
  ASSERT_TRUE(Do(MetaOp::Mkdir("/d/a", false)).ok());
  NewFile("/d/b");
  auto l = st_.List("/d");
  ASSERT_TRUE(l.ok());
  ASSERT_EQ(l->size(), 3u);
  EXPECT_EQ((*l)[0].name, "a");
  EXPECT_TRUE((*l)[0].is_dir);
  EXPECT_EQ((*l)[1].name, "b");
  EXPECT_FALSE((*l)[1].is_dir);
  EXPECT_EQ((*l)[2].name, "c");
  auto lf = st_.List("/d/c");
  ASSERT_TRUE(lf.ok());
  ASSERT_EQ(lf->size(), 1u);
  EXPECT_EQ((*lf)[0].name, "c");
  EXPECT_FALSE((*lf)[0].is_dir);
  EXPECT_EQ((*lf)[0].file.id, st_.StatFile("/d/c")->id);
  EXPECT_EQ(st_.List("/nope").status().code(), Code::kNotFound);
}

TEST_F(MetaStateTest, DeleteFilesAndDirs) {
  ASSERT_TRUE(Do(MetaOp::Mkdir("/d/e", true)).ok());
  uint64_t f = NewFile("/d/f");
  uint64_t h0 = AddChunk(f, 0);
  EXPECT_EQ(Do(MetaOp::Delete("/d", false)).code(), Code::kNotEmpty);
  EXPECT_EQ(Do(MetaOp::Delete("/d/none", false)).code(), Code::kNotFound);
  EXPECT_EQ(Do(MetaOp::Delete("/d/f/x", false)).code(), Code::kNotADirectory);
  std::vector<uint64_t> freed;
  ASSERT_TRUE(Do(MetaOp::Delete("/d/f", false), &freed).ok());
  EXPECT_EQ(freed, std::vector<uint64_t>{h0});
  EXPECT_EQ(st_.FindChunk(h0), nullptr);
  EXPECT_EQ(st_.FindFile(f), nullptr);
  EXPECT_FALSE(st_.Exists("/d/f"));
  ASSERT_TRUE(Do(MetaOp::Delete("/d/e", false)).ok());  // empty dir
  EXPECT_FALSE(st_.Exists("/d/e"));
  EXPECT_EQ(st_.NumDirs(), 2u);
  // Ids are never reused after deletion.
  EXPECT_EQ(st_.NextFileId(), f + 1);
  EXPECT_EQ(st_.NextHandle(), h0 + 1);
}

TEST_F(MetaStateTest, DeleteRecursiveFreesAllChunks) {
  ASSERT_TRUE(Do(MetaOp::Mkdir("/t/a/b", true)).ok());
  uint64_t f1 = NewFile("/t/f1");
  uint64_t f2 = NewFile("/t/a/b/f2");
  uint64_t keep = NewFile("/keep");
  std::vector<uint64_t> expect;
  expect.push_back(AddChunk(f1, 0));
  expect.push_back(AddChunk(f1, 1));
  expect.push_back(AddChunk(f2, 0));
  uint64_t hk = AddChunk(keep, 0);
  EXPECT_EQ(st_.NumChunks(), 4u);
  EXPECT_EQ(st_.NumDirs(), 4u);
  std::vector<uint64_t> freed;
  ASSERT_TRUE(Do(MetaOp::Delete("/t", true), &freed).ok());
  std::sort(freed.begin(), freed.end());
  std::sort(expect.begin(), expect.end());
  EXPECT_EQ(freed, expect);
  EXPECT_EQ(st_.NumChunks(), 1u);
  EXPECT_NE(st_.FindChunk(hk), nullptr);
  EXPECT_EQ(st_.NumFiles(), 1u);
  EXPECT_EQ(st_.NumDirs(), 1u);
  EXPECT_FALSE(st_.Exists("/t"));
  EXPECT_TRUE(st_.Exists("/keep"));
}

TEST_F(MetaStateTest, RenameFileAndDirSubtree) {
  ASSERT_TRUE(Do(MetaOp::Mkdir("/src/sub", true)).ok());
  ASSERT_TRUE(Do(MetaOp::Mkdir("/dst", false)).ok());
  uint64_t f = NewFile("/src/sub/f");
  uint64_t h = AddChunk(f, 0);
  ASSERT_TRUE(Do(MetaOp::Rename("/src", "/dst/moved")).ok());
  EXPECT_FALSE(st_.Exists("/src"));
  EXPECT_TRUE(st_.IsDir("/dst/moved/sub"));
  auto fi = st_.StatFile("/dst/moved/sub/f");
  ASSERT_TRUE(fi.ok());
  EXPECT_EQ(fi->id, f);
  EXPECT_EQ(fi->chunks, std::vector<uint64_t>{h});
  ASSERT_NE(st_.FindChunk(h), nullptr);
  EXPECT_EQ(st_.FindChunk(h)->file_id, f);
  EXPECT_EQ(st_.NumDirs(), 4u);
  // File rename within a directory.
  ASSERT_TRUE(Do(MetaOp::Rename("/dst/moved/sub/f", "/dst/g")).ok());
  EXPECT_EQ(st_.StatFile("/dst/g")->id, f);
  EXPECT_FALSE(st_.Exists("/dst/moved/sub/f"));
}

TEST_F(MetaStateTest, RenameErrors) {
  ASSERT_TRUE(Do(MetaOp::Mkdir("/a/b", true)).ok());
  NewFile("/f");
  NewFile("/a/g");
  EXPECT_EQ(Do(MetaOp::Rename("/none", "/x")).code(), Code::kNotFound);
  EXPECT_EQ(Do(MetaOp::Rename("/f", "/none/x")).code(), Code::kNotFound);
  EXPECT_EQ(Do(MetaOp::Rename("/f", "/a/g")).code(), Code::kAlreadyExists);
  EXPECT_EQ(Do(MetaOp::Rename("/f", "/a")).code(), Code::kAlreadyExists);
  EXPECT_EQ(Do(MetaOp::Rename("/f", "/f")).code(), Code::kAlreadyExists);
  EXPECT_EQ(Do(MetaOp::Rename("/f", "/")).code(), Code::kAlreadyExists);
  EXPECT_EQ(Do(MetaOp::Rename("/a", "/a/b/c")).code(), Code::kInvalidArgument);
  EXPECT_EQ(Do(MetaOp::Rename("/a", "/a/c")).code(), Code::kInvalidArgument);
  EXPECT_EQ(Do(MetaOp::Rename("/f", "/a/g/x")).code(), Code::kNotADirectory);
  EXPECT_EQ(Do(MetaOp::Rename("/", "/z")).code(), Code::kInvalidArgument);
  // A sibling with a common name prefix is not a subtree.
  EXPECT_TRUE(Do(MetaOp::Rename("/a", "/ab")).ok());
  EXPECT_TRUE(st_.IsDir("/ab/b"));
}

// put -f: the new file (written under a temporary name) takes the old one's
// place in one op, and the old file's chunks are freed.
TEST_F(MetaStateTest, ReplaceSwapsAFileInOneOpAndFreesTheOldChunks) {
  ASSERT_TRUE(Do(MetaOp::Mkdir("/d", false)).ok());
  uint64_t old_id = NewFile("/d/f");
  uint64_t h_old0 = AddChunk(old_id, 0);
  uint64_t h_old1 = AddChunk(old_id, 1);
  uint64_t new_id = NewFile("/d/.gfs-tmp.0123456789abcdef.f", 2, 200);
  uint64_t h_new = AddChunk(new_id, 0);
  std::vector<uint64_t> freed;
  ASSERT_TRUE(Do(MetaOp::Replace("/d/.gfs-tmp.0123456789abcdef.f", "/d/f"), &freed).ok());
  std::sort(freed.begin(), freed.end());
  EXPECT_EQ(freed, (std::vector<uint64_t>{h_old0, h_old1}));
  auto fi = st_.StatFile("/d/f");
  ASSERT_TRUE(fi.ok());
  EXPECT_EQ(fi->id, new_id);
  EXPECT_EQ(fi->replication, 2u);
  EXPECT_EQ(fi->chunk_size, 200u);
  EXPECT_EQ(fi->chunks, std::vector<uint64_t>{h_new});
  EXPECT_FALSE(st_.Exists("/d/.gfs-tmp.0123456789abcdef.f"));
  EXPECT_EQ(st_.FindFile(old_id), nullptr);
  EXPECT_EQ(st_.FindChunk(h_old0), nullptr);
  EXPECT_EQ(st_.NumFiles(), 1u);
  EXPECT_EQ(st_.NumChunks(), 1u);
  // Onto a free name it is a rename.
  freed.clear();
  ASSERT_TRUE(Do(MetaOp::Replace("/d/f", "/g"), &freed).ok());
  EXPECT_TRUE(freed.empty());
  EXPECT_EQ(st_.StatFile("/g")->id, new_id);
}

TEST_F(MetaStateTest, ReplaceErrors) {
  ASSERT_TRUE(Do(MetaOp::Mkdir("/a/b", true)).ok());
  NewFile("/f");
  NewFile("/a/g");
  EXPECT_EQ(Do(MetaOp::Replace("/none", "/f")).code(), Code::kNotFound);
  EXPECT_EQ(Do(MetaOp::Replace("/f", "/none/x")).code(), Code::kNotFound);
  EXPECT_EQ(Do(MetaOp::Replace("/f", "/a")).code(), Code::kIsADirectory);
  EXPECT_EQ(Do(MetaOp::Replace("/a", "/f")).code(), Code::kIsADirectory);
  EXPECT_EQ(Do(MetaOp::Replace("/f", "/f")).code(), Code::kInvalidArgument);
  EXPECT_EQ(Do(MetaOp::Replace("/f", "/")).code(), Code::kIsADirectory);
  EXPECT_EQ(Do(MetaOp::Replace("/f", "/a/g/x")).code(), Code::kNotADirectory);
  EXPECT_TRUE(st_.Exists("/f"));
  EXPECT_TRUE(st_.Exists("/a/g"));
}

// A replayed state equals the live one when the log holds replaces (the ops
// go through their encoding, as replay reads them).
TEST_F(MetaStateTest, ReplayOfEncodedOpsWithReplaceGivesTheLiveState) {
  std::vector<MetaOp> ops = {MetaOp::Mkdir("/d", false),
                             MetaOp::Create("/d/f", 1, 3, 100, 10),
                             MetaOp::AddChunk(1, 0, 1, 1, 11),
                             MetaOp::Create("/d/.gfs-tmp.1.f", 2, 3, 100, 12),
                             MetaOp::AddChunk(2, 0, 2, 1, 13),
                             MetaOp::SetLength(2, 50, 14),
                             MetaOp::Replace("/d/.gfs-tmp.1.f", "/d/f")};
  MetaState replayed;
  for (const MetaOp& op : ops) {
    ASSERT_TRUE(Do(op).ok()) << op.ToString();
    std::vector<uint8_t> b;
    op.EncodeTo(&b);
    auto d = MetaOp::Decode(b.data(), b.size());
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    ASSERT_TRUE(replayed.Apply(*d).ok()) << op.ToString();
  }
  EXPECT_EQ(replayed.DebugString(), st_.DebugString());
}

TEST_F(MetaStateTest, AddChunkAndHoles) {
  uint64_t f = NewFile("/f");
  uint64_t h0 = AddChunk(f, 0);
  EXPECT_EQ(st_.NextHandle(), h0 + 1);
  // Fill beyond the end: grows with holes.
  ASSERT_TRUE(Do(MetaOp::AddChunk(f, 3, 50, 1, 5)).ok());
  EXPECT_EQ(st_.NextHandle(), 51u);
  auto fi = st_.StatFile("/f");
  ASSERT_TRUE(fi.ok());
  EXPECT_EQ(fi->chunks, (std::vector<uint64_t>{h0, 0, 0, 50}));
  EXPECT_EQ(fi->mtime_ms, 5);
  // Fill a hole.
  ASSERT_TRUE(Do(MetaOp::AddChunk(f, 1, 51, 1, 6)).ok());
  EXPECT_EQ(st_.StatFile("/f")->chunks[1], 51u);
  const ChunkInfo* c = st_.FindChunk(51);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->file_id, f);
  EXPECT_EQ(c->index, 1u);
  EXPECT_EQ(c->version, 1u);
  // Errors.
  EXPECT_EQ(Do(MetaOp::AddChunk(f, 0, 99, 1, 0)).code(), Code::kAlreadyExists);  // index taken
  EXPECT_EQ(Do(MetaOp::AddChunk(f, 2, 50, 1, 0)).code(), Code::kAlreadyExists);  // handle taken
  EXPECT_EQ(Do(MetaOp::AddChunk(f, 2, 0, 1, 0)).code(), Code::kInvalidArgument);
  EXPECT_EQ(Do(MetaOp::AddChunk(f, kMaxChunksPerFile, 99, 1, 0)).code(), Code::kInvalidArgument);
  EXPECT_EQ(Do(MetaOp::AddChunk(12345, 0, 99, 1, 0)).code(), Code::kNotFound);
  EXPECT_EQ(st_.NumChunks(), 3u);
  size_t visited = 0;
  st_.ForEachChunk([&](const ChunkInfo& ci) {
    ++visited;
    EXPECT_EQ(ci.file_id, f);
  });
  EXPECT_EQ(visited, 3u);
}

TEST_F(MetaStateTest, SetVersion) {
  uint64_t f = NewFile("/f");
  uint64_t h = AddChunk(f, 0);
  ASSERT_TRUE(Do(MetaOp::SetVersion(h, 2)).ok());
  EXPECT_EQ(st_.FindChunk(h)->version, 2u);
  EXPECT_EQ(Do(MetaOp::SetVersion(h, 2)).code(), Code::kStaleVersion);
  EXPECT_EQ(Do(MetaOp::SetVersion(h, 1)).code(), Code::kStaleVersion);
  EXPECT_EQ(Do(MetaOp::SetVersion(h + 100, 9)).code(), Code::kNotFound);
  EXPECT_EQ(st_.FindChunk(h)->version, 2u);
}

TEST_F(MetaStateTest, SetLengthGrowAndShrinkFreesChunks) {
  uint64_t f = NewFile("/f", 3, 100);
  uint64_t h0 = AddChunk(f, 0), h1 = AddChunk(f, 1), h2 = AddChunk(f, 2);
  ASSERT_TRUE(Do(MetaOp::SetLength(f, 300, 10)).ok());
  EXPECT_EQ(st_.StatFile("/f")->length, 300u);
  ASSERT_TRUE(Do(MetaOp::SetLength(f, 1000, 11)).ok());  // grow past the chunks
  EXPECT_EQ(st_.StatFile("/f")->chunks.size(), 3u);
  std::vector<uint64_t> freed;
  // 150 bytes: chunk 0 whole, chunk 1 partly; chunk 2 wholly beyond.
  ASSERT_TRUE(Do(MetaOp::SetLength(f, 150, 12), &freed).ok());
  EXPECT_EQ(freed, std::vector<uint64_t>{h2});
  auto fi = st_.StatFile("/f");
  EXPECT_EQ(fi->length, 150u);
  EXPECT_EQ(fi->chunks, (std::vector<uint64_t>{h0, h1}));
  EXPECT_EQ(fi->mtime_ms, 12);
  EXPECT_EQ(st_.FindChunk(h2), nullptr);
  freed.clear();
  ASSERT_TRUE(Do(MetaOp::SetLength(f, 100, 13), &freed).ok());  // exact boundary
  EXPECT_EQ(freed, std::vector<uint64_t>{h1});
  freed.clear();
  ASSERT_TRUE(Do(MetaOp::SetLength(f, 0, 14), &freed).ok());
  EXPECT_EQ(freed, std::vector<uint64_t>{h0});
  EXPECT_TRUE(st_.StatFile("/f")->chunks.empty());
  EXPECT_EQ(st_.NumChunks(), 0u);
  EXPECT_EQ(Do(MetaOp::SetLength(999, 1, 0)).code(), Code::kNotFound);
}

TEST_F(MetaStateTest, CheckDoesNotMutate) {
  ASSERT_TRUE(Do(MetaOp::Mkdir("/d", false)).ok());
  uint64_t f = NewFile("/d/f");
  uint64_t h = AddChunk(f, 0);
  const std::string before = st_.DebugString();
  std::vector<MetaOp> ops = {
      MetaOp::Mkdir("/x/y", true), MetaOp::Create("/d/g", 50, 3, 10, 1), MetaOp::Delete("/d", true),
      MetaOp::Rename("/d", "/e"),  MetaOp::AddChunk(f, 1, 77, 1, 1),     MetaOp::SetVersion(h, 5),
      MetaOp::SetLength(f, 0, 1),
  };
  for (const MetaOp& op : ops) EXPECT_TRUE(st_.Check(op).ok()) << op.ToString();
  EXPECT_EQ(st_.DebugString(), before);
  EXPECT_EQ(st_.NextFileId(), f + 1);
  // A failing Apply changes nothing either.
  EXPECT_FALSE(st_.Apply(MetaOp::Delete("/d", false)).ok());
  EXPECT_EQ(st_.DebugString(), before);
}

TEST_F(MetaStateTest, ForEachFileGivesFullPaths) {
  ASSERT_TRUE(Do(MetaOp::Mkdir("/a/b", true)).ok());
  NewFile("/a/b/f");
  NewFile("/g");
  std::vector<std::string> paths;
  st_.ForEachFile([&](const std::string& p, const FileInfo&) { paths.push_back(p); });
  std::sort(paths.begin(), paths.end());
  EXPECT_EQ(paths, (std::vector<std::string>{"/a/b/f", "/g"}));
}

// ---- snapshots and copy-on-write ----

TEST_F(MetaStateTest, SnapshotOfAFileSharesItsChunksAndCountsReferences) {
  const uint64_t f = NewFile("/f");
  const uint64_t h0 = AddChunk(f, 0), h1 = AddChunk(f, 1);
  ASSERT_TRUE(Do(MetaOp::SetLength(f, 150, 3000)).ok());
  const uint64_t first = st_.NextFileId();
  ASSERT_TRUE(Do(MetaOp::Snapshot("/f", "/s", first)).ok());
  auto s = st_.StatFile("/s");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->id, first);
  EXPECT_EQ(s->length, 150u);
  EXPECT_EQ(s->chunks, (std::vector<uint64_t>{h0, h1}));
  EXPECT_EQ(st_.RefCount(h0), 2u);
  EXPECT_EQ(st_.RefCount(h1), 2u);
  EXPECT_EQ(st_.NumChunks(), 2u);
  EXPECT_EQ(st_.NumFiles(), 2u);
  EXPECT_EQ(st_.NextFileId(), first + 1);
  // Deleting either frees nothing while the other still refers to the chunks.
  std::vector<uint64_t> freed;
  ASSERT_TRUE(Do(MetaOp::Delete("/f", false), &freed).ok());
  EXPECT_TRUE(freed.empty());
  EXPECT_EQ(st_.RefCount(h0), 1u);
  ASSERT_TRUE(Do(MetaOp::Delete("/s", false), &freed).ok());
  std::sort(freed.begin(), freed.end());
  EXPECT_EQ(freed, (std::vector<uint64_t>{h0, h1}));
  EXPECT_EQ(st_.NumChunks(), 0u);
}

TEST_F(MetaStateTest, SnapshotOfATreeCopiesDirectoriesAndGivesIdsInSortedOrder) {
  ASSERT_TRUE(Do(MetaOp::Mkdir("/t/sub", true)).ok());
  const uint64_t b = NewFile("/t/b");
  const uint64_t a = NewFile("/t/sub/a");
  const uint64_t hb = AddChunk(b, 0), ha = AddChunk(a, 0);
  ASSERT_TRUE(Do(MetaOp::Mkdir("/copies", false)).ok());
  const uint64_t first = st_.NextFileId();
  ASSERT_TRUE(Do(MetaOp::Snapshot("/t", "/copies/t1", first)).ok());
  EXPECT_TRUE(st_.IsDir("/copies/t1/sub"));
  EXPECT_EQ(st_.StatFile("/copies/t1/b")->id, first);  // "b" < "sub"
  EXPECT_EQ(st_.StatFile("/copies/t1/sub/a")->id, first + 1);
  EXPECT_EQ(st_.StatFile("/copies/t1/sub/a")->chunks, (std::vector<uint64_t>{ha}));
  EXPECT_EQ(st_.RefCount(hb), 2u);
  EXPECT_EQ(st_.CountFiles("/t"), 2u);
  EXPECT_EQ(st_.CountFiles("/"), 4u);
  auto under = st_.ChunksUnder("/copies");
  ASSERT_TRUE(under.ok());
  EXPECT_EQ(under->size(), 2u);
  // A recursive delete of the source keeps every chunk the copy refers to.
  std::vector<uint64_t> freed;
  ASSERT_TRUE(Do(MetaOp::Delete("/t", true), &freed).ok());
  EXPECT_TRUE(freed.empty());
  EXPECT_EQ(st_.NumChunks(), 2u);
}

TEST_F(MetaStateTest, SnapshotErrors) {
  ASSERT_TRUE(Do(MetaOp::Mkdir("/d/e", true)).ok());
  NewFile("/f");
  const uint64_t id = st_.NextFileId();
  EXPECT_EQ(Do(MetaOp::Snapshot("/missing", "/x", id)).code(), Code::kNotFound);
  EXPECT_EQ(Do(MetaOp::Snapshot("/f", "/d", id)).code(), Code::kAlreadyExists);
  EXPECT_EQ(Do(MetaOp::Snapshot("/d", "/d/e/x", id)).code(), Code::kInvalidArgument);
  EXPECT_EQ(Do(MetaOp::Snapshot("/", "/x", id)).code(), Code::kInvalidArgument);
  EXPECT_EQ(Do(MetaOp::Snapshot("/f", "/nodir/x", id)).code(), Code::kNotFound);
  EXPECT_EQ(Do(MetaOp::Snapshot("/f", "/f/x", id)).code(), Code::kInvalidArgument);
  EXPECT_EQ(Do(MetaOp::Snapshot("/f", "/x", id - 1)).code(), Code::kInvalidArgument);
  EXPECT_EQ(Do(MetaOp::Snapshot("/f", "/x", 0)).code(), Code::kInvalidArgument);
  EXPECT_TRUE(Do(MetaOp::Snapshot("/d", "/d2", id)).ok());  // a sibling with a common prefix
}

TEST_F(MetaStateTest, CopyOnWriteGivesTheFileANewChunkAndDropsOneReference) {
  const uint64_t f = NewFile("/f");
  const uint64_t h = AddChunk(f, 0);
  ASSERT_TRUE(Do(MetaOp::SetVersion(h, 4)).ok());
  const uint64_t nh = st_.NextHandle();
  // Not shared yet: nothing to copy.
  EXPECT_EQ(Do(MetaOp::CopyOnWrite(f, 0, nh, 4)).code(), Code::kInvalidArgument);
  const uint64_t s = st_.NextFileId();
  ASSERT_TRUE(Do(MetaOp::Snapshot("/f", "/s", s)).ok());
  EXPECT_EQ(Do(MetaOp::CopyOnWrite(f, 1, nh, 4)).code(), Code::kNotFound);
  EXPECT_EQ(Do(MetaOp::CopyOnWrite(f, 0, h, 4)).code(), Code::kAlreadyExists);
  EXPECT_EQ(Do(MetaOp::CopyOnWrite(f, 0, 0, 4)).code(), Code::kInvalidArgument);
  EXPECT_EQ(Do(MetaOp::CopyOnWrite(999, 0, nh, 4)).code(), Code::kNotFound);
  ASSERT_TRUE(Do(MetaOp::CopyOnWrite(f, 0, nh, 4)).ok());
  EXPECT_EQ(st_.StatFile("/f")->chunks, (std::vector<uint64_t>{nh}));
  EXPECT_EQ(st_.StatFile("/s")->chunks, (std::vector<uint64_t>{h}));
  EXPECT_EQ(st_.RefCount(h), 1u);
  EXPECT_EQ(st_.RefCount(nh), 1u);
  EXPECT_EQ(st_.FindChunk(nh)->version, 4u);
  EXPECT_EQ(st_.NextHandle(), nh + 1);
  std::vector<uint64_t> freed;
  ASSERT_TRUE(Do(MetaOp::Delete("/s", false), &freed).ok());
  EXPECT_EQ(freed, (std::vector<uint64_t>{h}));
}

TEST_F(MetaStateTest, TruncatingASnapshottedFileFreesOnlyUnsharedChunks) {
  const uint64_t f = NewFile("/f");
  const uint64_t h0 = AddChunk(f, 0), h1 = AddChunk(f, 1);
  ASSERT_TRUE(Do(MetaOp::SetLength(f, 200, 3000)).ok());
  ASSERT_TRUE(Do(MetaOp::Snapshot("/f", "/s", st_.NextFileId())).ok());
  std::vector<uint64_t> freed;
  ASSERT_TRUE(Do(MetaOp::SetLength(f, 50, 3001), &freed).ok());
  EXPECT_TRUE(freed.empty());
  EXPECT_EQ(st_.RefCount(h1), 1u);
  EXPECT_EQ(st_.RefCount(h0), 2u);
  // Replacing the snapshot by another file lets its chunks go, except the
  // one /f still holds.
  const uint64_t g = NewFile("/g");
  ASSERT_TRUE(Do(MetaOp::Replace("/g", "/s"), &freed).ok());
  EXPECT_EQ(freed, (std::vector<uint64_t>{h1}));
  EXPECT_EQ(st_.RefCount(h0), 1u);
  (void)g;
}

TEST_F(MetaStateTest, ReplayOfSnapshotsAndCopiesOnWriteGivesTheLiveState) {
  std::vector<MetaOp> ops = {
      MetaOp::Mkdir("/d", false),         MetaOp::Create("/d/f", 1, 3, 100, 10),
      MetaOp::AddChunk(1, 0, 1, 1, 11),   MetaOp::AddChunk(1, 1, 2, 1, 12),
      MetaOp::SetLength(1, 200, 13),      MetaOp::Snapshot("/d", "/snap", 2),
      MetaOp::Snapshot("/d/f", "/f2", 3), MetaOp::CopyOnWrite(1, 1, 3, 1),
      MetaOp::SetVersion(3, 2),           MetaOp::CopyOnWrite(3, 0, 4, 1),
      MetaOp::Delete("/d", true)};
  MetaState replayed;
  for (const MetaOp& op : ops) {
    ASSERT_TRUE(Do(op).ok()) << op.ToString();
    std::vector<uint8_t> b;
    op.EncodeTo(&b);
    auto d = MetaOp::Decode(b.data(), b.size());
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    ASSERT_TRUE(replayed.Apply(*d).ok()) << op.ToString();
  }
  EXPECT_EQ(replayed.DebugString(), st_.DebugString());
  EXPECT_EQ(st_.RefCount(1), 1u);  // /snap/f (/f2 copied it away)
  EXPECT_EQ(st_.RefCount(2), 2u);  // /snap/f and /f2
  EXPECT_EQ(st_.RefCount(3), 0u);  // freed with /d
  EXPECT_EQ(st_.RefCount(4), 1u);
  EXPECT_NE(st_.DebugString().find("C 2 v=1 refs=2"), std::string::npos) << st_.DebugString();
}

TEST(MetaOpTest, EncodeDecodeRoundTripEveryType) {
  std::vector<MetaOp> ops = {
      MetaOp::Mkdir("/a/b", true),
      MetaOp::Create("/a/b/f", 7, 3, 64 << 20, -5),
      MetaOp::Delete("/a", true),
      MetaOp::Rename("/a", "/b"),
      MetaOp::AddChunk(7, 2, 99, 4, 123456789),
      MetaOp::SetVersion(99, 5),
      MetaOp::SetLength(7, 1ull << 40, 42),
      MetaOp::Replace("/a/.gfs-tmp.x", "/a/x"),
      MetaOp::Snapshot("/a", "/snap/a", 12),
      MetaOp::CopyOnWrite(7, 3, 100, 6),
  };
  for (const MetaOp& op : ops) {
    std::vector<uint8_t> b;
    op.EncodeTo(&b);
    auto d = MetaOp::Decode(b.data(), b.size());
    ASSERT_TRUE(d.ok()) << op.ToString() << ": " << d.status().ToString();
    EXPECT_TRUE(*d == op) << op.ToString();
    // Every strict prefix is rejected, as is a trailing byte.
    for (size_t n = 0; n < b.size(); ++n) {
      EXPECT_EQ(MetaOp::Decode(b.data(), n).status().code(), Code::kCorruption)
          << op.ToString() << " prefix " << n;
    }
    b.push_back(0);
    EXPECT_EQ(MetaOp::Decode(b.data(), b.size()).status().code(), Code::kCorruption);
  }
}

// Only a replace is written with encoding version 2, so logs without one are
// what older builds wrote and read; a replace under version 1, or another
// type under version 2, is corrupt.
TEST(MetaOpTest, ReplaceIsEncodingVersion2AndTheOthersStay1) {
  std::vector<uint8_t> r, n;
  MetaOp::Replace("/a", "/b").EncodeTo(&r);
  MetaOp::Rename("/a", "/b").EncodeTo(&n);
  EXPECT_EQ(r[0], 2);
  EXPECT_EQ(n[0], 1);
  EXPECT_EQ(r.size(), n.size());
  r[0] = 1;
  EXPECT_EQ(MetaOp::Decode(r.data(), r.size()).status().code(), Code::kCorruption);
  n[0] = 2;
  EXPECT_EQ(MetaOp::Decode(n.data(), n.size()).status().code(), Code::kCorruption);
  n[0] = 3;
  EXPECT_EQ(MetaOp::Decode(n.data(), n.size()).status().code(), Code::kCorruption);
}

TEST(MetaOpTest, DecodeRejectsBadVersionAndType) {
  std::vector<uint8_t> b;
  MetaOp::SetVersion(1, 2).EncodeTo(&b);
  b[0] = 2;
  auto d = MetaOp::Decode(b.data(), b.size());
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("version"), std::string::npos);
  b[0] = 1;
  b[1] = 99;
  EXPECT_EQ(MetaOp::Decode(b.data(), b.size()).status().code(), Code::kCorruption);
}

}  // namespace
}  // namespace gfs
