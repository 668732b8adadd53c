#include "io/tool/commands.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "io/h5/export.h"
#include "io/record_io.h"
#include "jobs/producer_consumer.h"
#include "mpi/clock.h"

namespace gfs::tool {
namespace {

constexpr size_t kIoBuffer = 32u << 20;

// "gfs: get: /x: no such file or directory" (+ ": detail" when the detail
// adds something).
void PrintError(const std::string& cmd, const std::string& path, const Status& s) {
  std::string line = "gfs: " + cmd + ": ";
  if (!path.empty()) line += path + ": ";
  line += CodeName(s.code());
  const std::string& m = s.message();
  if (!m.empty() && m != path) line += " (" + m + ")";
  for (char& ch : line) {
    if (ch == '\n') ch = ' ';
  }
  std::fprintf(stderr, "%s\n", line.c_str());
}

std::string BaseName(const std::string& p) {
  std::string s = p;
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  auto slash = s.rfind('/');
  return slash == std::string::npos ? s : s.substr(slash + 1);
}

std::string Join(const std::string& dir, const std::string& name) {
  if (!dir.empty() && dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

std::string JsonEscape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      o += b;
    } else {
      o += c;
    }
  }
  return o;
}

std::string StatJson(const FileStat& s) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "\"type\":\"%s\",\"size\":%" PRIu64 ",\"replication\":%u,\"chunk_size\":%" PRIu64
                ",\"chunks\":%u,\"mtime_ms\":%" PRId64,
                s.is_dir ? "dir" : "file", s.size, s.replication, s.chunk_size, s.chunks,
                s.mtime_ms);
  return "{\"path\":\"" + JsonEscape(s.path) + "\"," + buf + "}";
}

// Prints progress of a long transfer to stderr, at most twice a second.
class Progress {
 public:
  Progress(bool on, std::string what, uint64_t total)
      : on_(on), what_(std::move(what)), total_(total), start_(MonoMicros()) {}
  void Update(uint64_t done) {
    if (!on_) return;
    uint64_t now = MonoMicros();
    if (now < next_) return;
    next_ = now + 500000;
    double secs = static_cast<double>(now - start_) / 1e6;
    double mbs = secs > 0 ? static_cast<double>(done) / 1e6 / secs : 0;
    if (total_ > 0) {
      std::fprintf(stderr, "%s: %" PRIu64 " / %" PRIu64 " bytes (%.0f%%), %.1f MB/s\n",
                   what_.c_str(), done, total_,
                   100.0 * static_cast<double>(done) / static_cast<double>(total_), mbs);
    } else {
      std::fprintf(stderr, "%s: %" PRIu64 " bytes, %.1f MB/s\n", what_.c_str(), done, mbs);
    }
  }
  void Finish(uint64_t done) {
    if (!on_) return;
    double secs = static_cast<double>(MonoMicros() - start_) / 1e6;
    std::fprintf(stderr, "%s: %" PRIu64 " bytes in %.2f s, %.1f MB/s\n", what_.c_str(), done, secs,
                 secs > 0 ? static_cast<double>(done) / 1e6 / secs : 0.0);
  }

 private:
  bool on_;
  std::string what_;
  uint64_t total_;
  uint64_t start_;
  uint64_t next_ = 0;
};

