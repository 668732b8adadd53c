// FaultEnv: a fault-injecting Env for tests (header-only).
//
// Wraps a real Env (normally Env::Posix()) and adds knobs:
//   - SetNoSpace(true): every write that would grow a file (RandomRWFile::Write
//     past the end, AppendFile::Append, WriteFileAtomic) fails with NoSpace and
//     writes nothing. Overwrites inside a file and shrinking truncates still work
//     (as on a real full file system).
//   - SetSpaceBudget(b): allow b more bytes of growth, then behave like
//     SetNoSpace(true). A write that crosses the budget writes the prefix that
//     fits and then fails (a torn write). -1 = unlimited (the default).
//   - SetWriteError(true): every write, append, truncate and WriteFileAtomic
//     fails with IOError, writing nothing.
//   - SetSyncError(true): every Sync / SyncDir fails with IOError.
//   - FailWriteAt(n): the n-th write (RandomRWFile::Write, Truncate,
//     AppendFile::Append or WriteFileAtomic) from now, counting from 0, fails
//     once with IOError and writes nothing; the writes around it work (a
//     transient EIO). -1 cancels.
//   - StopWritesAfter(n): n more writes succeed, then every write fails with
//     IOError and writes nothing, until StopWritesAfter(-1): the process
//     "died" there, its page cache (what it wrote) surviving. -1 cancels.
//   - SetSyncErrorAfter(n): n more Syncs succeed, then every one fails (as
//     SetSyncError(true)), e.g. the data file's fsync works and the
//     checksum file's does not. -1 cancels.
//   - DropUnsyncedData(): simulates a machine crash. Every file written through
//     this Env reverts to its content at its last successful Sync (or
//     WriteFileAtomic, or its content when this Env first opened it); a file
//     created through this Env and never synced is removed.
//     DropUnsyncedData(keep): the same, except that files for which keep(path)
//     is true keep their current content (their dirty pages happened to reach
//     the disk): crash states where some files are newer than others.
//   - FlipByte(path, offset, mask): media corruption, applied to the file on disk
//     and to its last-synced image, so a later crash does not undo it.
//   - SetClockOffset(us): NowMicros() returns target time + offset (clock jumps).
//   - SetReadOnlyOpenError(true): every OpenReadOnly fails with IOError.
//   - SetOpenError(true): every OpenRandomRW fails with IOError (as when the
//     process is out of descriptors). live_files(): RandomRWFiles opened
//     through this Env and not yet destroyed.
//   - SetSyncDelayMs(ms): every file Sync first sleeps ms (a slow disk).
//   - Counters of file opens, reads, writes, syncs and started writebacks, to
//     assert I/O patterns; RecordEvents(true) also logs each writeback
//     ("writeback PATH OFFSET BYTES") and file sync ("sync PATH") in order.
//
// Model limits (good enough for unit tests): directory entries are treated as
// durable once the file was synced (SyncDir is not tracked separately); removes
// and renames are durable at once. The last-synced image is taken by re-reading
// the whole file at every Sync, so keep tracked files small (tens of MiB).
//
// Thread-safe. Files returned by this Env must not outlive it. After
// DropUnsyncedData, discard the objects that held files open (as a crash would).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/env.h"
#include "common/status.h"

namespace gfs {

class FaultEnv : public EnvWrapper {
 public:
  explicit FaultEnv(Env* target) : EnvWrapper(target) {}

  void SetNoSpace(bool on) {
    no_space_ = on;
    if (!on) budget_ = -1;
  }
  void SetSpaceBudget(int64_t bytes) {
    budget_ = bytes;
    no_space_ = false;
  }
  void SetWriteError(bool on) { write_error_ = on; }
  void SetSyncError(bool on) {
    std::lock_guard<std::mutex> l(knob_mu_);
    sync_error_ = on;
    if (!on) sync_ok_left_ = -1;
  }
  void FailWriteAt(int64_t n) {
    std::lock_guard<std::mutex> l(knob_mu_);
    write_fail_at_ = n;
  }
  void StopWritesAfter(int64_t n) {
    std::lock_guard<std::mutex> l(knob_mu_);
    writes_left_ = n;
  }
  void SetSyncErrorAfter(int64_t n) {
    std::lock_guard<std::mutex> l(knob_mu_);
    sync_ok_left_ = n;
  }
  void SetClockOffset(int64_t us) { clock_offset_ = us; }
  // Every data-file Sync (RandomRWFile) takes this much longer (a slow disk).
  void SetSyncDelayMs(int64_t ms) { sync_delay_ms_ = ms; }
  // Every OpenReadOnly fails with IOError (a reader that cannot reach the
  // files, e.g. another node's, or no permission); counted either way.
  void SetReadOnlyOpenError(bool on) { read_only_open_error_ = on; }
  void SetOpenError(bool on) { open_error_ = on; }
  uint64_t live_files() const { return live_files_; }
  uint64_t read_only_opens() const { return read_only_opens_; }

