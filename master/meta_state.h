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
  // The file (and index) that allocated the chunk. Since snapshots, other
  // files may share it: `refs` counts the file chunk slots that name this
  // handle (derived from the files, never logged; rebuilt on load/replay).
  uint64_t file_id = 0;
  uint32_t index = 0;
  uint32_t refs = 0;
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
  // path -> path2 where path2 may be an existing file, removed in the same
  // step (put -f). Encoded with MetaOp encoding version 2.
  kReplace = 8,
  // path, replication: every file at or under path (a file or a directory
  // tree) gets this replication. Encoded with MetaOp encoding version 2.
  kSetReplication = 9,
  // path -> path2 as kRename, but path2's missing parent directories are
  // created in the same step (moving an entry into the trash and back out:
  // doc/architecture.md "Trash and garbage collection").
  kMove = 10,
  // 11 is reserved for another operation.
  // path -> path2: path2 (which must not exist, nor lie inside path) becomes
  // a copy of the file or tree at path whose files share path's chunk
  // handles. The copies take file ids id, id + 1, ... in the order of a
  // depth-first walk of path by sorted names (so replay assigns the same).
  kSnapshot = 12,
  // id, index, handle, version: the file's chunk at `index` (shared with
  // another file) is replaced by the new chunk `handle` at `version`, a copy
  // the chunkservers made of it (copy-on-write).
  kCopyOnWrite = 13,
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
  static MetaOp Replace(std::string from, std::string to);
  static MetaOp Move(std::string from, std::string to);
  static MetaOp AddChunk(uint64_t file_id, uint32_t index, uint64_t handle, uint64_t version,
                         int64_t time_ms);
  static MetaOp SetVersion(uint64_t handle, uint64_t version);
  static MetaOp SetLength(uint64_t file_id, uint64_t length, int64_t time_ms);
  static MetaOp Snapshot(std::string from, std::string to, uint64_t first_id);
  static MetaOp CopyOnWrite(uint64_t file_id, uint32_t index, uint64_t new_handle,
                            uint64_t version);
  static MetaOp SetReplication(std::string path, uint32_t replication);

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
  // Moving is cheap (tables move, nothing is copied); a moved-from state may
  // only be destroyed or assigned to.
  MetaState(MetaState&&);
  MetaState& operator=(MetaState&&);

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
  //   kReplace: as kRename, but an existing destination is fine when it and
  //            the source are files (kIsADirectory when either is a
  //            directory, kInvalidArgument when dst == src).
  //   kMove:   as kRename, except that missing parents of the destination
  //            are created (a file in their way is kNotADirectory).
  //   kAddChunk: kNotFound (file id), kInvalidArgument (handle 0, index >=
  //            kMaxChunksPerFile), kAlreadyExists (handle known, or the index
  //            already has a chunk).
  //   kSetVersion: kNotFound (handle), kStaleVersion (version <= current).
  //   kSetLength: kNotFound (file id).
  //   kSnapshot: kInvalidArgument (bad path, root as source, destination
  //            inside the source, id 0 or below NextFileId()), kNotFound
  //            (source or destination parent), kAlreadyExists (destination
  //            exists), kNotADirectory.
  //   kCopyOnWrite: kNotFound (file id, or no chunk at index),
  //            kInvalidArgument (handle 0; the chunk is not shared),
  //            kAlreadyExists (new handle in use).
  //   kSetReplication: kInvalidArgument (bad path, replication 0),
  //            kNotFound, kNotADirectory (a file used as a directory).
  Status Check(const MetaOp& op) const;

  // Applies op. Validates first (the same rules as Check) and changes
  // nothing on error, so replay can call Apply directly and treat a failure
  // as log corruption.
  //   kDelete, kReplace: the handles of every chunk of every file removed
  //            are appended to *freed (may be null).
  //   kSetLength: shrinking drops the chunks lying wholly at or beyond the new
  //            length (index * chunk_size >= length) and appends their
  //            handles to *freed. Growing only changes the length (holes read
  //            as zeros / are allocated later by AddChunk).
  //   kCreate, kAddChunk, kSetLength set the file's mtime to op.time_ms.
  //   kAddChunk: the chunk vector grows with 0s (holes) when index > size.
  //   A chunk is freed (removed and reported in *freed) only when the last
  //   file referring to it lets it go; a shared chunk just loses a ref.
  Status Apply(const MetaOp& op, std::vector<uint64_t>* freed = nullptr);

  // kNotFound; kIsADirectory when path names a directory; kInvalidArgument
  // for a malformed path; kNotADirectory when a file is used as a directory.
  Result<FileInfo> StatFile(const std::string& path) const;
  // The file with this id, or null. The pointer is valid until the next Apply
  // (it points at a copy the MetaState keeps until then).
  const FileInfo* FindFile(uint64_t id) const;
  bool IsDir(const std::string& path) const;
  bool Exists(const std::string& path) const;
  // Entries of a directory sorted by name; listing a file yields that file's
  // own entry (name = last component).
  Result<std::vector<DirEntry>> List(const std::string& path) const;
  // The chunk with this handle, or null. Valid until the next Apply.
  const ChunkInfo* FindChunk(uint64_t handle) const;
  // How many file chunk slots refer to this handle (0: unknown handle).
  uint32_t RefCount(uint64_t handle) const;
  // The handles of every chunk of every file at or under path (each once,
  // ascending); kNotFound etc. as StatFile.
  Result<std::vector<uint64_t>> ChunksUnder(const std::string& path) const;
  // How many files lie at or under path (0 when it does not exist).
  uint64_t CountFiles(const std::string& path) const;

  // 1 + the largest file id / chunk handle ever seen (so ids are never
  // reused, even after deletion). Both start at 1.
  uint64_t NextFileId() const { return next_file_id_; }
  uint64_t NextHandle() const { return next_handle_; }

  size_t NumFiles() const { return num_files_; }
  size_t NumChunks() const { return num_chunks_; }
  size_t NumDirs() const { return num_dirs_; }  // includes the root

  // Visits every chunk / every file (with its full path), unspecified order.
  // The callbacks must not modify the MetaState.
  void ForEachChunk(const std::function<void(const ChunkInfo&)>& fn) const;
  void ForEachFile(const std::function<void(const std::string& path, const FileInfo&)>& fn) const;

  // Canonical text dump of the whole state (tree, files, chunks), for tests
  // comparing a live state with a replayed one.
  std::string DebugString() const;

  // ---- Checkpoint support (master/checkpoint.cc) ----------------------------
  //
  // One node of the namespace as VisitTree reports it. Directories are
  // numbered by ordinals in visit order: the root is 0, the first directory
  // visited is 1, and so on; `parent` is the ordinal of the containing
  // directory, which is always visited before its contents.
  struct TreeNode {
    uint32_t parent = 0;
    std::string_view name;
    bool is_dir = false;
    // Files only. chunks[i] is the handle at chunk index i (0 = hole).
    uint64_t id = 0;
    uint32_t replication = 0;
    uint64_t chunk_size = 0;
    uint64_t length = 0;
    int64_t mtime_ms = 0;
    const uint64_t* chunks = nullptr;
    uint32_t num_chunks = 0;
  };
  // Visits every directory (except the root) and file, breadth first. The
  // callback must not modify the MetaState.
  void VisitTree(const std::function<void(const TreeNode&)>& fn) const;

  // Rebuilding from a checkpoint, on a freshly constructed MetaState only
  // (kInvalidArgument otherwise for the first call). Nodes must arrive in an
  // order where a directory precedes its contents; LoadDir gives directories
  // the ordinals VisitTree would (1, 2, ...). Every rule Apply enforces is
  // checked (valid names, no duplicate name in a directory, unique non-zero
  // file ids, a chunk handle repeated in several files (a snapshot) only at
  // one version, replication and chunk_size > 0, at most kMaxChunksPerFile
  // chunks; repeats count as references); a violation is kCorruption and leaves the
  // state partially loaded (discard it). versions[i] is ignored where
  // chunks[i] == 0. LoadCounters comes last: the counters must exceed every
  // id / handle loaded.
  Status LoadDir(uint32_t parent, std::string_view name, uint32_t* ordinal);
  Status LoadFile(uint32_t parent, std::string_view name, const TreeNode& file,
                  const uint64_t* versions);
  Status LoadCounters(uint64_t next_file_id, uint64_t next_handle);
  // Optional, before loading: sizes the id tables for this many files and
  // chunks (saves their step-by-step growth; callers bound the numbers by
  // what their input can hold).
  void LoadReserve(uint64_t files, uint64_t chunks);

  // Bytes of heap this state holds (tables, records, names), for the memory
  // figures of bench/meta_bench.cc.
  size_t MemoryBytes() const;

 private:
  // Layout (chosen for <= 128 B per file and <= 64 B per chunk at millions
  // of entries; see doc/disk-format-master.md "Memory"):
  //  - files, directories and chunks are fixed-size records in paged arrays
  //    (stable slots, freed slots reused), found through open-addressing
  //    tables of 32-bit slot numbers (IndexTable);
  //  - a directory's children are an IndexTable keyed by name holding tagged
  //    slots (kDirTag set = directory);
  //  - names live once in an arena string, referenced by (offset, length);
  //  - a file's chunk handles are inline when it has at most one chunk, in a
  //    side vector otherwise.
  static constexpr uint32_t kNone = 0xffffffffu;
  static constexpr uint32_t kDirTag = 0x80000000u;

  // Linear-probing table of uint32 values (slots into the record arrays);
  // the caller supplies hashes and equality. Each entry keeps 32 bits of its
  // key's hash beside the value: the home slot is derived from them, so
  // growing and deleting never touch the records, and a probe compares
  // records only on a hash match (one record access per lookup, typically).
  class IndexTable {
   public:
    template <typename Eq>
    uint32_t Find(uint64_t h, Eq eq) const;
    void Insert(uint64_t h, uint32_t v);
    void Reserve(uint64_t n);
    template <typename Eq>
    bool Erase(uint64_t h, Eq eq);
    template <typename Fn>
    void ForEach(Fn fn) const {
      for (uint32_t i = 0; i < cap_; ++i) {
        if (t_[i] != kEmpty) fn(static_cast<uint32_t>(t_[i]));
      }
    }
    uint32_t size() const { return size_; }
    size_t MemoryBytes() const { return size_t{cap_} * sizeof(uint64_t); }
    void Clear() {
      t_.reset();
      cap_ = size_ = 0;
    }

   private:
    static constexpr uint64_t kEmpty = ~uint64_t{0};
    static uint32_t Hash32(uint64_t h);
    void Rehash(uint32_t cap);
    std::unique_ptr<uint64_t[]> t_;
    uint32_t cap_ = 0;  // 0 or a power of two
    uint32_t size_ = 0;
  };

  // Fixed-size records in 4096-entry pages: no reallocation copies, slack
  // of at most one page, slots never move.
  template <typename T>
  class Paged {
   public:
    T& operator[](uint32_t i) { return pages_[i >> kShift][i & kMask]; }
    const T& operator[](uint32_t i) const { return pages_[i >> kShift][i & kMask]; }
    uint32_t size() const { return size_; }
    uint32_t Add() {
      if ((size_ & kMask) == 0) pages_.push_back(std::make_unique<T[]>(kMask + 1));
      return size_++;
    }
    size_t MemoryBytes() const {
      return pages_.size() * (sizeof(T) * (kMask + 1)) + pages_.capacity() * sizeof(void*);
    }

   private:
    static constexpr uint32_t kShift = 12;
    static constexpr uint32_t kMask = (1u << kShift) - 1;
    std::vector<std::unique_ptr<T[]>> pages_;
    uint32_t size_ = 0;
  };

  struct FileRec {
    uint64_t id = 0;    // 0 = free slot
    uint64_t name = 0;  // packed NameRef: offset << 16 | length
    uint64_t chunk_size = 0;
    uint64_t length = 0;
    int64_t mtime_ms = 0;
    uint32_t replication = 0;
    uint32_t num_chunks = 0;
    // num_chunks <= 1: the handle itself; else an index into chunk_lists_.
    uint64_t chunks = 0;
  };
  struct DirRec {
    uint64_t name = 0;
    IndexTable children;  // tagged slots
    bool live = false;
  };
  struct Lookup;

  Status Resolve(const std::string& path, Lookup* out) const;
  Status Validate(const MetaOp& op, Lookup* a, Lookup* b) const;

  // Names.
  static uint64_t HashName(std::string_view name);
  std::string_view Name(uint64_t ref) const {
    return std::string_view(names_.data() + (ref >> 16), ref & 0xffff);
  }
  uint64_t AddName(std::string_view name);
  void DropName(uint64_t ref) { dead_name_bytes_ += ref & 0xffff; }
  void MaybeCompactNames();
  uint64_t NameOfChild(uint32_t ref) const {
    return (ref & kDirTag) ? dirs_[ref & ~kDirTag].name : files_[ref].name;
  }
  uint32_t FindChild(uint32_t dir, std::string_view name) const;
  void InsertChild(uint32_t dir, uint32_t ref);
  void EraseChild(uint32_t dir, std::string_view name);

  // Records.
  uint32_t FindFileSlot(uint64_t id) const;
  uint32_t FindChunkSlot(uint64_t handle) const;
  uint32_t NewDir(uint64_t name);
  uint32_t NewFile();
  uint32_t NewChunk();
  const uint64_t* ChunksOf(const FileRec& f) const {
    return f.num_chunks <= 1 ? &f.chunks : chunk_lists_[f.chunks].data();
  }
  uint64_t* MutableChunksOf(FileRec& f) {
    return f.num_chunks <= 1 ? &f.chunks : chunk_lists_[f.chunks].data();
  }
  void ResizeChunks(FileRec& f, uint32_t n);
  void AddChunkRec(uint64_t handle, uint64_t version, uint64_t file_id, uint32_t index);
  void RemoveChunk(uint64_t handle, std::vector<uint64_t>* freed);
  void RemoveFileSlot(uint32_t slot, std::vector<uint64_t>* freed);
  void RemoveSubtree(uint32_t ref, std::vector<uint64_t>* freed);
  // kSnapshot: copies the file or directory `ref` as `name` into directory
  // `parent`, giving files the ids *next_id, *next_id + 1, ...
  void CopySubtree(uint32_t ref, uint32_t parent, std::string_view name, uint64_t* next_id);
  // Visits the file slots at or under tagged slot `ref`.
  template <typename Fn>
  void ForEachFileSlot(uint32_t ref, Fn fn) const;
  FileInfo MakeFileInfo(const FileRec& f) const;
  DirEntry MakeEntry(uint32_t ref) const;
  std::vector<uint32_t> SortedChildren(uint32_t dir) const;
  void InvalidateFound() {
    if (!found_.empty()) found_.clear();
  }

  Paged<FileRec> files_;
  Paged<DirRec> dirs_;       // slot 0 = root
  Paged<ChunkInfo> chunks_;  // handle 0 = free slot
  std::vector<uint32_t> free_files_, free_dirs_, free_chunks_;
  IndexTable file_index_;   // file id -> files_ slot
  IndexTable chunk_index_;  // handle -> chunks_ slot
  // Chunk handle vectors of files with more than one chunk.
  std::vector<std::vector<uint64_t>> chunk_lists_;
  std::vector<uint32_t> free_lists_;
  std::string names_;
  size_t dead_name_bytes_ = 0;
  size_t num_files_ = 0, num_chunks_ = 0;
  size_t num_dirs_ = 1;
  uint64_t next_file_id_ = 1;
  uint64_t next_handle_ = 1;
  bool loading_allowed_ = true;  // no Apply yet: Load* may be used
  // FindFile's answers, kept until the next Apply (files are not stored as
  // FileInfo).
  mutable std::unordered_map<uint64_t, FileInfo> found_;
};

}  // namespace gfs
