#include "io/tool/transfer.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <random>

#include "common/log.h"
#include "io/tool/commands.h"
#include "io/tool/interrupt.h"
#include "io/tool/listing.h"

namespace gfs::tool {

Status ErrnoStatus(const std::string& what, int err) {
  if (err == ENOENT) return Status::NotFound(what + ": " + std::strerror(err));
  if (err == EEXIST) return Status::AlreadyExists(what + ": " + std::strerror(err));
  if (err == ENOSPC) return Status::NoSpace(what + ": " + std::strerror(err));
  return Status::IOError(what + ": " + std::strerror(err));
}

namespace {

constexpr size_t kIoBuffer = 32u << 20;

Status WriteAll(int fd, const uint8_t* p, size_t n) {
  size_t done = 0;
  while (done < n) {
    ssize_t w = ::write(fd, p + done, n - done);
    if (w < 0 && errno == EINTR) {
      if (Interrupted()) return InterruptedStatus();
      continue;
    }
    if (w < 0) return ErrnoStatus("writing", errno);
    done += static_cast<size_t>(w);
  }
  return Status::OK();
}

// ---- temporaries in the store ----

// DIR/.gfs-tmp.<16 hex>.<name>, the name cut to keep the whole within 255 bytes.
std::string StoreTempFor(const std::string& remote) {
  static std::mt19937_64 rng{std::random_device{}() ^ MonoMicros()};
  std::string name = BaseName(remote);
  std::string prefix = std::string(kTempPrefix) + HexId(rng()) + ".";
  if (prefix.size() + name.size() > 255) name.resize(255 - prefix.size());
  return Join(DirName(remote), prefix + name);
}

// Temporaries of `remote` left by a put or cp that was killed (the data
// directory is locked by one job at a time, and this job writes none yet).
// Each directory is listed once per command (a put -r of many files into one
// directory would list it again for every file).
void CollectLeftovers(Client* c, const std::string& remote) {
  static std::map<std::string, std::vector<std::string>> temps_by_dir;
  const std::string dir = DirName(remote);
  auto it = temps_by_dir.find(dir);
  if (it == temps_by_dir.end()) {
    auto entries = c->List(dir);
    if (!entries.ok()) return;
    std::vector<std::string> temps;
    for (const FileStat& e : *entries) {
      if (!e.is_dir && IsTemp(e.path)) temps.push_back(e.path);
    }
    it = temps_by_dir.emplace(dir, std::move(temps)).first;
  }
  const std::string name = BaseName(remote);
  for (const std::string& n : it->second) {
    const size_t head = std::strlen(kTempPrefix) + 17;  // prefix, 16 hex digits, '.'
    if (n.size() <= head) continue;
    // The name after the prefix; cut when the whole would pass 255 bytes.
    std::string target = n.substr(head);
    if (target == name || (n.size() == 255 && name.rfind(target, 0) == 0)) {
      Status s = c->Remove(Join(dir, n), false);
      GFS_LOG_DEBUG("removed the leftover temporary %s: %s", n.c_str(), s.ToString().c_str());
    }
  }
}

// Writes a new file at `remote` from `fill` (called with the open temporary)
// under a temporary name, and renames it into place once closed (complete and
// synced on every replica). With `force` an existing file is replaced in the
// same logged step; without, an existing file is an error. On any failure the
// temporary is removed; nothing appears under `remote`.
Status WriteAtomically(Client* c, const JobConfig& job, const std::string& remote, bool force,
                       const std::function<Status(File*)>& fill) {
  auto existing = c->Stat(remote);
  if (existing.ok()) {
    if (existing->is_dir) return Status(Code::kIsADirectory, remote);
    if (!force) return Status(Code::kAlreadyExists, "use -f to replace it");
  }
  CollectLeftovers(c, remote);
  const std::string temp = StoreTempFor(remote);
  CreateOptions opts;
  opts.exclusive = true;
  opts.replication = job.replication;
  auto f = c->Create(temp, opts);
  if (!f.ok()) return f.status();
  Status s = fill(&*f);
  if (s.ok() && Interrupted()) s = InterruptedStatus();
  if (s.ok()) s = c->Close(&*f);
  if (s.ok() && Interrupted()) s = InterruptedStatus();
  if (s.ok()) {
    // A replace only when there is a file to replace: a plain rename is an
    // op-log record every build reads.
    s = c->Rename(temp, remote, force && existing.ok());
    if (s.code() == Code::kAlreadyExists && force) s = c->Rename(temp, remote, true);
    if (s.code() == Code::kAlreadyExists) s = Status(Code::kAlreadyExists, "use -f to replace it");
  }
  if (!s.ok()) {
    Status r = c->Remove(temp, false);
    if (!r.ok())
      GFS_LOG_WARN("cannot remove the temporary %s: %s", temp.c_str(), r.ToString().c_str());
  }
  return s;
}

Status PutFile(Client* c, const JobConfig& job, const std::string& local, const std::string& remote,
               bool force, std::string* err_path) {
  int fd = local == "-" ? 0 : ::open(local.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *err_path = local;
    return ErrnoStatus("local file", errno);
  }
  struct stat st;
  uint64_t total =
      (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) ? static_cast<uint64_t>(st.st_size) : 0;
  *err_path = remote;
  std::unique_ptr<uint8_t[]> buf(new uint8_t[kIoBuffer]);
  Progress prog(job.progress, "put " + remote, total);
  uint64_t off = 0;
  Status s = WriteAtomically(c, job, remote, force, [&](File* f) -> Status {
    for (;;) {
      size_t have = 0;
      while (have < kIoBuffer) {
        if (Interrupted()) return InterruptedStatus();
        ssize_t r = ::read(fd, buf.get() + have, kIoBuffer - have);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
          *err_path = local;
          return ErrnoStatus("reading " + local, errno);
        }
        if (r == 0) break;
        have += static_cast<size_t>(r);
      }
      if (have == 0) return Status::OK();
      GFS_RETURN_IF_ERROR(
          c->Write(f, off, buf.get(), have, [&](uint64_t d) { prog.Update(off + d); }));
      off += have;
      if (have < kIoBuffer) return Status::OK();
    }
  });
  if (fd != 0) ::close(fd);
  if (s.ok()) prog.Finish(off);
  return s;
}

}  // namespace

