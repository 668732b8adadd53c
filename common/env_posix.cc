// POSIX implementation of Env.
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <thread>

#include "common/env.h"

namespace gfs {
namespace {

Status ErrnoStatus(const std::string& what, const std::string& path, int err) {
  std::string m = path + ": " + what + ": " + std::strerror(err);
  if (err == ENOENT) return Status::NotFound(m);
  if (err == ENOSPC || err == EDQUOT) return Status::NoSpace(m);
  return Status::IOError(m);
}

class PosixRandomRW : public RandomRWFile {
 public:
  PosixRandomRW(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixRandomRW() override { ::close(fd_); }

  Status Read(uint64_t offset, size_t n, void* buf, size_t* got) override {
    auto* p = static_cast<char*>(buf);
    size_t done = 0;
    while (done < n) {
      ssize_t r = ::pread(fd_, p + done, n - done, static_cast<off_t>(offset + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus("read", path_, errno);
      }
      if (r == 0) break;
      done += static_cast<size_t>(r);
    }
    *got = done;
    return Status::OK();
  }
  Status Write(uint64_t offset, const void* data, size_t n) override {
    const auto* p = static_cast<const char*>(data);
    size_t done = 0;
    while (done < n) {
      ssize_t r = ::pwrite(fd_, p + done, n - done, static_cast<off_t>(offset + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus("write", path_, errno);
      }
      done += static_cast<size_t>(r);
    }
    return Status::OK();
  }
  Status Truncate(uint64_t size) override {
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0)
      return ErrnoStatus("truncate", path_, errno);
    return Status::OK();
  }
  Status Sync() override {
    if (::fdatasync(fd_) != 0) return ErrnoStatus("fsync", path_, errno);
    return Status::OK();
  }
  void StartWriteback(uint64_t offset, uint64_t n) override {
#ifdef __linux__
    // An error here (EIO) comes back from the fdatasync that follows.
    (void)::sync_file_range(fd_, static_cast<off_t>(offset), static_cast<off_t>(n),
                            SYNC_FILE_RANGE_WRITE);
#else
    (void)offset;
    (void)n;
#endif
  }
  Result<uint64_t> Size() override {
    struct stat st;
    if (::fstat(fd_, &st) != 0) return ErrnoStatus("stat", path_, errno);
    return static_cast<uint64_t>(st.st_size);
  }

 private:
  std::string path_;
  int fd_;
};

class PosixAppend : public AppendFile {
 public:
  PosixAppend(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixAppend() override {
    if (fd_ >= 0) ::close(fd_);
  }
  Status Append(const void* data, size_t n) override {
    const auto* p = static_cast<const char*>(data);
    while (n > 0) {
      ssize_t r = ::write(fd_, p, n);
      if (r < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus("append", path_, errno);
      }
      p += r;
      n -= static_cast<size_t>(r);
    }
    return Status::OK();
  }
  Status Sync() override {
    if (::fdatasync(fd_) != 0) return ErrnoStatus("fsync", path_, errno);
    return Status::OK();
  }
  Status Close() override {
    if (fd_ >= 0 && ::close(fd_) != 0) {
      fd_ = -1;
      return ErrnoStatus("close", path_, errno);
    }
    fd_ = -1;
    return Status::OK();
  }

 private:
  std::string path_;
  int fd_;
};

class PosixLock : public FileLock {
 public:
  explicit PosixLock(int fd) : fd_(fd) {}
  ~PosixLock() override {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
  }

 private:
  int fd_;
};

class PosixEnv : public Env {
 public:
  Status OpenRandomRW(const std::string& path, bool create,
                      std::unique_ptr<RandomRWFile>* out) override {
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0644);
    if (fd < 0) return ErrnoStatus("open", path, errno);
    *out = std::make_unique<PosixRandomRW>(path, fd);
    return Status::OK();
  }
  Status OpenReadOnly(const std::string& path, std::unique_ptr<RandomRWFile>* out) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus("open", path, errno);
    *out = std::make_unique<PosixRandomRW>(path, fd);
    return Status::OK();
  }
  Status OpenAppend(const std::string& path, std::unique_ptr<AppendFile>* out) override {
    int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return ErrnoStatus("open", path, errno);
    *out = std::make_unique<PosixAppend>(path, fd);
    return Status::OK();
  }
  Status ReadFile(const std::string& path, std::string* out) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus("open", path, errno);
    out->clear();
    char buf[1 << 16];
    for (;;) {
      ssize_t r = ::read(fd, buf, sizeof buf);
      if (r < 0) {
        if (errno == EINTR) continue;
        int e = errno;
        ::close(fd);
        return ErrnoStatus("read", path, e);
      }
      if (r == 0) break;
      out->append(buf, static_cast<size_t>(r));
    }
    ::close(fd);
    return Status::OK();
  }
  Status WriteFileAtomic(const std::string& path, const std::string& data) override {
    std::string tmp = path + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return ErrnoStatus("open", tmp, errno);
    size_t done = 0;
    while (done < data.size()) {
      ssize_t r = ::write(fd, data.data() + done, data.size() - done);
      if (r < 0) {
        if (errno == EINTR) continue;
        int e = errno;
        ::close(fd);
        return ErrnoStatus("write", tmp, e);
      }
      done += static_cast<size_t>(r);
    }
    if (::fsync(fd) != 0) {
      int e = errno;
      ::close(fd);
      return ErrnoStatus("fsync", tmp, e);
    }
    ::close(fd);
    if (::rename(tmp.c_str(), path.c_str()) != 0) return ErrnoStatus("rename", path, errno);
    auto slash = path.rfind('/');
    return SyncDir(slash == std::string::npos ? "." : path.substr(0, slash));
  }
  Status GetChildren(const std::string& dir, std::vector<std::string>* names) override {
    names->clear();
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return ErrnoStatus("opendir", dir, errno);
    while (struct dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names->push_back(n);
    }
    ::closedir(d);
    return Status::OK();
  }
  bool FileExists(const std::string& path) override { return ::access(path.c_str(), F_OK) == 0; }
  Result<uint64_t> FileSize(const std::string& path) override {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return ErrnoStatus("stat", path, errno);
    return static_cast<uint64_t>(st.st_size);
  }
  Status CreateDirs(const std::string& dir) override {
    if (dir.empty()) return Status::OK();
    std::string cur;
    size_t i = 0;
    while (i <= dir.size()) {
      size_t j = dir.find('/', i);
      if (j == std::string::npos) j = dir.size();
      cur = dir.substr(0, j);
      if (!cur.empty() && ::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST)
        return ErrnoStatus("mkdir", cur, errno);
      i = j + 1;
    }
    struct stat st;
    if (::stat(dir.c_str(), &st) != 0) return ErrnoStatus("stat", dir, errno);
    if (!S_ISDIR(st.st_mode)) return Status(Code::kNotADirectory, dir);
    return Status::OK();
  }
  Status RemoveFile(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return ErrnoStatus("unlink", path, errno);
    return Status::OK();
  }
  Status RenameFile(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return ErrnoStatus("rename", from, errno);
    return Status::OK();
  }
  Status SyncDir(const std::string& dir) override {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus("open", dir, errno);
    int r = ::fsync(fd);
    int e = errno;
    ::close(fd);
    if (r != 0) return ErrnoStatus("fsync", dir, e);
    return Status::OK();
  }
  Status LockFile(const std::string& path, std::unique_ptr<FileLock>* out) override {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return ErrnoStatus("open", path, errno);
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int e = errno;
      ::close(fd);
      if (e == EWOULDBLOCK) return Status(Code::kBusy, path + ": locked by another process");
      return ErrnoStatus("lock", path, e);
    }
    *out = std::make_unique<PosixLock>(fd);
    return Status::OK();
  }
  Result<uint64_t> FreeSpace(const std::string& path) override {
    struct statvfs sv;
    if (::statvfs(path.c_str(), &sv) != 0) return ErrnoStatus("statvfs", path, errno);
    return static_cast<uint64_t>(sv.f_bavail) * sv.f_frsize;
  }
  uint64_t NowMicros() override {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
  }
  int64_t WallMillis() override {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000 + static_cast<int64_t>(ts.tv_nsec) / 1000000;
  }
  void SleepMicros(uint64_t us) override {
    std::this_thread::sleep_for(std::chrono::microseconds(us));
  }
};

}  // namespace

Env* Env::Posix() {
  static PosixEnv env;
  return &env;
}

}  // namespace gfs
