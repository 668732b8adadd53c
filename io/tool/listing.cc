#include "io/tool/listing.h"

#include <algorithm>
#include <cstdio>

#include "io/tool/commands.h"
#include "io/tool/interrupt.h"
#include "io/tool/transfer.h"

namespace gfs::tool {

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
    if (Interrupted()) return InterruptedStatus();
    GFS_RETURN_IF_ERROR(Walk(c, e, Join(path, e.path), u));
  }
  return Status::OK();
}

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

}  // namespace gfs::tool
