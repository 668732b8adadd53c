// MetaOp, the logged metadata mutation: its encoding (doc/disk-format-master.md),
// constructors and description; and path normalisation.
#include <cinttypes>
#include <cstdio>

#include "common/coding.h"
#include "master/meta_state.h"

namespace gfs {

namespace {

// Version 1: op types 1..7. Version 2: kReplace and every later type (move,
// set_replication, snapshot, copy_on_write), the only ones written with it,
// so that logs without them stay readable by older builds and a build that
// does not know version 2 refuses them by their version (one that knows
// version 2 but not a type refuses the type).
constexpr uint8_t kMetaOpEncodingVersion = 1;
constexpr uint8_t kMetaOpEncodingVersionReplace = 2;
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
    case OpType::kMove:
      return "move";
    case OpType::kSetReplication:
      return "set_replication";
    case OpType::kAddChunk:
      return "add_chunk";
    case OpType::kSetVersion:
      return "set_version";
    case OpType::kSetLength:
      return "set_length";
    case OpType::kSnapshot:
      return "snapshot";
    case OpType::kCopyOnWrite:
      return "copy_on_write";
  }
  return "unknown";
}

// ---------------------------------------------------------------- MetaOp

void MetaOp::EncodeTo(std::vector<uint8_t>* out) const {
  Writer w(out);
  w.U8(static_cast<uint8_t>(type) >= static_cast<uint8_t>(OpType::kReplace)
           ? kMetaOpEncodingVersionReplace
           : kMetaOpEncodingVersion);
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
    case OpType::kMove:
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
    case OpType::kSnapshot:
      w.Str(path);
      w.Str(path2);
      w.U64(id);
      break;
    case OpType::kCopyOnWrite:
      w.U64(id);
      w.U32(index);
      w.U64(handle);
      w.U64(version);
      break;
    case OpType::kSetReplication:
      w.Str(path);
      w.U32(replication);
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
  if ((type >= static_cast<uint8_t>(OpType::kReplace)) != (ver == kMetaOpEncodingVersionReplace)) {
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
    case OpType::kMove:
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
    case OpType::kSnapshot:
      r.Str(&op.path, kMaxPathLen);
      r.Str(&op.path2, kMaxPathLen);
      r.U64(&op.id);
      break;
    case OpType::kCopyOnWrite:
      r.U64(&op.id);
      r.U32(&op.index);
      r.U64(&op.handle);
      r.U64(&op.version);
      break;
    case OpType::kSetReplication:
      r.Str(&op.path, kMaxPathLen);
      r.U32(&op.replication);
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
MetaOp MetaOp::Move(std::string from, std::string to) {
  MetaOp op = Rename(std::move(from), std::move(to));
  op.type = OpType::kMove;
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
MetaOp MetaOp::SetReplication(std::string path, uint32_t replication) {
  MetaOp op;
  op.type = OpType::kSetReplication;
  op.path = std::move(path);
  op.replication = replication;
  return op;
}

MetaOp MetaOp::Snapshot(std::string from, std::string to, uint64_t first_id) {
  MetaOp op = Rename(std::move(from), std::move(to));
  op.type = OpType::kSnapshot;
  op.id = first_id;
  return op;
}
MetaOp MetaOp::CopyOnWrite(uint64_t file_id, uint32_t index, uint64_t new_handle,
                           uint64_t version) {
  MetaOp op;
  op.type = OpType::kCopyOnWrite;
  op.id = file_id;
  op.index = index;
  op.handle = new_handle;
  op.version = version;
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
    case OpType::kMove:
      return "move " + path + " -> " + path2;
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
    case OpType::kSnapshot:
      return "snapshot " + path + " -> " + path2 + " first_id=" + std::to_string(id);
    case OpType::kCopyOnWrite:
      std::snprintf(buf, sizeof buf,
                    "copy_on_write file=%" PRIu64 " index=%u handle=%" PRIu64 " version=%" PRIu64,
                    id, index, handle, version);
      return buf;
    case OpType::kSetReplication:
      return "set_replication " + path + " repl=" + std::to_string(replication);
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
  if (norm.empty()) norm.push_back('/');  // (assigning a literal here trips GCC 12's -Wrestrict)
  *out = std::move(norm);
  return Status::OK();
}

}  // namespace gfs
