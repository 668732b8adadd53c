// Trash and garbage collection: the kMove record (MetaState), and rm,
// undelete and expunge through the master of an in-process cluster.
#include <gtest/gtest.h>

#include <atomic>
#include <random>

#include "master/meta_state.h"
#include "tests/unit/inproc_cluster.h"

namespace gfs {
namespace {

TEST(MetaMoveTest, CreatesTheDestinationParents) {
  MetaState st;
  ASSERT_TRUE(st.Apply(MetaOp::Mkdir("/a", false)).ok());
  ASSERT_TRUE(st.Apply(MetaOp::Create("/a/f", st.NextFileId(), 3, 65536, 1)).ok());
  ASSERT_TRUE(st.Apply(MetaOp::Move("/a/f", "/.trash/17/a/f")).ok());
  EXPECT_FALSE(st.Exists("/a/f"));
  EXPECT_TRUE(st.IsDir("/.trash/17/a"));
  EXPECT_TRUE(st.StatFile("/.trash/17/a/f").ok());
  // Back out, into a directory that exists; and once more into one that
  // does not (its parents are made again).
  ASSERT_TRUE(st.Apply(MetaOp::Move("/.trash/17/a/f", "/a/f")).ok());
  EXPECT_TRUE(st.StatFile("/a/f").ok());
  ASSERT_TRUE(st.Apply(MetaOp::Move("/a", "/.trash/18/a")).ok());
  ASSERT_TRUE(st.Apply(MetaOp::Move("/.trash/18/a/f", "/x/y/f")).ok());
  EXPECT_TRUE(st.StatFile("/x/y/f").ok());
}

TEST(MetaMoveTest, RefusesWhatRenameRefuses) {
  MetaState st;
  ASSERT_TRUE(st.Apply(MetaOp::Mkdir("/a", false)).ok());
  ASSERT_TRUE(st.Apply(MetaOp::Create("/a/f", st.NextFileId(), 3, 65536, 1)).ok());
  ASSERT_TRUE(st.Apply(MetaOp::Create("/g", st.NextFileId(), 3, 65536, 1)).ok());
  EXPECT_EQ(st.Check(MetaOp::Move("/nope", "/x")).code(), Code::kNotFound);
  EXPECT_EQ(st.Check(MetaOp::Move("/a/f", "/g")).code(), Code::kAlreadyExists);
  EXPECT_EQ(st.Check(MetaOp::Move("/a/f", "/g/h/f")).code(), Code::kNotADirectory);
  EXPECT_EQ(st.Check(MetaOp::Move("/a", "/a/b/c")).code(), Code::kInvalidArgument);
  EXPECT_EQ(st.Check(MetaOp::Move("/", "/x")).code(), Code::kInvalidArgument);
  // A refused move changes nothing.
  const std::string before = st.DebugString();
  EXPECT_FALSE(st.Apply(MetaOp::Move("/a/f", "/g/h/f")).ok());
  EXPECT_EQ(st.DebugString(), before);
}

TEST(MetaMoveTest, EncodesAndReplays) {
  MetaOp op = MetaOp::Move("/a/f", "/.trash/5/a/f");
  std::vector<uint8_t> bytes;
  op.EncodeTo(&bytes);
  auto back = MetaOp::Decode(bytes.data(), bytes.size());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, op);
  EXPECT_EQ(back->type, OpType::kMove);
  EXPECT_EQ(static_cast<int>(OpType::kMove), 10);
}

std::vector<uint8_t> Bytes(size_t n, uint64_t seed) {
  std::vector<uint8_t> v(n);
  std::mt19937_64 rng(seed);
  for (auto& x : v) x = static_cast<uint8_t>(rng());
  return v;
}

void Put(Client* c, const std::string& path, const std::vector<uint8_t>& data) {
  auto f = c->Create(path);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  ASSERT_TRUE(c->Write(&*f, 0, data.data(), data.size()).ok());
  ASSERT_TRUE(c->Close(&*f).ok());
}

std::vector<uint8_t> Get(Client* c, const std::string& path) {
  auto f = c->Open(path);
  if (!f.ok()) return {};
  std::vector<uint8_t> back(f->length);
  auto n = c->Read(&*f, 0, back.data(), back.size());
  if (!n.ok()) return {};
  back.resize(*n);
  return back;
}

size_t ChunksHeld(InProcCluster& c, int servers) {
  size_t n = 0;
  for (int i = 0; i < servers; ++i) {
    c.Pause(i);
    n += c.server(i)->store()->NumChunks();
    c.Resume(i);
  }
  return n;
}

TEST(TrashCluster, RemoveThenUndeleteRestoresTheFile) {
  InProcCluster c(3);
  Client* cl = c.client();
  ASSERT_TRUE(cl->Mkdir("/d", false).ok());
  const auto data = Bytes(2 * (1 << 20) + 777, 3);
  Put(cl, "/d/f", data);
  auto where = cl->Trash("/d/f", false, false);
  ASSERT_TRUE(where.ok()) << where.status().ToString();
  EXPECT_EQ(where->rfind("/.trash/", 0), 0u) << *where;
  EXPECT_EQ(cl->Stat("/d/f").status().code(), Code::kNotFound);
  EXPECT_TRUE(cl->Stat(*where).ok());
  // The chunks stay while the file is in the trash.
  EXPECT_EQ(ChunksHeld(c, 3), 3u * 3u);
  // A new file at the path blocks the undelete; gone again, it works.
  Put(cl, "/d/f", Bytes(10, 4));
  EXPECT_EQ(cl->Undelete("/d/f").status().code(), Code::kAlreadyExists);
  ASSERT_TRUE(cl->Trash("/d/f", false, true).ok());  // --skip-trash
  auto u = cl->Undelete("/d/f");
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->trash_path, *where);
  EXPECT_EQ(Get(cl, "/d/f"), data);
  EXPECT_EQ(cl->Undelete("/d/f").status().code(), Code::kAlreadyExists);
  EXPECT_EQ(cl->Undelete("/d/never").status().code(), Code::kNotFound);
}

