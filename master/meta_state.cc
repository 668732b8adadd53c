// MetaState's operations: resolving paths, checking and applying MetaOps
// (the only way the metadata changes), and the reads (stat, list, lookups,
// walks).
#include "master/meta_state.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

namespace gfs {

namespace {

Status Stale(std::string m) { return Status(Code::kStaleVersion, std::move(m)); }
Status NotADir(std::string m) { return Status(Code::kNotADirectory, std::move(m)); }
Status IsADir(std::string m) { return Status(Code::kIsADirectory, std::move(m)); }
Status NotEmpty(std::string m) { return Status(Code::kNotEmpty, std::move(m)); }

std::string JoinPrefix(const std::vector<std::string>& comps, size_t n) {
  if (n == 0) return "/";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s += '/';
    s += comps[i];
  }
  return s;
}
}  // namespace

// The result of resolving a path. parent_status is the error of walking to
// the parent directory (ok when `parent` is set).
struct MetaState::Lookup {
  std::string norm;
  std::vector<std::string> comps;
  Status parent_status;
  uint32_t parent = kNone;  // slot of the directory that holds (or would hold) the leaf
  uint32_t leaf = kNone;    // tagged slot; kNone when the leaf does not exist
  bool is_root() const { return comps.empty(); }
  bool leaf_is_dir() const { return leaf != kNone && (leaf & kDirTag) != 0; }
};

Status MetaState::Resolve(const std::string& path, Lookup* out) const {
  GFS_RETURN_IF_ERROR(NormalizePath(path, &out->norm, &out->comps));
  out->parent = kNone;
  out->leaf = kNone;
  out->parent_status = Status::OK();
  if (out->comps.empty()) return Status::OK();
  uint32_t d = 0;
  for (size_t i = 0; i + 1 < out->comps.size(); ++i) {
    const uint32_t c = FindChild(d, out->comps[i]);
    if (c == kNone) {
      out->parent_status = Status::NotFound(JoinPrefix(out->comps, i + 1));
      return Status::OK();
    }
    if ((c & kDirTag) == 0) {
      out->parent_status = NotADir(JoinPrefix(out->comps, i + 1));
      return Status::OK();
    }
    d = c & ~kDirTag;
  }
  out->parent = d;
  out->leaf = FindChild(d, out->comps.back());
  return Status::OK();
}

