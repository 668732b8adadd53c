// Listing and inspection commands of the gfs tool: ls, du and count (the
// namespace walked), head and tail.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/client.h"
#include "io/tool/output.h"

namespace gfs::tool {

struct Usage {
  uint64_t dirs = 0, files = 0, size = 0, space = 0;
};

// Adds what lies at `path` (stat `at`) to *u, walking directories.
Status Walk(Client* c, const FileStat& at, const std::string& path, Usage* u);
// The entries a listing shows for PATH: its children when it is a
// directory, else the file itself. Paths are full.
Result<std::vector<FileStat>> Entries(Client* c, const std::string& path, bool* is_dir);

struct LsOptions {
  bool recursive = false, lng = false, human = false, json = false;
  bool all = false;  // also the trash entries of each directory listed
};

// The trash (doc/architecture.md, "Trash and garbage collection"):
// /.trash/<deletion ms>/<original path>. Listings of / leave it out.
inline constexpr char kTrashDir[] = "/.trash";

// One deletion of an entry, as the trash holds it.
struct TrashEntry {
  FileStat stat;           // path: the original path
  std::string trash_path;  // where it is now
  int64_t deleted_ms = 0;
};
// The deletions of `path` itself (as_dir false) or of the entries of the
// directory `path` (as_dir true), newest first. With `deleted_only`, a
// directory of the trash that also exists live is left out: it was most
// likely made only to hold deleted entries below it (ls -a of it shows them);
// without, everything the trash holds under `path` is there (du).
Result<std::vector<TrashEntry>> TrashOf(Client* c, const std::string& path, bool as_dir,
                                        bool deleted_only = true);

// Lists `path` (text lines, or JSON objects appended to *out).
Status Ls(Client* c, const std::string& path, const LsOptions& o, Json* out);
// The first `bytes` bytes of a file on stdout.
Status Head(Client* c, const std::string& path, uint64_t bytes);
// The last `bytes` bytes, or with by_lines the last `lines` lines, up to the
// committed length, on stdout.
Status Tail(Client* c, const std::string& path, uint64_t bytes, uint64_t lines, bool by_lines);

}  // namespace gfs::tool
