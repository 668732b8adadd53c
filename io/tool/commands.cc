#include "io/tool/commands.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/log.h"
#include "io/h5/export.h"
#include "io/record_io.h"
#include "jobs/producer_consumer.h"

namespace gfs::tool {

using Json = nlohmann::json;

namespace {

constexpr size_t kIoBuffer = 32u << 20;

// ---- interrupts ----

volatile sig_atomic_t g_interrupted = 0;
// The local temporary file being written (get), removed by the handler.
char g_local_temp[8192];
volatile sig_atomic_t g_local_temp_set = 0;

void OnInterrupt(int sig) {
  g_interrupted = sig;
  if (g_local_temp_set) {
    ::unlink(g_local_temp);
    g_local_temp_set = 0;
  }
}

void SetLocalTemp(const std::string& path) {
  if (path.size() >= sizeof g_local_temp) return;
  g_local_temp_set = 0;
  std::memcpy(g_local_temp, path.c_str(), path.size() + 1);
  g_local_temp_set = 1;
}

void ClearLocalTemp() { g_local_temp_set = 0; }

Status InterruptedStatus() {
  return Status(Code::kUnavailable,
                std::string("interrupted by ") + (g_interrupted == SIGINT ? "SIGINT" : "SIGTERM"));
}

// ---- output ----

// "gfs: get: /x: no such file or directory" (+ " (detail)" when the detail
// adds something). Always one line.
void PrintError(const std::string& cmd, const std::string& path, const Status& s) {
  std::string line = "gfs: " + cmd + ": ";
  if (!path.empty()) line += OneLine(path, 300) + ": ";
  line += CodeName(s.code());
  const std::string& m = s.message();
  if (!m.empty() && m != path) line += " (" + OneLine(m, 600) + ")";
  std::fprintf(stderr, "%s\n", line.c_str());
}

void PrintJson(const Json& j) {
  std::string s = j.dump(-1, ' ', false, Json::error_handler_t::replace);
  std::printf("%s\n", s.c_str());
}

// Names in text listings: control characters as '?', like ls(1) on a terminal.
std::string Shown(const std::string& s) {
  std::string o = s;
  for (char& c : o) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return o;
}

std::string Size(uint64_t v, bool human) { return human ? HumanSize(v) : std::to_string(v); }

std::string TimeText(int64_t ms) {
  time_t t = static_cast<time_t>(ms / 1000);
  struct tm tm;
  localtime_r(&t, &tm);
  char b[32];
  std::strftime(b, sizeof b, "%Y-%m-%d %H:%M", &tm);
  return b;
}

std::string HexId(uint64_t id) {
  char b[20];
  std::snprintf(b, sizeof b, "%016" PRIx64, id);
  return b;
}

std::string BaseName(const std::string& p) {
  std::string s = p;
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  auto slash = s.rfind('/');
  return slash == std::string::npos ? s : s.substr(slash + 1);
}

std::string DirName(const std::string& p) {
  std::string s = p;
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  auto slash = s.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return s.substr(0, slash);
}

std::string Join(const std::string& dir, const std::string& name) {
  if (!dir.empty() && dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

bool IsTemp(const std::string& name) { return name.rfind(kTempPrefix, 0) == 0; }

Json StatJson(const FileStat& s) {
  Json j;
  j["path"] = s.path;
  j["type"] = s.is_dir ? "dir" : "file";
  j["size"] = s.size;
  j["replication"] = s.replication;
  j["chunk_size"] = s.chunk_size;
  j["chunks"] = s.chunks;
  j["mtime_ms"] = s.mtime_ms;
  return j;
}

// Progress of a long transfer on stderr. On a terminal (as the launcher saw
// it: GFS_PROGRESS_TTY=1) one line redrawn in place with bytes, percent,
// rate and time left; otherwise a plain line every few seconds.
class Progress {
 public:
  Progress(bool on, std::string what, uint64_t total)
      : on_(on), what_(std::move(what)), total_(total), start_(MonoMicros()) {
    const char* tty = std::getenv("GFS_PROGRESS_TTY");
    tty_ = tty != nullptr && std::string(tty) == "1";
  }
  void Update(uint64_t done) {
    if (!on_) return;
    uint64_t now = MonoMicros();
    if (now < next_) return;
    next_ = now + (tty_ ? 200000 : 2000000);
    Print(done, now, false);
  }
  void Finish(uint64_t done) {
    if (!on_) return;
    Print(done, MonoMicros(), true);
  }

 private:
  void Print(uint64_t done, uint64_t now, bool last) {
    double secs = static_cast<double>(now - start_) / 1e6;
    double rate = secs > 0 ? static_cast<double>(done) / secs : 0;
    std::string line = OneLine(what_, 60) + ": " + HumanSize(done);
    if (total_ > 0) {
      char b[64];
      std::snprintf(
          b, sizeof b, " / %s (%.0f%%)", HumanSize(total_).c_str(),
          100.0 * static_cast<double>(std::min(done, total_)) / static_cast<double>(total_));
      line += b;
    }
    line += ", " + HumanSize(static_cast<uint64_t>(rate)) + "/s";
    if (last) {
      char b[32];
      std::snprintf(b, sizeof b, " in %.1f s", secs);
      line += b;
    } else if (total_ > done && rate > 0) {
      uint64_t left = static_cast<uint64_t>(static_cast<double>(total_ - done) / rate);
      char b[48];
      std::snprintf(b, sizeof b, ", ETA %" PRIu64 ":%02" PRIu64, left / 60, left % 60);
      line += b;
    }
    if (tty_) {
      std::fprintf(stderr, "\r%-78s%s", line.c_str(), last ? "\n" : "");
    } else {
      std::fprintf(stderr, "%s\n", line.c_str());
    }
    std::fflush(stderr);
  }

  bool on_;
  bool tty_ = false;
  std::string what_;
  uint64_t total_;
  uint64_t start_;
  uint64_t next_ = 0;
};

Status ErrnoStatus(const std::string& what, int err) {
  if (err == ENOENT) return Status::NotFound(what + ": " + std::strerror(err));
  if (err == EEXIST) return Status::AlreadyExists(what + ": " + std::strerror(err));
  if (err == ENOSPC) return Status::NoSpace(what + ": " + std::strerror(err));
  return Status::IOError(what + ": " + std::strerror(err));
}

Status WriteAll(int fd, const uint8_t* p, size_t n) {
  size_t done = 0;
  while (done < n) {
    ssize_t w = ::write(fd, p + done, n - done);
    if (w < 0 && errno == EINTR) {
      if (g_interrupted) return InterruptedStatus();
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
  if (s.ok() && g_interrupted) s = InterruptedStatus();
  if (s.ok()) s = c->Close(&*f);
  if (s.ok() && g_interrupted) s = InterruptedStatus();
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

// ---- put ----

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
        if (g_interrupted) return InterruptedStatus();
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
    if (g_interrupted) return InterruptedStatus();
  }
  return Status::OK();
}

// ---- get ----

// Copies [from, to) of f to fd. A failed local write sets *local_error.
Status CopyOut(Client* c, File* f, uint64_t from, uint64_t to, int fd, Progress* prog,
               bool* local_error = nullptr) {
  const size_t cap =
      static_cast<size_t>(std::min<uint64_t>(kIoBuffer, std::max<uint64_t>(to - from, 1)));
  std::unique_ptr<uint8_t[]> buf(new uint8_t[cap]);
  uint64_t off = from;
  while (off < to) {
    if (g_interrupted) return InterruptedStatus();
    size_t want = static_cast<size_t>(std::min<uint64_t>(cap, to - off));
    auto n = c->Read(f, off, buf.get(), want, [&](uint64_t d) {
      if (prog) prog->Update(off - from + d);
    });
    if (!n.ok()) return n.status();
    if (*n == 0) break;
    if (g_interrupted) return InterruptedStatus();
    Status w = WriteAll(fd, buf.get(), *n);
    if (!w.ok()) {
      if (local_error) *local_error = true;
      return w;
    }
    off += *n;
  }
  return Status::OK();
}

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
  if (s.ok() && g_interrupted) s = InterruptedStatus();
  if (s.ok() && ::rename(temp.c_str(), local.c_str()) != 0) {
    *err_path = local;
    s = ErrnoStatus("renaming the temporary into place", errno);
  }
  ClearLocalTemp();
  if (!s.ok()) ::unlink(temp.c_str());
  if (s.ok()) prog.Finish(f->length);
  return s;
}

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
    if (g_interrupted) return InterruptedStatus();
    Status s = GetTree(c, job, Join(remote, e.path), Join(local, e.path), true, force, err_path);
    if (!s.ok()) return s;
  }
  return Status::OK();
}

// ---- cp ----

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
      if (IsTemp(e.path)) continue;
      if (g_interrupted) return InterruptedStatus();
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
      if (g_interrupted) return InterruptedStatus();
      auto n = c->Read(&*in, off, buf.get(), kIoBuffer);
      if (!n.ok()) return n.status();
      if (*n == 0) return Status::OK();
      GFS_RETURN_IF_ERROR(c->Write(out, off, buf.get(), *n));
      off += *n;
      prog.Update(off);
    }
  });
}

