#include "master/meta_state.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "common/coding.h"

namespace gfs {

namespace {

// Version 1: op types 1..7. Version 2: kReplace, the only type written with
// it, so that logs without a replace stay readable by older builds and a
// build that does not know kReplace refuses it by its version.
constexpr uint8_t kMetaOpEncodingVersion = 1;
constexpr uint8_t kMetaOpEncodingVersionReplace = 2;

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
    case OpType::kReplace:
      return "replace";
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
  w.U8(type == OpType::kReplace ? kMetaOpEncodingVersionReplace : kMetaOpEncodingVersion);
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
    case OpType::kReplace:
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
  if (ver != kMetaOpEncodingVersion && ver != kMetaOpEncodingVersionReplace) {
    return Status::Corruption("meta op: unsupported encoding version " + std::to_string(ver) +
                              " (this build reads " + std::to_string(kMetaOpEncodingVersion) +
                              " and " + std::to_string(kMetaOpEncodingVersionReplace) + ")");
  }
  MetaOp op;
  op.type = static_cast<OpType>(type);
  if ((op.type == OpType::kReplace) != (ver == kMetaOpEncodingVersionReplace)) {
    return Status::Corruption("meta op: type " + std::to_string(type) + " with encoding version " +
                              std::to_string(ver));
  }
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
    case OpType::kReplace:
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
MetaOp MetaOp::Replace(std::string from, std::string to) {
  MetaOp op = Rename(std::move(from), std::move(to));
  op.type = OpType::kReplace;
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
    case OpType::kReplace:
      return "replace " + path + " -> " + path2;
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

// ---------------------------------------------------------------- tables

namespace {

// Murmur3's finaliser: spreads sequential ids over the table.
inline uint64_t Mix(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

// A name as one path component: what Apply would accept.
bool ValidName(std::string_view name) {
  return !name.empty() && name.size() <= kMaxNameLen && name != "." && name != ".." &&
         name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

Status Corrupt(std::string m) { return Status::Corruption("checkpoint load: " + std::move(m)); }

}  // namespace

uint32_t MetaState::IndexTable::Hash32(uint64_t h) { return static_cast<uint32_t>(Mix(h) >> 32); }

template <typename Eq>
uint32_t MetaState::IndexTable::Find(uint64_t h, Eq eq) const {
  if (size_ == 0) return kNone;
  const uint32_t mask = cap_ - 1;
  const uint64_t tag = uint64_t{Hash32(h)} << 32;
  for (uint32_t i = Hash32(h) & mask;; i = (i + 1) & mask) {
    const uint64_t e = t_[i];
    if (e == kEmpty) return kNone;
    if ((e & 0xffffffff00000000ULL) == tag && eq(static_cast<uint32_t>(e))) {
      return static_cast<uint32_t>(e);
    }
  }
}

void MetaState::IndexTable::Rehash(uint32_t cap) {
  std::unique_ptr<uint64_t[]> old = std::move(t_);
  const uint32_t old_cap = cap_;
  t_ = std::make_unique_for_overwrite<uint64_t[]>(cap);
  std::fill(t_.get(), t_.get() + cap, kEmpty);
  cap_ = cap;
  const uint32_t mask = cap - 1;
  for (uint32_t j = 0; j < old_cap; ++j) {
    const uint64_t e = old[j];
    if (e == kEmpty) continue;
    uint32_t i = static_cast<uint32_t>(e >> 32) & mask;
    while (t_[i] != kEmpty) i = (i + 1) & mask;
    t_[i] = e;
  }
}

void MetaState::IndexTable::Reserve(uint64_t n) {
  uint64_t cap = 8;
  while (cap * 3 < n * 4 && cap < (uint64_t{1} << 31)) cap *= 2;
  if (cap > cap_) Rehash(static_cast<uint32_t>(cap));
}

void MetaState::IndexTable::Insert(uint64_t h, uint32_t v) {
  // Load factor at most 3/4.
  if ((uint64_t{size_} + 1) * 4 > uint64_t{cap_} * 3) Rehash(cap_ == 0 ? 8 : cap_ * 2);
  const uint32_t mask = cap_ - 1;
  const uint32_t h32 = Hash32(h);
  uint32_t i = h32 & mask;
  while (t_[i] != kEmpty) i = (i + 1) & mask;
  t_[i] = uint64_t{h32} << 32 | v;
  ++size_;
}

template <typename Eq>
bool MetaState::IndexTable::Erase(uint64_t h, Eq eq) {
  if (size_ == 0) return false;
  const uint32_t mask = cap_ - 1;
  const uint32_t h32 = Hash32(h);
  uint32_t i = h32 & mask;
  for (;; i = (i + 1) & mask) {
    const uint64_t e = t_[i];
    if (e == kEmpty) return false;
    if (static_cast<uint32_t>(e >> 32) == h32 && eq(static_cast<uint32_t>(e))) break;
  }
  // Backward-shift deletion (no tombstones): pull later members of the probe
  // run into the hole unless their home lies cyclically in (hole, j].
  for (uint32_t j = (i + 1) & mask; t_[j] != kEmpty; j = (j + 1) & mask) {
    const uint32_t home = static_cast<uint32_t>(t_[j] >> 32) & mask;
    const bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (stays) continue;
    t_[i] = t_[j];
    i = j;
  }
  t_[i] = kEmpty;
  if (--size_ == 0) {
    Clear();  // an emptied directory gives its table back
  } else if (cap_ > 64 && uint64_t{size_} * 8 < cap_) {
    Rehash(cap_ / 2);
  }
  return true;
}

// ---------------------------------------------------------------- MetaState

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

MetaState::MetaState() {
  const uint32_t root = dirs_.Add();
  dirs_[root].live = true;
}

MetaState::~MetaState() = default;
MetaState::MetaState(MetaState&&) = default;
MetaState& MetaState::operator=(MetaState&&) = default;

uint64_t MetaState::HashName(std::string_view name) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a
  for (char c : name) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

uint64_t MetaState::AddName(std::string_view name) {
  const uint64_t off = names_.size();
  names_.append(name);
  return off << 16 | name.size();
}

void MetaState::MaybeCompactNames() {
  if (dead_name_bytes_ < (1u << 20) || dead_name_bytes_ * 2 < names_.size()) return;
  std::string fresh;
  fresh.reserve(names_.size() - dead_name_bytes_);
  auto move = [&](uint64_t* ref) {
    const std::string_view n = Name(*ref);
    *ref = uint64_t{fresh.size()} << 16 | n.size();
    fresh.append(n);
  };
  for (uint32_t d = 1; d < dirs_.size(); ++d) {
    if (dirs_[d].live) move(&dirs_[d].name);
  }
  for (uint32_t f = 0; f < files_.size(); ++f) {
    if (files_[f].id != 0) move(&files_[f].name);
  }
  names_ = std::move(fresh);
  dead_name_bytes_ = 0;
}

uint32_t MetaState::FindChild(uint32_t dir, std::string_view name) const {
  return dirs_[dir].children.Find(HashName(name),
                                  [&](uint32_t ref) { return Name(NameOfChild(ref)) == name; });
}

void MetaState::InsertChild(uint32_t dir, uint32_t ref) {
  dirs_[dir].children.Insert(HashName(Name(NameOfChild(ref))), ref);
}

void MetaState::EraseChild(uint32_t dir, std::string_view name) {
  dirs_[dir].children.Erase(HashName(name),
                            [&](uint32_t ref) { return Name(NameOfChild(ref)) == name; });
}

uint32_t MetaState::FindFileSlot(uint64_t id) const {
  return file_index_.Find(id, [&](uint32_t s) { return files_[s].id == id; });
}

uint32_t MetaState::FindChunkSlot(uint64_t handle) const {
  return chunk_index_.Find(handle, [&](uint32_t s) { return chunks_[s].handle == handle; });
}

uint32_t MetaState::NewDir(uint64_t name) {
  uint32_t slot;
  if (!free_dirs_.empty()) {
    slot = free_dirs_.back();
    free_dirs_.pop_back();
  } else {
    slot = dirs_.Add();
  }
  dirs_[slot].name = name;
  dirs_[slot].live = true;
  return slot;
}

uint32_t MetaState::NewFile() {
  if (free_files_.empty()) return files_.Add();
  const uint32_t slot = free_files_.back();
  free_files_.pop_back();
  return slot;
}

uint32_t MetaState::NewChunk() {
  if (free_chunks_.empty()) return chunks_.Add();
  const uint32_t slot = free_chunks_.back();
  free_chunks_.pop_back();
  return slot;
}

void MetaState::ResizeChunks(FileRec& f, uint32_t n) {
  const uint32_t old = f.num_chunks;
  if (old <= 1 && n <= 1) {
    if (n == 0 || old == 0) f.chunks = 0;
  } else if (old <= 1) {
    uint32_t li;
    if (!free_lists_.empty()) {
      li = free_lists_.back();
      free_lists_.pop_back();
    } else {
      li = static_cast<uint32_t>(chunk_lists_.size());
      chunk_lists_.emplace_back();
    }
    std::vector<uint64_t>& list = chunk_lists_[li];
    list.assign(n, 0);
    if (old == 1) list[0] = f.chunks;
    f.chunks = li;
  } else if (n > 1) {
    std::vector<uint64_t>& list = chunk_lists_[f.chunks];
    list.resize(n, 0);
    if (list.capacity() > 2 * size_t{n}) list.shrink_to_fit();
  } else {
    std::vector<uint64_t>& list = chunk_lists_[f.chunks];
    const uint64_t first = n == 1 ? list[0] : 0;
    std::vector<uint64_t>().swap(list);
    free_lists_.push_back(static_cast<uint32_t>(f.chunks));
    f.chunks = first;
  }
  f.num_chunks = n;
}

void MetaState::AddChunkRec(uint64_t handle, uint64_t version, uint64_t file_id, uint32_t index) {
  const uint32_t slot = NewChunk();
  ChunkInfo& c = chunks_[slot];
  c.handle = handle;
  c.version = version;
  c.file_id = file_id;
  c.index = index;
  chunk_index_.Insert(handle, slot);
  ++num_chunks_;
  next_handle_ = std::max(next_handle_, handle + 1);
}

void MetaState::RemoveChunk(uint64_t handle, std::vector<uint64_t>* freed) {
  const uint32_t slot = FindChunkSlot(handle);
  if (slot == kNone) return;
  chunk_index_.Erase(handle, [&](uint32_t s) { return s == slot; });
  chunks_[slot] = ChunkInfo();
  free_chunks_.push_back(slot);
  --num_chunks_;
  if (freed) freed->push_back(handle);
}

void MetaState::RemoveFileSlot(uint32_t slot, std::vector<uint64_t>* freed) {
  FileRec& f = files_[slot];
  const uint64_t* hs = ChunksOf(f);
  for (uint32_t i = 0; i < f.num_chunks; ++i) {
    if (hs[i] != 0) RemoveChunk(hs[i], freed);
  }
  ResizeChunks(f, 0);
  file_index_.Erase(f.id, [&](uint32_t s) { return s == slot; });
  DropName(f.name);
  f = FileRec();
  free_files_.push_back(slot);
  --num_files_;
}

void MetaState::RemoveSubtree(uint32_t ref, std::vector<uint64_t>* freed) {
  std::vector<uint32_t> stack{ref};
  while (!stack.empty()) {
    const uint32_t r = stack.back();
    stack.pop_back();
    if ((r & kDirTag) == 0) {
      RemoveFileSlot(r, freed);
      continue;
    }
    DirRec& d = dirs_[r & ~kDirTag];
    d.children.ForEach([&](uint32_t c) { stack.push_back(c); });
    d.children.Clear();
    DropName(d.name);
    d.name = 0;
    d.live = false;
    free_dirs_.push_back(r & ~kDirTag);
    --num_dirs_;
  }
}

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
    std::snprintf(buf, sizeof buf, "C %" PRIu64 " v=%" PRIu64 " file=%" PRIu64 " index=%u\n",
                  c->handle, c->version, c->file_id, c->index);
    out += buf;
  }
  std::snprintf(buf, sizeof buf,
                "next_file_id=%" PRIu64 " next_handle=%" PRIu64 " files=%zu dirs=%zu\n",
                next_file_id_, next_handle_, num_files_, num_dirs_);
  out += buf;
  return out;
}

// ---------------------------------------------------------------- checkpoints

void MetaState::VisitTree(const std::function<void(const TreeNode&)>& fn) const {
  std::vector<std::pair<uint32_t, uint32_t>> queue{{0, 0}};  // (slot, ordinal)
  uint32_t next_ordinal = 1;
  for (size_t qi = 0; qi < queue.size(); ++qi) {
    const uint32_t ordinal = queue[qi].second;
    dirs_[queue[qi].first].children.ForEach([&](uint32_t r) {
      TreeNode n;
      n.parent = ordinal;
      if (r & kDirTag) {
        const uint32_t d = r & ~kDirTag;
        n.name = Name(dirs_[d].name);
        n.is_dir = true;
        queue.emplace_back(d, next_ordinal++);
      } else {
        const FileRec& f = files_[r];
        n.name = Name(f.name);
        n.id = f.id;
        n.replication = f.replication;
        n.chunk_size = f.chunk_size;
        n.length = f.length;
        n.mtime_ms = f.mtime_ms;
        n.chunks = ChunksOf(f);
        n.num_chunks = f.num_chunks;
      }
      fn(n);
    });
  }
}

Status MetaState::LoadDir(uint32_t parent, std::string_view name, uint32_t* ordinal) {
  if (!loading_allowed_) return Status::InvalidArgument("LoadDir: state is not fresh");
  if (parent >= dirs_.size()) {
    return Corrupt("directory parent " + std::to_string(parent) + " not loaded yet");
  }
  if (!ValidName(name)) return Corrupt("invalid directory name");
  if (FindChild(parent, name) != kNone) {
    return Corrupt("duplicate name '" + std::string(name) + "' in directory " +
                   std::to_string(parent));
  }
  InvalidateFound();
  const uint32_t d = NewDir(AddName(name));
  InsertChild(parent, d | kDirTag);
  ++num_dirs_;
  *ordinal = d;
  return Status::OK();
}

Status MetaState::LoadFile(uint32_t parent, std::string_view name, const TreeNode& n,
                           const uint64_t* versions) {
  if (!loading_allowed_) return Status::InvalidArgument("LoadFile: state is not fresh");
  if (parent >= dirs_.size()) {
    return Corrupt("file parent " + std::to_string(parent) + " not loaded yet");
  }
  if (!ValidName(name)) return Corrupt("invalid file name");
  if (FindChild(parent, name) != kNone) {
    return Corrupt("duplicate name '" + std::string(name) + "' in directory " +
                   std::to_string(parent));
  }
  if (n.id == 0 || FindFileSlot(n.id) != kNone) {
    return Corrupt("file id " + std::to_string(n.id) + " is 0 or repeated");
  }
  if (n.replication == 0 || n.chunk_size == 0) return Corrupt("replication or chunk size 0");
  if (n.num_chunks > kMaxChunksPerFile) return Corrupt("too many chunks");
  InvalidateFound();
  const uint32_t slot = NewFile();
  FileRec& f = files_[slot];
  f.id = n.id;
  f.name = AddName(name);
  f.replication = n.replication;
  f.chunk_size = n.chunk_size;
  f.length = n.length;
  f.mtime_ms = n.mtime_ms;
  InsertChild(parent, slot);
  file_index_.Insert(n.id, slot);
  ++num_files_;
  next_file_id_ = std::max(next_file_id_, n.id + 1);
  ResizeChunks(f, n.num_chunks);
  uint64_t* hs = MutableChunksOf(f);
  for (uint32_t i = 0; i < n.num_chunks; ++i) {
    const uint64_t h = n.chunks[i];
    if (h == 0) continue;
    if (FindChunkSlot(h) != kNone)
      return Corrupt("chunk handle " + std::to_string(h) + " repeated");
    hs[i] = h;
    AddChunkRec(h, versions[i], n.id, i);
  }
  return Status::OK();
}

Status MetaState::LoadCounters(uint64_t next_file_id, uint64_t next_handle) {
  if (!loading_allowed_) return Status::InvalidArgument("LoadCounters: state is not fresh");
  if (next_file_id < next_file_id_ || next_handle < next_handle_ || next_file_id == 0 ||
      next_handle == 0) {
    return Corrupt("next file id / handle below one in use");
  }
  next_file_id_ = next_file_id;
  next_handle_ = next_handle;
  loading_allowed_ = false;
  return Status::OK();
}

void MetaState::LoadReserve(uint64_t files, uint64_t chunks) {
  if (!loading_allowed_) return;
  file_index_.Reserve(files);
  chunk_index_.Reserve(chunks);
}

size_t MetaState::MemoryBytes() const {
  size_t b = files_.MemoryBytes() + dirs_.MemoryBytes() + chunks_.MemoryBytes();
  b += (free_files_.capacity() + free_dirs_.capacity() + free_chunks_.capacity() +
        free_lists_.capacity()) *
       sizeof(uint32_t);
  b += file_index_.MemoryBytes() + chunk_index_.MemoryBytes();
  for (uint32_t d = 0; d < dirs_.size(); ++d) b += dirs_[d].children.MemoryBytes();
  b += chunk_lists_.capacity() * sizeof(std::vector<uint64_t>);
  for (const auto& l : chunk_lists_) b += l.capacity() * sizeof(uint64_t);
  b += names_.capacity();
  return b;
}

}  // namespace gfs