Status MetaState::Validate(const MetaOp& op, Lookup* a, Lookup* b) const {
  switch (op.type) {
    case OpType::kMkdir: {
      GFS_RETURN_IF_ERROR(Resolve(op.path, a));
      if (a->is_root()) {
        return op.flag ? Status::OK() : Status::AlreadyExists("/");
      }
      if (!op.flag) {
        GFS_RETURN_IF_ERROR(a->parent_status);
        if (a->leaf != kNone) return Status::AlreadyExists(a->norm);
        return Status::OK();
      }
      // parents: walk every component; files in the way are errors.
      uint32_t d = 0;
      for (size_t i = 0; i < a->comps.size(); ++i) {
        const uint32_t c = FindChild(d, a->comps[i]);
        if (c == kNone) return Status::OK();  // rest gets created
        if ((c & kDirTag) == 0) {
          if (i + 1 == a->comps.size()) return Status::AlreadyExists(a->norm);
          return NotADir(JoinPrefix(a->comps, i + 1));
        }
        d = c & ~kDirTag;
      }
      return Status::OK();  // already a directory: fine with parents
    }
    case OpType::kCreate: {
      GFS_RETURN_IF_ERROR(Resolve(op.path, a));
      if (a->is_root()) return Status::AlreadyExists("/");
      if (op.id == 0) return Status::InvalidArgument("create: file id 0");
      if (op.replication == 0) return Status::InvalidArgument("create: replication 0");
      if (op.chunk_size == 0) return Status::InvalidArgument("create: chunk size 0");
      GFS_RETURN_IF_ERROR(a->parent_status);
      if (a->leaf != kNone) return Status::AlreadyExists(a->norm);
      if (FindFileSlot(op.id) != kNone) {
        return Status::AlreadyExists("create: file id " + std::to_string(op.id) + " in use");
      }
      return Status::OK();
    }
    case OpType::kDelete: {
      GFS_RETURN_IF_ERROR(Resolve(op.path, a));
      if (a->is_root()) return Status::InvalidArgument("cannot delete /");
      GFS_RETURN_IF_ERROR(a->parent_status);
      if (a->leaf == kNone) return Status::NotFound(a->norm);
      if (a->leaf_is_dir() && dirs_[a->leaf & ~kDirTag].children.size() != 0 && !op.flag) {
        return NotEmpty(a->norm);
      }
      return Status::OK();
    }
    case OpType::kRename: {
      GFS_RETURN_IF_ERROR(Resolve(op.path, a));
      GFS_RETURN_IF_ERROR(Resolve(op.path2, b));
      if (a->is_root()) return Status::InvalidArgument("cannot rename /");
      GFS_RETURN_IF_ERROR(a->parent_status);
      if (a->leaf == kNone) return Status::NotFound(a->norm);
      if (b->is_root()) return Status::AlreadyExists("/");
      if (a->leaf_is_dir() && b->comps.size() > a->comps.size() &&
          std::equal(a->comps.begin(), a->comps.end(), b->comps.begin())) {
        return Status::InvalidArgument("cannot move " + a->norm + " into its own subtree " +
                                       b->norm);
      }
      GFS_RETURN_IF_ERROR(b->parent_status);
      if (b->leaf != kNone) return Status::AlreadyExists(b->norm);
      return Status::OK();
    }
    case OpType::kMove: {
      GFS_RETURN_IF_ERROR(Resolve(op.path, a));
      GFS_RETURN_IF_ERROR(Resolve(op.path2, b));
      if (a->is_root()) return Status::InvalidArgument("cannot move /");
      GFS_RETURN_IF_ERROR(a->parent_status);
      if (a->leaf == kNone) return Status::NotFound(a->norm);
      if (b->is_root()) return Status::AlreadyExists("/");
      if (a->leaf_is_dir() && b->comps.size() > a->comps.size() &&
          std::equal(a->comps.begin(), a->comps.end(), b->comps.begin())) {
        return Status::InvalidArgument("cannot move " + a->norm + " into its own subtree " +
                                       b->norm);
      }
      // The destination's parents: missing ones are made by Apply, a file
      // in their way is an error.
      if (b->parent_status.code() == Code::kNotADirectory) return b->parent_status;
      if (b->parent_status.ok() && b->leaf != kNone) return Status::AlreadyExists(b->norm);
      return Status::OK();
    }
    case OpType::kReplace: {
      GFS_RETURN_IF_ERROR(Resolve(op.path, a));
      GFS_RETURN_IF_ERROR(Resolve(op.path2, b));
      if (a->is_root()) return IsADir("/");
      GFS_RETURN_IF_ERROR(a->parent_status);
      if (a->leaf == kNone) return Status::NotFound(a->norm);
      if (a->leaf_is_dir()) return IsADir(a->norm);
      if (b->is_root()) return IsADir("/");
      GFS_RETURN_IF_ERROR(b->parent_status);
      if (a->norm == b->norm) {
        return Status::InvalidArgument("cannot replace " + a->norm + " by itself");
      }
      if (b->leaf != kNone && b->leaf_is_dir()) return IsADir(b->norm);
      return Status::OK();
    }
    case OpType::kAddChunk: {
      const uint32_t f = FindFileSlot(op.id);
      if (f == kNone) return Status::NotFound("add chunk: file id " + std::to_string(op.id));
      if (op.handle == 0) return Status::InvalidArgument("add chunk: handle 0");
      if (op.index >= kMaxChunksPerFile) {
        return Status::InvalidArgument("add chunk: index " + std::to_string(op.index) +
                                       " too large");
      }
      if (FindChunkSlot(op.handle) != kNone) {
        return Status::AlreadyExists("add chunk: handle " + std::to_string(op.handle) + " in use");
      }
      const FileRec& fr = files_[f];
      if (op.index < fr.num_chunks && ChunksOf(fr)[op.index] != 0) {
        return Status::AlreadyExists("add chunk: file " + std::to_string(op.id) + " index " +
                                     std::to_string(op.index) + " already allocated");
      }
      return Status::OK();
    }
    case OpType::kSetVersion: {
      const uint32_t c = FindChunkSlot(op.handle);
      if (c == kNone) return Status::NotFound("set version: chunk " + std::to_string(op.handle));
      if (op.version <= chunks_[c].version) {
        return Stale("set version: chunk " + std::to_string(op.handle) + " version " +
                     std::to_string(op.version) + " <= current " +
                     std::to_string(chunks_[c].version));
      }
      return Status::OK();
    }
    case OpType::kSetLength: {
      if (FindFileSlot(op.id) == kNone) {
        return Status::NotFound("set length: file id " + std::to_string(op.id));
      }
      return Status::OK();
    }
    case OpType::kSnapshot: {
      GFS_RETURN_IF_ERROR(Resolve(op.path, a));
      GFS_RETURN_IF_ERROR(Resolve(op.path2, b));
      if (a->is_root()) return Status::InvalidArgument("cannot snapshot /");
      GFS_RETURN_IF_ERROR(a->parent_status);
      if (a->leaf == kNone) return Status::NotFound(a->norm);
      if (b->is_root()) return Status::AlreadyExists("/");
      if (b->comps.size() > a->comps.size() &&
          std::equal(a->comps.begin(), a->comps.end(), b->comps.begin())) {
        return Status::InvalidArgument("snapshot destination " + b->norm + " lies inside " +
                                       a->norm);
      }
      GFS_RETURN_IF_ERROR(b->parent_status);
      if (b->leaf != kNone) return Status::AlreadyExists(b->norm);
      if (op.id == 0 || op.id < next_file_id_) {
        return Status::InvalidArgument("snapshot: first file id " + std::to_string(op.id) +
                                       " may be in use");
      }
      return Status::OK();
    }
    case OpType::kCopyOnWrite: {
      const uint32_t f = FindFileSlot(op.id);
      if (f == kNone) return Status::NotFound("copy on write: file id " + std::to_string(op.id));
      const FileRec& fr = files_[f];
      if (op.index >= fr.num_chunks || ChunksOf(fr)[op.index] == 0) {
        return Status::NotFound("copy on write: file " + std::to_string(op.id) + " has no chunk " +
                                std::to_string(op.index));
      }
      if (op.handle == 0) return Status::InvalidArgument("copy on write: handle 0");
      if (FindChunkSlot(op.handle) != kNone) {
        return Status::AlreadyExists("copy on write: handle " + std::to_string(op.handle) +
                                     " in use");
      }
      const uint64_t old = ChunksOf(fr)[op.index];
      if (RefCount(old) < 2) {
        return Status::InvalidArgument("copy on write: chunk " + std::to_string(old) +
                                       " is not shared");
      }
      return Status::OK();
    }
    case OpType::kSetReplication: {
      GFS_RETURN_IF_ERROR(Resolve(op.path, a));
      if (op.replication == 0) return Status::InvalidArgument("set replication: replication 0");
      if (a->is_root()) return Status::OK();
      GFS_RETURN_IF_ERROR(a->parent_status);
      if (a->leaf == kNone) return Status::NotFound(a->norm);
      return Status::OK();
    }
  }
  return Status::InvalidArgument("unknown op type " + std::to_string(static_cast<int>(op.type)));
}