  uint64_t reads() const { return reads_; }
  uint64_t writes() const { return writes_; }
  uint64_t syncs() const { return syncs_; }
  uint64_t writebacks() const { return writebacks_; }
  uint64_t opens() const { return opens_; }
  void ResetCounters() { reads_ = writes_ = syncs_ = writebacks_ = opens_ = 0; }
  void RecordEvents(bool on) { record_events_ = on; }
  std::vector<std::string> TakeEvents() {
    std::lock_guard<std::mutex> l(knob_mu_);
    return std::move(events_);
  }

  // Simulates a crash: see the file comment.
  Status DropUnsyncedData() { return DropUnsyncedData(nullptr); }
  Status DropUnsyncedData(const std::function<bool(const std::string& path)>& keep) {
    std::lock_guard<std::mutex> l(mu_);
    for (auto& [path, st] : files_) {
      if (keep && keep(path)) continue;
      if (!st.durable) {
        if (target()->FileExists(path)) GFS_RETURN_IF_ERROR(target()->RemoveFile(path));
        continue;
      }
      std::unique_ptr<RandomRWFile> f;
      GFS_RETURN_IF_ERROR(target()->OpenRandomRW(path, true, &f));
      GFS_RETURN_IF_ERROR(f->Truncate(0));
      GFS_RETURN_IF_ERROR(f->Write(0, st.synced.data(), st.synced.size()));
      GFS_RETURN_IF_ERROR(f->Sync());
    }
    files_.clear();
    return Status::OK();
  }

  // XORs the byte at `offset` of `path` with `mask` (on disk and in the synced image).
  Status FlipByte(const std::string& path, uint64_t offset, uint8_t mask = 0x01) {
    std::unique_ptr<RandomRWFile> f;
    GFS_RETURN_IF_ERROR(target()->OpenRandomRW(path, false, &f));
    uint8_t b = 0;
    size_t got = 0;
    GFS_RETURN_IF_ERROR(f->Read(offset, 1, &b, &got));
    if (got != 1) return Status::InvalidArgument(path + ": FlipByte offset past end of file");
    b ^= mask;
    GFS_RETURN_IF_ERROR(f->Write(offset, &b, 1));
    std::lock_guard<std::mutex> l(mu_);
    auto it = files_.find(path);
    if (it != files_.end() && offset < it->second.synced.size()) {
      it->second.synced[offset] = static_cast<char>(it->second.synced[offset] ^ mask);
    }
    return Status::OK();
  }

