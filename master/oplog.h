// OpLog: the master's durable operation log (layout in
// doc/disk-format-master.md).
//
// A log file is a 40-byte header (magic, format version, starting sequence
// number, epoch) followed by records
//   [u32 masked CRC32C over (len, seq, payload)] [u32 len] [u64 seq] [payload]
// where payload is a MetaOp encoding and seq increases by exactly one from the
// header's start_seq.
//
// Durability: Append() only buffers (in memory, spilling to the file with a
// plain write(2) once the buffer is large); Sync() writes whatever is buffered
// and issues one fdatasync for every record appended since the previous
// Sync() (group commit). A mutation may be acknowledged only once a Sync()
// that followed its Append() returned OK. After any write or sync failure the
// log is poisoned: every later Append/Sync returns the same error (the file's
// state after a failed fsync is unknown; the master must restart and replay).
//
// Torn-tail rule (applied by Replay and Open): if the bytes after the last
// good record do not contain a single record with a valid CRC and a plausible
// sequence number, they are a torn tail (a crash mid-append): replay stops at
// the last good record, ReplayInfo reports it, and Open truncates the file to
// that length before appending. If a bad region is followed by a valid
// record, or valid records skip or repeat a sequence number, or a record's
// CRC is fine but its payload does not decode, the log is corrupt and
// kCorruption is returned: nothing is silently skipped.
//
// Files: an OpLog is one log file. The directory of log files and
// checkpoints (names, rollover, recovery, retention) is MetaJournal's
// business (master/journal.h): a checkpoint at seq S is followed by a log
// whose header says start_seq = S+1. The single "<dir>/oplog" of format
// version 1 before rollover existed is still read (as the log starting at its
// header's start_seq).
//
// Thread safety: none (owned by the master's event loop).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/env.h"
#include "common/status.h"
#include "master/meta_state.h"

namespace gfs {

inline constexpr uint32_t kOpLogFormatVersion = 1;
inline constexpr size_t kOpLogHeaderSize = 40;
inline constexpr size_t kOpLogRecordHeaderSize = 16;
// Largest payload accepted; MetaOps are far smaller (paths <= 4 KiB).
inline constexpr uint32_t kOpLogMaxPayload = 1u << 20;
inline constexpr const char* kOpLogFileName = "oplog";

struct ReplayInfo {
  uint32_t format_version = 0;
  uint64_t start_seq = 0;    // from the header: seq of the first record
  uint64_t epoch = 0;        // from the header (reserved for failover)
  uint64_t records = 0;      // valid records replayed
  uint64_t last_seq = 0;     // seq of the last valid record (start_seq - 1 if none)
  uint64_t valid_bytes = 0;  // header + valid records: the length Open truncates to
  uint64_t file_bytes = 0;   // size of the file as read
  // Non-empty when a torn tail was dropped (file_bytes - valid_bytes bytes).
  std::string warning;
};

class OpLog {
 public:
  // `path` is the log file itself. `env` must outlive the OpLog.
  OpLog(Env* env, std::string path);
  ~OpLog();
  OpLog(const OpLog&) = delete;
  OpLog& operator=(const OpLog&) = delete;

  // Opens the log for appending. A missing file is created (header with
  // start_seq = 1 and epoch 0, written atomically), so a log file never has a
  // torn header. An existing file is scanned with Replay's rules; a torn tail
  // is truncated away (durably) and reported through warning() . *last_seq is
  // the sequence number of the last valid record (0 for an empty new log,
  // start_seq - 1 in general). Errors: kCorruption (bad header, version,
  // corrupt middle, sequence gap), kIOError.
  Status Open(uint64_t* last_seq);

  // Buffers one record with sequence number last_seq()+1 and stores that
  // number in *seq (may be null). Not durable until Sync(). REQUIRES: Open.
  Status Append(const MetaOp& op, uint64_t* seq);
  // As Append, for a shadow master copying the primary's log: seq must be
  // exactly last_seq()+1 (kInvalidArgument otherwise).
  Status AppendAt(uint64_t seq, const MetaOp& op);
  // Writes buffered records and fdatasyncs once (no-op if nothing pending).
  Status Sync();
  // Syncs and closes; Append after Close fails.
  Status Close();

  uint64_t last_seq() const { return last_seq_; }
  uint64_t synced_seq() const { return synced_seq_; }
  uint64_t epoch() const { return epoch_; }
  uint64_t start_seq() const { return start_seq_; }
  // Size of the log: header + valid records + records appended since (the
  // unsynced ones included).
  uint64_t bytes() const { return bytes_; }
  // Number of fdatasync calls issued so far (group-commit observability).
  uint64_t sync_count() const { return sync_count_; }
  // The torn-tail warning from Open, empty if the log was clean.
  const std::string& warning() const { return warning_; }
  const std::string& path() const { return path_; }

  // Walks every valid record of the log at `path`, calling fn(seq, op) in
  // order; a non-OK status from fn stops the walk and is returned. Torn tail:
  // stops at the last valid record and fills info->warning (returns OK).
  // Corruption as described in the file comment. `info` may be null.
  // The whole file is read into memory.
  static Status Replay(Env* env, const std::string& path,
                       const std::function<Status(uint64_t seq, const MetaOp& op)>& fn,
                       ReplayInfo* info);

  // The bytes of a fresh log header (exposed for tests and tools).
  static std::string EncodeHeader(uint64_t start_seq, uint64_t epoch,
                                  uint32_t version = kOpLogFormatVersion);

 private:
  Status AppendRecord(uint64_t seq, const MetaOp& op);
  Status Flush();
  Status Poison(Status s);

  Env* env_;
  std::string path_;
  std::unique_ptr<AppendFile> file_;
  std::vector<uint8_t> buf_;
  Status error_;  // sticky after a failed write/sync
  uint64_t last_seq_ = 0;
  uint64_t synced_seq_ = 0;
  uint64_t epoch_ = 0;
  uint64_t start_seq_ = 1;
  uint64_t bytes_ = 0;
  uint64_t sync_count_ = 0;
  std::string warning_;
};

// Recovers the metadata in `dir` into *state (freshly constructed) without
// changing any file: the newest complete checkpoint plus the logs after it,
// exactly as MetaJournal::Open would (it is implemented in journal.cc). An
// empty or missing directory is an empty state with *last_seq 0. An op that
// fails to apply is kCorruption naming its sequence number. *warning gets
// the torn-tail / skipped-checkpoint warnings (empty if none). last_seq and
// warning may be null.
Status RecoverMetaState(Env* env, const std::string& dir, MetaState* state, uint64_t* last_seq,
                        std::string* warning);

}  // namespace gfs
