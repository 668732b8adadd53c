#include "master/oplog.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>

#include "common/env.h"

namespace gfs {
namespace {

// Counts fdatasyncs on append files and can make them fail.
class CountingEnv : public EnvWrapper {
 public:
  CountingEnv() : EnvWrapper(Env::Posix()) {}
  std::atomic<int> syncs{0};
  std::atomic<bool> fail_sync{false};

  Status OpenAppend(const std::string& p, std::unique_ptr<AppendFile>* out) override {
    std::unique_ptr<AppendFile> f;
    GFS_RETURN_IF_ERROR(target()->OpenAppend(p, &f));
    *out = std::make_unique<File>(this, std::move(f));
    return Status::OK();
  }

 private:
  class File : public AppendFile {
   public:
    File(CountingEnv* env, std::unique_ptr<AppendFile> f) : env_(env), f_(std::move(f)) {}
    Status Append(const void* d, size_t n) override { return f_->Append(d, n); }
    Status Sync() override {
      if (env_->fail_sync) return Status::IOError("injected fsync failure");
      ++env_->syncs;
      return f_->Sync();
    }
    Status Close() override { return f_->Close(); }

   private:
    CountingEnv* env_;
    std::unique_ptr<AppendFile> f_;
  };
};

class OpLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int counter = 0;
    dir_ = ::testing::TempDir() + "/oplog_test_" + std::to_string(::getpid()) + "_" +
           std::to_string(counter++);
    std::filesystem::remove_all(dir_);
    ASSERT_TRUE(env_->CreateDirs(dir_).ok());
    path_ = dir_ + "/" + kOpLogFileName;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A deterministic workload of n valid ops (each checked against *state and
  // applied to it).
  std::vector<MetaOp> Workload(int n, MetaState* state) {
    std::vector<MetaOp> ops;
    int i = 0;
    while (static_cast<int>(ops.size()) < n) {
      MetaOp op;
      switch (i % 6) {
        case 0:
          op = MetaOp::Mkdir("/d" + std::to_string(i % 5), false);
          break;
        case 1:
          op = MetaOp::Create("/d" + std::to_string(i % 5) + "/f" + std::to_string(i),
                              state->NextFileId(), 3, 1000, 100 + i);
          break;
        case 2:
          op = MetaOp::AddChunk(state->NextFileId() - 1, 0, state->NextHandle(), 1, 200 + i);
          break;
        case 3:
          op = MetaOp::SetVersion(state->NextHandle() - 1, 2 + i);
          break;
        case 4:
          op = MetaOp::SetLength(state->NextFileId() - 1, 500 + i, 300 + i);
          break;
        case 5:
          op = MetaOp::Rename("/d" + std::to_string((i - 4) % 5) + "/f" + std::to_string(i - 4),
                              "/r" + std::to_string(i));
          break;
      }
      ++i;
      if (!state->Check(op).ok()) continue;
      EXPECT_TRUE(state->Apply(op).ok());
      ops.push_back(op);
    }
    return ops;
  }

  // Writes n ops with a Sync after each; returns the file size after each
  // record (boundaries[k] = size with k records; boundaries[0] = header).
  std::vector<uint64_t> WriteLog(int n, MetaState* live) {
    std::vector<uint64_t> boundaries;
    OpLog log(env_, path_);
    uint64_t last = 99;
    EXPECT_TRUE(log.Open(&last).ok());
    EXPECT_EQ(last, 0u);
    boundaries.push_back(*env_->FileSize(path_));
    for (const MetaOp& op : Workload(n, live)) {
      uint64_t seq = 0;
      EXPECT_TRUE(log.Append(op, &seq).ok());
      EXPECT_TRUE(log.Sync().ok());
      boundaries.push_back(*env_->FileSize(path_));
      EXPECT_EQ(seq, boundaries.size() - 1);
    }
    EXPECT_TRUE(log.Close().ok());
    return boundaries;
  }

  std::string ReadAll() {
    std::string s;
    EXPECT_TRUE(env_->ReadFile(path_, &s).ok());
    return s;
  }
  void WriteAll(const std::string& s) { ASSERT_TRUE(env_->WriteFileAtomic(path_, s).ok()); }

  Env* env_ = Env::Posix();
  std::string dir_, path_;
};

TEST_F(OpLogTest, AppendAndReplayGivesIdenticalState) {
  MetaState live;
  auto b = WriteLog(60, &live);
  ASSERT_EQ(b.size(), 61u);
  MetaState replayed;
  uint64_t last = 0;
  std::string warning = "x";
  ASSERT_TRUE(RecoverMetaState(env_, dir_, &replayed, &last, &warning).ok());
  EXPECT_EQ(last, 60u);
  EXPECT_TRUE(warning.empty());
  EXPECT_EQ(replayed.DebugString(), live.DebugString());
  EXPECT_GT(replayed.NumChunks(), 0u);
  EXPECT_EQ(replayed.NextFileId(), live.NextFileId());
  EXPECT_EQ(replayed.NextHandle(), live.NextHandle());

  // Replay hands back the ops in order with consecutive seqs.
  uint64_t expect = 1;
  ReplayInfo info;
  ASSERT_TRUE(OpLog::Replay(
                  env_, path_,
                  [&](uint64_t seq, const MetaOp&) {
                    EXPECT_EQ(seq, expect++);
                    return Status::OK();
                  },
                  &info)
                  .ok());
  EXPECT_EQ(info.records, 60u);
  EXPECT_EQ(info.valid_bytes, info.file_bytes);
  EXPECT_EQ(info.start_seq, 1u);

  // Reopen continues the sequence.
  OpLog log(env_, path_);
  ASSERT_TRUE(log.Open(&last).ok());
  EXPECT_EQ(last, 60u);
  uint64_t seq = 0;
  ASSERT_TRUE(log.Append(MetaOp::Mkdir("/later", false), &seq).ok());
  EXPECT_EQ(seq, 61u);
  EXPECT_EQ(log.AppendAt(63, MetaOp::Mkdir("/x", false)).code(), Code::kInvalidArgument);
  ASSERT_TRUE(log.AppendAt(62, MetaOp::Mkdir("/later2", false)).ok());
  ASSERT_TRUE(log.Close().ok());
  MetaState again;
  ASSERT_TRUE(RecoverMetaState(env_, dir_, &again, &last, nullptr).ok());
  EXPECT_EQ(last, 62u);
  EXPECT_TRUE(again.IsDir("/later2"));
}

// A restart replays snapshots and copies-on-write from the log: the same
// files, the same shared chunks and the same reference counts.
TEST_F(OpLogTest, SnapshotAndCopyOnWriteRecordsReplay) {
  const std::vector<MetaOp> ops = {
      MetaOp::Mkdir("/d", false),       MetaOp::Create("/d/f", 1, 3, 100, 10),
      MetaOp::AddChunk(1, 0, 1, 1, 11), MetaOp::AddChunk(1, 1, 2, 1, 12),
      MetaOp::SetLength(1, 150, 13),    MetaOp::Snapshot("/d", "/s", 2),
      MetaOp::CopyOnWrite(1, 1, 3, 1),  MetaOp::SetVersion(3, 2),
      MetaOp::Delete("/d/f", false)};
  MetaState live;
  {
    OpLog log(env_, path_);
    uint64_t last = 0;
    ASSERT_TRUE(log.Open(&last).ok());
    for (const MetaOp& op : ops) {
      uint64_t seq = 0;
      ASSERT_TRUE(live.Apply(op).ok()) << op.ToString();
      ASSERT_TRUE(log.Append(op, &seq).ok());
    }
    ASSERT_TRUE(log.Sync().ok());
    ASSERT_TRUE(log.Close().ok());
  }
  MetaState replayed;
  uint64_t last = 0;
  ASSERT_TRUE(RecoverMetaState(env_, dir_, &replayed, &last, nullptr).ok());
  EXPECT_EQ(last, ops.size());
  EXPECT_EQ(replayed.DebugString(), live.DebugString());
  EXPECT_EQ(replayed.RefCount(1), 1u);  // /s/f alone now
  EXPECT_EQ(replayed.RefCount(2), 1u);
  EXPECT_EQ(replayed.RefCount(3), 0u);  // the copy went with /d/f
  EXPECT_EQ(replayed.StatFile("/s/f")->chunks, (std::vector<uint64_t>{1, 2}));
}

TEST_F(OpLogTest, MissingLogIsEmptyState) {
  MetaState st;
  uint64_t last = 7;
  ASSERT_TRUE(RecoverMetaState(env_, dir_, &st, &last, nullptr).ok());
  EXPECT_EQ(last, 0u);
  EXPECT_EQ(st.NumFiles(), 0u);
}

TEST_F(OpLogTest, TornTailTruncatedAtManyCutPointsAndAppendsContinue) {
  MetaState live;
  auto b = WriteLog(8, &live);
  const std::string full = ReadAll();
  // Cut points inside the last two records and right at a boundary.
  std::vector<uint64_t> cuts = {b[6] + 1, b[6] + 4, b[6] + 15, b[6] + 16, b[7] - 1,
                                b[7],     b[7] + 2, b[7] + 8,  b[8] - 1};
  for (uint64_t cut : cuts) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    WriteAll(full.substr(0, cut));
    // Whole records before the cut.
    uint64_t whole = 0;
    while (whole + 1 < b.size() && b[whole + 1] <= cut) ++whole;
    ReplayInfo info;
    ASSERT_TRUE(OpLog::Replay(env_, path_, nullptr, &info).ok());
    EXPECT_EQ(info.records, whole);
    EXPECT_EQ(info.valid_bytes, b[whole]);
    EXPECT_EQ(info.warning.empty(), cut == b[whole]) << info.warning;

    OpLog log(env_, path_);
    uint64_t last = 0;
    ASSERT_TRUE(log.Open(&last).ok());
    EXPECT_EQ(last, whole);
    EXPECT_EQ(log.warning().empty(), cut == b[whole]);
    EXPECT_EQ(*env_->FileSize(path_), b[whole]);  // truncated before appending
    uint64_t seq = 0;
    ASSERT_TRUE(log.Append(MetaOp::Mkdir("/after_tear", false), &seq).ok());
    EXPECT_EQ(seq, whole + 1);
    ASSERT_TRUE(log.Sync().ok());
    ASSERT_TRUE(log.Close().ok());

    MetaState st;
    std::string warning;
    ASSERT_TRUE(RecoverMetaState(env_, dir_, &st, &last, &warning).ok());
    EXPECT_EQ(last, whole + 1);
    EXPECT_TRUE(warning.empty()) << warning;
    EXPECT_TRUE(st.IsDir("/after_tear"));
  }
}

TEST_F(OpLogTest, ZeroFilledTailIsDropped) {
  MetaState live;
  auto b = WriteLog(5, &live);
  WriteAll(ReadAll() + std::string(100, '\0'));
  ReplayInfo info;
  ASSERT_TRUE(OpLog::Replay(env_, path_, nullptr, &info).ok());
  EXPECT_EQ(info.records, 5u);
  EXPECT_EQ(info.valid_bytes, b[5]);
  EXPECT_FALSE(info.warning.empty());
}

TEST_F(OpLogTest, FlippedByteInMiddleRecordIsCorruption) {
  MetaState live;
  auto b = WriteLog(6, &live);
  const std::string full = ReadAll();
  // Record 3 spans [b[2], b[3]): flip its crc, len, seq and payload bytes.
  for (uint64_t off : {b[2], b[2] + 5, b[2] + 9, b[2] + 17, b[3] - 1}) {
    SCOPED_TRACE("flip at " + std::to_string(off));
    std::string bad = full;
    bad[off] = static_cast<char>(bad[off] ^ 0x40);
    WriteAll(bad);
    ReplayInfo info;
    int calls = 0;
    Status s = OpLog::Replay(
        env_, path_,
        [&](uint64_t, const MetaOp&) {
          ++calls;
          return Status::OK();
        },
        &info);
    EXPECT_EQ(s.code(), Code::kCorruption) << s.ToString();
    EXPECT_EQ(calls, 2);  // never reaches the records after the bad one
    OpLog log(env_, path_);
    uint64_t last = 0;
    EXPECT_EQ(log.Open(&last).code(), Code::kCorruption);
    EXPECT_EQ(*env_->FileSize(path_), full.size());  // nothing truncated
    MetaState st;
    EXPECT_EQ(RecoverMetaState(env_, dir_, &st, &last, nullptr).code(), Code::kCorruption);
  }
}

TEST_F(OpLogTest, FlippedByteInLastRecordDropsTail) {
  MetaState live;
  auto b = WriteLog(6, &live);
  const std::string full = ReadAll();
  for (uint64_t off : {b[5], b[5] + 6, b[5] + 12, b[6] - 1}) {
    SCOPED_TRACE("flip at " + std::to_string(off));
    std::string bad = full;
    bad[off] = static_cast<char>(bad[off] ^ 0x01);
    WriteAll(bad);
    ReplayInfo info;
    ASSERT_TRUE(OpLog::Replay(env_, path_, nullptr, &info).ok());
    EXPECT_EQ(info.records, 5u);
    EXPECT_EQ(info.last_seq, 5u);
    EXPECT_EQ(info.valid_bytes, b[5]);
    EXPECT_NE(info.warning.find("torn tail"), std::string::npos) << info.warning;
    OpLog log(env_, path_);
    uint64_t last = 0;
    ASSERT_TRUE(log.Open(&last).ok());
    EXPECT_EQ(last, 5u);
    EXPECT_EQ(*env_->FileSize(path_), b[5]);
  }
}

TEST_F(OpLogTest, SequenceGapAndDuplicateAreCorruption) {
  MetaState live;
  auto b = WriteLog(4, &live);
  const std::string full = ReadAll();
  // Header claims the log starts at seq 2, but the first record is seq 1.
  WriteAll(OpLog::EncodeHeader(2, 0) + full.substr(kOpLogHeaderSize));
  Status s = OpLog::Replay(env_, path_, nullptr, nullptr);
  EXPECT_EQ(s.code(), Code::kCorruption);
  EXPECT_NE(s.message().find("sequence"), std::string::npos) << s.ToString();
  // The last record repeated (valid CRC, repeated seq).
  WriteAll(full + full.substr(b[3], b[4] - b[3]));
  s = OpLog::Replay(env_, path_, nullptr, nullptr);
  EXPECT_EQ(s.code(), Code::kCorruption);
  EXPECT_NE(s.message().find("sequence"), std::string::npos) << s.ToString();
}

TEST_F(OpLogTest, WrongHeaderIsClearError) {
  MetaState live;
  WriteLog(3, &live);
  const std::string full = ReadAll();
  WriteAll(OpLog::EncodeHeader(1, 0, 2) + full.substr(kOpLogHeaderSize));
  Status s = OpLog::Replay(env_, path_, nullptr, nullptr);
  EXPECT_EQ(s.code(), Code::kCorruption);
  EXPECT_NE(s.message().find("unsupported oplog format version 2"), std::string::npos)
      << s.ToString();
  OpLog log(env_, path_);
  uint64_t last = 0;
  EXPECT_EQ(log.Open(&last).code(), Code::kCorruption);

  std::string badmagic = full;
  badmagic[0] = 'X';
  WriteAll(badmagic);
  s = OpLog::Replay(env_, path_, nullptr, nullptr);
  EXPECT_NE(s.message().find("magic"), std::string::npos) << s.ToString();

  std::string badcrc = full;
  badcrc[20] ^= 1;  // inside start_seq
  WriteAll(badcrc);
  s = OpLog::Replay(env_, path_, nullptr, nullptr);
  EXPECT_NE(s.message().find("header checksum"), std::string::npos) << s.ToString();

  WriteAll(full.substr(0, 10));
  EXPECT_EQ(OpLog::Replay(env_, path_, nullptr, nullptr).code(), Code::kCorruption);
}

TEST_F(OpLogTest, GroupCommitOneSyncForManyAppends) {
  CountingEnv cenv;
  OpLog log(&cenv, path_);
  uint64_t last = 0;
  ASSERT_TRUE(log.Open(&last).ok());
  const uint64_t header = *env_->FileSize(path_);
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(log.Append(MetaOp::Mkdir("/g" + std::to_string(i), false), nullptr).ok());
  }
  EXPECT_EQ(log.last_seq(), 100u);
  EXPECT_EQ(log.synced_seq(), 0u);
  EXPECT_EQ(*env_->FileSize(path_), header);  // still buffered
  EXPECT_EQ(cenv.syncs.load(), 0);
  ASSERT_TRUE(log.Sync().ok());
  EXPECT_EQ(cenv.syncs.load(), 1);
  EXPECT_EQ(log.sync_count(), 1u);
  EXPECT_EQ(log.synced_seq(), 100u);
  EXPECT_GT(*env_->FileSize(path_), header);
  ASSERT_TRUE(log.Sync().ok());  // nothing pending: no second fdatasync
  EXPECT_EQ(cenv.syncs.load(), 1);
  ASSERT_TRUE(log.Append(MetaOp::Mkdir("/z", false), nullptr).ok());
  ASSERT_TRUE(log.Sync().ok());
  EXPECT_EQ(cenv.syncs.load(), 2);
  ASSERT_TRUE(log.Close().ok());
  ReplayInfo info;
  ASSERT_TRUE(OpLog::Replay(env_, path_, nullptr, &info).ok());
  EXPECT_EQ(info.records, 101u);
}