Status PutTree(Client* c, const JobConfig& job, const std::string& local, const std::string& remote,
               bool force, std::string* err_path) {
  struct stat st;
  if (local == "-") return PutFile(c, job, local, remote, force, err_path);
  if (::stat(local.c_str(), &st) != 0) {
    *err_path = local;
    return ErrnoStatus("local path", errno);
  }
  if (!S_ISDIR(st.st_mode)) return PutFile(c, job, local, remote, force, err_path);
  *err_path = remote;
  Status s = c->Mkdir(remote, true);
  if (!s.ok()) return s;
  DIR* d = ::opendir(local.c_str());
  if (d == nullptr) {
    *err_path = local;
    return ErrnoStatus("opendir", errno);
  }
  std::vector<std::string> names;
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  for (const std::string& n : names) {
    s = PutTree(c, job, Join(local, n), Join(remote, n), force, err_path);
    if (!s.ok()) return s;
    if (Interrupted()) return InterruptedStatus();
  }
  return Status::OK();
}

// Copies [from, to) of f to fd. A failed local write sets *local_error.
Status CopyOut(Client* c, File* f, uint64_t from, uint64_t to, int fd, Progress* prog,
               bool* local_error) {
  const size_t cap =
      static_cast<size_t>(std::min<uint64_t>(kIoBuffer, std::max<uint64_t>(to - from, 1)));
  std::unique_ptr<uint8_t[]> buf(new uint8_t[cap]);
  uint64_t off = from;
  while (off < to) {
    if (Interrupted()) return InterruptedStatus();
    size_t want = static_cast<size_t>(std::min<uint64_t>(cap, to - off));
    auto n = c->Read(f, off, buf.get(), want, [&](uint64_t d) {
      if (prog) prog->Update(off - from + d);
    });
    if (!n.ok()) return n.status();
    if (*n == 0) break;
    if (Interrupted()) return InterruptedStatus();
    Status w = WriteAll(fd, buf.get(), *n);
    if (!w.ok()) {
      if (local_error) *local_error = true;
      return w;
    }
    off += *n;
  }
  return Status::OK();
}

namespace {

Status GetFile(Client* c, const JobConfig& job, const std::string& remote, const std::string& local,
               bool force, std::string* err_path) {
  *err_path = remote;
  auto f = c->Open(remote);
  if (!f.ok()) return f.status();
  Progress prog(job.progress, "get " + remote, f->length);
  if (local == "-") {
    Status s = CopyOut(c, &*f, 0, UINT64_MAX, 1, &prog);
    if (s.ok()) prog.Finish(f->length);
    return s;
  }
  struct stat lst;
  if (::stat(local.c_str(), &lst) == 0 && !S_ISREG(lst.st_mode) && !S_ISDIR(lst.st_mode)) {
    // A device or a pipe (/dev/null): written as it is, no temporary.
    int fd = ::open(local.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
      *err_path = local;
      return ErrnoStatus("opening", errno);
    }
    Status s = CopyOut(c, &*f, 0, UINT64_MAX, fd, &prog);
    ::close(fd);
    if (s.ok()) prog.Finish(f->length);
    return s;
  }
  if (::lstat(local.c_str(), &lst) == 0) {
    *err_path = local;
    if (S_ISDIR(lst.st_mode)) return Status(Code::kIsADirectory, local);
    if (!force) return Status(Code::kAlreadyExists, "use get -f to replace it");
  }
  std::string name = BaseName(local);
  if (name.size() > 200) name.resize(200);
  std::string temp = Join(DirName(local), std::string(kTempPrefix) + "XXXXXX." + name);
  std::vector<char> tbuf(temp.begin(), temp.end());
  tbuf.push_back('\0');
  int fd = ::mkostemps(tbuf.data(), static_cast<int>(name.size() + 1), O_CLOEXEC);
  if (fd < 0) {
    *err_path = local;
    return ErrnoStatus("creating a temporary beside it", errno);
  }
  temp = tbuf.data();
  SetLocalTemp(temp);
  mode_t mask = ::umask(0);
  ::umask(mask);
  ::fchmod(fd, 0666 & ~mask);
  bool local_error = false;
  Status s = CopyOut(c, &*f, 0, UINT64_MAX, fd, &prog, &local_error);
  if (local_error) *err_path = local;
  if (s.ok() && ::fdatasync(fd) != 0) {
    *err_path = local;
    s = ErrnoStatus("syncing", errno);
  }
  if (::close(fd) != 0 && s.ok()) {
    *err_path = local;
    s = ErrnoStatus("closing", errno);
  }
  if (s.ok() && Interrupted()) s = InterruptedStatus();
  if (s.ok() && ::rename(temp.c_str(), local.c_str()) != 0) {
    *err_path = local;
    s = ErrnoStatus("renaming the temporary into place", errno);
  }
  ClearLocalTemp();
  if (!s.ok()) ::unlink(temp.c_str());
  if (s.ok()) prog.Finish(f->length);
  return s;
}

}  // namespace