Status MetaState::Check(const MetaOp& op) const {
  Lookup a, b;
  return Validate(op, &a, &b);
}

Status MetaState::Apply(const MetaOp& op, std::vector<uint64_t>* freed) {
  loading_allowed_ = false;
  Lookup a, b;
  GFS_RETURN_IF_ERROR(Validate(op, &a, &b));
  InvalidateFound();
  switch (op.type) {
    case OpType::kMkdir: {
      uint32_t d = 0;
      for (const auto& name : a.comps) {
        const uint32_t c = FindChild(d, name);
        if (c != kNone) {
          d = c & ~kDirTag;
          continue;
        }
        const uint32_t nd = NewDir(AddName(name));
        InsertChild(d, nd | kDirTag);
        ++num_dirs_;
        d = nd;
      }
      return Status::OK();
    }
    case OpType::kCreate: {
      const uint32_t slot = NewFile();
      FileRec& f = files_[slot];
      f.id = op.id;
      f.name = AddName(a.comps.back());
      f.replication = op.replication;
      f.chunk_size = op.chunk_size;
      f.length = 0;
      f.mtime_ms = op.time_ms;
      f.num_chunks = 0;
      f.chunks = 0;
      InsertChild(a.parent, slot);
      file_index_.Insert(op.id, slot);
      ++num_files_;
      next_file_id_ = std::max(next_file_id_, op.id + 1);
      return Status::OK();
    }
    case OpType::kDelete: {
      EraseChild(a.parent, a.comps.back());
      RemoveSubtree(a.leaf, freed);
      MaybeCompactNames();
      return Status::OK();
    }
    case OpType::kReplace:
      if (b.leaf != kNone) {
        EraseChild(b.parent, b.comps.back());
        RemoveSubtree(b.leaf, freed);
      }
      [[fallthrough]];
    case OpType::kRename: {
      EraseChild(a.parent, a.comps.back());
      uint64_t* name = (a.leaf & kDirTag) ? &dirs_[a.leaf & ~kDirTag].name : &files_[a.leaf].name;
      DropName(*name);
      *name = AddName(b.comps.back());
      InsertChild(b.parent, a.leaf);
      MaybeCompactNames();
      return Status::OK();
    }
    case OpType::kMove: {
      // Make the destination's missing parents (as kMkdir with parents),
      // then move as kRename does.
      uint32_t d = 0;
      for (size_t i = 0; i + 1 < b.comps.size(); ++i) {
        const uint32_t c = FindChild(d, b.comps[i]);
        if (c != kNone) {
          d = c & ~kDirTag;
          continue;
        }
        const uint32_t nd = NewDir(AddName(b.comps[i]));
        InsertChild(d, nd | kDirTag);
        ++num_dirs_;
        d = nd;
      }
      EraseChild(a.parent, a.comps.back());
      uint64_t* name = (a.leaf & kDirTag) ? &dirs_[a.leaf & ~kDirTag].name : &files_[a.leaf].name;
      DropName(*name);
      *name = AddName(b.comps.back());
      InsertChild(d, a.leaf);
      MaybeCompactNames();
      return Status::OK();
    }
    case OpType::kAddChunk: {
      FileRec& f = files_[FindFileSlot(op.id)];
      if (f.num_chunks <= op.index) ResizeChunks(f, op.index + 1);
      MutableChunksOf(f)[op.index] = op.handle;
      f.mtime_ms = op.time_ms;
      AddChunkRec(op.handle, op.version, op.id, op.index);
      return Status::OK();
    }
    case OpType::kSetVersion:
      chunks_[FindChunkSlot(op.handle)].version = op.version;
      return Status::OK();
    case OpType::kSetLength: {
      FileRec& f = files_[FindFileSlot(op.id)];
      if (op.length < f.length) {
        // Keep the chunks that hold any byte below the new length.
        const uint64_t keep = op.length / f.chunk_size + (op.length % f.chunk_size != 0 ? 1 : 0);
        if (f.num_chunks > keep) {
          const uint64_t* hs = ChunksOf(f);
          for (uint64_t i = keep; i < f.num_chunks; ++i) {
            if (hs[i] != 0) RemoveChunk(hs[i], freed);
          }
          ResizeChunks(f, static_cast<uint32_t>(keep));
        }
      }
      f.length = op.length;
      f.mtime_ms = op.time_ms;
      return Status::OK();
    }
    case OpType::kSnapshot: {
      uint64_t next = op.id;
      CopySubtree(a.leaf, b.parent, b.comps.back(), &next);
      next_file_id_ = std::max(next_file_id_, next);
      return Status::OK();
    }
    case OpType::kCopyOnWrite: {
      FileRec& f = files_[FindFileSlot(op.id)];
      uint64_t& slot = MutableChunksOf(f)[op.index];
      chunks_[FindChunkSlot(slot)].refs--;  // at least 1 is left (Validate)
      slot = op.handle;
      AddChunkRec(op.handle, op.version, op.id, op.index);
      return Status::OK();
    }
    case OpType::kSetReplication: {
      // Every file of the tree (or the one file); directories carry no
      // replication of their own.
      std::vector<uint32_t> stack{a.is_root() ? kDirTag : a.leaf};
      while (!stack.empty()) {
        const uint32_t r = stack.back();
        stack.pop_back();
        if ((r & kDirTag) == 0) {
          files_[r].replication = op.replication;
          continue;
        }
        dirs_[r & ~kDirTag].children.ForEach([&](uint32_t c) { stack.push_back(c); });
      }
      return Status::OK();
    }
  }
  return Status::Internal("unreachable");
}