Status ErrnoStatus(const std::string& what, int err) {
  if (err == ENOENT) return Status::NotFound(what + ": " + std::strerror(err));
  return Status::IOError(what + ": " + std::strerror(err));
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
  CreateOptions opts;
  opts.exclusive = !force;
  opts.truncate = force;
  *err_path = remote;
  auto f = c->Create(remote, opts);
  if (!f.ok()) {
    if (fd != 0) ::close(fd);
    if (f.status().code() == Code::kAlreadyExists) {
      return Status(Code::kAlreadyExists, "use put -f to overwrite");
    }
    return f.status();
  }
  std::unique_ptr<uint8_t[]> buf(new uint8_t[kIoBuffer]);
  Progress prog(job.progress, "put " + remote, total);
  uint64_t off = 0;
  Status s;
  for (;;) {
    size_t have = 0;
    while (have < kIoBuffer) {
      ssize_t r = ::read(fd, buf.get() + have, kIoBuffer - have);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        s = ErrnoStatus("reading " + local, errno);
        break;
      }
      if (r == 0) break;
      have += static_cast<size_t>(r);
    }
    if (!s.ok() || have == 0) break;
    s = c->Write(&*f, off, buf.get(), have, [&](uint64_t d) { prog.Update(off + d); });
    if (!s.ok()) break;
    off += have;
    if (have < kIoBuffer) break;
  }
  if (fd != 0) ::close(fd);
  if (s.ok()) s = c->Close(&*f);
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
  for (const std::string& n : names) {
    s = PutTree(c, job, Join(local, n), Join(remote, n), force, err_path);
    if (!s.ok()) return s;
  }
  return Status::OK();
}

// ---- get ----

Status GetFile(Client* c, const JobConfig& job, const std::string& remote, const std::string& local,
               std::string* err_path) {
  *err_path = remote;
  auto f = c->Open(remote);
  if (!f.ok()) return f.status();
  int fd = 1;
  if (local != "-") {
    fd = ::open(local.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      *err_path = local;
      return ErrnoStatus("local file", errno);
    }
  }
  std::unique_ptr<uint8_t[]> buf(new uint8_t[kIoBuffer]);
  Progress prog(job.progress, "get " + remote, f->length);
  uint64_t off = 0;
  Status s;
  for (;;) {
    auto n = c->Read(&*f, off, buf.get(), kIoBuffer, [&](uint64_t d) { prog.Update(off + d); });
    if (!n.ok()) {
      s = n.status();
      break;
    }
    if (*n == 0) break;
    size_t done = 0;
    while (done < *n) {
      ssize_t w = ::write(fd, buf.get() + done, *n - done);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        *err_path = local;
        s = ErrnoStatus("writing", errno);
        break;
      }
      done += static_cast<size_t>(w);
    }
    if (!s.ok()) break;
    off += *n;
  }
  if (fd != 1 && ::close(fd) != 0 && s.ok()) s = ErrnoStatus("closing " + local, errno);
  if (s.ok()) prog.Finish(off);
  return s;
}

Status GetTree(Client* c, const JobConfig& job, const std::string& remote, const std::string& local,
               bool recursive, std::string* err_path) {
  *err_path = remote;
  auto st = c->Stat(remote);
  if (!st.ok()) return st.status();
  if (!st->is_dir) return GetFile(c, job, remote, local, err_path);
  if (!recursive) return Status(Code::kIsADirectory, "use get -r");
  if (::mkdir(local.c_str(), 0755) != 0 && errno != EEXIST) {
    *err_path = local;
    return ErrnoStatus("mkdir", errno);
  }
  auto entries = c->List(remote);
  if (!entries.ok()) return entries.status();
  for (const FileStat& e : *entries) {
    Status s = GetTree(c, job, Join(remote, e.path), Join(local, e.path), true, err_path);
    if (!s.ok()) return s;
  }
  return Status::OK();
}

// ---- ls ----

void PrintLsLine(const FileStat& s, const std::string& path) {
  if (s.is_dir) {
    std::printf("d %3s %10s %7s %15s  %s\n", "-", "-", "-", "-", path.c_str());
  } else {
    std::printf("- %3u %10" PRIu64 " %7u %15" PRIu64 "  %s\n", s.replication, s.chunk_size,
                s.chunks, s.size, path.c_str());
  }
}