// ---- walking the namespace ----

struct Usage {
  uint64_t dirs = 0, files = 0, size = 0, space = 0;
};

Status Walk(Client* c, const FileStat& at, const std::string& path, Usage* u) {
  if (!at.is_dir) {
    ++u->files;
    u->size += at.size;
    u->space += at.size * at.replication;
    return Status::OK();
  }
  ++u->dirs;
  auto entries = c->List(path);
  if (!entries.ok()) return entries.status();
  for (const FileStat& e : *entries) {
    if (g_interrupted) return InterruptedStatus();
    GFS_RETURN_IF_ERROR(Walk(c, e, Join(path, e.path), u));
  }
  return Status::OK();
}

// The entries a listing shows for PATH: its children when it is a
// directory, else the file itself. Paths are full.
Result<std::vector<FileStat>> Entries(Client* c, const std::string& path, bool* is_dir) {
  auto st = c->Stat(path);
  if (!st.ok()) return st.status();
  std::vector<FileStat> items;
  *is_dir = st->is_dir;
  if (!st->is_dir) {
    FileStat f = *st;
    f.path = path;
    items.push_back(f);
    return items;
  }
  auto entries = c->List(path);
  if (!entries.ok()) return entries.status();
  for (FileStat e : *entries) {
    e.path = Join(path, e.path);
    items.push_back(e);
  }
  return items;
}

// ---- ls ----

struct LsOptions {
  bool recursive = false, lng = false, human = false, json = false;
};