FileInfo MetaState::MakeFileInfo(const FileRec& f) const {
  FileInfo fi;
  fi.id = f.id;
  fi.replication = f.replication;
  fi.chunk_size = f.chunk_size;
  fi.length = f.length;
  fi.mtime_ms = f.mtime_ms;
  const uint64_t* hs = ChunksOf(f);
  fi.chunks.assign(hs, hs + f.num_chunks);
  return fi;
}

Result<FileInfo> MetaState::StatFile(const std::string& path) const {
  Lookup a;
  GFS_RETURN_IF_ERROR(Resolve(path, &a));
  if (a.is_root()) return IsADir("/");
  GFS_RETURN_IF_ERROR(a.parent_status);
  if (a.leaf == kNone) return Status::NotFound(a.norm);
  if (a.leaf_is_dir()) return IsADir(a.norm);
  return MakeFileInfo(files_[a.leaf]);
}

const FileInfo* MetaState::FindFile(uint64_t id) const {
  const uint32_t slot = FindFileSlot(id);
  if (slot == kNone) return nullptr;
  auto [it, inserted] = found_.try_emplace(id);
  if (inserted) it->second = MakeFileInfo(files_[slot]);
  return &it->second;
}

bool MetaState::IsDir(const std::string& path) const {
  Lookup a;
  if (!Resolve(path, &a).ok()) return false;
  if (a.is_root()) return true;
  return a.leaf_is_dir();
}

