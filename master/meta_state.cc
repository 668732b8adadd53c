#include "master/meta_state.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "common/coding.h"

namespace gfs {

namespace {

constexpr uint8_t kMetaOpEncodingVersion = 1;

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

const char* OpTypeName(OpType t) {
  switch (t) {
    case OpType::kMkdir:
      return "mkdir";
    case OpType::kCreate:
      return "create";
    case OpType::kDelete:
      return "delete";
    case OpType::kRename:
      return "rename";
    case OpType::kAddChunk:
      return "add_chunk";
    case OpType::kSetVersion:
      return "set_version";
    case OpType::kSetLength:
      return "set_length";
  }
  return "unknown";
}

// ---------------------------------------------------------------- MetaOp

void MetaOp::EncodeTo(std::vector<uint8_t>* out) const {
  Writer w(out);
  w.U8(kMetaOpEncodingVersion);
  w.U8(static_cast<uint8_t>(type));
  switch (type) {
    case OpType::kMkdir:
      w.Str(path);
      w.Bool(flag);
      break;
    case OpType::kCreate:
      w.Str(path);
      w.U64(id);
      w.U32(replication);
      w.U64(chunk_size);
      w.I64(time_ms);
      break;
    case OpType::kDelete:
      w.Str(path);
      w.Bool(flag);
      break;
    case OpType::kRename:
      w.Str(path);
      w.Str(path2);
      break;
    case OpType::kAddChunk:
      w.U64(id);
      w.U32(index);
      w.U64(handle);
      w.U64(version);
      w.I64(time_ms);
      break;
    case OpType::kSetVersion:
      w.U64(handle);
      w.U64(version);
      break;
    case OpType::kSetLength:
      w.U64(id);
      w.U64(length);
      w.I64(time_ms);
      break;
  }
}

Result<MetaOp> MetaOp::Decode(const uint8_t* data, size_t n) {
  Reader r(data, n);
  uint8_t ver = 0, type = 0;
  if (!r.U8(&ver) || !r.U8(&type)) return Status::Corruption("meta op: truncated header");
  if (ver != kMetaOpEncodingVersion) {
    return Status::Corruption("meta op: unsupported encoding version " + std::to_string(ver) +
                              " (this build reads " + std::to_string(kMetaOpEncodingVersion) + ")");
  }
  MetaOp op;
  op.type = static_cast<OpType>(type);
  switch (op.type) {
    case OpType::kMkdir:
    case OpType::kDelete:
      r.Str(&op.path, kMaxPathLen);
      r.Bool(&op.flag);
      break;
    case OpType::kCreate:
      r.Str(&op.path, kMaxPathLen);
      r.U64(&op.id);
      r.U32(&op.replication);
      r.U64(&op.chunk_size);
      r.I64(&op.time_ms);
      break;
    case OpType::kRename:
      r.Str(&op.path, kMaxPathLen);
      r.Str(&op.path2, kMaxPathLen);
      break;
    case OpType::kAddChunk:
      r.U64(&op.id);
      r.U32(&op.index);
      r.U64(&op.handle);
      r.U64(&op.version);
      r.I64(&op.time_ms);
      break;
    case OpType::kSetVersion:
      r.U64(&op.handle);
      r.U64(&op.version);
      break;
    case OpType::kSetLength:
      r.U64(&op.id);
      r.U64(&op.length);
      r.I64(&op.time_ms);
      break;
    default:
      return Status::Corruption("meta op: unknown type " + std::to_string(type));
  }
  if (!r.ok()) return Status::Corruption(std::string("meta op: malformed ") + OpTypeName(op.type));
  if (!r.done()) {
    return Status::Corruption(std::string("meta op: trailing bytes after ") + OpTypeName(op.type));
  }
  return op;
}

MetaOp MetaOp::Mkdir(std::string path, bool parents) {
  MetaOp op;
  op.type = OpType::kMkdir;
  op.path = std::move(path);
  op.flag = parents;
  return op;
}
MetaOp MetaOp::Create(std::string path, uint64_t id, uint32_t replication, uint64_t chunk_size,
                      int64_t time_ms) {
  MetaOp op;
  op.type = OpType::kCreate;
  op.path = std::move(path);
  op.id = id;
  op.replication = replication;
  op.chunk_size = chunk_size;
  op.time_ms = time_ms;
  return op;
}
MetaOp MetaOp::Delete(std::string path, bool recursive) {
  MetaOp op;
  op.type = OpType::kDelete;
  op.path = std::move(path);
  op.flag = recursive;
  return op;
}
MetaOp MetaOp::Rename(std::string from, std::string to) {
  MetaOp op;
  op.type = OpType::kRename;
  op.path = std::move(from);
  op.path2 = std::move(to);
  return op;
}
MetaOp MetaOp::AddChunk(uint64_t file_id, uint32_t index, uint64_t handle, uint64_t version,
                        int64_t time_ms) {
  MetaOp op;
  op.type = OpType::kAddChunk;
  op.id = file_id;
  op.index = index;
  op.handle = handle;
  op.version = version;
  op.time_ms = time_ms;
  return op;
}
MetaOp MetaOp::SetVersion(uint64_t handle, uint64_t version) {
  MetaOp op;
  op.type = OpType::kSetVersion;
  op.handle = handle;
  op.version = version;
  return op;
}
MetaOp MetaOp::SetLength(uint64_t file_id, uint64_t length, int64_t time_ms) {
  MetaOp op;
  op.type = OpType::kSetLength;
  op.id = file_id;
  op.length = length;
  op.time_ms = time_ms;
  return op;
}

std::string MetaOp::ToString() const {
  char buf[256];
  switch (type) {
    case OpType::kMkdir:
      return "mkdir " + path + (flag ? " -p" : "");
    case OpType::kCreate:
      std::snprintf(buf, sizeof buf, " id=%" PRIu64 " repl=%u chunk_size=%" PRIu64, id, replication,
                    chunk_size);
      return "create " + path + buf;
    case OpType::kDelete:
      return "delete " + path + (flag ? " -r" : "");
    case OpType::kRename:
      return "rename " + path + " -> " + path2;
    case OpType::kAddChunk:
      std::snprintf(buf, sizeof buf,
                    "add_chunk file=%" PRIu64 " index=%u handle=%" PRIu64 " version=%" PRIu64, id,
                    index, handle, version);
      return buf;
    case OpType::kSetVersion:
      std::snprintf(buf, sizeof buf, "set_version handle=%" PRIu64 " version=%" PRIu64, handle,
                    version);
      return buf;
    case OpType::kSetLength:
      std::snprintf(buf, sizeof buf, "set_length file=%" PRIu64 " length=%" PRIu64, id, length);
      return buf;
  }
  return "unknown op " + std::to_string(static_cast<int>(type));
}

bool operator==(const MetaOp& a, const MetaOp& b) {
  return a.type == b.type && a.path == b.path && a.path2 == b.path2 && a.id == b.id &&
         a.handle == b.handle && a.version == b.version && a.length == b.length &&
         a.chunk_size == b.chunk_size && a.replication == b.replication && a.index == b.index &&
         a.time_ms == b.time_ms && a.flag == b.flag;
}

// ---------------------------------------------------------------- paths

Status NormalizePath(std::string_view path, std::string* out, std::vector<std::string>* comps) {
  if (path.empty() || path[0] != '/') {
    return Status::InvalidArgument("path must be absolute: '" + std::string(path) + "'");
  }
  if (path.size() > kMaxPathLen) return Status::InvalidArgument("path too long");
  std::string norm;
  norm.reserve(path.size());
  if (comps) comps->clear();
  size_t i = 0;
  while (i < path.size()) {
    while (i < path.size() && path[i] == '/') ++i;
    if (i >= path.size()) break;
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    std::string_view name = path.substr(i, j - i);
    if (name == "." || name == "..") {
      return Status::InvalidArgument("'.' and '..' are not allowed in paths: '" +
                                     std::string(path) + "'");
    }
    if (name.size() > kMaxNameLen) return Status::InvalidArgument("name too long");
    if (name.find('\0') != std::string_view::npos) {
      return Status::InvalidArgument("NUL in path");
    }
    norm += '/';
    norm += name;
    if (comps) comps->emplace_back(name);
    i = j;
  }
  if (norm.empty()) norm = "/";
  *out = std::move(norm);
  return Status::OK();
}

// ---------------------------------------------------------------- MetaState

// The result of resolving a path. parent_status is the error of walking to
// the parent directory (ok when `parent` is set).
struct MetaState::Lookup {
  std::string norm;
  std::vector<std::string> comps;
  Status parent_status;
  Dir* parent = nullptr;  // the directory that holds (or would hold) the leaf
  Entry* leaf = nullptr;  // null when the leaf does not exist
  bool is_root() const { return comps.empty(); }
};

MetaState::MetaState() = default;
MetaState::~MetaState() = default;

Status MetaState::Resolve(const std::string& path, Lookup* out) const {
  GFS_RETURN_IF_ERROR(NormalizePath(path, &out->norm, &out->comps));
  out->parent = nullptr;
  out->leaf = nullptr;
  out->parent_status = Status::OK();
  if (out->comps.empty()) return Status::OK();
  // Objects reached from root_ are non-const members; Apply mutates through
  // the pointers stored here.
  Dir* d = const_cast<Dir*>(&root_);
  for (size_t i = 0; i + 1 < out->comps.size(); ++i) {
    auto it = d->children.find(out->comps[i]);
    if (it == d->children.end()) {
      out->parent_status = Status::NotFound(JoinPrefix(out->comps, i + 1));
      return Status::OK();
    }
    if (!it->second.dir) {
      out->parent_status = NotADir(JoinPrefix(out->comps, i + 1));
      return Status::OK();
    }
    d = it->second.dir.get();
  }
  out->parent = d;
  auto it = d->children.find(out->comps.back());
  if (it != d->children.end()) out->leaf = &it->second;
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
        if (a->leaf) return Status::AlreadyExists(a->norm);
        return Status::OK();
      }
      // parents: walk every component; files in the way are errors.
      const Dir* d = &root_;
      for (size_t i = 0; i < a->comps.size(); ++i) {
        auto it = d->children.find(a->comps[i]);
        if (it == d->children.end()) return Status::OK();  // rest gets created
        if (!it->second.dir) {
          if (i + 1 == a->comps.size()) return Status::AlreadyExists(a->norm);
          return NotADir(JoinPrefix(a->comps, i + 1));
        }
        d = it->second.dir.get();
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
      if (a->leaf) return Status::AlreadyExists(a->norm);
      if (files_.count(op.id)) {
        return Status::AlreadyExists("create: file id " + std::to_string(op.id) + " in use");
      }
      return Status::OK();
    }
    case OpType::kDelete: {
      GFS_RETURN_IF_ERROR(Resolve(op.path, a));
      if (a->is_root()) return Status::InvalidArgument("cannot delete /");
      GFS_RETURN_IF_ERROR(a->parent_status);
      if (!a->leaf) return Status::NotFound(a->norm);
      if (a->leaf->dir && !a->leaf->dir->children.empty() && !op.flag) {
        return NotEmpty(a->norm);
      }
      return Status::OK();
    }
    case OpType::kRename: {
      GFS_RETURN_IF_ERROR(Resolve(op.path, a));
      GFS_RETURN_IF_ERROR(Resolve(op.path2, b));
      if (a->is_root()) return Status::InvalidArgument("cannot rename /");
      GFS_RETURN_IF_ERROR(a->parent_status);
      if (!a->leaf) return Status::NotFound(a->norm);
      if (b->is_root()) return Status::AlreadyExists("/");
      if (a->leaf->dir && b->comps.size() > a->comps.size() &&
          std::equal(a->comps.begin(), a->comps.end(), b->comps.begin())) {
        return Status::InvalidArgument("cannot move " + a->norm + " into its own subtree " +
                                       b->norm);
      }
      GFS_RETURN_IF_ERROR(b->parent_status);
      if (b->leaf) return Status::AlreadyExists(b->norm);
      return Status::OK();
    }
    case OpType::kAddChunk: {
      auto f = files_.find(op.id);
      if (f == files_.end()) {
        return Status::NotFound("add chunk: file id " + std::to_string(op.id));
      }
      if (op.handle == 0) return Status::InvalidArgument("add chunk: handle 0");
      if (op.index >= kMaxChunksPerFile) {
        return Status::InvalidArgument("add chunk: index " + std::to_string(op.index) +
                                       " too large");
      }
      if (chunks_.count(op.handle)) {
        return Status::AlreadyExists("add chunk: handle " + std::to_string(op.handle) + " in use");
      }
      const auto& chunks = f->second.chunks;
      if (op.index < chunks.size() && chunks[op.index] != 0) {
        return Status::AlreadyExists("add chunk: file " + std::to_string(op.id) + " index " +
                                     std::to_string(op.index) + " already allocated");
      }
      return Status::OK();
    }
    case OpType::kSetVersion: {
      auto c = chunks_.find(op.handle);
      if (c == chunks_.end()) {
        return Status::NotFound("set version: chunk " + std::to_string(op.handle));
      }
      if (op.version <= c->second.version) {
        return Stale("set version: chunk " + std::to_string(op.handle) + " version " +
                     std::to_string(op.version) + " <= current " +
                     std::to_string(c->second.version));
      }
      return Status::OK();
    }
    case OpType::kSetLength: {
      if (!files_.count(op.id)) {
        return Status::NotFound("set length: file id " + std::to_string(op.id));
      }
      return Status::OK();
    }
  }
  return Status::InvalidArgument("unknown op type " + std::to_string(static_cast<int>(op.type)));
}