void PrintLsLine(const FileStat& s, const LsOptions& o) {
  const std::string path = Shown(s.path);
  if (o.lng) {
    // HDFS's columns; mode, owner and group are placeholders until the master keeps them.
    std::printf("%s %3s %-5s %-5s %10s %s %s\n", s.is_dir ? "drwxr-xr-x" : "-rw-r--r--",
                s.is_dir ? "-" : std::to_string(s.replication).c_str(), "-", "-",
                Size(s.is_dir ? 0 : s.size, o.human).c_str(),
                s.mtime_ms > 0 ? TimeText(s.mtime_ms).c_str() : "-               ", path.c_str());
    return;
  }
  if (s.is_dir) {
    std::printf("d %3s %10s %7s %15s  %s\n", "-", "-", "-", "-", path.c_str());
  } else {
    std::printf("- %3u %10s %7u %15s  %s\n", s.replication, Size(s.chunk_size, o.human).c_str(),
                s.chunks, Size(s.size, o.human).c_str(), path.c_str());
  }
}

Status Ls(Client* c, const std::string& path, const LsOptions& o, Json* out) {
  bool is_dir = false;
  auto items = Entries(c, path, &is_dir);
  if (!items.ok()) return items.status();
  for (const FileStat& e : *items) {
    if (o.json) {
      out->push_back(StatJson(e));
    } else {
      PrintLsLine(e, o);
    }
    if (o.recursive && e.is_dir) GFS_RETURN_IF_ERROR(Ls(c, e.path, o, out));
  }
  return Status::OK();
}

// ---- head / tail ----

Status Head(Client* c, const std::string& path, uint64_t bytes) {
  auto f = c->Open(path);
  if (!f.ok()) return f.status();
  return CopyOut(c, &*f, 0, std::min(bytes, f->length), 1, nullptr);
}