bool MetaState::Exists(const std::string& path) const {
  Lookup a;
  if (!Resolve(path, &a).ok()) return false;
  return a.is_root() || a.leaf != kNone;
}

DirEntry MetaState::MakeEntry(uint32_t ref) const {
  DirEntry de;
  de.name = std::string(Name(NameOfChild(ref)));
  de.is_dir = (ref & kDirTag) != 0;
  if (!de.is_dir) de.file = MakeFileInfo(files_[ref]);
  return de;
}

std::vector<uint32_t> MetaState::SortedChildren(uint32_t dir) const {
  std::vector<uint32_t> refs;
  refs.reserve(dirs_[dir].children.size());
  dirs_[dir].children.ForEach([&](uint32_t r) { refs.push_back(r); });
  std::sort(refs.begin(), refs.end(),
            [this](uint32_t x, uint32_t y) { return Name(NameOfChild(x)) < Name(NameOfChild(y)); });
  return refs;
}

Result<std::vector<DirEntry>> MetaState::List(const std::string& path) const {
  Lookup a;
  GFS_RETURN_IF_ERROR(Resolve(path, &a));
  uint32_t d = 0;
  if (!a.is_root()) {
    GFS_RETURN_IF_ERROR(a.parent_status);
    if (a.leaf == kNone) return Status::NotFound(a.norm);
    if (!a.leaf_is_dir()) return std::vector<DirEntry>{MakeEntry(a.leaf)};
    d = a.leaf & ~kDirTag;
  }
  std::vector<DirEntry> out;
  const std::vector<uint32_t> refs = SortedChildren(d);
  out.reserve(refs.size());
  for (uint32_t r : refs) out.push_back(MakeEntry(r));
  return out;
}

const ChunkInfo* MetaState::FindChunk(uint64_t handle) const {
  const uint32_t slot = FindChunkSlot(handle);
  return slot == kNone ? nullptr : &chunks_[slot];
}

uint32_t MetaState::RefCount(uint64_t handle) const {
  const uint32_t slot = FindChunkSlot(handle);
  return slot == kNone ? 0 : chunks_[slot].refs;
}

template <typename Fn>
void MetaState::ForEachFileSlot(uint32_t ref, Fn fn) const {
  std::vector<uint32_t> stack{ref};
  while (!stack.empty()) {
    const uint32_t r = stack.back();
    stack.pop_back();
    if ((r & kDirTag) == 0) {
      fn(files_[r]);
    } else {
      dirs_[r & ~kDirTag].children.ForEach([&](uint32_t c) { stack.push_back(c); });
    }
  }
}