  Status OpenRandomRW(const std::string& p, bool create,
                      std::unique_ptr<RandomRWFile>* out) override {
    ++opens_;
    if (open_error_) return Status::IOError(p + ": open: injected error");
    Track(p);
    std::unique_ptr<RandomRWFile> f;
    GFS_RETURN_IF_ERROR(target()->OpenRandomRW(p, create, &f));
    *out = std::make_unique<File>(this, p, std::move(f));
    return Status::OK();
  }
  Status OpenReadOnly(const std::string& p, std::unique_ptr<RandomRWFile>* out) override {
    ++read_only_opens_;
    if (read_only_open_error_) return Status::IOError(p + ": open: injected error");
    return target()->OpenReadOnly(p, out);
  }
  Status OpenAppend(const std::string& p, std::unique_ptr<AppendFile>* out) override {
    ++opens_;
    Track(p);
    std::unique_ptr<AppendFile> f;
    GFS_RETURN_IF_ERROR(target()->OpenAppend(p, &f));
    *out = std::make_unique<Appender>(this, p, std::move(f));
    return Status::OK();
  }
  Status ReadFile(const std::string& p, std::string* out) override {
    ++reads_;
    return target()->ReadFile(p, out);
  }
  Status WriteFileAtomic(const std::string& p, const std::string& data) override {
    ++writes_;
    if (WriteFails()) return Status::IOError(p + ": injected write error");
    if (SyncFails()) return Status::IOError(p + ": injected sync error");
    if (!TakeSpace(data.size(), nullptr)) return Status::NoSpace(p + ": injected no space");
    GFS_RETURN_IF_ERROR(target()->WriteFileAtomic(p, data));
    std::lock_guard<std::mutex> l(mu_);
    files_[p] = FileState{true, data};
    return Status::OK();
  }
  Status RemoveFile(const std::string& p) override {
    GFS_RETURN_IF_ERROR(target()->RemoveFile(p));
    std::lock_guard<std::mutex> l(mu_);
    files_.erase(p);
    return Status::OK();
  }
  Status RenameFile(const std::string& from, const std::string& to) override {
    GFS_RETURN_IF_ERROR(target()->RenameFile(from, to));
    std::lock_guard<std::mutex> l(mu_);
    auto it = files_.find(from);
    if (it != files_.end()) {
      files_[to] = std::move(it->second);
      files_.erase(from);
    } else {
      files_.erase(to);
    }
    return Status::OK();
  }
  Status SyncDir(const std::string& d) override {
    ++syncs_;
    if (SyncFails()) return Status::IOError(d + ": injected sync error");
    return target()->SyncDir(d);
  }
  uint64_t NowMicros() override {
    const int64_t t = static_cast<int64_t>(target()->NowMicros()) + clock_offset_.load();
    return t < 0 ? 0 : static_cast<uint64_t>(t);
  }

 private:
  struct FileState {
    bool durable = false;  // exists after a crash
    std::string synced;    // content after a crash
  };

  // Whether this write fails (SetWriteError, or the one FailWriteAt picked).
  bool WriteFails() {
    if (write_error_) return true;
    std::lock_guard<std::mutex> l(knob_mu_);
    if (writes_left_ == 0) return true;
    if (writes_left_ > 0) --writes_left_;
    if (write_fail_at_ < 0) return false;
    return write_fail_at_-- == 0;
  }
  // Whether this sync fails (SetSyncError, or SetSyncErrorAfter ran out).
  bool SyncFails() {
    if (sync_error_) return true;
    std::lock_guard<std::mutex> l(knob_mu_);
    if (sync_ok_left_ < 0) return false;
    if (sync_ok_left_ == 0) {
      sync_error_ = true;
      return true;
    }
    --sync_ok_left_;
    return false;
  }

  // Starts tracking `p` the first time this Env opens it: an existing file is
  // assumed durable as it is now.
  void Track(const std::string& p) {
    std::lock_guard<std::mutex> l(mu_);
    if (files_.count(p)) return;
    FileState st;
    if (target()->FileExists(p)) {
      st.durable = true;
      (void)target()->ReadFile(p, &st.synced);
    }
    files_[p] = std::move(st);
  }

  void MarkSynced(const std::string& p) {
    std::lock_guard<std::mutex> l(mu_);
    FileState& st = files_[p];
    st.durable = true;
    st.synced.clear();
    (void)target()->ReadFile(p, &st.synced);
  }

  // Accounts for `growth` new bytes. Returns true if all fit; otherwise false
  // and *fits (if given) is how many did.
  bool TakeSpace(uint64_t growth, uint64_t* fits) {
    if (fits) *fits = 0;
    if (growth == 0) return true;
    if (no_space_) return false;
    std::lock_guard<std::mutex> l(mu_);
    if (budget_ < 0) return true;
    const auto b = static_cast<uint64_t>(budget_.load());
    if (growth <= b) {
      budget_ -= static_cast<int64_t>(growth);
      return true;
    }
    if (fits) *fits = b;
    budget_ = 0;
    no_space_ = true;
    return false;
  }