Status Ls(Client* c, const std::string& path, bool recursive, bool json, bool* first_json) {
  auto st = c->Stat(path);
  if (!st.ok()) return st.status();
  std::vector<FileStat> items;
  if (!st->is_dir) {
    items.push_back(*st);
  } else {
    auto entries = c->List(path);
    if (!entries.ok()) return entries.status();
    for (FileStat e : *entries) {
      e.path = Join(path, e.path);
      items.push_back(e);
    }
  }
  for (const FileStat& e : items) {
    if (json) {
      std::printf("%s%s", *first_json ? "" : ",\n", StatJson(e).c_str());
      *first_json = false;
    } else {
      PrintLsLine(e, e.path);
    }
    if (recursive && e.is_dir) GFS_RETURN_IF_ERROR(Ls(c, e.path, true, json, first_json));
  }
  return Status::OK();
}

Result<uint64_t> ParseOffset(const std::string& s) {
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos || s.size() > 19) {
    return Status::InvalidArgument("OFFSET must be a byte count, got '" + s + "'");
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

// fsck exit statuses (doc/options.md).
constexpr int kFsckUnderReplicated = 4;
constexpr int kFsckLost = 5;

struct FsckTotals {
  uint64_t files = 0, chunks = 0, healthy = 0, under = 0, lost = 0, corrupt = 0, stale = 0;
  uint64_t unreadable_bytes = 0;  // bytes no replica holds a good copy of
};

FsckTotals CountFsck(const FsckReply& rep) {
  FsckTotals t;
  for (const FsckFile& f : rep.files) {
    ++t.files;
    for (const FsckChunk& ch : f.chunks) {
      ++t.chunks;
      t.corrupt += ch.corrupt.size();
      t.stale += ch.stale;
      for (const ByteRange& r : ch.unreadable) t.unreadable_bytes += r.length;
      if (ch.replicas.empty() && (ch.corrupt.empty() || !ch.unreadable.empty())) {
        ++t.lost;
      } else if (ch.replicas.size() < f.replication) {
        ++t.under;
      } else {
        ++t.healthy;
      }
    }
  }
  return t;
}

std::string RankList(const std::vector<int32_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(v[i]);
  }
  return s + "]";
}

// [[offset,length],...] of ranges at file offset `base`.
std::string RangeList(const std::vector<ByteRange>& v, uint64_t base) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += ",";
    char buf[64];
    std::snprintf(buf, sizeof buf, "[%" PRIu64 ",%" PRIu64 "]", base + v[i].offset, v[i].length);
    s += buf;
  }
  s += "]";
  return s;
}

// "bytes A..B, C..D" of ranges at file offset `base`.
std::string RangeText(const std::vector<ByteRange>& v, uint64_t base) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(base + v[i].offset) + ".." +
         std::to_string(base + v[i].offset + v[i].length);
  }
  return s;
}