Result<std::vector<uint64_t>> MetaState::ChunksUnder(const std::string& path) const {
  Lookup a;
  GFS_RETURN_IF_ERROR(Resolve(path, &a));
  uint32_t ref = 0 | kDirTag;
  if (!a.is_root()) {
    GFS_RETURN_IF_ERROR(a.parent_status);
    if (a.leaf == kNone) return Status::NotFound(a.norm);
    ref = a.leaf;
  }
  std::vector<uint64_t> out;
  ForEachFileSlot(ref, [&](const FileRec& f) {
    const uint64_t* hs = ChunksOf(f);
    for (uint32_t i = 0; i < f.num_chunks; ++i) {
      if (hs[i] != 0) out.push_back(hs[i]);
    }
  });
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

uint64_t MetaState::CountFiles(const std::string& path) const {
  Lookup a;
  if (!Resolve(path, &a).ok()) return 0;
  uint32_t ref = 0 | kDirTag;
  if (!a.is_root()) {
    if (!a.parent_status.ok() || a.leaf == kNone) return 0;
    ref = a.leaf;
  }
  uint64_t n = 0;
  ForEachFileSlot(ref, [&](const FileRec&) { ++n; });
  return n;
}

void MetaState::ForEachChunk(const std::function<void(const ChunkInfo&)>& fn) const {
  for (uint32_t s = 0; s < chunks_.size(); ++s) {
    if (chunks_[s].handle != 0) fn(chunks_[s]);
  }
}

void MetaState::ForEachFile(
    const std::function<void(const std::string& path, const FileInfo&)>& fn) const {
  // Iterative DFS carrying the path prefix.
  struct Frame {
    uint32_t dir;
    std::string prefix;
  };
  std::vector<Frame> stack{{0, ""}};
  while (!stack.empty()) {
    Frame f = std::move(stack.back());
    stack.pop_back();
    dirs_[f.dir].children.ForEach([&](uint32_t r) {
      std::string p = f.prefix;
      p += '/';
      p += Name(NameOfChild(r));
      if (r & kDirTag) {
        stack.push_back({r & ~kDirTag, std::move(p)});
      } else {
        fn(p, MakeFileInfo(files_[r]));
      }
    });
  }
}

std::string MetaState::DebugString() const {
  std::string out;
  char buf[160];
  std::function<void(uint32_t, const std::string&)> walk = [&](uint32_t d,
                                                               const std::string& prefix) {
    for (uint32_t r : SortedChildren(d)) {
      std::string p = prefix;
      p += '/';
      p += Name(NameOfChild(r));
      if (r & kDirTag) {
        out += "D " + p + "\n";
        walk(r & ~kDirTag, p);
      } else {
        const FileRec& fi = files_[r];
        std::snprintf(buf, sizeof buf,
                      " id=%" PRIu64 " repl=%u cs=%" PRIu64 " len=%" PRIu64 " mtime=%" PRId64
                      " chunks=",
                      fi.id, fi.replication, fi.chunk_size, fi.length, fi.mtime_ms);
        out += "F " + p + buf;
        const uint64_t* hs = ChunksOf(fi);
        for (uint32_t i = 0; i < fi.num_chunks; ++i) out += std::to_string(hs[i]) + ",";
        out += "\n";
      }
    }
  };
  walk(0, "");
  std::vector<const ChunkInfo*> cs;
  ForEachChunk([&](const ChunkInfo& c) { cs.push_back(&c); });
  std::sort(cs.begin(), cs.end(),
            [](const ChunkInfo* x, const ChunkInfo* y) { return x->handle < y->handle; });
  for (const ChunkInfo* c : cs) {
    // Not the allocating file: with snapshots a chunk can outlive it, and a
    // checkpoint does not keep it.
    std::snprintf(buf, sizeof buf, "C %" PRIu64 " v=%" PRIu64 " refs=%u\n", c->handle, c->version,
                  c->refs);
    out += buf;
  }
  std::snprintf(buf, sizeof buf,
                "next_file_id=%" PRIu64 " next_handle=%" PRIu64 " files=%zu dirs=%zu\n",
                next_file_id_, next_handle_, num_files_, num_dirs_);
  out += buf;
  return out;
}

}  // namespace gfs