Status Tail(Client* c, const std::string& path, uint64_t bytes, uint64_t lines, bool by_lines) {
  auto f = c->Open(path);
  if (!f.ok()) return f.status();
  // Up to the committed length: every record append below it is complete.
  auto end = c->CommittedLength(&*f);
  if (!end.ok()) return end.status();
  if (!by_lines) return CopyOut(c, &*f, *end - std::min(bytes, *end), *end, 1, nullptr);
  // Read backwards in blocks until lines + 1 line ends are seen (a final
  // line end does not count).
  constexpr uint64_t kBlock = 64 << 10;
  uint64_t start = *end;
  uint64_t seen = 0;
  std::vector<uint8_t> buf(kBlock);
  bool found = false;
  while (start > 0 && !found) {
    uint64_t from = start - std::min(kBlock, start);
    auto n = c->Read(&*f, from, buf.data(), static_cast<size_t>(start - from));
    if (!n.ok()) return n.status();
    for (uint64_t i = *n; i > 0; --i) {
      uint64_t pos = from + i - 1;
      if (buf[static_cast<size_t>(i - 1)] != '\n' || pos + 1 == *end) continue;
      if (++seen == lines) {
        start = pos + 1;
        found = true;
        break;
      }
    }
    if (!found) start = from;
  }
  return CopyOut(c, &*f, lines == 0 ? *end : start, *end, 1, nullptr);
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

// ---- report, df, fsck ----

// Chunkservers as `report`, `df` and `fsck` show them: by their stable
// identity (the directory they serve and its 64-bit id), with the rank of
// this job beside it.
struct Server {
  ServerReport r;
  uint64_t capacity = 0, free = 0;
};

// Each server's capacity: the configured one; else its share of the free
// space of the file system it shares with the other chunkservers of its host
// (the ones on one host serve directories under one data directory), so that
// the free space of one disk is counted once, not once per server.
std::vector<Server> Servers(const ReportReply& rep, const JobConfig& job) {
  std::vector<Server> out;
  std::map<std::string, std::pair<uint64_t, int>> by_host;  // host -> (free, alive servers)
  for (const ServerReport& r : rep.servers) {
    if (!r.alive || job.capacity > 0) continue;
    auto& h = by_host[r.host];
    h.first = std::max(h.first, r.capacity > r.used ? r.capacity - r.used : 0);
    h.second++;
  }
  for (const ServerReport& r : rep.servers) {
    Server s;
    s.r = r;
    if (job.capacity > 0 || !r.alive) {
      s.capacity = r.capacity;
      s.free = r.alive && r.capacity > r.used ? r.capacity - r.used : 0;
    } else {
      const auto& h = by_host[r.host];
      s.free = h.first / static_cast<uint64_t>(h.second);
      s.capacity = r.used + s.free;
    }
    out.push_back(s);
  }
  std::sort(out.begin(), out.end(),
            [](const Server& a, const Server& b) { return a.r.dir_name < b.r.dir_name; });
  return out;
}

struct Totals {
  uint64_t servers = 0, alive = 0, capacity = 0, used = 0, free = 0;
};

Totals Total(const std::vector<Server>& v) {
  Totals t;
  for (const Server& s : v) {
    ++t.servers;
    if (!s.r.alive) continue;
    ++t.alive;
    t.capacity += s.capacity;
    t.used += s.r.used;
    t.free += s.free;
  }
  return t;
}

double Percent(uint64_t part, uint64_t whole) {
  return whole == 0 ? 0.0 : 100.0 * static_cast<double>(part) / static_cast<double>(whole);
}

Json ServerJson(const ServerReport& r) {
  return Json{{"id", HexId(r.id)}, {"dir", r.dir_name}, {"host", r.host}, {"rank", r.rank}};
}

int Report(Client* c, const JobConfig& job, const CommandArgs& a, Status* s) {
  auto rep = c->Report();
  *s = rep.status();
  if (!s->ok()) return 1;
  const bool human = a.Flag("human");
  std::vector<Server> servers = Servers(*rep, job);
  Totals t = Total(servers);
  if (a.Flag("json")) {
    Json j;
    j["chunkservers"] = Json::array();
    for (const Server& sv : servers) {
      Json x = ServerJson(sv.r);
      x["state"] = sv.r.alive ? "alive" : "dead";
      x["capacity"] = sv.capacity;
      x["used"] = sv.r.used;
      x["free"] = sv.free;
      x["chunks"] = sv.r.chunks;
      j["chunkservers"].push_back(x);
    }
    j["total"] = Json{{"chunkservers", t.servers},
                      {"alive", t.alive},
                      {"capacity", t.capacity},
                      {"used", t.used},
                      {"free", t.free}};
    j["chunks"] = rep->chunks;
    j["under_replicated"] = rep->under_replicated;
    j["missing"] = rep->lost;
    PrintJson(j);
    return 0;
  }
  std::printf("%-16s  %-16s %5s %-14s %-5s %12s %12s %12s %8s\n", "identity", "dir", "rank", "host",
              "state", "capacity", "used", "free", "chunks");
  for (const Server& sv : servers) {
    std::printf("%-16s  %-16s %5d %-14s %-5s %12s %12s %12s %8u\n", HexId(sv.r.id).c_str(),
                Shown(sv.r.dir_name).c_str(), sv.r.rank, Shown(sv.r.host).c_str(),
                sv.r.alive ? "alive" : "dead", Size(sv.capacity, human).c_str(),
                Size(sv.r.used, human).c_str(), Size(sv.free, human).c_str(), sv.r.chunks);
  }
  std::printf("total: %" PRIu64 " chunkservers (%" PRIu64
              " alive), capacity %s, used %s, free %s; chunks %" PRIu64
              ", under-replicated %" PRIu64 ", missing %" PRIu64 "\n",
              t.servers, t.alive, Size(t.capacity, human).c_str(), Size(t.used, human).c_str(),
              Size(t.free, human).c_str(), rep->chunks, rep->under_replicated, rep->lost);
  return 0;
}

int Df(Client* c, const JobConfig& job, const CommandArgs& a, Status* s) {
  auto rep = c->Report();
  *s = rep.status();
  if (!s->ok()) return 1;
  Totals t = Total(Servers(*rep, job));
  const std::string fs = "gfs:" + job.data_dir;
  if (a.Flag("json")) {
    PrintJson(Json{{"filesystem", fs},
                   {"capacity", t.capacity},
                   {"used", t.used},
                   {"free", t.free},
                   {"use_percent", static_cast<int>(Percent(t.used, t.capacity) + 0.5)},
                   {"chunkservers", t.servers},
                   {"alive", t.alive}});
    return 0;
  }
  const bool human = a.Flag("human");
  std::printf("%-30s %14s %14s %14s %5s\n", "Filesystem", "Size", "Used", "Available", "Use%");
  std::printf("%-30s %14s %14s %14s %4.0f%%\n", Shown(fs).c_str(), Size(t.capacity, human).c_str(),
              Size(t.used, human).c_str(), Size(t.free, human).c_str(),
              Percent(t.used, t.capacity));
  return 0;
}

// fsck exit statuses (doc/options.md).
constexpr int kFsckUnderReplicated = 4;
constexpr int kFsckMissing = 5;

struct FsckTotals {
  uint64_t files = 0, chunks = 0, healthy = 0, under = 0, missing = 0, corrupt = 0, stale = 0;
  uint64_t unreadable_bytes = 0;  // bytes no replica holds a good copy of
};

FsckTotals CountFsck(const std::vector<FsckFile>& files) {
  FsckTotals t;
  for (const FsckFile& f : files) {
    ++t.files;
    for (const FsckChunk& ch : f.chunks) {
      ++t.chunks;
      t.corrupt += ch.corrupt.size();
      t.stale += ch.stale;
      for (const ByteRange& r : ch.unreadable) t.unreadable_bytes += r.length;
      // Missing: no replica at all, or bytes no replica holds good (damaged
      // replicas alone, with every block good somewhere, are repairable).
      if ((ch.replicas.empty() && ch.corrupt.empty()) || !ch.unreadable.empty()) {
        ++t.missing;
      } else if (ch.replicas.size() < f.replication) {
        ++t.under;
      } else {
        ++t.healthy;
      }
    }
  }
  return t;
}

// [[offset, length], ...] of chunk ranges, at file offset `base`.
Json RangesJson(const std::vector<ByteRange>& v, uint64_t base) {
  Json out = Json::array();
  for (const ByteRange& r : v) out.push_back(Json::array({base + r.offset, r.length}));
  return out;
}

// "A..B, C..D" of chunk ranges, at file offset `base`.
std::string RangesText(const std::vector<ByteRange>& v, uint64_t base) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(base + v[i].offset) + ".." +
         std::to_string(base + v[i].offset + v[i].length);
  }
  return s;
}