int PrintFsck(const FsckReply& rep, bool json) {
  FsckTotals all = CountFsck(rep);
  const char* status = all.lost ? "lost" : all.under ? "under-replicated" : "healthy";
  if (json) {
    std::printf("{\"status\":\"%s\",\"files\":[", status);
    for (size_t i = 0; i < rep.files.size(); ++i) {
      const FsckFile& f = rep.files[i];
      FsckReply one;
      one.files.push_back(f);
      FsckTotals t = CountFsck(one);
      std::printf("%s{\"path\":\"%s\",\"size\":%" PRIu64 ",\"replication\":%u,\"chunks\":%" PRIu64
                  ",\"healthy\":%" PRIu64 ",\"under_replicated\":%" PRIu64 ",\"missing\":%" PRIu64
                  ",\"corrupt_replicas\":%" PRIu64 ",\"stale_replicas\":%" PRIu64
                  ",\"unreadable_bytes\":%" PRIu64 ",\"chunk_list\":[",
                  i ? "," : "", JsonEscape(f.path).c_str(), f.length, f.replication, t.chunks,
                  t.healthy, t.under, t.lost, t.corrupt, t.stale, t.unreadable_bytes);
      for (size_t k = 0; k < f.chunks.size(); ++k) {
        const FsckChunk& ch = f.chunks[k];
        const uint64_t base = uint64_t{ch.index} * f.chunk_size;
        std::string damaged = "[";
        for (size_t d = 0; d < ch.damaged.size(); ++d) {
          if (d > 0) damaged += ",";
          damaged += "{\"rank\":";
          damaged += std::to_string(ch.damaged[d].rank);
          damaged += ",\"ranges\":";
          damaged += RangeList(ch.damaged[d].ranges, base);
          damaged += "}";
        }
        damaged += "]";
        std::printf("%s{\"index\":%u,\"handle\":\"%016" PRIx64 "\",\"version\":%" PRIu64
                    ",\"replicas\":%s,\"corrupt\":%s,\"stale\":%u,\"damaged\":%s,"
                    "\"unreadable\":%s}",
                    k ? "," : "", ch.index, ch.handle, ch.version, RankList(ch.replicas).c_str(),
                    RankList(ch.corrupt).c_str(), ch.stale, damaged.c_str(),
                    RangeList(ch.unreadable, base).c_str());
      }
      std::printf("]}");
    }
    std::printf("]}\n");
  } else {
    for (const FsckFile& f : rep.files) {
      FsckReply one;
      one.files.push_back(f);
      FsckTotals t = CountFsck(one);
      std::printf("%s: %" PRIu64 " bytes, %" PRIu64 " chunks, replication %u: %" PRIu64
                  " healthy, %" PRIu64 " under-replicated, %" PRIu64 " missing, %" PRIu64
                  " corrupt replicas, %" PRIu64 " stale replicas\n",
                  f.path.c_str(), f.length, t.chunks, f.replication, t.healthy, t.under, t.lost,
                  t.corrupt, t.stale);
      for (const FsckChunk& ch : f.chunks) {
        if (ch.replicas.size() >= f.replication && ch.corrupt.empty() && ch.stale == 0) continue;
        std::printf("  chunk %u (handle %016" PRIx64 ", version %" PRIu64
                    "): %zu of %u replicas %s, corrupt %s, stale %u\n",
                    ch.index, ch.handle, ch.version, ch.replicas.size(), f.replication,
                    RankList(ch.replicas).c_str(), RankList(ch.corrupt).c_str(), ch.stale);
        const uint64_t base = uint64_t{ch.index} * f.chunk_size;
        for (const ReplicaDamage& d : ch.damaged) {
          std::printf(
              "    replica on rank %d damaged at bytes %s (kept; repaired from a good copy)\n",
              d.rank, RangeText(d.ranges, base).c_str());
        }
        if (!ch.unreadable.empty()) {
          std::printf("    unreadable: bytes %s (no replica holds a good copy)\n",
                      RangeText(ch.unreadable, base).c_str());
        }
      }
    }
    std::printf("%" PRIu64 " files, %" PRIu64 " chunks: %" PRIu64 " healthy, %" PRIu64
                " under-replicated, %" PRIu64 " missing; status: %s\n",
                all.files, all.chunks, all.healthy, all.under, all.lost, status);
  }
  return all.lost ? kFsckLost : all.under ? kFsckUnderReplicated : 0;
}

}  // namespace

