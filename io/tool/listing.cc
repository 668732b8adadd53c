#include "io/tool/listing.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

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
    if (path == "/" && e.path == kTrashDir + 1) continue;  // counted apart
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
    if (e.path == kTrashDir) continue;  // shown by ls -a, where each entry was
    items.push_back(e);
  }
  return items;
}

Result<std::vector<TrashEntry>> TrashOf(Client* c, const std::string& path, bool as_dir,
                                        bool deleted_only) {
  std::vector<TrashEntry> out;
  auto times = c->List(kTrashDir);
  if (!times.ok()) {
    if (times.status().code() == Code::kNotFound) return out;  // nothing deleted yet
    return times.status();
  }
  const std::string rel = path == "/" ? "" : path;
  for (const FileStat& t : *times) {
    if (!t.is_dir || t.path.empty() ||
        t.path.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    const int64_t ms = std::strtoll(t.path.c_str(), nullptr, 10);
    const std::string base = std::string(kTrashDir) + "/" + t.path;
    const std::string at = base + rel;
    if (as_dir) {
      auto st = c->Stat(at);
      if (!st.ok() || !st->is_dir) continue;
      auto entries = c->List(at);
      if (!entries.ok()) continue;
      for (const FileStat& e : *entries) {
        if (deleted_only && e.is_dir) {
          auto live = c->Stat(Join(path, e.path));
          if (live.ok() && live->is_dir) continue;
        }
        TrashEntry te;
        te.stat = e;
        te.stat.path = Join(path, e.path);
        te.trash_path = Join(at, e.path);
        te.deleted_ms = ms;
        out.push_back(te);
      }
    } else if (!rel.empty()) {
      auto st = c->Stat(at);
      if (!st.ok()) continue;
      TrashEntry te;
      te.stat = *st;
      te.stat.path = path;
      te.trash_path = at;
      te.deleted_ms = ms;
      out.push_back(te);
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const TrashEntry& a, const TrashEntry& b) {
    return a.deleted_ms > b.deleted_ms;
  });
  return out;
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
  if (!items.ok() && !(o.all && items.status().code() == Code::kNotFound)) {
    return items.status();
  }
  if (items.ok()) {
    for (const FileStat& e : *items) {
      if (o.json) {
        out->push_back(StatJson(e));
      } else {
        PrintLsLine(e, o);
      }
      if (o.recursive && e.is_dir) GFS_RETURN_IF_ERROR(Ls(c, e.path, o, out));
    }
  }
  if (!o.all) return Status::OK();
  // The deletions of this directory's entries (of the path itself when it
  // is a file or no longer exists), newest first, with their deletion times.
  auto trash = TrashOf(c, path, items.ok() && is_dir);
  if (!trash.ok()) return trash.status();
  if (!items.ok() && trash->empty()) return items.status();
  for (const TrashEntry& t : *trash) {
    if (o.json) {
      Json j = StatJson(t.stat);
      j["deleted_ms"] = t.deleted_ms;
      j["trash_path"] = t.trash_path;
      out->push_back(j);
    } else {
      std::printf("%c %s  %s  (deleted %s)\n", t.stat.is_dir ? 'd' : '-',
                  Size(t.stat.is_dir ? 0 : t.stat.size, o.human).c_str(),
                  Shown(t.stat.path).c_str(), TimeText(t.deleted_ms).c_str());
    }
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