int PrintFsck(const FsckReply& rep, const std::map<int32_t, ServerReport>& names, bool json) {
  FsckTotals all = CountFsck(rep.files);
  const char* status = all.missing ? "missing" : all.under ? "under-replicated" : "healthy";
  auto server_json = [&](int32_t rank) {
    auto it = names.find(rank);
    if (it == names.end()) return Json{{"id", nullptr}, {"dir", nullptr}, {"rank", rank}};
    return ServerJson(it->second);
  };
  auto server_text = [&](const std::vector<int32_t>& ranks) {
    std::string s = "[";
    for (size_t i = 0; i < ranks.size(); ++i) {
      if (i) s += ", ";
      auto it = names.find(ranks[i]);
      s += it == names.end()
               ? "rank " + std::to_string(ranks[i])
               : Shown(it->second.dir_name) + " (rank " + std::to_string(ranks[i]) + ")";
    }
    return s + "]";
  };
  if (json) {
    Json j;
    j["status"] = status;
    j["files"] = Json::array();
    for (const FsckFile& f : rep.files) {
      FsckTotals t = CountFsck({f});
      Json jf{{"path", f.path},
              {"size", f.length},
              {"replication", f.replication},
              {"chunks", t.chunks},
              {"healthy", t.healthy},
              {"under_replicated", t.under},
              {"missing", t.missing},
              {"corrupt_replicas", t.corrupt},
              {"stale_replicas", t.stale},
              {"unreadable_bytes", t.unreadable_bytes}};
      jf["chunk_list"] = Json::array();
      for (const FsckChunk& ch : f.chunks) {
        const uint64_t base = uint64_t{ch.index} * f.chunk_size;
        Json jc{{"index", ch.index},
                {"handle", HexId(ch.handle)},
                {"version", ch.version},
                {"stale", ch.stale}};
        jc["replicas"] = Json::array();
        for (int32_t r : ch.replicas) jc["replicas"].push_back(server_json(r));
        jc["corrupt"] = Json::array();
        for (int32_t r : ch.corrupt) jc["corrupt"].push_back(server_json(r));
        jc["damaged"] = Json::array();
        for (const ReplicaDamage& d : ch.damaged) {
          Json jd = server_json(d.rank);
          jd["ranges"] = RangesJson(d.ranges, base);
          jc["damaged"].push_back(jd);
        }
        jc["unreadable"] = RangesJson(ch.unreadable, base);
        jf["chunk_list"].push_back(jc);
      }
      j["files"].push_back(jf);
    }
    j["total"] = Json{{"files", all.files},          {"chunks", all.chunks},
                      {"healthy", all.healthy},      {"under_replicated", all.under},
                      {"missing", all.missing},      {"corrupt_replicas", all.corrupt},
                      {"stale_replicas", all.stale}, {"unreadable_bytes", all.unreadable_bytes}};
    PrintJson(j);
  } else {
    for (const FsckFile& f : rep.files) {
      FsckTotals t = CountFsck({f});
      std::printf("%s: %" PRIu64 " bytes, %" PRIu64 " chunks, replication %u: %" PRIu64
                  " healthy, %" PRIu64 " under-replicated, %" PRIu64 " missing, %" PRIu64
                  " corrupt replicas, %" PRIu64 " stale replicas\n",
                  Shown(f.path).c_str(), f.length, t.chunks, f.replication, t.healthy, t.under,
                  t.missing, t.corrupt, t.stale);
      for (const FsckChunk& ch : f.chunks) {
        if (ch.replicas.size() >= f.replication && ch.corrupt.empty() && ch.stale == 0) continue;
        std::printf("  chunk %u (handle %016" PRIx64 ", version %" PRIu64
                    "): %zu of %u replicas %s, corrupt %s, stale %u\n",
                    ch.index, ch.handle, ch.version, ch.replicas.size(), f.replication,
                    server_text(ch.replicas).c_str(), server_text(ch.corrupt).c_str(), ch.stale);
        const uint64_t base = uint64_t{ch.index} * f.chunk_size;
        for (const ReplicaDamage& d : ch.damaged) {
          std::printf("    %s damaged at bytes %s (kept; repaired from a good copy)\n",
                      server_text({d.rank}).c_str(), RangesText(d.ranges, base).c_str());
        }
        if (!ch.unreadable.empty()) {
          std::printf("    unreadable: bytes %s (no replica holds a good copy)\n",
                      RangesText(ch.unreadable, base).c_str());
        }
      }
    }
    std::printf("%" PRIu64 " files, %" PRIu64 " chunks: %" PRIu64 " healthy, %" PRIu64
                " under-replicated, %" PRIu64 " missing; status: %s\n",
                all.files, all.chunks, all.healthy, all.under, all.missing, status);
  }
  return all.missing ? kFsckMissing : all.under ? kFsckUnderReplicated : 0;
}

Result<uint64_t> SizeValue(const CommandArgs& a, const char* name, uint64_t def) {
  const std::string* v = a.Value(name);
  if (v == nullptr) return def;
  return ParseSize(name, *v);
}

}  // namespace

std::string HumanSize(uint64_t v) {
  static const char* kUnits = "KMGTPE";
  if (v < 1024) return std::to_string(v);
  double d = static_cast<double>(v);
  int u = -1;
  while (d >= 1024 && u < 5) {
    d /= 1024;
    ++u;
  }
  char b[32];
  if (d < 10 && d != static_cast<double>(static_cast<uint64_t>(d)))
    std::snprintf(b, sizeof b, "%.1f%c", d, kUnits[u]);
  else
    std::snprintf(b, sizeof b, "%.0f%c", d, kUnits[u]);
  return b;
}

void InstallInterruptHandlers() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = OnInterrupt;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

int Interrupted() { return g_interrupted; }

void SetLogLevel(int verbosity) {
  log::SetLevel(verbosity < 0   ? log::Level::kError
                : verbosity > 0 ? log::Level::kDebug
                                : log::Level::kWarn);
}