  class File : public RandomRWFile {
   public:
    File(FaultEnv* env, std::string path, std::unique_ptr<RandomRWFile> f)
        : env_(env), path_(std::move(path)), f_(std::move(f)) {
      ++env_->live_files_;
    }
    ~File() override { --env_->live_files_; }
    Status Read(uint64_t offset, size_t n, void* buf, size_t* got) override {
      ++env_->reads_;
      return f_->Read(offset, n, buf, got);
    }
    Status Write(uint64_t offset, const void* data, size_t n) override {
      ++env_->writes_;
      if (env_->WriteFails()) return Status::IOError(path_ + ": injected write error");
      Result<uint64_t> size = f_->Size();
      if (!size.ok()) return size.status();
      const uint64_t end = offset + n;
      const uint64_t growth = end > *size ? end - *size : 0;
      uint64_t fits = 0;
      if (!env_->TakeSpace(growth, &fits)) {
        // Bytes up to old size + fits can be written (a torn write).
        const uint64_t limit = *size + fits;
        if (limit > offset) GFS_RETURN_IF_ERROR(f_->Write(offset, data, limit - offset));
        return Status::NoSpace(path_ + ": injected no space");
      }
      return f_->Write(offset, data, n);
    }
    Status Truncate(uint64_t size) override {
      ++env_->writes_;
      if (env_->WriteFails()) return Status::IOError(path_ + ": injected write error");
      return f_->Truncate(size);
    }
    Status Sync() override {
      ++env_->syncs_;
      if (env_->sync_delay_ms_ > 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(env_->sync_delay_ms_.load()));
      }
      if (env_->SyncFails()) return Status::IOError(path_ + ": injected sync error");
      GFS_RETURN_IF_ERROR(f_->Sync());
      env_->MarkSynced(path_);
      env_->Record("sync " + path_);
      return Status::OK();
    }
    Result<uint64_t> Size() override { return f_->Size(); }
    void StartWriteback(uint64_t offset, uint64_t n) override {
      ++env_->writebacks_;
      env_->Record("writeback " + path_ + " " + std::to_string(offset) + " " + std::to_string(n));
      f_->StartWriteback(offset, n);
    }

   private:
    FaultEnv* env_;
    std::string path_;
    std::unique_ptr<RandomRWFile> f_;
  };

  class Appender : public AppendFile {
   public:
    Appender(FaultEnv* env, std::string path, std::unique_ptr<AppendFile> f)
        : env_(env), path_(std::move(path)), f_(std::move(f)) {}
    Status Append(const void* data, size_t n) override {
      ++env_->writes_;
      if (env_->WriteFails()) return Status::IOError(path_ + ": injected write error");
      uint64_t fits = 0;
      if (!env_->TakeSpace(n, &fits)) {
        if (fits > 0) GFS_RETURN_IF_ERROR(f_->Append(data, fits));
        return Status::NoSpace(path_ + ": injected no space");
      }
      return f_->Append(data, n);
    }
    Status Sync() override {
      ++env_->syncs_;
      if (env_->SyncFails()) return Status::IOError(path_ + ": injected sync error");
      GFS_RETURN_IF_ERROR(f_->Sync());
      env_->MarkSynced(path_);
      return Status::OK();
    }
    Status Close() override { return f_->Close(); }

   private:
    FaultEnv* env_;
    std::string path_;
    std::unique_ptr<AppendFile> f_;
  };

  std::mutex mu_;
  std::map<std::string, FileState> files_;  // guarded by mu_
  std::atomic<bool> no_space_{false};
  std::atomic<int64_t> budget_{-1};
  std::atomic<bool> write_error_{false};
  std::atomic<bool> sync_error_{false};
  std::mutex knob_mu_;
  int64_t write_fail_at_ = -1;  // guarded by knob_mu_
  int64_t writes_left_ = -1;    // guarded by knob_mu_
  int64_t sync_ok_left_ = -1;   // guarded by knob_mu_
  std::atomic<int64_t> clock_offset_{0};
  std::atomic<int64_t> sync_delay_ms_{0};
  std::atomic<uint64_t> reads_{0}, writes_{0}, syncs_{0}, writebacks_{0}, opens_{0},
      read_only_opens_{0};
  std::atomic<bool> read_only_open_error_{false};
  std::atomic<bool> open_error_{false};
  std::atomic<uint64_t> live_files_{0};
  std::atomic<bool> record_events_{false};
  std::vector<std::string> events_;  // guarded by knob_mu_

  void Record(std::string e) {
    if (!record_events_) return;
    std::lock_guard<std::mutex> l(knob_mu_);
    events_.push_back(std::move(e));
  }
};

}  // namespace gfs