Status MetaState::Check(const MetaOp& op) const {
  Lookup a, b;
  return Validate(op, &a, &b);
}

void MetaState::CollectSubtree(const Entry& e, std::vector<uint64_t>* file_ids,
                               size_t* dirs) const {
  if (!e.dir) {
    file_ids->push_back(e.file_id);
    return;
  }
  ++*dirs;
  for (const auto& [name, child] : e.dir->children) CollectSubtree(child, file_ids, dirs);
}

void MetaState::RemoveFile(uint64_t id, std::vector<uint64_t>* freed) {
  auto f = files_.find(id);
  if (f == files_.end()) return;
  for (uint64_t h : f->second.chunks) {
    if (h == 0) continue;
    chunks_.erase(h);
    if (freed) freed->push_back(h);
  }
  files_.erase(f);
}

Status MetaState::Apply(const MetaOp& op, std::vector<uint64_t>* freed) {
  Lookup a, b;
  GFS_RETURN_IF_ERROR(Validate(op, &a, &b));
  switch (op.type) {
    case OpType::kMkdir: {
      Dir* d = &root_;
      for (const auto& name : a.comps) {
        auto [it, inserted] = d->children.try_emplace(name);
        if (inserted) {
          it->second.dir = std::make_unique<Dir>();
          ++num_dirs_;
        }
        d = it->second.dir.get();
      }
      return Status::OK();
    }
    case OpType::kCreate: {
      Entry e;
      e.file_id = op.id;
      a.parent->children.emplace(a.comps.back(), std::move(e));
      FileInfo& fi = files_[op.id];
      fi.id = op.id;
      fi.replication = op.replication;
      fi.chunk_size = op.chunk_size;
      fi.length = 0;
      fi.mtime_ms = op.time_ms;
      next_file_id_ = std::max(next_file_id_, op.id + 1);
      return Status::OK();
    }
    case OpType::kDelete: {
      std::vector<uint64_t> ids;
      size_t dirs = 0;
      CollectSubtree(*a.leaf, &ids, &dirs);
      for (uint64_t id : ids) RemoveFile(id, freed);
      num_dirs_ -= dirs;
      a.parent->children.erase(a.comps.back());
      return Status::OK();
    }
    case OpType::kRename: {
      auto node = a.parent->children.extract(a.comps.back());
      node.key() = b.comps.back();
      b.parent->children.insert(std::move(node));
      return Status::OK();
    }
    case OpType::kAddChunk: {
      FileInfo& fi = files_[op.id];
      if (fi.chunks.size() <= op.index) fi.chunks.resize(size_t{op.index} + 1, 0);
      fi.chunks[op.index] = op.handle;
      fi.mtime_ms = op.time_ms;
      ChunkInfo& ci = chunks_[op.handle];
      ci.handle = op.handle;
      ci.version = op.version;
      ci.file_id = op.id;
      ci.index = op.index;
      next_handle_ = std::max(next_handle_, op.handle + 1);
      return Status::OK();
    }
    case OpType::kSetVersion:
      chunks_[op.handle].version = op.version;
      return Status::OK();
    case OpType::kSetLength: {
      FileInfo& fi = files_[op.id];
      if (op.length < fi.length) {
        // Keep the chunks that hold any byte below the new length.
        uint64_t keep = op.length / fi.chunk_size + (op.length % fi.chunk_size != 0 ? 1 : 0);
        if (fi.chunks.size() > keep) {
          for (size_t i = keep; i < fi.chunks.size(); ++i) {
            if (fi.chunks[i] == 0) continue;
            chunks_.erase(fi.chunks[i]);
            if (freed) freed->push_back(fi.chunks[i]);
          }
          fi.chunks.resize(keep);
        }
      }
      fi.length = op.length;
      fi.mtime_ms = op.time_ms;
      return Status::OK();
    }
  }
  return Status::Internal("unreachable");
}

