// MetaJournal: the master's (and each shadow master's) durable metadata: a
// directory of op-log files and checkpoints (layout and rules in
// doc/disk-format-master.md).
//
// Usage (master/master_server.cc):
//   Start:        journal.Open(&meta, &last_seq, &warning)   recover + open for appending
//   per mutation: journal.Append(op, &seq)  (then meta.Apply(op))
//   per batch:    journal.Sync()            group commit; acknowledge after it; may roll
//                                           the log and start a background checkpoint
//   per Tick:     journal.Poll()            non-blocking; reports a finished/failed
//                                           background checkpoint (log it, keep going)
//   takeover:     journal.StartEpoch(e)     before acting as master of epoch e
//   shadow:       journal.AppendAt(seq, op) + Sync() for each shipped batch
//   catch-up:     master: MetaJournal::EncodeSnapshot(meta, last_seq, epoch)
//                 shadow: journal.InstallSnapshot(bytes, &fresh_meta, &seq)
//   job start:    MetaJournal::Probe(env, dir, &epoch, &last_seq) on every copy,
//                 to pick the most advanced one.
//
// Files in the directory:
//   log-<20-digit start_seq>     op-log files (master/oplog.h); the newest is appended to
//   checkpoint-<20-digit seq>    the whole MetaState after record seq (master/checkpoint.h)
//   oplog                        a legacy single log; Open renames it to log-<start_seq>
//   *.tmp                        unfinished writes; Open removes them
//
// Rollover: after a Sync, if the current log holds more than roll_bytes, the
// journal starts a new log (start_seq = last + 1) and, in a background thread,
// writes a checkpoint at the closed log's last seq. The thread never touches
// the live MetaState: it rebuilds the state at that seq from disk (the newest
// checkpoint at or below it plus the closed logs) in a private MetaState,
// writes it (tmp file, fsync, rename, fsync of the directory; a footer and
// CRCs make a torn one detectable), then applies retention: only the newest
// keep_checkpoints checkpoints stay, and a log is removed only when every
// retained checkpoint is at or beyond its last record. Mutations keep flowing
// into the new log meanwhile. If a rollover comes while a checkpoint is still
// being written, the log rolls and one more checkpoint follows when the
// running one is done.
//
// Recovery (Open, Probe, RecoverMetaState): the newest checkpoint that is
// complete and valid (others are skipped with a warning, falling back to an
// older one), then the logs that start after it, in order. A checkpoint at S
// always sits on a log boundary (the next log starts at S+1), so logs
// starting at or before S are not read. The logs must continue one another
// without a gap or overlap (kCorruption otherwise); a torn tail is dropped
// with a warning (and truncated by Open); a corrupt record followed by valid
// ones is kCorruption (nothing is skipped silently).
//
// Thread safety: one thread (the event loop) calls everything; the
// background checkpoint thread is internal and joined by the destructor.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/env.h"
#include "common/status.h"
#include "master/meta_state.h"
#include "master/oplog.h"

namespace gfs {

struct JournalOptions {
  // Roll to a new log (and checkpoint) once the current log is this large.
  uint64_t roll_bytes = 64ull << 20;
  // Checkpoints kept (at least 1); the logs the oldest of them needs stay too.
  int keep_checkpoints = 2;
  // Write checkpoints in a background thread. false: inside Sync (tests,
  // tools); Poll still reports the outcome.
  bool background = true;
  // Tests: called by the checkpoint writer with "written", "synced" and
  // "renamed" (see WriteCheckpointFile) and with "retention" before old files
  // are removed; a non-OK status stops the checkpoint there, leaving the
  // files as a crash at that point would. Runs on the checkpoint thread.
  std::function<Status(const std::string& point)> checkpoint_hook;
};

class MetaJournal {
 public:
  // `env` must outlive the journal.
  MetaJournal(Env* env, std::string dir, JournalOptions options = {});
  ~MetaJournal();  // waits for a running checkpoint
  MetaJournal(const MetaJournal&) = delete;
  MetaJournal& operator=(const MetaJournal&) = delete;

  // Recovers into *state (freshly constructed) and opens the newest log for
  // appending (a torn tail is truncated away; a missing directory or log is
  // created). *last_seq: the last record recovered (0 for a new directory).
  // *warning: skipped checkpoints and dropped torn tails, empty if none.
  // last_seq and warning may be null. Errors: kCorruption (a gap, a corrupt
  // middle, an op that does not apply, no usable checkpoint where the logs
  // need one), kIOError.
  Status Open(MetaState* state, uint64_t* last_seq, std::string* warning);