TEST(TrashCluster, UndeleteTakesTheMostRecentDeletion) {
  InProcCluster c(2);
  Client* cl = c.client();
  const auto first = Bytes(1000, 1), second = Bytes(2000, 2);
  Put(cl, "/f", first);
  ASSERT_TRUE(cl->Trash("/f", false, false).ok());
  Put(cl, "/f", second);
  ASSERT_TRUE(cl->Trash("/f", false, false).ok());
  ASSERT_TRUE(cl->Undelete("/f").ok());
  EXPECT_EQ(Get(cl, "/f"), second);
  ASSERT_TRUE(cl->Trash("/f", false, true).ok());
  ASSERT_TRUE(cl->Undelete("/f").ok());
  EXPECT_EQ(Get(cl, "/f"), first);
}

TEST(TrashCluster, RecursiveRemoveNeedsTheFlagAndKeepsTheTree) {
  InProcCluster c(2);
  Client* cl = c.client();
  ASSERT_TRUE(cl->Mkdir("/t/u", true).ok());
  Put(cl, "/t/u/a", Bytes(100, 5));
  EXPECT_EQ(cl->Trash("/t", false, false).status().code(), Code::kNotEmpty);
  ASSERT_TRUE(cl->Trash("/t", true, false).ok());
  EXPECT_FALSE(cl->Stat("/t").ok());
  ASSERT_TRUE(cl->Undelete("/t").ok());
  EXPECT_EQ(Get(cl, "/t/u/a"), Bytes(100, 5));
}

