// Transfers of the gfs tool: put, get (and cat), cp, and the local file
// helpers the write and append commands use.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/client.h"
#include "io/tool/output.h"
#include "mpi/protocol/config.h"

namespace gfs::tool {

// A local errno as a Status (not found, exists, no space, else an I/O error).
Status ErrnoStatus(const std::string& what, int err);
// Uploads a local file or tree (local "-": stdin) to `remote`, each file
// written under a temporary name and renamed into place once complete.
Status PutTree(Client* c, const JobConfig& job, const std::string& local, const std::string& remote,
               bool force, std::string* err_path);
// Downloads a file or (recursive) tree to `local` ("-": stdout).
Status GetTree(Client* c, const JobConfig& job, const std::string& remote, const std::string& local,
               bool recursive, bool force, std::string* err_path);
// Copies a file or tree inside the store.
Status CopyTree(Client* c, const JobConfig& job, const std::string& src, const std::string& dst,
                bool force, std::string* err_path);
// Copies [from, to) of f to fd. A failed local write sets *local_error.
Status CopyOut(Client* c, File* f, uint64_t from, uint64_t to, int fd, Progress* prog,
               bool* local_error = nullptr);
// The OFFSET argument of `write`: a byte count.
Result<uint64_t> ParseOffset(const std::string& s);
// The whole of a local file ("-": stdin).
Status ReadLocal(const std::string& local, std::vector<uint8_t>* out);

}  // namespace gfs::tool
