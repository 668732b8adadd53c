#include "master/journal.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <future>

#include "master/checkpoint.h"
#include "tests/unit/fault_env.h"
#include "tests/unit/meta_workload.h"

namespace gfs {
namespace {

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int counter = 0;
    dir_ = ::testing::TempDir() + "/journal_test_" + std::to_string(::getpid()) + "_" +
           std::to_string(counter++);
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Small logs: a rollover every few dozen records.
  JournalOptions Small(bool background = false) {
    JournalOptions o;
    o.roll_bytes = 2048;
    o.background = background;
    return o;
  }

  // Appends n workload ops to j and *live, syncing every `batch`.
  void Run(MetaJournal* j, MetaState* live, MetaWorkload* w, int n, int batch = 5) {
    for (int i = 0; i < n; ++i) {
      MetaOp op = w->Next(live);
      uint64_t seq = 0;
      ASSERT_TRUE(j->Append(op, &seq).ok());
      ASSERT_EQ(seq, j->last_seq());
      if ((i + 1) % batch == 0) {
        ASSERT_TRUE(j->Sync().ok());
      }
    }
    ASSERT_TRUE(j->Sync().ok());
  }

  // Opens the journal, runs 400 ops into it and *live, waits for the
  // checkpoint they start; *last = the last sequence number.
  void RunToCheckpoint(MetaState* live, MetaWorkload* w, uint64_t* last) {
    MetaJournal j(env_, dir_, Small());
    MetaState st;
    ASSERT_TRUE(j.Open(&st, nullptr, nullptr).ok());
    Run(&j, live, w, 400);
    ASSERT_TRUE(j.WaitForCheckpoint().ok());
    *last = j.last_seq();
  }