  // As OpLog: Append buffers the next record; AppendAt (a shadow copying the
  // master's records) requires seq == last_seq()+1; Sync writes and fsyncs
  // once for everything appended since the previous Sync, then may roll.
  Status Append(const MetaOp& op, uint64_t* seq);
  Status AppendAt(uint64_t seq, const MetaOp& op);
  Status Sync();

  // Durably records master epoch `epoch` (>= epoch()): syncs, then starts a
  // new log whose header carries it (or rewrites the header of a still empty
  // log). kInvalidArgument for an epoch below epoch().
  Status StartEpoch(uint64_t epoch);

  // Non-blocking: OK while a checkpoint runs or none ran; otherwise the
  // outcome of the checkpoint that finished since the last call (an error is
  // reported once; the logs it would have removed stay). Also reports a
  // failure to roll the log (the journal kept appending to the old one).
  Status Poll();
  // Blocks until no checkpoint is running (a queued one included) and
  // returns what Poll would.
  Status WaitForCheckpoint();
  // Syncs, rolls the log (if it has records) and starts a checkpoint of
  // everything logged so far, as a rollover would.
  Status CheckpointNow();

  // The checkpoint bytes for `state` at `seq` (what a shadow installs).
  static std::string EncodeSnapshot(const MetaState& state, uint64_t seq, uint64_t epoch);
  // Replaces everything: validates `bytes`, makes them the newest checkpoint,
  // removes every other log and checkpoint, starts a fresh log at seq+1, and
  // loads the snapshot into *state (freshly constructed). *seq gets the
  // snapshot's seq. Crash-safe: at every point recovery yields either the old
  // state (or a prefix of it) or the snapshot. Waits for a running checkpoint.
  Status InstallSnapshot(const std::string& bytes, MetaState* state, uint64_t* seq);

  // What Open would recover to, without opening or changing anything:
  // checkpoints are checked by framing and CRCs only (not decoded), logs are
  // scanned. A missing directory is epoch 0, last_seq 0.
  static Status Probe(Env* env, const std::string& dir, uint64_t* epoch, uint64_t* last_seq);

  uint64_t last_seq() const { return log_ ? log_->last_seq() : 0; }
  uint64_t synced_seq() const { return log_ ? log_->synced_seq() : 0; }
  // The highest epoch on disk (log headers, checkpoints) or set by StartEpoch.
  uint64_t epoch() const { return epoch_; }
  // fdatasync calls on logs so far (group-commit observability).
  uint64_t sync_count() const { return sync_count_ + (log_ ? log_->sync_count() : 0); }
  uint64_t rollovers() const { return rollovers_; }
  uint64_t checkpoints_written() const { return checkpoints_written_.load(); }
  // Seq of the newest checkpoint known complete (0 if none).
  uint64_t checkpoint_seq() const { return checkpoint_seq_.load(); }
  bool checkpoint_running() const { return running_; }
  const std::string& dir() const { return dir_; }

  // File names (exposed for tests and tools).
  static std::string LogName(uint64_t start_seq);
  static std::string CheckpointName(uint64_t seq);

 private:
  Status NewLog(uint64_t start_seq);
  Status Roll();
  void StartCheckpoint(uint64_t seq);
  // Reaps a finished checkpoint (its error goes to reported_) and starts the
  // queued one, if any.
  void Collect();
  void Join();
  Status BuildCheckpoint(uint64_t seq);
  Status ApplyRetention(uint64_t newest);
  Status Hook(const std::string& point) const;

  Env* env_;
  std::string dir_;
  JournalOptions opt_;
  std::unique_ptr<OpLog> log_;
  uint64_t epoch_ = 0;
  uint64_t sync_count_ = 0;  // of closed logs
  uint64_t rollovers_ = 0;
  Status roll_error_;  // a failed roll, reported by Poll

  // Background checkpoint. `running_` and `pending_seq_` belong to the
  // owner's thread; the worker publishes through done_ / result_.
  std::thread worker_;
  bool running_ = false;
  uint64_t pending_seq_ = 0;  // a checkpoint to start when the running one ends
  std::atomic<bool> done_{false};
  std::mutex mu_;
  Status result_;  // guarded by mu_
  std::atomic<uint64_t> checkpoints_written_{0};
  std::atomic<uint64_t> checkpoint_seq_{0};
  Status reported_;  // outcome not yet returned by Poll
};

}  // namespace gfs