TEST(TrashCluster, ExpungeAllDeletesTheChunksOnEveryServer) {
  InProcCluster c(3);
  Client* cl = c.client();
  Put(cl, "/keep", Bytes((1 << 20) + 1, 6));  // 2 chunks
  Put(cl, "/gone", Bytes(3 << 20, 7));        // 3 chunks
  ASSERT_TRUE(cl->Trash("/gone", false, false).ok());
  EXPECT_EQ(ChunksHeld(c, 3), 5u * 3u);
  // Older than the retention (1 day): nothing to remove yet.
  auto e = cl->Expunge(false);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->trash_removed, 0u);
  EXPECT_EQ(ChunksHeld(c, 3), 5u * 3u);
  e = cl->Expunge(true);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->trash_removed, 1u);
  EXPECT_LE(e->chunks_deleted, 3u * 3u);  // (a heartbeat may have carried some)
  // Answered once the chunkservers deleted: nothing left to wait for.
  EXPECT_EQ(ChunksHeld(c, 3), 2u * 3u);
  EXPECT_FALSE(cl->Undelete("/gone").ok());
  EXPECT_EQ(Get(cl, "/keep"), Bytes((1 << 20) + 1, 6));
}

TEST(TrashCluster, RetentionZeroDeletesAtOnce) {
  InProcCluster c(2, 1 << 20, 1, {}, [](JobConfig* j) { j->trash_retention_s = 0; });
  Client* cl = c.client();
  Put(cl, "/f", Bytes(5000, 8));
  auto where = cl->Trash("/f", false, false);
  ASSERT_TRUE(where.ok()) << where.status().ToString();
  EXPECT_EQ(*where, "");
  EXPECT_EQ(cl->Stat("/.trash").status().code(), Code::kNotFound);
  auto e = cl->Expunge(false);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(ChunksHeld(c, 2), 0u);
}

TEST(TrashCluster, ExpungeRemovesAChunkKnownToNoFile) {
  InProcCluster c(2);
  Client* cl = c.client();
  Put(cl, "/f", Bytes(1000, 9));
  const uint64_t orphan = 1ull << 40;
  c.Pause(1);
  ASSERT_TRUE(c.server(1)->store()->Create(orphan, 1).ok());
  c.Resume(1);
  EXPECT_EQ(ChunksHeld(c, 2), 3u);
  auto e = cl->Expunge(false);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->orphans_deleted, 1u);
  EXPECT_EQ(ChunksHeld(c, 2), 2u);
  c.Pause(1);
  EXPECT_FALSE(c.server(1)->store()->Has(orphan));
  c.Resume(1);
  EXPECT_EQ(Get(cl, "/f"), Bytes(1000, 9));
}

// The master's wall clock (file times, deletion times) moved by a test.
class WallClockEnv : public EnvWrapper {
 public:
  WallClockEnv() : EnvWrapper(Env::Posix()) {}
  int64_t WallMillis() override { return EnvWrapper::WallMillis() + offset_ms.load(); }
  std::atomic<int64_t> offset_ms{0};
};

TEST(TrashCluster, ExpungeRemovesOldTrashAndLeftOverTemporaries) {
  WallClockEnv master_env;
  InProcCluster c(2, 1 << 20, 1, {&master_env});
  Client* cl = c.client();
  ASSERT_TRUE(cl->Mkdir("/d", false).ok());
  Put(cl, "/d/.gfs-tmp.0123456789abcdef.x", Bytes(3000, 10));  // a killed put's temporary
  Put(cl, "/d/f", Bytes(4000, 11));
  ASSERT_TRUE(cl->Trash("/d/f", false, false).ok());
  // Younger than the retention (1 day) and than an hour: all kept.
  auto e = cl->Expunge(false);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->trash_removed, 0u);
  EXPECT_EQ(e->temps_removed, 0u);
  EXPECT_EQ(ChunksHeld(c, 2), 2u * 2u);
  // Two days later both are garbage.
  master_env.offset_ms = 2 * 86400 * 1000ll;
  e = cl->Expunge(false);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->trash_removed, 1u);
  EXPECT_EQ(e->temps_removed, 1u);
  EXPECT_EQ(ChunksHeld(c, 2), 0u);
  EXPECT_FALSE(cl->Stat("/d/.gfs-tmp.0123456789abcdef.x").ok());
  EXPECT_TRUE(cl->Stat("/d").ok());
}

}  // namespace
}  // namespace gfs
