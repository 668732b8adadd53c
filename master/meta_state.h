// MetaState: the master's persistent metadata (namespace tree, file -> chunk
// map, chunk versions). It changes only through MetaOp records, which the
// master first appends to the operation log (master/oplog.h) and then applies;
// replay at start-up applies the very same records through the very same
// code path, so a live master and a replayed one cannot diverge.
//
// Chunk *locations* are not here: they are soft state rebuilt from
// chunkserver reports. Leases are not here either.
//
// Paths: absolute ("/a/b"). They are normalised (duplicate slashes collapsed,
// a trailing slash dropped); "." and ".." components, names containing NUL,
// names longer than kMaxNameLen and paths longer than kMaxPathLen are rejected
// with kInvalidArgument. The root "/" always exists and is a directory.
//
// Thread safety: none; the master's event loop owns the MetaState.
//
// On-disk encoding of MetaOp: doc/disk-format-master.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"

namespace gfs {

inline constexpr size_t kMaxPathLen = 4096;
inline constexpr size_t kMaxNameLen = 255;
// Upper bound on a file's chunk count (and so on AddChunk's index): keeps a
// hostile or corrupt index from allocating an enormous chunk vector.
inline constexpr uint32_t kMaxChunksPerFile = 1u << 24;

struct FileInfo {
  uint64_t id = 0;
  uint32_t replication = 0;
  uint64_t chunk_size = 0;
  uint64_t length = 0;
  // Chunk handle per chunk index; 0 = not allocated (a hole).
  std::vector<uint64_t> chunks;
  int64_t mtime_ms = 0;
};

struct DirEntry {
  std::string name;
  bool is_dir = false;
  FileInfo file;  // valid when !is_dir
};

struct ChunkInfo {
  uint64_t handle = 0;
  uint64_t version = 0;
  uint64_t file_id = 0;
  uint32_t index = 0;
};

// Wire/disk values: never renumber, only append.
enum class OpType : uint8_t {
  kMkdir = 1,       // path, flag = parents
  kCreate = 2,      // path, id, replication, chunk_size, time_ms
  kDelete = 3,      // path, flag = recursive
  kRename = 4,      // path -> path2
  kAddChunk = 5,    // id, index, handle, version, time_ms
  kSetVersion = 6,  // handle, version
  kSetLength = 7,   // id, length, time_ms
};

const char* OpTypeName(OpType t);

// One logged metadata mutation. Only the fields listed for its type (above)
// are encoded; the others are ignored by Check/Apply and decode as defaults.
struct MetaOp {
  OpType type = OpType::kMkdir;
  std::string path, path2;
  uint64_t id = 0;  // file id
  uint64_t handle = 0;
  uint64_t version = 0;
  uint64_t length = 0;
  uint64_t chunk_size = 0;
  uint32_t replication = 0;
  uint32_t index = 0;
  int64_t time_ms = 0;
  bool flag = false;  // kMkdir: create parents; kDelete: recursive

  // Appends the versioned encoding of this op to *out.
  void EncodeTo(std::vector<uint8_t>* out) const;
  // Decodes exactly n bytes; kCorruption on a short, over-long or malformed
  // buffer, or an unknown encoding version or op type.
  static Result<MetaOp> Decode(const uint8_t* data, size_t n);

  // Convenience constructors for the master and tests.
  static MetaOp Mkdir(std::string path, bool parents);
  static MetaOp Create(std::string path, uint64_t id, uint32_t replication, uint64_t chunk_size,
                       int64_t time_ms);
  static MetaOp Delete(std::string path, bool recursive);
  static MetaOp Rename(std::string from, std::string to);
  static MetaOp AddChunk(uint64_t file_id, uint32_t index, uint64_t handle, uint64_t version,
                         int64_t time_ms);
  static MetaOp SetVersion(uint64_t handle, uint64_t version);
  static MetaOp SetLength(uint64_t file_id, uint64_t length, int64_t time_ms);

  // One-line description for logs ("create /a/b id=3 ...").
  std::string ToString() const;
};

bool operator==(const MetaOp& a, const MetaOp& b);

// Normalises an absolute path (see the file comment). On success *out is the
// canonical form ("/" or "/a/b") and, when components is non-null, the
// components are stored there.
Status NormalizePath(std::string_view path, std::string* out,
                     std::vector<std::string>* components = nullptr);

class MetaState {
 public:
  MetaState();
  ~MetaState();
  MetaState(const MetaState&) = delete;
  MetaState& operator=(const MetaState&) = delete;

