// One chunkserver driven message by message over the in-process transport,
// with a clock the test moves: what its event loop does between a batch's
// messages and the end of the batch.
#include "chunk/chunk_server.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mpi/transport/inproc_transport.h"
#include "tests/unit/fault_env.h"

namespace gfs {
namespace {

constexpr int kMaster = 0, kServer = 1, kClient = 2;

// Hands every message waiting for the chunkserver to Handle (one batch,
// without its end: AfterBatch is the caller's).
void HandleAll(Transport* t, ChunkServer* cs) {
  Incoming in;
  while (t->Poll(&in)) {
    Message m;
    ASSERT_TRUE(ParseMessage(std::move(in), &m).ok());
    cs->Handle(m);
  }
}

// The replies waiting at `t`, by request id.
std::map<uint64_t, Message> Replies(Transport* t) {
  std::map<uint64_t, Message> out;
  Incoming in;
  while (t->Poll(&in)) {
    Message m;
    if (ParseMessage(std::move(in), &m).ok() && m.is_reply()) out[m.h.id] = m;
  }
  return out;
}

void Push(Transport* client, uint64_t data_id, const std::vector<uint8_t>& data) {
  PushDataMsg p;
  p.origin = kClient;
  p.data_id = data_id;
  p.total = data.size();
  p.chain = {kServer};
  p.bytes = BlobView{data.data(), static_cast<uint32_t>(data.size())};
  ASSERT_TRUE(SendRequest(client, kServer, p, 0, 0).ok());
}

// Record appends accepted in one batch are written together when it ends.
// One whose sender's deadline passed by then is answered kTimeout and not
// written; the one behind it takes its place at the chunk's end.
TEST(ChunkServerAppends, AQueuedAppendPastItsDeadlineIsAnsweredTimeoutAndNotWritten) {
  char tmpl[] = "/tmp/gfs-cs-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  {
    InProcFabric fabric(3);
    FaultEnv env(Env::Posix());
    JobConfig cfg;
    cfg.data_dir = dir;
    cfg.request_timeout_ms = 1500;
    cfg.slice_size = 64 * 1024;
    std::string d;
    uint64_t id = 0;
    std::unique_ptr<FileLock> lock;
    ASSERT_TRUE(ClaimChunkserverDir(Env::Posix(), dir, 0, &d, &id, &lock).ok());
    ChunkServer cs(fabric.endpoint(kServer), &env, cfg, kMaster, d, id, "host");
    ASSERT_TRUE(cs.Start().ok());
    Transport* master = fabric.endpoint(kMaster);
    Transport* client = fabric.endpoint(kClient);

    // The master makes this chunkserver the primary of a new chunk 7.
    PrepareChunkReq prep;
    prep.handle = 7;
    prep.version = 1;
    prep.create = true;
    prep.primary = true;
    prep.lease_ms = 60000;
    ASSERT_TRUE(SendRequest(master, kServer, prep, 1, 1000).ok());
    HandleAll(fabric.endpoint(kServer), &cs);
    cs.AfterBatch();
    ASSERT_TRUE(Replies(master)[1].status().ok());

    // Two records, appended in one batch: the first with 5 ms to live, the
    // second with 5 s.
    const std::vector<uint8_t> first(100, 'a'), second(200, 'b');
    Push(client, 1, first);
    Push(client, 2, second);
    AppendReq a;
    a.handle = 7;
    a.version = 1;
    a.chunk_size = 1 << 20;
    a.length = first.size();
    a.data_id = 1;
    ASSERT_TRUE(SendRequest(client, kServer, a, 11, 5).ok());
    a.length = second.size();
    a.data_id = 2;
    ASSERT_TRUE(SendRequest(client, kServer, a, 12, 5000).ok());
    HandleAll(fabric.endpoint(kServer), &cs);
    env.SetClockOffset(1000 * 1000);  // a second passes before the batch ends
    cs.AfterBatch();

    auto replies = Replies(client);
    ASSERT_EQ(replies.count(11), 1u);
    EXPECT_EQ(replies[11].status().code(), Code::kTimeout) << replies[11].status().ToString();
    ASSERT_EQ(replies.count(12), 1u);
    ASSERT_TRUE(replies[12].status().ok()) << replies[12].status().ToString();
    AppendReply rep;
    ASSERT_TRUE(replies[12].Decode(&rep).ok());
    EXPECT_EQ(rep.offset, 0u);
    std::vector<uint8_t> back;
    ASSERT_TRUE(cs.store()->Read(7, 0, 1000, &back).ok());
    EXPECT_EQ(back, second);
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace gfs