Result<FileInfo> MetaState::StatFile(const std::string& path) const {
  Lookup a;
  GFS_RETURN_IF_ERROR(Resolve(path, &a));
  if (a.is_root()) return IsADir("/");
  GFS_RETURN_IF_ERROR(a.parent_status);
  if (!a.leaf) return Status::NotFound(a.norm);
  if (a.leaf->dir) return IsADir(a.norm);
  return files_.at(a.leaf->file_id);
}

const FileInfo* MetaState::FindFile(uint64_t id) const {
  auto it = files_.find(id);
  return it == files_.end() ? nullptr : &it->second;
}

bool MetaState::IsDir(const std::string& path) const {
  Lookup a;
  if (!Resolve(path, &a).ok()) return false;
  if (a.is_root()) return true;
  return a.leaf != nullptr && a.leaf->dir != nullptr;
}

bool MetaState::Exists(const std::string& path) const {
  Lookup a;
  if (!Resolve(path, &a).ok()) return false;
  return a.is_root() || a.leaf != nullptr;
}

DirEntry MetaState::MakeEntry(const std::string& name, const Entry& e) const {
  DirEntry de;
  de.name = name;
  de.is_dir = e.dir != nullptr;
  if (!de.is_dir) de.file = files_.at(e.file_id);
  return de;
}