TEST_F(OpLogTest, SyncFailurePoisonsLog) {
  CountingEnv cenv;
  OpLog log(&cenv, path_);
  uint64_t last = 0;
  ASSERT_TRUE(log.Open(&last).ok());
  ASSERT_TRUE(log.Append(MetaOp::Mkdir("/a", false), nullptr).ok());
  cenv.fail_sync = true;
  EXPECT_EQ(log.Sync().code(), Code::kIOError);
  cenv.fail_sync = false;
  EXPECT_EQ(log.Append(MetaOp::Mkdir("/b", false), nullptr).code(), Code::kIOError);
  EXPECT_EQ(log.Sync().code(), Code::kIOError);
  EXPECT_EQ(log.synced_seq(), 0u);
}

TEST_F(OpLogTest, AppendBeforeOpenFails) {
  OpLog log(env_, path_);
  EXPECT_FALSE(log.Append(MetaOp::Mkdir("/a", false), nullptr).ok());
}

TEST_F(OpLogTest, RecordThatDoesNotApplyIsCorruption) {
  OpLog log(env_, path_);
  uint64_t last = 0;
  ASSERT_TRUE(log.Open(&last).ok());
  ASSERT_TRUE(log.Append(MetaOp::Mkdir("/a", false), nullptr).ok());
  ASSERT_TRUE(log.Append(MetaOp::Mkdir("/a", false), nullptr).ok());  // never Check'ed
  ASSERT_TRUE(log.Close().ok());
  MetaState st;
  Status s = RecoverMetaState(env_, dir_, &st, &last, nullptr);
  EXPECT_EQ(s.code(), Code::kCorruption);
  EXPECT_NE(s.message().find("seq 2"), std::string::npos) << s.ToString();
}

}  // namespace
}  // namespace gfs