  std::vector<std::string> Files(const std::string& prefix) {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(dir_)) {
      const std::string n = e.path().filename().string();
      if (n.rfind(prefix, 0) == 0) out.push_back(n);
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  static uint64_t SeqOf(const std::string& name) {
    return std::stoull(name.substr(name.find('-') + 1, 20));
  }

  // Opens a fresh journal on dir_ and checks it recovers `live`.
  void ExpectRecovers(Env* env, const MetaState& live, uint64_t last,
                      std::string* warning = nullptr) {
    MetaState st;
    uint64_t got = 0;
    std::string w;
    MetaJournal j(env, dir_, Small());
    Status s = j.Open(&st, &got, &w);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(got, last);
    EXPECT_EQ(st.DebugString(), live.DebugString());
    if (warning) *warning = w;
  }

  Env* env_ = Env::Posix();
  std::string dir_;
};

TEST_F(JournalTest, RolloverAndBackgroundCheckpointWhileAppendsFlow) {
  // The first checkpoint is held at "written" until the owner has appended
  // and synced 200 more records: the log must keep taking mutations while a
  // checkpoint is being written.
  std::promise<void> go;
  std::shared_future<void> go_f = go.get_future().share();
  std::atomic<bool> held{false};
  JournalOptions o = Small(/*background=*/true);
  o.checkpoint_hook = [&](const std::string& point) {
    if (point == "written" && !held.exchange(true)) go_f.wait();
    return Status::OK();
  };
  MetaState live;
  MetaWorkload w(1);
  uint64_t last = 0;
  {
    MetaJournal j(env_, dir_, o);
    MetaState st;
    ASSERT_TRUE(j.Open(&st, &last, nullptr).ok());
    EXPECT_EQ(last, 0u);
    while (!held.load()) {
      Run(&j, &live, &w, 10);
      ASSERT_TRUE(j.Poll().ok());
    }
    EXPECT_TRUE(j.checkpoint_running());
    const uint64_t before = j.last_seq();
    Run(&j, &live, &w, 200);
    EXPECT_EQ(j.last_seq(), before + 200);
    EXPECT_EQ(j.synced_seq(), j.last_seq());
    EXPECT_EQ(j.checkpoints_written(), 0u);
    go.set_value();
    ASSERT_TRUE(j.WaitForCheckpoint().ok());
    EXPECT_GE(j.checkpoints_written(), 2u);  // the held one and the queued one
    EXPECT_GE(j.rollovers(), 4u);
    EXPECT_GT(j.checkpoint_seq(), 0u);
    Run(&j, &live, &w, 100);
    ASSERT_TRUE(j.WaitForCheckpoint().ok());
    last = j.last_seq();
  }
  EXPECT_LE(Files("checkpoint-").size(), 2u);
  ExpectRecovers(env_, live, last);
  // RecoverMetaState (read-only) agrees.
  MetaState ro;
  uint64_t ro_last = 0;
  ASSERT_TRUE(RecoverMetaState(env_, dir_, &ro, &ro_last, nullptr).ok());
  EXPECT_EQ(ro_last, last);
  EXPECT_EQ(ro.DebugString(), live.DebugString());
}

TEST_F(JournalTest, RestartsAcrossManyRolloversEqualLiveState) {
  MetaState live;
  MetaWorkload w(2);
  uint64_t last = 0;
  for (int round = 0; round < 4; ++round) {
    MetaJournal j(env_, dir_, Small(round % 2 == 0));
    MetaState st;
    std::string warning;
    ASSERT_TRUE(j.Open(&st, &last, &warning).ok());
    EXPECT_TRUE(warning.empty()) << warning;
    ASSERT_EQ(st.DebugString(), live.DebugString()) << "round " << round;
    Run(&j, &live, &w, 300, 1 + round * 3);
    ASSERT_TRUE(j.WaitForCheckpoint().ok());
    EXPECT_GT(j.checkpoints_written(), 0u);
    last = j.last_seq();
  }
  ExpectRecovers(env_, live, last);
}

// A set_replication record (gfs setrep) is replayed after a restart, and
// kept by a checkpoint (the files' replication).
TEST_F(JournalTest, SetReplicationSurvivesARestartAndACheckpoint) {
  for (bool checkpoint : {false, true}) {
    std::filesystem::remove_all(dir_);
    MetaState live;
    uint64_t last = 0;
    {
      MetaJournal j(env_, dir_, Small());
      MetaState st;
      ASSERT_TRUE(j.Open(&st, nullptr, nullptr).ok());
      for (const MetaOp& op :
           {MetaOp::Mkdir("/d", false), MetaOp::Create("/d/a", 1, 3, 65536, 0),
            MetaOp::Create("/d/b", 2, 3, 65536, 0), MetaOp::SetReplication("/d", 1)}) {
        uint64_t seq = 0;
        ASSERT_TRUE(j.Append(op, &seq).ok());
        ASSERT_TRUE(live.Apply(op).ok());
      }
      ASSERT_TRUE(j.Sync().ok());
      if (checkpoint) {
        ASSERT_TRUE(j.CheckpointNow().ok());
        ASSERT_TRUE(j.WaitForCheckpoint().ok());
      }
      last = j.last_seq();
    }
    ExpectRecovers(env_, live, last);
    MetaState st;
    MetaJournal j(env_, dir_, Small());
    ASSERT_TRUE(j.Open(&st, nullptr, nullptr).ok());
    EXPECT_EQ(st.StatFile("/d/a")->replication, 1u) << "checkpoint " << checkpoint;
    EXPECT_EQ(st.StatFile("/d/b")->replication, 1u) << "checkpoint " << checkpoint;
  }
}

TEST_F(JournalTest, IncompleteNewestCheckpointFallsBackToOlder) {
  for (int mode = 0; mode < 3; ++mode) {
    SCOPED_TRACE(mode);
    std::filesystem::remove_all(dir_);
    MetaState live;
    MetaWorkload w(3);
    uint64_t last = 0;
    ASSERT_NO_FATAL_FAILURE(RunToCheckpoint(&live, &w, &last));
    auto cps = Files("checkpoint-");
    ASSERT_EQ(cps.size(), 2u);
    const std::string newest = dir_ + "/" + cps.back();
    std::string bytes;
    ASSERT_TRUE(env_->ReadFile(newest, &bytes).ok());
    if (mode == 0) bytes.resize(bytes.size() / 2);   // torn
    if (mode == 1) bytes[bytes.size() / 2] ^= 0x40;  // flipped byte
    if (mode == 2) bytes.resize(bytes.size() - 1);   // one byte short of the footer
    ASSERT_TRUE(env_->WriteFileAtomic(newest, bytes).ok());
    std::string warning;
    ExpectRecovers(env_, live, last, &warning);
    EXPECT_NE(warning.find("skipped checkpoint " + cps.back()), std::string::npos) << warning;
    // Moved aside, so retention counts good checkpoints only: after the
    // next ones, `keep` good ones remain and recovery needs no fallback.
    EXPECT_FALSE(env_->FileExists(newest));
    EXPECT_TRUE(env_->FileExists(newest + ".corrupt"));
    ASSERT_NO_FATAL_FAILURE(RunToCheckpoint(&live, &w, &last));
    size_t good = 0;
    for (const std::string& n : Files("checkpoint-")) good += n.size() == 31;  // no suffix
    EXPECT_EQ(good, 2u);
    ExpectRecovers(env_, live, last, &warning);
    EXPECT_EQ(warning, "");
  }
}

TEST_F(JournalTest, NoUsableCheckpointAndMissingLogsIsCorruption) {
  MetaState live;
  MetaWorkload w(4);
  {
    JournalOptions o = Small();
    o.keep_checkpoints = 1;  // the logs before the only checkpoint go
    MetaJournal j(env_, dir_, o);
    MetaState st;
    ASSERT_TRUE(j.Open(&st, nullptr, nullptr).ok());
    Run(&j, &live, &w, 300);
  }
  auto cps = Files("checkpoint-");
  ASSERT_EQ(cps.size(), 1u);
  EXPECT_GT(SeqOf(Files("log-").front()), 1u);
  std::string bytes;
  ASSERT_TRUE(env_->ReadFile(dir_ + "/" + cps[0], &bytes).ok());
  bytes[100] ^= 1;
  ASSERT_TRUE(env_->WriteFileAtomic(dir_ + "/" + cps[0], bytes).ok());
  MetaState st;
  MetaJournal j(env_, dir_, Small());
  Status s = j.Open(&st, nullptr, nullptr);
  EXPECT_EQ(s.code(), Code::kCorruption);
  EXPECT_NE(s.message().find("records missing"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("skipped checkpoint"), std::string::npos) << s.ToString();
}

TEST_F(JournalTest, TornTailWarnsCorruptMiddleIsCorruption) {
  MetaState live;
  MetaWorkload w(5);
  uint64_t last = 0;
  JournalOptions o = Small();
  o.roll_bytes = 1 << 20;  // one log
  {
    MetaJournal j(env_, dir_, o);
    MetaState st;
    ASSERT_TRUE(j.Open(&st, nullptr, nullptr).ok());
    Run(&j, &live, &w, 100);
    last = j.last_seq();
  }
  const std::string log = dir_ + "/" + Files("log-").back();
  std::string good;
  ASSERT_TRUE(env_->ReadFile(log, &good).ok());
  // Torn tail: half a record of garbage at the end.
  ASSERT_TRUE(env_->WriteFileAtomic(log, good + std::string(30, '\x5a')).ok());
  std::string warning;
  ExpectRecovers(env_, live, last, &warning);
  EXPECT_NE(warning.find("torn tail"), std::string::npos) << warning;
  std::string after;
  ASSERT_TRUE(env_->ReadFile(log, &after).ok());
  EXPECT_EQ(after, good);  // Open truncated it
  // A flipped byte in a middle record, valid records after it: refused.
  std::string bad = good;
  bad[good.size() / 2] ^= 0x01;
  ASSERT_TRUE(env_->WriteFileAtomic(log, bad).ok());
  MetaState st;
  MetaJournal j(env_, dir_, o);
  EXPECT_EQ(j.Open(&st, nullptr, nullptr).code(), Code::kCorruption);
}

TEST_F(JournalTest, MissingMiddleLogIsCorruption) {
  MetaState live;
  MetaWorkload w(6);
  {
    JournalOptions o = Small();
    o.keep_checkpoints = 50;  // nothing removed
    MetaJournal j(env_, dir_, o);
    MetaState st;
    ASSERT_TRUE(j.Open(&st, nullptr, nullptr).ok());
    Run(&j, &live, &w, 300);
  }
  // Without checkpoints, recovery replays every log from seq 1.
  for (const auto& c : Files("checkpoint-")) std::filesystem::remove(dir_ + "/" + c);
  auto logs = Files("log-");
  ASSERT_GT(logs.size(), 3u);
  std::filesystem::remove(dir_ + "/" + logs[2]);
  MetaState st;
  MetaJournal j(env_, dir_, Small());
  Status s = j.Open(&st, nullptr, nullptr);
  EXPECT_EQ(s.code(), Code::kCorruption);
  EXPECT_NE(s.message().find("records missing"), std::string::npos) << s.ToString();
}

TEST_F(JournalTest, RetentionRemovesOnlyWhatNoCheckpointNeeds) {
  MetaState live;
  MetaWorkload w(7);
  uint64_t last = 0;
  {
    MetaJournal j(env_, dir_, Small());
    MetaState st;
    ASSERT_TRUE(j.Open(&st, nullptr, nullptr).ok());
    Run(&j, &live, &w, 150);
    // One checkpoint so far: with keep_checkpoints 2 the empty state is the
    // other fallback, so every log from seq 1 stays.
    ASSERT_GE(j.checkpoints_written(), 1u);
    if (Files("checkpoint-").size() == 1) {
      EXPECT_EQ(SeqOf(Files("log-").front()), 1u);
    }
    Run(&j, &live, &w, 600);
    last = j.last_seq();
    EXPECT_GT(j.checkpoints_written(), 5u);
  }
  auto cps = Files("checkpoint-");
  ASSERT_EQ(cps.size(), 2u);
  const uint64_t oldest = SeqOf(cps[0]);
  auto logs = Files("log-");
  // Every log the oldest checkpoint needs is there, nothing older.
  EXPECT_EQ(SeqOf(logs.front()), oldest + 1);
  for (size_t i = 1; i < logs.size(); ++i) EXPECT_GT(SeqOf(logs[i]), SeqOf(logs[i - 1]));
  // The older checkpoint alone (plus its logs) still recovers everything.
  std::filesystem::remove(dir_ + "/" + cps[1]);
  ExpectRecovers(env_, live, last);
}

TEST_F(JournalTest, CrashDuringCheckpointStillRecovers) {
  for (const char* point : {"written", "synced", "renamed", "retention"}) {
    SCOPED_TRACE(point);
    std::filesystem::remove_all(dir_);
    FaultEnv fenv(env_);
    MetaState live;
    MetaWorkload w(8);
    uint64_t last = 0;
    std::atomic<int> checkpoints{0};
    {
      JournalOptions o = Small(/*background=*/true);
      // The third checkpoint "crashes" at `point`.
      o.checkpoint_hook = [&](const std::string& p) {
        if (p == "retention") ++checkpoints;
        if (p == point && checkpoints.load() >= (p == std::string("retention") ? 3 : 2)) {
          return Status::IOError("crash");
        }
        return Status::OK();
      };
      o.keep_checkpoints = 1;
      MetaJournal j(&fenv, dir_, o);
      MetaState st;
      ASSERT_TRUE(j.Open(&st, nullptr, nullptr).ok());
      Status failed;
      for (int i = 0; i < 60 && failed.ok(); ++i) {
        Run(&j, &live, &w, 10);
        failed = j.WaitForCheckpoint();
      }
      EXPECT_FALSE(failed.ok());
      while (j.checkpoint_running()) (void)j.WaitForCheckpoint();
      last = j.synced_seq();
      // The crash: unsynced data is lost; the journal object is abandoned.
      ASSERT_TRUE(fenv.DropUnsyncedData().ok());
    }
    std::string warning;
    ExpectRecovers(&fenv, live, last, &warning);
    EXPECT_TRUE(Files("checkpoint-0").size() >= 1u);
    for (const auto& n : Files("")) EXPECT_EQ(n.find(".tmp"), std::string::npos) << n;
  }
}

TEST_F(JournalTest, StartEpochPersists) {
  MetaState live;
  MetaWorkload w(9);
  {
    MetaJournal j(env_, dir_, Small());
    MetaState st;
    ASSERT_TRUE(j.Open(&st, nullptr, nullptr).ok());
    EXPECT_EQ(j.epoch(), 0u);
    // On a log without records the header is rewritten: no new file.
    ASSERT_TRUE(j.StartEpoch(2).ok());
    EXPECT_EQ(Files("log-").size(), 1u);
    Run(&j, &live, &w, 10);
    ASSERT_TRUE(j.StartEpoch(5).ok());
    EXPECT_EQ(j.epoch(), 5u);
    EXPECT_EQ(j.StartEpoch(4).code(), Code::kInvalidArgument);
    Run(&j, &live, &w, 10);
  }
  uint64_t epoch = 0, last = 0;
  ASSERT_TRUE(MetaJournal::Probe(env_, dir_, &epoch, &last).ok());
  EXPECT_EQ(epoch, 5u);
  EXPECT_EQ(last, 20u);
  MetaJournal j(env_, dir_, Small());
  MetaState st;
  ASSERT_TRUE(j.Open(&st, nullptr, nullptr).ok());
  EXPECT_EQ(j.epoch(), 5u);
  EXPECT_EQ(st.DebugString(), live.DebugString());
  // Checkpoints carry the epoch too: after every log before them is gone.
  Run(&j, &live, &w, 400);
  ASSERT_TRUE(j.WaitForCheckpoint().ok());
  ASSERT_TRUE(MetaJournal::Probe(env_, dir_, &epoch, &last).ok());
  EXPECT_EQ(epoch, 5u);
  EXPECT_EQ(last, j.last_seq());
}

TEST_F(JournalTest, InstallSnapshotReplacesDivergentHistory) {
  const std::string master_dir = dir_ + "/master", shadow_dir = dir_ + "/shadow";
  MetaState m_live, s_live;
  MetaWorkload mw(10), sw(11);
  MetaJournal m(env_, master_dir, Small());
  MetaJournal s(env_, shadow_dir, Small());
  MetaState tmp1, tmp2;
  ASSERT_TRUE(m.Open(&tmp1, nullptr, nullptr).ok());
  ASSERT_TRUE(s.Open(&tmp2, nullptr, nullptr).ok());
  Run(&m, &m_live, &mw, 300);
  Run(&s, &s_live, &sw, 500);  // a longer, different history
  ASSERT_TRUE(m.StartEpoch(3).ok());
  uint64_t probe_epoch = 0, probe_last = 0;
  ASSERT_TRUE(MetaJournal::Probe(env_, shadow_dir, &probe_epoch, &probe_last).ok());
  EXPECT_EQ(probe_last, 500u);

  // Bad bytes change nothing.
  MetaState junk;
  uint64_t seq = 0;
  EXPECT_EQ(s.InstallSnapshot("not a checkpoint", &junk, &seq).code(), Code::kCorruption);

  const std::string snap = MetaJournal::EncodeSnapshot(m_live, m.last_seq(), m.epoch());
  MetaState installed;
  ASSERT_TRUE(s.InstallSnapshot(snap, &installed, &seq).ok());
  EXPECT_EQ(seq, 300u);
  EXPECT_EQ(s.last_seq(), 300u);
  EXPECT_EQ(s.epoch(), 3u);
  EXPECT_EQ(installed.DebugString(), m_live.DebugString());
  auto names = [&] {
    std::vector<std::string> v;
    for (const auto& e : std::filesystem::directory_iterator(shadow_dir)) {
      v.push_back(e.path().filename().string());
    }
    std::sort(v.begin(), v.end());
    return v;
  };
  EXPECT_EQ(names(), (std::vector<std::string>{MetaJournal::CheckpointName(300),
                                               MetaJournal::LogName(301)}));
  // The shadow continues with the master's records.
  MetaWorkload cont(12);
  for (int i = 0; i < 50; ++i) {
    MetaOp op = cont.Next(&m_live);
    uint64_t ms = 0;
    ASSERT_TRUE(m.Append(op, &ms).ok());
    ASSERT_TRUE(s.AppendAt(ms, op).ok());
    ASSERT_TRUE(installed.Apply(op).ok());
  }
  EXPECT_EQ(s.AppendAt(999, MetaOp::Mkdir("/zz", false)).code(), Code::kInvalidArgument);
  ASSERT_TRUE(m.Sync().ok());
  ASSERT_TRUE(s.Sync().ok());
  ASSERT_TRUE(MetaJournal::Probe(env_, shadow_dir, &probe_epoch, &probe_last).ok());
  EXPECT_EQ(probe_epoch, 3u);
  EXPECT_EQ(probe_last, 350u);
  MetaState reopened;
  MetaJournal s2(env_, shadow_dir, Small());
  ASSERT_TRUE(s2.Open(&reopened, &seq, nullptr).ok());
  EXPECT_EQ(seq, 350u);
  EXPECT_EQ(reopened.DebugString(), m_live.DebugString());
}

TEST_F(JournalTest, ProbeOfMissingDirectoryIsEmpty) {
  uint64_t epoch = 9, last = 9;
  ASSERT_TRUE(MetaJournal::Probe(env_, dir_ + "/none", &epoch, &last).ok());
  EXPECT_EQ(epoch, 0u);
  EXPECT_EQ(last, 0u);
}

TEST_F(JournalTest, LegacySingleLogIsRead) {
  ASSERT_TRUE(env_->CreateDirs(dir_).ok());
  MetaState live;
  MetaWorkload w(13);
  {
    OpLog log(env_, dir_ + "/" + kOpLogFileName);
    ASSERT_TRUE(log.Open(nullptr).ok());
    for (int i = 0; i < 40; ++i) ASSERT_TRUE(log.Append(w.Next(&live), nullptr).ok());
    ASSERT_TRUE(log.Close().ok());
  }
  uint64_t epoch = 0, last = 0;
  ASSERT_TRUE(MetaJournal::Probe(env_, dir_, &epoch, &last).ok());
  EXPECT_EQ(last, 40u);
  {
    MetaJournal j(env_, dir_, Small());
    MetaState st;
    ASSERT_TRUE(j.Open(&st, &last, nullptr).ok());
    EXPECT_EQ(last, 40u);
    EXPECT_EQ(st.DebugString(), live.DebugString());
    EXPECT_FALSE(env_->FileExists(dir_ + "/" + kOpLogFileName));
    Run(&j, &live, &w, 200);
    last = j.last_seq();
  }
  ExpectRecovers(env_, live, last);
}

TEST_F(JournalTest, GroupCommitAndFailedRollKeepsTheLog) {
  FaultEnv fenv(env_);
  MetaState live;
  MetaWorkload w(14);
  JournalOptions o;
  o.roll_bytes = 1 << 20;
  MetaJournal j(&fenv, dir_, o);
  MetaState st;
  ASSERT_TRUE(j.Open(&st, nullptr, nullptr).ok());
  const uint64_t syncs = j.sync_count();
  Run(&j, &live, &w, 100, 100);
  EXPECT_EQ(j.sync_count(), syncs + 1);
  // CheckpointNow with the file system refusing new files: the journal
  // keeps its log, the failure surfaces once through the returned status.
  fenv.SetWriteError(true);
  EXPECT_FALSE(j.CheckpointNow().ok());
  fenv.SetWriteError(false);
  Run(&j, &live, &w, 10);
  ASSERT_TRUE(j.CheckpointNow().ok());
  ASSERT_TRUE(j.WaitForCheckpoint().ok());
  EXPECT_EQ(j.checkpoint_seq(), j.last_seq());
}

}  // namespace
}  // namespace gfs