int RunCommand(Client* c, const JobConfig& job, const CommandSpec& spec, const CommandArgs& a) {
  const std::string cmd = spec.name;
  const auto& p = a.positional;
  std::string err_path;
  Status s;
  if (cmd == "put") {
    std::string remote = p[1];
    auto st = c->Stat(remote);
    if (st.ok() && st->is_dir) remote = Join(remote, BaseName(p[0] == "-" ? "stdin" : p[0]));
    struct stat ls;
    if (p[0] != "-" && ::stat(p[0].c_str(), &ls) == 0 && S_ISDIR(ls.st_mode) && !a.recursive) {
      err_path = p[0];
      s = Status(Code::kIsADirectory, "use put -r");
    } else {
      s = PutTree(c, job, p[0], remote, a.force, &err_path);
    }
  } else if (cmd == "get" || cmd == "cat") {
    std::string local = cmd == "cat" ? "-" : p[1];
    struct stat ls;
    if (local != "-" && ::stat(local.c_str(), &ls) == 0 && S_ISDIR(ls.st_mode)) {
      local = Join(local, BaseName(p[0]));
    }
    s = GetTree(c, job, p[0], local, a.recursive, &err_path);
  } else if (cmd == "ls") {
    std::string path = p.empty() ? "/" : p[0];
    err_path = path;
    bool first = true;
    if (a.json) std::printf("[");
    s = Ls(c, path, a.recursive, a.json, &first);
    if (a.json) std::printf("]\n");
  } else if (cmd == "stat") {
    err_path = p[0];
    auto st = c->Stat(p[0]);
    s = st.status();
    if (st.ok()) {
      if (a.json) {
        std::printf("%s\n", StatJson(*st).c_str());
      } else {
        std::printf("path: %s\ntype: %s\nsize: %" PRIu64 "\n", st->path.c_str(),
                    st->is_dir ? "dir" : "file", st->size);
        if (!st->is_dir) {
          std::printf("replication: %u\nchunk_size: %" PRIu64 "\nchunks: %u\nmtime_ms: %" PRId64
                      "\n",
                      st->replication, st->chunk_size, st->chunks, st->mtime_ms);
        }
      }
    }
  } else if (cmd == "mkdir") {
    for (const std::string& path : p) {
      err_path = path;
      s = c->Mkdir(path, a.parents);
      if (!s.ok()) break;
    }
  } else if (cmd == "rm") {
    for (const std::string& path : p) {
      err_path = path;
      s = c->Remove(path, a.recursive);
      if (s.code() == Code::kNotEmpty) s = Status(Code::kNotEmpty, "use rm -r");
      if (!s.ok()) break;
    }
  } else if (cmd == "mv") {
    std::string dst = p[1];
    auto st = c->Stat(dst);
    if (st.ok() && st->is_dir) dst = Join(dst, BaseName(p[0]));
    err_path = p[0];
    s = c->Rename(p[0], dst);
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
      auto end = ReadRecordsOnce(
          c, &*f, &reader,
          [](const RecordView& r) {
            std::printf("%" PRIu64 " %" PRIu64 " %" PRIu32 "\n", r.producer, r.seq, r.size);
          },
          true);
      s = end.status();
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
    auto r = c->Report();
    s = r.status();
    if (s.ok()) {
      if (a.json) {
        std::printf("{\"chunks\":%" PRIu64 ",\"under_replicated\":%" PRIu64 ",\"lost\":%" PRIu64
                    ",\"chunkservers\":[",
                    r->chunks, r->under_replicated, r->lost);
        for (size_t i = 0; i < r->servers.size(); ++i) {
          const ServerReport& sv = r->servers[i];
          std::printf("%s{\"rank\":%d,\"id\":\"%016" PRIx64
                      "\",\"dir\":\"%s\",\"host\":\"%s\","
                      "\"state\":\"%s\",\"capacity\":%" PRIu64 ",\"used\":%" PRIu64
                      ",\"chunks\":%u}",
                      i ? "," : "", sv.rank, sv.id, JsonEscape(sv.dir_name).c_str(),
                      JsonEscape(sv.host).c_str(), sv.alive ? "alive" : "dead", sv.capacity,
                      sv.used, sv.chunks);
        }
        std::printf("]}\n");
      } else {
        std::printf("%-5s %-16s %-18s %-12s %-6s %15s %15s %8s\n", "rank", "id", "dir", "host",
                    "state", "capacity", "used", "chunks");
        for (const ServerReport& sv : r->servers) {
          std::printf("%-5d %016" PRIx64 " %-18s %-12s %-6s %15" PRIu64 " %15" PRIu64 " %8u\n",
                      sv.rank, sv.id, sv.dir_name.c_str(), sv.host.c_str(),
                      sv.alive ? "alive" : "dead", sv.capacity, sv.used, sv.chunks);
        }
        std::printf("chunks: %" PRIu64 ", under-replicated: %" PRIu64 ", lost: %" PRIu64 "\n",
                    r->chunks, r->under_replicated, r->lost);
      }
    }
  } else if (cmd == "fsck") {
    std::string path = p.empty() ? "/" : p[0];
    err_path = path;
    uint64_t wait_s = 0;
    if (auto w = a.values.find("wait"); w != a.values.end()) wait_s = std::stoull(w->second);
    const uint64_t until = MonoMicros() + wait_s * 1000000;
    bool verify = a.verify;
    for (;;) {
      auto r = c->Fsck(path, verify);
      s = r.status();
      if (!s.ok()) break;
      verify = false;  // verified once; later rounds watch replication
      FsckTotals t = CountFsck(*r);
      if ((t.under == 0 && t.lost == 0) || MonoMicros() >= until) {
        std::fflush(stdout);
        return PrintFsck(*r, a.json);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  } else if (cmd == "h5export") {
    err_path = p[0];
    auto ds = a.values.find("dataset");
    h5::ExportSummary sum;
    s = h5::ExportPacketTable(c, p[0], p[1],
                              ds == a.values.end() ? h5::kDefaultExportDataset : ds->second, &sum);
    if (s.ok()) {
      std::printf("%s: %" PRIu64 " packets of %" PRIu64 " bytes into %s\n", p[0].c_str(),
                  sum.packets, sum.packet_size, p[1].c_str());
    }
  } else {
    s = Status::InvalidArgument("unknown command");
  }
  std::fflush(stdout);
  if (s.ok()) return 0;
  PrintError(cmd, err_path, s);
  return 1;
}

namespace {

Result<uint64_t> ParseCount(const std::string& name, const std::string& text, uint64_t min) {
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos ||
      text.size() > 18) {
    return Status::InvalidArgument("--" + name + ": '" + text + "' is not a whole number");
  }
  uint64_t v = std::stoull(text);
  if (v < min) {
    return Status::InvalidArgument("--" + name + " must be at least " + std::to_string(min));
  }
  return v;
}

Result<jobs::ProducerConsumerOptions> PcOptions(const CommandArgs& a, const JobConfig& job,
                                                int clients) {
  jobs::ProducerConsumerOptions o;
  auto get = [&](const char* n) -> const std::string* {
    auto it = a.values.find(n);
    return it == a.values.end() ? nullptr : &it->second;
  };
  if (!get("file")) return Status::InvalidArgument("producer-consumer: --file PATH is required");
  o.file = *get("file");
  for (const char* req : {"producers", "records"}) {
    if (!get(req)) {
      return Status::InvalidArgument(std::string("producer-consumer: --") + req + " is required");
    }
  }
  auto p = ParseCount("producers", *get("producers"), 1);
  if (!p.ok()) return p.status();
  o.producers = static_cast<int>(std::min<uint64_t>(*p, 1u << 20));
  auto m = ParseCount("records", *get("records"), 1);
  if (!m.ok()) return m.status();
  o.records = *m;
  if (get("min-size")) {
    auto v = ParseCount("min-size", *get("min-size"), 0);
    if (!v.ok()) return v.status();
    o.min_size = *v;
  }
  if (get("max-size")) {
    auto v = ParseCount("max-size", *get("max-size"), 0);
    if (!v.ok()) return v.status();
    o.max_size = *v;
  }
  if (get("seed")) {
    auto v = ParseCount("seed", *get("seed"), 0);
    if (!v.ok()) return v.status();
    o.seed = *v;
  }
  if (get("sync-every")) {
    auto v = ParseCount("sync-every", *get("sync-every"), 0);
    if (!v.ok()) return v.status();
    o.sync_every = *v;
  }
  o.json = a.json;
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
  if (name == "fsck" && args.values.count("wait")) {
    return ParseCount("wait", args.values.at("wait"), 0).status();
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