Status GetTree(Client* c, const JobConfig& job, const std::string& remote, const std::string& local,
               bool recursive, bool force, std::string* err_path) {
  *err_path = remote;
  auto st = c->Stat(remote);
  if (!st.ok()) return st.status();
  if (!st->is_dir) return GetFile(c, job, remote, local, force, err_path);
  if (!recursive) return Status(Code::kIsADirectory, "use get -r");
  if (::mkdir(local.c_str(), 0777) != 0 && errno != EEXIST) {
    *err_path = local;
    return ErrnoStatus("mkdir", errno);
  }
  auto entries = c->List(remote);
  if (!entries.ok()) return entries.status();
  for (const FileStat& e : *entries) {
    if (IsTemp(e.path)) continue;  // a transfer in progress or killed: not a file yet
    if (Join(remote, e.path) == kTrashDir)
      continue;  // deleted entries (get -r /.trash copies them)
    if (Interrupted()) return InterruptedStatus();
    Status s = GetTree(c, job, Join(remote, e.path), Join(local, e.path), true, force, err_path);
    if (!s.ok()) return s;
  }
  return Status::OK();
}

Status CopyTree(Client* c, const JobConfig& job, const std::string& src, const std::string& dst,
                bool force, std::string* err_path) {
  *err_path = src;
  auto st = c->Stat(src);
  if (!st.ok()) return st.status();
  if (st->is_dir) {
    *err_path = dst;
    GFS_RETURN_IF_ERROR(c->Mkdir(dst, true));
    auto entries = c->List(src);
    if (!entries.ok()) return entries.status();
    for (const FileStat& e : *entries) {
      if (IsTemp(e.path) || Join(src, e.path) == kTrashDir) continue;
      if (Interrupted()) return InterruptedStatus();
      GFS_RETURN_IF_ERROR(CopyTree(c, job, Join(src, e.path), Join(dst, e.path), force, err_path));
    }
    return Status::OK();
  }
  auto in = c->Open(src);
  if (!in.ok()) return in.status();
  *err_path = dst;
  std::unique_ptr<uint8_t[]> buf(new uint8_t[kIoBuffer]);
  Progress prog(job.progress, "cp " + src, in->length);
  return WriteAtomically(c, job, dst, force, [&](File* out) -> Status {
    uint64_t off = 0;
    for (;;) {
      if (Interrupted()) return InterruptedStatus();
      auto n = c->Read(&*in, off, buf.get(), kIoBuffer);
      if (!n.ok()) return n.status();
      if (*n == 0) return Status::OK();
      GFS_RETURN_IF_ERROR(c->Write(out, off, buf.get(), *n));
      off += *n;
      prog.Update(off);
    }
  });
}

Result<uint64_t> ParseOffset(const std::string& s) {
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos || s.size() > 19) {
    return Status::InvalidArgument("write: OFFSET must be a byte count, got '" + OneLine(s, 60) +
                                   "'");
  }
  return static_cast<uint64_t>(std::stoull(s));
}

Status ReadLocal(const std::string& local, std::vector<uint8_t>* out) {
  int fd = local == "-" ? 0 : ::open(local.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("local file " + local, errno);
  out->clear();
  uint8_t buf[1 << 16];
  for (;;) {
    ssize_t r = ::read(fd, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      if (fd != 0) ::close(fd);
      return ErrnoStatus("reading " + local, e);
    }
    if (r == 0) break;
    out->insert(out->end(), buf, buf + r);
  }
  if (fd != 0) ::close(fd);
  return Status::OK();
}

}  // namespace gfs::tool