Result<std::vector<DirEntry>> MetaState::List(const std::string& path) const {
  Lookup a;
  GFS_RETURN_IF_ERROR(Resolve(path, &a));
  const Dir* d = &root_;
  if (!a.is_root()) {
    GFS_RETURN_IF_ERROR(a.parent_status);
    if (!a.leaf) return Status::NotFound(a.norm);
    if (!a.leaf->dir) return std::vector<DirEntry>{MakeEntry(a.comps.back(), *a.leaf)};
    d = a.leaf->dir.get();
  }
  std::vector<DirEntry> out;
  out.reserve(d->children.size());
  for (const auto& [name, e] : d->children) out.push_back(MakeEntry(name, e));
  return out;
}

const ChunkInfo* MetaState::FindChunk(uint64_t handle) const {
  auto it = chunks_.find(handle);
  return it == chunks_.end() ? nullptr : &it->second;
}

void MetaState::ForEachChunk(const std::function<void(const ChunkInfo&)>& fn) const {
  for (const auto& [h, c] : chunks_) fn(c);
}

void MetaState::ForEachFile(
    const std::function<void(const std::string& path, const FileInfo&)>& fn) const {
  // Iterative DFS carrying the path prefix.
  struct Frame {
    const Dir* dir;
    std::string prefix;
  };
  std::vector<Frame> stack{{&root_, ""}};
  while (!stack.empty()) {
    Frame f = std::move(stack.back());
    stack.pop_back();
    for (const auto& [name, e] : f.dir->children) {
      std::string p = f.prefix + "/" + name;
      if (e.dir) {
        stack.push_back({e.dir.get(), std::move(p)});
      } else {
        fn(p, files_.at(e.file_id));
      }
    }
  }
}

