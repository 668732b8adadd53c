#include "master/journal.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <vector>

#include "common/coding.h"
#include "master/checkpoint.h"

namespace gfs {

namespace {

constexpr char kLogPrefix[] = "log-";
constexpr char kCheckpointPrefix[] = "checkpoint-";
constexpr size_t kSeqDigits = 20;

// "<prefix><20 digits>" -> the number.
bool ParseName(const std::string& name, const char* prefix, uint64_t* v) {
  const size_t p = std::strlen(prefix);
  if (name.size() != p + kSeqDigits || name.compare(0, p, prefix) != 0) return false;
  uint64_t x = 0;
  for (size_t i = p; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
    const uint64_t d = static_cast<uint64_t>(name[i] - '0');
    if (x > (UINT64_MAX - d) / 10) return false;
    x = x * 10 + d;
  }
  *v = x;
  return true;
}

std::string Num(uint64_t v) { return std::to_string(v); }

struct LogFile {
  uint64_t start = 0;
  std::string name;
};

// The journal files of a directory, each kind sorted by sequence number.
struct Listing {
  std::vector<uint64_t> checkpoints;
  std::vector<LogFile> logs;
  std::vector<std::string> tmps;
};

Status ListJournal(Env* env, const std::string& dir, Listing* out) {
  *out = Listing();
  if (!env->FileExists(dir)) return Status::OK();
  std::vector<std::string> names;
  GFS_RETURN_IF_ERROR(env->GetChildren(dir, &names));
  for (const std::string& n : names) {
    uint64_t v = 0;
    if (ParseName(n, kLogPrefix, &v)) {
      out->logs.push_back({v, n});
    } else if (ParseName(n, kCheckpointPrefix, &v)) {
      out->checkpoints.push_back(v);
    } else if (n == kOpLogFileName) {
      // The legacy single log: its place in the sequence is in its header.
      std::string bytes;
      GFS_RETURN_IF_ERROR(env->ReadFile(dir + "/" + n, &bytes));
      if (bytes.size() < kOpLogHeaderSize) {
        return Status::Corruption(dir + "/" + n + ": oplog header truncated");
      }
      out->logs.push_back({LoadU64(reinterpret_cast<const uint8_t*>(bytes.data()) + 16), n});
    } else if (n.size() > 4 && n.compare(n.size() - 4, 4, ".tmp") == 0 &&
               (n.compare(0, std::strlen(kLogPrefix), kLogPrefix) == 0 ||
                n.compare(0, std::strlen(kCheckpointPrefix), kCheckpointPrefix) == 0 ||
                n.compare(0, std::strlen(kOpLogFileName), kOpLogFileName) == 0)) {
      out->tmps.push_back(n);
    }
  }
  std::sort(out->checkpoints.begin(), out->checkpoints.end());
  std::sort(out->logs.begin(), out->logs.end(),
            [](const LogFile& a, const LogFile& b) { return a.start < b.start; });
  for (size_t i = 1; i < out->logs.size(); ++i) {
    if (out->logs[i].start == out->logs[i - 1].start) {
      return Status::Corruption(dir + ": logs " + out->logs[i - 1].name + " and " +
                                out->logs[i].name + " both start at seq " +
                                Num(out->logs[i].start));
    }
  }
  return Status::OK();
}

struct Recovered {
  uint64_t last_seq = 0;
  uint64_t epoch = 0;
  uint64_t checkpoint_seq = 0;  // the checkpoint used (0: none)
  std::string warning;
  std::vector<std::string> corrupt_checkpoints;  // skipped as corrupt (names)
  void Warn(const std::string& w) {
    if (!warning.empty()) warning += "; ";
    warning += w;
  }
};

// Rebuilds the state at the end of the logs (or at `limit`, which must be a
// log boundary) from the newest usable checkpoint at or below `limit` plus
// the logs that start after it. A checkpoint at S is always written at a log
// boundary (the next log starts at S+1), so logs starting at or before S add
// nothing to it and are not read. state == null: checkpoints are checked by
// CRC only and records are not applied (Probe).
Status Recover(Env* env, const std::string& dir, const Listing& ls, uint64_t limit,
               MetaState* state, Recovered* out) {
  *out = Recovered();
  for (auto it = ls.checkpoints.rbegin(); it != ls.checkpoints.rend(); ++it) {
    if (*it > limit) continue;
    const std::string name = MetaJournal::CheckpointName(*it);
    std::string bytes;
    CheckpointInfo ci;
    Status s = env->ReadFile(dir + "/" + name, &bytes);
    if (s.ok() && state) {
      MetaState fresh;
      s = DecodeCheckpoint(bytes, &fresh, &ci);
      if (s.ok()) *state = std::move(fresh);
    } else if (s.ok()) {
      s = ReadCheckpointInfo(bytes, &ci);
    }
    if (s.ok() && ci.seq != *it) {
      s = Status::Corruption("holds seq " + Num(ci.seq) + ", not the seq in its name");
    }
    if (!s.ok()) {
      out->Warn("skipped checkpoint " + name + " (" + s.ToString() + ")");
      if (s.code() == Code::kCorruption) out->corrupt_checkpoints.push_back(name);
      continue;
    }
    out->checkpoint_seq = *it;
    out->last_seq = *it;
    out->epoch = ci.epoch;
    break;
  }
  uint64_t& cur = out->last_seq;
  for (const LogFile& lf : ls.logs) {
    if (lf.start <= out->checkpoint_seq) continue;
    if (lf.start > limit) break;
    const std::string path = dir + "/" + lf.name;
    if (lf.start != cur + 1) {
      std::string m = path + ": starts at seq " + Num(lf.start) +
                      " but the records before it end at " + Num(cur);
      m += lf.start > cur + 1 ? " (records missing)" : " (overlapping logs)";
      if (!out->warning.empty()) m += "; " + out->warning;
      return Status::Corruption(m);
    }
    ReplayInfo info;
    GFS_RETURN_IF_ERROR(OpLog::Replay(
        env, path,
        [&](uint64_t seq, const MetaOp& op) -> Status {
          if (state) {
            Status s = state->Apply(op);
            if (!s.ok()) {
              return Status::Corruption(path + ": record seq " + Num(seq) + " (" + op.ToString() +
                                        ") does not apply: " + s.ToString());
            }
          }
          cur = seq;
          return Status::OK();
        },
        &info));
    if (info.start_seq != lf.start) {
      return Status::Corruption(path + ": header says start_seq " + Num(info.start_seq));
    }
    out->epoch = std::max(out->epoch, info.epoch);
    if (!info.warning.empty()) out->Warn(info.warning);
  }
  if (limit != UINT64_MAX && cur != limit) {
    return Status::Corruption(dir + ": rebuilding the state at seq " + Num(limit) +
                              " reached only seq " + Num(cur));
  }
  return Status::OK();
}

}  // namespace

std::string MetaJournal::LogName(uint64_t start_seq) {
  char b[64];
  std::snprintf(b, sizeof b, "%s%020" PRIu64, kLogPrefix, start_seq);
  return b;
}

std::string MetaJournal::CheckpointName(uint64_t seq) {
  char b[64];
  std::snprintf(b, sizeof b, "%s%020" PRIu64, kCheckpointPrefix, seq);
  return b;
}

MetaJournal::MetaJournal(Env* env, std::string dir, JournalOptions options)
    : env_(env), dir_(std::move(dir)), opt_(std::move(options)) {
  if (opt_.keep_checkpoints < 1) opt_.keep_checkpoints = 1;
}

MetaJournal::~MetaJournal() { Join(); }

void MetaJournal::Join() {
  if (worker_.joinable()) worker_.join();
}

Status MetaJournal::Hook(const std::string& point) const {
  return opt_.checkpoint_hook ? opt_.checkpoint_hook(point) : Status::OK();
}

Status MetaJournal::Open(MetaState* state, uint64_t* last_seq, std::string* warning) {
  if (log_) return Status::InvalidArgument(dir_ + ": journal already open");
  GFS_RETURN_IF_ERROR(env_->CreateDirs(dir_));
  Listing ls;
  GFS_RETURN_IF_ERROR(ListJournal(env_, dir_, &ls));
  // Unfinished writes of a previous run (checkpoints, log headers).
  for (const std::string& t : ls.tmps) GFS_RETURN_IF_ERROR(env_->RemoveFile(dir_ + "/" + t));
  // The legacy single log becomes an ordinary log file.
  for (LogFile& lf : ls.logs) {
    if (lf.name != kOpLogFileName) continue;
    const std::string name = LogName(lf.start);
    GFS_RETURN_IF_ERROR(env_->RenameFile(dir_ + "/" + lf.name, dir_ + "/" + name));
    GFS_RETURN_IF_ERROR(env_->SyncDir(dir_));
    lf.name = name;
  }
  Recovered r;
  GFS_RETURN_IF_ERROR(Recover(env_, dir_, ls, UINT64_MAX, state, &r));
  epoch_ = r.epoch;
  checkpoint_seq_ = r.checkpoint_seq;
  if (!ls.logs.empty() && ls.logs.back().start > r.checkpoint_seq) {
    // The newest log was replayed: keep appending to it (OpLog::Open
    // truncates a torn tail).
    auto log = std::make_unique<OpLog>(env_, dir_ + "/" + ls.logs.back().name);
    uint64_t end = 0;
    GFS_RETURN_IF_ERROR(log->Open(&end));
    if (end != r.last_seq) {
      return Status::Internal(dir_ + ": newest log ends at " + Num(end) + ", recovery at " +
                              Num(r.last_seq));
    }
    log_ = std::move(log);
  } else {
    GFS_RETURN_IF_ERROR(NewLog(r.last_seq + 1));
  }
  // A corrupt checkpoint is moved aside (kept for inspection): left in
  // place, it would count among the --keep-checkpoints that retention keeps,
  // and a good older one would be removed in its stead.
  for (const std::string& name : r.corrupt_checkpoints) {
    GFS_RETURN_IF_ERROR(env_->RenameFile(dir_ + "/" + name, dir_ + "/" + name + ".corrupt"));
    r.Warn("moved " + name + " aside as " + name + ".corrupt");
  }
  if (!r.corrupt_checkpoints.empty()) GFS_RETURN_IF_ERROR(env_->SyncDir(dir_));
  if (last_seq) *last_seq = r.last_seq;
  if (warning) *warning = r.warning;
  return Status::OK();
}

Status MetaJournal::NewLog(uint64_t start_seq) {
  const std::string path = dir_ + "/" + LogName(start_seq);
  GFS_RETURN_IF_ERROR(env_->WriteFileAtomic(path, OpLog::EncodeHeader(start_seq, epoch_)));
  auto log = std::make_unique<OpLog>(env_, path);
  uint64_t last = 0;
  Status s = log->Open(&last);
  if (!s.ok()) {
    (void)env_->RemoveFile(path);
    return s;
  }
  if (log_) {
    sync_count_ += log_->sync_count();
    (void)log_->Close();  // synced already: nothing left to write
  }
  log_ = std::move(log);
  return Status::OK();
}

Status MetaJournal::Append(const MetaOp& op, uint64_t* seq) {
  if (!log_) return Status::InvalidArgument(dir_ + ": journal not open");
  return log_->Append(op, seq);
}

Status MetaJournal::AppendAt(uint64_t seq, const MetaOp& op) {
  if (!log_) return Status::InvalidArgument(dir_ + ": journal not open");
  return log_->AppendAt(seq, op);
}

Status MetaJournal::Sync() {
  if (!log_) return Status::InvalidArgument(dir_ + ": journal not open");
  GFS_RETURN_IF_ERROR(log_->Sync());
  if (log_->bytes() >= opt_.roll_bytes && log_->last_seq() >= log_->start_seq()) {
    // The records are durable whatever happens here: a failed roll only
    // means the current log keeps growing; Poll reports it.
    Status s = Roll();
    if (!s.ok() && roll_error_.ok()) roll_error_ = s;
  }
  return Status::OK();
}

Status MetaJournal::Roll() {
  const uint64_t closed = log_->last_seq();
  GFS_RETURN_IF_ERROR(NewLog(closed + 1));
  ++rollovers_;
  StartCheckpoint(closed);
  return Status::OK();
}

Status MetaJournal::CheckpointNow() {
  if (!log_) return Status::InvalidArgument(dir_ + ": journal not open");
  GFS_RETURN_IF_ERROR(log_->Sync());
  if (log_->last_seq() >= log_->start_seq()) return Roll();
  // Nothing since the last roll: the newest closed log ends at last_seq.
  if (log_->last_seq() > checkpoint_seq_.load()) StartCheckpoint(log_->last_seq());
  return Status::OK();
}

Status MetaJournal::StartEpoch(uint64_t epoch) {
  if (!log_) return Status::InvalidArgument(dir_ + ": journal not open");
  if (epoch < epoch_) {
    return Status::InvalidArgument("epoch " + Num(epoch) + " is below the journal's " +
                                   Num(epoch_));
  }
  if (epoch == epoch_) return Status::OK();
  GFS_RETURN_IF_ERROR(log_->Sync());
  const uint64_t old_epoch = epoch_;
  epoch_ = epoch;
  Status s;
  if (log_->last_seq() >= log_->start_seq()) {
    s = NewLog(log_->last_seq() + 1);
  } else {
    // An empty log: rewrite its header in place (atomically).
    const uint64_t start = log_->start_seq();
    sync_count_ += log_->sync_count();
    (void)log_->Close();
    log_.reset();
    s = NewLog(start);
  }
  if (!s.ok()) epoch_ = old_epoch;
  return s;
}

void MetaJournal::StartCheckpoint(uint64_t seq) {
  Collect();
  if (running_) {
    pending_seq_ = std::max(pending_seq_, seq);
    return;
  }
  running_ = true;
  done_ = false;
  auto job = [this, seq] {
    Status s = BuildCheckpoint(seq);
    {
      std::lock_guard<std::mutex> l(mu_);
      result_ = s;
    }
    done_ = true;
  };
  if (opt_.background) {
    worker_ = std::thread(job);
  } else {
    job();
    Collect();
  }
}

void MetaJournal::Collect() {
  while (running_ && done_.load()) {
    Join();
    running_ = false;
    Status s;
    {
      std::lock_guard<std::mutex> l(mu_);
      s = result_;
    }
    if (!s.ok() && reported_.ok()) reported_ = s;
    if (pending_seq_ != 0) {
      const uint64_t p = pending_seq_;
      pending_seq_ = 0;
      StartCheckpoint(p);
    }
  }
}

Status MetaJournal::Poll() {
  Collect();
  Status out = !roll_error_.ok() ? roll_error_ : reported_;
  if (!roll_error_.ok()) {
    roll_error_ = Status::OK();
  } else {
    reported_ = Status::OK();
  }
  return out;
}

Status MetaJournal::WaitForCheckpoint() {
  while (running_) {
    Join();
    Status s = Poll();
    if (!s.ok()) return s;
  }
  return Poll();
}

Status MetaJournal::BuildCheckpoint(uint64_t seq) {
  // Everything read here is closed: logs starting at or below seq+... are
  // never written again, and only this thread removes files.
  Listing ls;
  GFS_RETURN_IF_ERROR(ListJournal(env_, dir_, &ls));
  MetaState state;
  Recovered r;
  GFS_RETURN_IF_ERROR(Recover(env_, dir_, ls, seq, &state, &r));
  if (r.checkpoint_seq != seq) {
    GFS_RETURN_IF_ERROR(WriteCheckpointFile(env_, dir_ + "/" + CheckpointName(seq), state, seq,
                                            r.epoch,
                                            [this](const std::string& p) { return Hook(p); }));
    checkpoints_written_.fetch_add(1);
  }
  checkpoint_seq_ = seq;
  return ApplyRetention(seq);
}

Status MetaJournal::ApplyRetention(uint64_t newest) {
  GFS_RETURN_IF_ERROR(Hook("retention"));
  Listing ls;
  GFS_RETURN_IF_ERROR(ListJournal(env_, dir_, &ls));
  std::vector<uint64_t> cps;
  for (uint64_t c : ls.checkpoints) {
    if (c <= newest) cps.push_back(c);
  }
  const size_t keep = static_cast<size_t>(opt_.keep_checkpoints);
  // With fewer than `keep` checkpoints the empty state (seq 0) is the oldest
  // fallback, so every log stays.
  if (cps.size() < keep) return Status::OK();
  const uint64_t oldest_kept = cps[cps.size() - keep];
  for (size_t i = 0; i + keep < cps.size(); ++i) {
    GFS_RETURN_IF_ERROR(env_->RemoveFile(dir_ + "/" + CheckpointName(cps[i])));
  }
  // A log starting at or below the oldest kept checkpoint ends at or below
  // it too (checkpoints sit on log boundaries): no retained checkpoint needs
  // it. The newest log (being appended to) always starts later.
  for (size_t i = 0; i + 1 < ls.logs.size(); ++i) {
    if (ls.logs[i].start <= oldest_kept) {
      GFS_RETURN_IF_ERROR(env_->RemoveFile(dir_ + "/" + ls.logs[i].name));
    }
  }
  return Status::OK();
}

std::string MetaJournal::EncodeSnapshot(const MetaState& state, uint64_t seq, uint64_t epoch) {
  return EncodeCheckpointToString(state, seq, epoch);
}

Status MetaJournal::InstallSnapshot(const std::string& bytes, MetaState* state, uint64_t* seq) {
  if (!log_) return Status::InvalidArgument(dir_ + ": journal not open");
  // No checkpoint may run while files are replaced.
  pending_seq_ = 0;
  while (running_) {
    Join();
    Collect();
  }
  MetaState fresh;
  CheckpointInfo ci;
  GFS_RETURN_IF_ERROR(DecodeCheckpoint(bytes, &fresh, &ci));
  const uint64_t s = ci.seq;
  const std::string path = dir_ + "/" + CheckpointName(s);
  const std::string tmp = path + ".tmp";

  // 1. The snapshot, durable but not yet visible.
  {
    if (env_->FileExists(tmp)) GFS_RETURN_IF_ERROR(env_->RemoveFile(tmp));
    std::unique_ptr<AppendFile> f;
    GFS_RETURN_IF_ERROR(env_->OpenAppend(tmp, &f));
    GFS_RETURN_IF_ERROR(f->Append(bytes.data(), bytes.size()));
    GFS_RETURN_IF_ERROR(f->Sync());
    GFS_RETURN_IF_ERROR(f->Close());
  }
  sync_count_ += log_->sync_count();
  (void)log_->Close();
  log_.reset();
  Listing ls;
  GFS_RETURN_IF_ERROR(ListJournal(env_, dir_, &ls));
  // 2. Anything recovery would prefer to, or replay after, checkpoint s (a
  //    newer checkpoint, a log starting after s: a history this copy must
  //    drop) goes first. Logs newest first, then checkpoints newest first:
  //    after each removal recovery still yields a prefix of the old state.
  bool conflict = !ls.checkpoints.empty() && ls.checkpoints.back() > s;
  for (const LogFile& lf : ls.logs) conflict = conflict || lf.start > s;
  if (conflict) {
    for (auto it = ls.logs.rbegin(); it != ls.logs.rend(); ++it) {
      GFS_RETURN_IF_ERROR(env_->RemoveFile(dir_ + "/" + it->name));
    }
    for (auto it = ls.checkpoints.rbegin(); it != ls.checkpoints.rend(); ++it) {
      if (*it != s) GFS_RETURN_IF_ERROR(env_->RemoveFile(dir_ + "/" + CheckpointName(*it)));
    }
  }
  // 3. Visible: from here recovery yields the snapshot (logs starting at or
  //    before s are not read after checkpoint s).
  GFS_RETURN_IF_ERROR(env_->RenameFile(tmp, path));
  GFS_RETURN_IF_ERROR(env_->SyncDir(dir_));
  // 4. A fresh log continuing it; then the rest goes.
  epoch_ = std::max(epoch_, ci.epoch);
  GFS_RETURN_IF_ERROR(NewLog(s + 1));
  checkpoint_seq_ = s;
  GFS_RETURN_IF_ERROR(ListJournal(env_, dir_, &ls));
  for (const LogFile& lf : ls.logs) {
    if (lf.start != s + 1) GFS_RETURN_IF_ERROR(env_->RemoveFile(dir_ + "/" + lf.name));
  }
  for (uint64_t c : ls.checkpoints) {
    if (c != s) GFS_RETURN_IF_ERROR(env_->RemoveFile(dir_ + "/" + CheckpointName(c)));
  }
  *state = std::move(fresh);
  if (seq) *seq = s;
  return Status::OK();
}

Status MetaJournal::Probe(Env* env, const std::string& dir, uint64_t* epoch, uint64_t* last_seq) {
  Listing ls;
  GFS_RETURN_IF_ERROR(ListJournal(env, dir, &ls));
  Recovered r;
  GFS_RETURN_IF_ERROR(Recover(env, dir, ls, UINT64_MAX, nullptr, &r));
  if (epoch) *epoch = r.epoch;
  if (last_seq) *last_seq = r.last_seq;
  return Status::OK();
}

Status RecoverMetaState(Env* env, const std::string& dir, MetaState* state, uint64_t* last_seq,
                        std::string* warning) {
  Listing ls;
  GFS_RETURN_IF_ERROR(ListJournal(env, dir, &ls));
  Recovered r;
  GFS_RETURN_IF_ERROR(Recover(env, dir, ls, UINT64_MAX, state, &r));
  if (last_seq) *last_seq = r.last_seq;
  if (warning) *warning = r.warning;
  return Status::OK();
}

}  // namespace gfs
