// Env: the seam between the storage logic and the operating system (files and
// clock), modelled on leveldb's Env. Production code uses Env::Posix(); tests
// wrap it to inject faults (full disk, torn writes, lost fsyncs, clock jumps).
//
// Ownership: files returned through unique_ptr belong to the caller. An Env
// must outlive every file it created. Posix() is a process-wide singleton.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace gfs {

// A file read and written at explicit offsets (chunk data, checksum files).
class RandomRWFile {
 public:
  virtual ~RandomRWFile() = default;
  // Reads up to n bytes at offset into buf; *got is set to the bytes read
  // (short only at end of file).
  virtual Status Read(uint64_t offset, size_t n, void* buf, size_t* got) = 0;
  virtual Status Write(uint64_t offset, const void* data, size_t n) = 0;
  virtual Status Truncate(uint64_t size) = 0;
  virtual Status Sync() = 0;
  virtual Result<uint64_t> Size() = 0;
  // Asks the OS to start writing [offset, offset + n) to the device and
  // returns without waiting for it. A hint: it makes a later Sync shorter,
  // never replaces it. Default: nothing.
  virtual void StartWriteback(uint64_t /*offset*/, uint64_t /*n*/) {}
};

// An append-only file (op log).
class AppendFile {
 public:
  virtual ~AppendFile() = default;
  virtual Status Append(const void* data, size_t n) = 0;
  virtual Status Sync() = 0;
  virtual Status Close() = 0;
};

// An advisory lock on a file, released when destroyed.
class FileLock {
 public:
  virtual ~FileLock() = default;
};

class Env {
 public:
  virtual ~Env() = default;
  static Env* Posix();

  // Opens (creating when `create`) a file for random reads and writes.
  virtual Status OpenRandomRW(const std::string& path, bool create,
                              std::unique_ptr<RandomRWFile>* out) = 0;
  // Opens a file for appending, creating it if missing.
  // An existing file, for reading only (Write, Truncate and Sync fail).
  virtual Status OpenReadOnly(const std::string& path, std::unique_ptr<RandomRWFile>* out) = 0;
  virtual Status OpenAppend(const std::string& path, std::unique_ptr<AppendFile>* out) = 0;
  virtual Status ReadFile(const std::string& path, std::string* out) = 0;
  // Writes a whole file atomically and durably: tmp file, fsync, rename,
  // fsync of the directory.
  virtual Status WriteFileAtomic(const std::string& path, const std::string& data) = 0;
  virtual Status GetChildren(const std::string& dir, std::vector<std::string>* names) = 0;
  virtual bool FileExists(const std::string& path) = 0;
  virtual Result<uint64_t> FileSize(const std::string& path) = 0;
  // Creates a directory and its missing parents.
  virtual Status CreateDirs(const std::string& dir) = 0;
  virtual Status RemoveFile(const std::string& path) = 0;
  virtual Status RenameFile(const std::string& from, const std::string& to) = 0;
  virtual Status SyncDir(const std::string& dir) = 0;
  // Non-blocking exclusive lock; fails with kBusy when another process holds it.
  virtual Status LockFile(const std::string& path, std::unique_ptr<FileLock>* out) = 0;
  // Bytes free on the file system holding `path`.
  virtual Result<uint64_t> FreeSpace(const std::string& path) = 0;

  // Monotonic clock, microseconds. Tests can make it jump.
  virtual uint64_t NowMicros() = 0;
  // Wall-clock time, milliseconds since the Unix epoch (file times).
  virtual int64_t WallMillis() = 0;
  virtual void SleepMicros(uint64_t us) = 0;
};

// Forwards every call to a target Env; fault-injecting test Envs derive from it.
class EnvWrapper : public Env {
 public:
  explicit EnvWrapper(Env* target) : target_(target) {}
  Env* target() const { return target_; }
  Status OpenRandomRW(const std::string& p, bool c, std::unique_ptr<RandomRWFile>* o) override {
    return target_->OpenRandomRW(p, c, o);
  }
  Status OpenReadOnly(const std::string& p, std::unique_ptr<RandomRWFile>* o) override {
    return target_->OpenReadOnly(p, o);
  }
  Status OpenAppend(const std::string& p, std::unique_ptr<AppendFile>* o) override {
    return target_->OpenAppend(p, o);
  }
  Status ReadFile(const std::string& p, std::string* o) override { return target_->ReadFile(p, o); }
  Status WriteFileAtomic(const std::string& p, const std::string& d) override {
    return target_->WriteFileAtomic(p, d);
  }
  Status GetChildren(const std::string& d, std::vector<std::string>* n) override {
    return target_->GetChildren(d, n);
  }
  bool FileExists(const std::string& p) override { return target_->FileExists(p); }
  Result<uint64_t> FileSize(const std::string& p) override { return target_->FileSize(p); }
  Status CreateDirs(const std::string& d) override { return target_->CreateDirs(d); }
  Status RemoveFile(const std::string& p) override { return target_->RemoveFile(p); }
  Status RenameFile(const std::string& f, const std::string& t) override {
    return target_->RenameFile(f, t);
  }
  Status SyncDir(const std::string& d) override { return target_->SyncDir(d); }
  Status LockFile(const std::string& p, std::unique_ptr<FileLock>* o) override {
    return target_->LockFile(p, o);
  }
  Result<uint64_t> FreeSpace(const std::string& p) override { return target_->FreeSpace(p); }
  uint64_t NowMicros() override { return target_->NowMicros(); }
  int64_t WallMillis() override { return target_->WallMillis(); }
  void SleepMicros(uint64_t us) override { target_->SleepMicros(us); }

 private:
  Env* target_;
};

}  // namespace gfs