  // Validation without change: returns exactly the error Apply(op) would.
  //   kMkdir:  kInvalidArgument (bad path), kNotFound (parent missing and
  //            !parents), kNotADirectory (a file in the way), kAlreadyExists
  //            (leaf exists; with parents an existing dir is OK, a file not).
  //   kCreate: kInvalidArgument (bad path, root, id 0, replication 0,
  //            chunk_size 0), kAlreadyExists (leaf exists, or id in use),
  //            kNotFound / kNotADirectory (parent).
  //   kDelete: kInvalidArgument (root), kNotFound, kNotEmpty (non-empty dir
  //            without recursive), kNotADirectory (a file used as a dir).
  //   kRename: kInvalidArgument (root as source or destination parent chain
  //            inside the source), kNotFound (source or dst parent),
  //            kAlreadyExists (destination exists, also dst == src),
  //            kNotADirectory.
  //   kAddChunk: kNotFound (file id), kInvalidArgument (handle 0, index >=
  //            kMaxChunksPerFile), kAlreadyExists (handle known, or the index
  //            already has a chunk).
  //   kSetVersion: kNotFound (handle), kStaleVersion (version <= current).
  //   kSetLength: kNotFound (file id).
  Status Check(const MetaOp& op) const;

  // Applies op. Validates first (the same rules as Check) and changes
  // nothing on error, so replay can call Apply directly and treat a failure
  // as log corruption.
  //   kDelete: the handles of every chunk of every file removed are appended
  //            to *freed (may be null).
  //   kSetLength: shrinking drops the chunks lying wholly at or beyond the new
  //            length (index * chunk_size >= length) and appends their
  //            handles to *freed. Growing only changes the length (holes read
  //            as zeros / are allocated later by AddChunk).
  //   kCreate, kAddChunk, kSetLength set the file's mtime to op.time_ms.
  //   kAddChunk: the chunk vector grows with 0s (holes) when index > size.
  Status Apply(const MetaOp& op, std::vector<uint64_t>* freed = nullptr);

  // kNotFound; kIsADirectory when path names a directory; kInvalidArgument
  // for a malformed path; kNotADirectory when a file is used as a directory.
  Result<FileInfo> StatFile(const std::string& path) const;
  // The file with this id, or null. The pointer is valid until the next Apply.
  const FileInfo* FindFile(uint64_t id) const;
  bool IsDir(const std::string& path) const;
  bool Exists(const std::string& path) const;
  // Entries of a directory sorted by name; listing a file yields that file's
  // own entry (name = last component).
  Result<std::vector<DirEntry>> List(const std::string& path) const;
  // The chunk with this handle, or null. Valid until the next Apply.
  const ChunkInfo* FindChunk(uint64_t handle) const;

  // 1 + the largest file id / chunk handle ever seen (so ids are never
  // reused, even after deletion). Both start at 1.
  uint64_t NextFileId() const { return next_file_id_; }
  uint64_t NextHandle() const { return next_handle_; }

  size_t NumFiles() const { return files_.size(); }
  size_t NumChunks() const { return chunks_.size(); }
  size_t NumDirs() const { return num_dirs_; }  // includes the root

  // Visits every chunk / every file (with its full path), unspecified order.
  // The callbacks must not modify the MetaState.
  void ForEachChunk(const std::function<void(const ChunkInfo&)>& fn) const;
  void ForEachFile(const std::function<void(const std::string& path, const FileInfo&)>& fn) const;

  // Canonical text dump of the whole state (tree, files, chunks), for tests
  // comparing a live state with a replayed one.
  std::string DebugString() const;

 private:
  struct Dir;
  // A directory entry: a sub-directory (dir != null) or a file (file_id).
  struct Entry {
    std::unique_ptr<Dir> dir;
    uint64_t file_id = 0;
  };
  struct Dir {
    std::map<std::string, Entry, std::less<>> children;
  };
  struct Lookup;

  Status Resolve(const std::string& path, Lookup* out) const;
  Status Validate(const MetaOp& op, Lookup* a, Lookup* b) const;
  void CollectSubtree(const Entry& e, std::vector<uint64_t>* file_ids, size_t* dirs) const;
  void RemoveFile(uint64_t id, std::vector<uint64_t>* freed);
  DirEntry MakeEntry(const std::string& name, const Entry& e) const;

  Dir root_;
  std::unordered_map<uint64_t, FileInfo> files_;    // by file id
  std::unordered_map<uint64_t, ChunkInfo> chunks_;  // by handle
  size_t num_dirs_ = 1;
  uint64_t next_file_id_ = 1;
  uint64_t next_handle_ = 1;
};

}  // namespace gfs