std::string MetaState::DebugString() const {
  std::string out;
  char buf[160];
  std::function<void(const Dir&, const std::string&)> walk = [&](const Dir& d,
                                                                 const std::string& prefix) {
    for (const auto& [name, e] : d.children) {
      std::string p = prefix + "/" + name;
      if (e.dir) {
        out += "D " + p + "\n";
        walk(*e.dir, p);
      } else {
        const FileInfo& fi = files_.at(e.file_id);
        std::snprintf(buf, sizeof buf,
                      " id=%" PRIu64 " repl=%u cs=%" PRIu64 " len=%" PRIu64 " mtime=%" PRId64
                      " chunks=",
                      fi.id, fi.replication, fi.chunk_size, fi.length, fi.mtime_ms);
        out += "F " + p + buf;
        for (uint64_t h : fi.chunks) out += std::to_string(h) + ",";
        out += "\n";
      }
    }
  };
  walk(root_, "");
  std::vector<const ChunkInfo*> cs;
  for (const auto& [h, c] : chunks_) cs.push_back(&c);
  std::sort(cs.begin(), cs.end(),
            [](const ChunkInfo* x, const ChunkInfo* y) { return x->handle < y->handle; });
  for (const ChunkInfo* c : cs) {
    std::snprintf(buf, sizeof buf, "C %" PRIu64 " v=%" PRIu64 " file=%" PRIu64 " index=%u\n",
                  c->handle, c->version, c->file_id, c->index);
    out += buf;
  }
  std::snprintf(buf, sizeof buf,
                "next_file_id=%" PRIu64 " next_handle=%" PRIu64 " files=%zu dirs=%zu\n",
                next_file_id_, next_handle_, files_.size(), num_dirs_);
  out += buf;
  return out;
}

}  // namespace gfs