int RunCommand(Client* c, const JobConfig& job, const CommandSpec& spec, const CommandArgs& a) {
  const std::string cmd = spec.name;
  const auto& p = a.positional;
  std::string err_path;
  Status s;
  int code = 0;
  if (cmd == "put") {
    std::string remote = p[1];
    auto st = c->Stat(remote);
    if (st.ok() && st->is_dir) remote = Join(remote, BaseName(p[0] == "-" ? "stdin" : p[0]));
    struct stat ls;
    if (p[0] != "-" && ::stat(p[0].c_str(), &ls) == 0 && S_ISDIR(ls.st_mode) &&
        !a.Flag("recursive")) {
      err_path = p[0];
      s = Status(Code::kIsADirectory, "use put -r");
    } else {
      s = PutTree(c, job, p[0], remote, a.Flag("force"), &err_path);
    }
  } else if (cmd == "get") {
    std::string local = p[1];
    struct stat ls;
    if (local != "-" && ::stat(local.c_str(), &ls) == 0 && S_ISDIR(ls.st_mode)) {
      local = Join(local, BaseName(p[0]));
    }
    s = GetTree(c, job, p[0], local, a.Flag("recursive"), a.Flag("force"), &err_path);
  } else if (cmd == "cat") {
    for (const std::string& path : p) {
      s = GetTree(c, job, path, "-", false, false, &err_path);
      if (!s.ok()) break;
    }
  } else if (cmd == "head" || cmd == "tail") {
    err_path = p[0];
    auto bytes = SizeValue(a, "bytes", 1024);
    s = bytes.status();
    if (s.ok() && cmd == "head") s = Head(c, p[0], *bytes);
    if (s.ok() && cmd == "tail") {
      const std::string* n = a.Value("lines");
      s = Tail(c, p[0], *bytes, n ? std::stoull(*n) : 0, n != nullptr);
    }
  } else if (cmd == "ls") {
    LsOptions o{a.Flag("recursive"), a.Flag("long"), a.Flag("human"), a.Flag("json")};
    Json out = Json::array();
    for (const std::string& path : p.empty() ? std::vector<std::string>{"/"} : p) {
      err_path = path;
      s = Ls(c, path, o, &out);
      if (!s.ok()) break;
    }
    if (s.ok() && o.json) PrintJson(out);
  } else if (cmd == "stat") {
    err_path = p[0];
    auto st = c->Stat(p[0]);
    s = st.status();
    if (st.ok()) {
      FileStat f = *st;
      f.path = p[0];
      if (a.Flag("json")) {
        PrintJson(StatJson(f));
      } else {
        std::printf("path: %s\ntype: %s\nsize: %" PRIu64 "\n", Shown(f.path).c_str(),
                    f.is_dir ? "dir" : "file", f.size);
        if (!f.is_dir) {
          std::printf("replication: %u\nchunk_size: %" PRIu64 "\nchunks: %u\nmtime_ms: %" PRId64
                      "\n",
                      f.replication, f.chunk_size, f.chunks, f.mtime_ms);
        }
      }
    }
  } else if (cmd == "du" || cmd == "count") {
    const bool human = a.Flag("human"), json = a.Flag("json");
    Json out = Json::array();
    for (const std::string& path : p.empty() ? std::vector<std::string>{"/"} : p) {
      err_path = path;
      auto st = c->Stat(path);
      s = st.status();
      if (!s.ok()) break;
      std::vector<FileStat> items;
      if (cmd == "count" || a.Flag("summary") || !st->is_dir) {
        FileStat f = *st;
        f.path = path;
        items.push_back(f);
      } else {
        bool is_dir = false;
        auto e = Entries(c, path, &is_dir);
        s = e.status();
        if (!s.ok()) break;
        items = *e;
      }
      for (const FileStat& f : items) {
        Usage u;
        s = Walk(c, f, f.path, &u);
        if (!s.ok()) break;
        if (json && cmd == "du") {
          out.push_back(Json{{"path", f.path}, {"size", u.size}, {"space_consumed", u.space}});
        } else if (json) {
          out.push_back(Json{
              {"path", f.path}, {"directories", u.dirs}, {"files", u.files}, {"size", u.size}});
        } else if (cmd == "du") {
          std::printf("%-12s %-12s %s\n", Size(u.size, human).c_str(), Size(u.space, human).c_str(),
                      Shown(f.path).c_str());
        } else {
          std::printf("%12" PRIu64 " %12" PRIu64 " %12s %s\n", u.dirs, u.files,
                      Size(u.size, human).c_str(), Shown(f.path).c_str());
        }
      }
      if (!s.ok()) break;
    }
    if (s.ok() && json) PrintJson(out);
  } else if (cmd == "df") {
    code = Df(c, job, a, &s);
  } else if (cmd == "test") {
    auto st = c->Stat(p[0]);
    if (!st.ok() &&
        (st.status().code() == Code::kNotFound || st.status().code() == Code::kNotADirectory)) {
      return 1;
    }
    err_path = p[0];
    s = st.status();
    if (s.ok()) {
      bool yes = a.Flag("exists") || (a.Flag("dir") && st->is_dir) ||
                 (a.Flag("file") && !st->is_dir) ||
                 (a.Flag("zero") && !st->is_dir && st->size == 0);
      return yes ? 0 : 1;
    }
  } else if (cmd == "mkdir") {
    for (const std::string& path : p) {
      err_path = path;
      s = c->Mkdir(path, a.Flag("parents"));
      if (!s.ok()) break;
    }
  } else if (cmd == "touchz") {
    for (const std::string& path : p) {
      err_path = path;
      auto st = c->Stat(path);
      if (st.ok()) {
        if (st->is_dir) s = Status(Code::kIsADirectory, path);
        if (!st->is_dir && st->size > 0) s = Status(Code::kAlreadyExists, "not a zero-length file");
      } else if (st.status().code() == Code::kNotFound) {
        CreateOptions opts;
        opts.replication = job.replication;
        auto f = c->Create(path, opts);
        s = f.status();
        if (s.ok()) s = c->Close(&*f);
      } else {
        s = st.status();
      }
      if (!s.ok()) break;
    }
  } else if (cmd == "rm") {
    for (const std::string& path : p) {
      err_path = path;
      s = c->Remove(path, a.Flag("recursive"));
      if (s.code() == Code::kNotFound && a.Flag("force")) s = Status::OK();
      if (s.code() == Code::kNotEmpty) s = Status(Code::kNotEmpty, "use rm -r");
      if (!s.ok()) break;
    }
  } else if (cmd == "mv" || cmd == "cp") {
    std::string dst = p[1];
    auto st = c->Stat(dst);
    if (st.ok() && st->is_dir) dst = Join(dst, BaseName(p[0]));
    err_path = p[0];
    if (cmd == "mv") {
      s = c->Rename(p[0], dst);
    } else if (dst == p[0] || dst.rfind(p[0] + "/", 0) == 0) {
      s = Status::InvalidArgument("cannot copy " + p[0] + " into itself");
    } else {
      s = CopyTree(c, job, p[0], dst, a.Flag("force"), &err_path);
    }
  } else if (cmd == "write") {
    err_path = p[0];
    auto off = ParseOffset(p[1]);
    std::vector<uint8_t> data;
    s = off.status();
    if (s.ok()) {
      s = ReadLocal(p[2], &data);
      if (!s.ok()) err_path = p[2];
    }
    if (s.ok()) {
      CreateOptions opts;
      opts.exclusive = false;
      auto f = c->Create(p[0], opts);
      s = f.status();
      if (s.ok()) s = c->Write(&*f, *off, data.data(), data.size());
      if (s.ok()) s = c->Close(&*f);
    }
  } else if (cmd == "append") {
    err_path = p[0];
    std::vector<uint8_t> data;
    s = ReadLocal(p[1], &data);
    if (!s.ok()) err_path = p[1];
    Result<File> f = Status::Internal("unset");
    if (s.ok()) {
      CreateOptions opts;
      opts.exclusive = false;
      f = c->Create(p[0], opts);
      s = f.status();
    }
    if (s.ok()) {
      RecordWriter w(c, &*f);
      auto off = w.Append(data.data(), data.size());
      s = off.status();
      if (s.ok()) s = c->Close(&*f);
      if (s.ok()) std::printf("%" PRIu64 "\n", *off);
    }
  } else if (cmd == "records") {
    err_path = p[0];
    auto f = c->Open(p[0]);
    s = f.status();
    if (s.ok()) {
      RecordReader reader(MaxRecordPayload(f->chunk_size));
      uint64_t n = 0;
      const bool json = a.Flag("json");
      // JSON: one array, written as the records come (a log may hold millions).
      if (json) std::printf("[");
      auto end = ReadRecordsOnce(
          c, &*f, &reader,
          [&n, json](const RecordView& r) {
            if (json) {
              std::printf("%s%s", n ? "," : "",
                          Json{{"producer", r.producer}, {"sequence", r.seq}, {"length", r.size}}
                              .dump()
                              .c_str());
            } else {
              std::printf("%" PRIu64 " %" PRIu64 " %" PRIu32 "\n", r.producer, r.seq, r.size);
            }
            ++n;
          },
          true);
      if (json) std::printf("]\n");
      s = end.status();
      if (s.ok() && n == 0) {
        s = Status::InvalidArgument("not a record log: no valid record in its " +
                                    std::to_string(*end) + " bytes");
      }
    }
  } else if (cmd == "format") {
    // The job started with every role's directory discarded (-f) or as it
    // was: either way the store must be empty now.
    auto r = c->Report();
    s = r.status();
    std::vector<FileStat> top;
    if (s.ok()) {
      auto l = c->List("/");
      s = l.status();
      if (s.ok()) top = *l;
    }
    if (s.ok() && (r->chunks > 0 || !top.empty())) {
      s = Status(Code::kAlreadyExists, "the store holds " + std::to_string(top.size()) +
                                           " entries under / and " + std::to_string(r->chunks) +
                                           " chunks; 'gfs format -f' discards them");
    }
    if (s.ok()) {
      std::printf("store %016" PRIx64 " in %s is empty and ready\n", r->store_id,
                  job.data_dir.c_str());
    }
  } else if (cmd == "report") {
    code = Report(c, job, a, &s);
  } else if (cmd == "fsck") {
    std::string path = p.empty() ? "/" : p[0];
    err_path = path;
    uint64_t wait_s = 0;
    if (const std::string* w = a.Value("wait")) wait_s = std::stoull(*w);
    const uint64_t until = MonoMicros() + wait_s * 1000000;
    bool verify = a.Flag("verify");
    for (;;) {
      auto r = c->Fsck(path, verify);
      s = r.status();
      if (!s.ok()) break;
      verify = false;  // verified once; later rounds watch replication
      FsckTotals t = CountFsck(r->files);
      if ((t.under == 0 && t.missing == 0) || MonoMicros() >= until || g_interrupted) {
        std::map<int32_t, ServerReport> names;
        if (auto rep = c->Report(); rep.ok()) {
          for (const ServerReport& sv : rep->servers) names[sv.rank] = sv;
        }
        code = PrintFsck(*r, names, a.Flag("json"));
        std::fflush(stdout);
        return code;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  } else if (cmd == "h5export") {
    err_path = p[0];
    const std::string* ds = a.Value("dataset");
    h5::ExportSummary sum;
    s = h5::ExportPacketTable(c, p[0], p[1], ds ? *ds : h5::kDefaultExportDataset, &sum);
    if (s.ok()) {
      std::printf("%s: %" PRIu64 " packets of %" PRIu64 " bytes into %s\n", Shown(p[0]).c_str(),
                  sum.packets, sum.packet_size, Shown(p[1]).c_str());
    }
  } else {
    s = Status::InvalidArgument("unknown command");
  }
  std::fflush(stdout);
  if (s.ok()) return code;
  PrintError(cmd, err_path, s);
  if (g_interrupted) return 128 + g_interrupted;
  return 1;
}

namespace {

Result<uint64_t> ParseCount(const std::string& name, const std::string& text, uint64_t min) {
  auto v = ParseInt(name, text, static_cast<int64_t>(min), INT64_MAX);
  if (!v.ok()) return v.status();
  return static_cast<uint64_t>(*v);
}

Result<jobs::ProducerConsumerOptions> PcOptions(const CommandArgs& a, const JobConfig& job,
                                                int clients) {
  jobs::ProducerConsumerOptions o;
  if (!a.Value("file"))
    return Status::InvalidArgument("producer-consumer: --file PATH is required");
  o.file = *a.Value("file");
  if (o.file.empty() || o.file[0] != '/') {
    return Status::InvalidArgument("producer-consumer: --file '" + OneLine(o.file, 200) +
                                   "': paths in the store are absolute (start with /)");
  }
  for (const char* req : {"producers", "records"}) {
    if (!a.Value(req)) {
      return Status::InvalidArgument(std::string("producer-consumer: --") + req + " is required");
    }
  }
  auto p = ParseInt("producers", *a.Value("producers"), 1, 1 << 20);
  if (!p.ok()) return p.status();
  o.producers = static_cast<int>(*p);
  auto m = ParseCount("records", *a.Value("records"), 1);
  if (!m.ok()) return m.status();
  o.records = *m;
  struct {
    const char* name;
    uint64_t* out;
  } optional[] = {{"min-size", &o.min_size},
                  {"max-size", &o.max_size},
                  {"seed", &o.seed},
                  {"sync-every", &o.sync_every}};
  for (const auto& opt : optional) {
    if (const std::string* v = a.Value(opt.name)) {
      auto n = ParseCount(opt.name, *v, 0);
      if (!n.ok()) return n.status();
      *opt.out = *n;
    }
  }
  o.json = a.Flag("json");
  if (o.min_size > o.max_size) {
    return Status::InvalidArgument("producer-consumer: --min-size is larger than --max-size");
  }
  uint64_t limit = MaxRecordPayload(job.chunk_size);
  if (o.max_size > limit) {
    return Status::InvalidArgument("producer-consumer: --max-size " + std::to_string(o.max_size) +
                                   " is over the largest record payload for " +
                                   std::to_string(job.chunk_size) + "-byte chunks (" +
                                   std::to_string(limit) + " bytes)");
  }
  if (clients > 0 && o.producers >= clients) {
    return Status::InvalidArgument("producer-consumer: --producers " + std::to_string(o.producers) +
                                   " leaves no consumer among " + std::to_string(clients) +
                                   " clients (use --clients " + std::to_string(o.producers + 1) +
                                   " or more)");
  }
  return o;
}

}  // namespace

Status ValidateCommand(const CommandSpec& spec, const CommandArgs& args, const JobConfig& job,
                       int clients) {
  std::string name = spec.name;
  if (name == "producer-consumer") return PcOptions(args, job, clients).status();
  if (name == "write") return ParseOffset(args.positional[1]).status();
  if (name == "fsck" && args.Value("wait")) {
    return ParseInt("wait", *args.Value("wait"), 0, 86400).status();
  }
  if (name == "head" || name == "tail") {
    if (const std::string* b = args.Value("bytes")) {
      auto v = ParseSize("bytes", *b);
      if (!v.ok()) return Status::InvalidArgument(name + ": " + v.status().message());
    }
  }
  if (name == "tail") {
    if (args.Flag("follow")) {
      return Status::InvalidArgument(
          "tail: -f needs a running service to follow a file while another job writes it; "
          "each gfs command is a job of its own, so -f is not available yet");
    }
    if (args.Value("lines") && args.Value("bytes")) {
      return Status::InvalidArgument("tail: -n and -c contradict each other");
    }
    if (const std::string* n = args.Value("lines")) {
      auto v = ParseInt("lines", *n, 0, 1ll << 40);
      if (!v.ok()) return Status::InvalidArgument("tail: " + v.status().message());
    }
  }
  if (name == "test") {
    int n = args.Flag("exists") + args.Flag("dir") + args.Flag("file") + args.Flag("zero");
    if (n != 1) {
      return Status::InvalidArgument(
          "test: give exactly one of -e, -d, -f, -z (see gfs test --help)");
    }
  }
  return Status::OK();
}

int RunJob(Session* s, const JobConfig& job, const CommandSpec& spec, const CommandArgs& args) {
  auto o = PcOptions(args, job, s->num_clients());
  if (std::string(spec.name) != "producer-consumer" || !o.ok()) {
    if (s->client_index() == 0) {
      std::fprintf(stderr, "gfs: %s\n", o.ok() ? "unknown job" : o.status().message().c_str());
    }
    return 2;
  }
  return jobs::RunProducerConsumer(s, *o);
}

}  // namespace gfs::tool
