#include "master/checkpoint.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/coding.h"
#include "common/crc32c.h"

namespace gfs {

namespace {

constexpr char kHeadMagic[8] = {'G', 'F', 'S', 'C', 'K', 'P', 'N', 'T'};
constexpr char kFootMagic[8] = {'G', 'F', 'S', 'C', 'K', 'E', 'N', 'D'};
constexpr uint8_t kDirRecord = 1;
constexpr uint8_t kFileRecord = 2;
// Pieces handed to the sink; a record never straddles more than one flush
// except a file's chunk list, which flushes as it goes.
constexpr size_t kPiece = 1 << 20;
constexpr size_t kMaxRecordHead = 1 + 10 + 10 + kMaxNameLen + 6 * 10;

// Same masking as the op log (leveldb's): CRCs stored beside the data they cover.
constexpr uint32_t kMaskDelta = 0xa282ead8u;
uint32_t Mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + kMaskDelta; }

uint64_t ZigZag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
int64_t UnZigZag(uint64_t v) { return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1); }

// Buffered writer for the body; tracks its length and CRC.
class Out {
 public:
  explicit Out(const std::function<Status(const void*, size_t)>& sink)
      : sink_(sink), buf_(kPiece + kMaxRecordHead + 64) {}

  void Ensure(size_t k) {
    if (n_ + k > buf_.size()) Flush();
  }
  void U8(uint8_t v) { buf_[n_++] = v; }
  void Varint(uint64_t v) {
    uint8_t* p = buf_.data() + n_;
    while (v >= 0x80) {
      *p++ = static_cast<uint8_t>(v | 0x80);
      v >>= 7;
    }
    *p++ = static_cast<uint8_t>(v);
    n_ = static_cast<size_t>(p - buf_.data());
  }
  void Raw(const void* p, size_t k) {
    std::memcpy(buf_.data() + n_, p, k);
    n_ += k;
  }
  void MaybeFlush() {
    if (n_ >= kPiece) Flush();
  }
  // Hands the buffered bytes to the sink; `body` says whether they count
  // toward the body's length and CRC.
  void Flush(bool body = true) {
    if (n_ == 0 || !status_.ok()) {
      n_ = 0;
      return;
    }
    if (body) {
      crc_ = crc32c::Extend(crc_, buf_.data(), n_);
      body_bytes_ += n_;
    }
    total_ += n_;
    status_ = sink_(buf_.data(), n_);
    n_ = 0;
  }
  const Status& status() const { return status_; }
  uint32_t crc() const { return crc_; }
  uint64_t body_bytes() const { return body_bytes_; }
  uint64_t total() const { return total_; }

 private:
  const std::function<Status(const void*, size_t)>& sink_;
  std::vector<uint8_t> buf_;
  size_t n_ = 0;
  uint32_t crc_ = 0;
  uint64_t body_bytes_ = 0;
  uint64_t total_ = 0;
  Status status_;
};

void EncodeHeader(const CheckpointInfo& ci, uint8_t* h) {
  std::memset(h, 0, kCheckpointHeaderSize);
  std::memcpy(h, kHeadMagic, 8);
  StoreU32(h + 8, ci.format_version);
  StoreU32(h + 12, static_cast<uint32_t>(kCheckpointHeaderSize));
  StoreU64(h + 16, ci.seq);
  StoreU64(h + 24, ci.epoch);
  StoreU64(h + 32, ci.dirs);
  StoreU64(h + 40, ci.files);
  StoreU64(h + 48, ci.chunks);
  StoreU64(h + 56, ci.next_file_id);
  StoreU64(h + 64, ci.next_handle);
  StoreU32(h + 76, Mask(crc32c::Value(h, 76)));
}

void EncodeFooter(uint64_t body_len, uint32_t body_crc, uint8_t* f) {
  std::memcpy(f, kFootMagic, 8);
  StoreU64(f + 8, body_len);
  StoreU32(f + 16, Mask(body_crc));
  StoreU32(f + 20, Mask(crc32c::Value(f, 20)));
}

Status Corrupt(const std::string& m) { return Status::Corruption("checkpoint: " + m); }

// Bounds-checked varint reader over the body.
class In {
 public:
  In(const uint8_t* p, size_t n) : p_(p), end_(p + n) {}
  bool Varint(uint64_t* v) {
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) return false;
      const uint8_t b = *p_++;
      if (shift == 63 && b > 1) return false;  // more than 64 bits
      r |= uint64_t{b & 0x7fu} << shift;
      if ((b & 0x80) == 0) {
        *v = r;
        return true;
      }
    }
    return false;
  }
  bool Varint32(uint32_t* v) {
    uint64_t x = 0;
    if (!Varint(&x) || x > UINT32_MAX) return false;
    *v = static_cast<uint32_t>(x);
    return true;
  }
  bool U8(uint8_t* v) {
    if (p_ == end_) return false;
    *v = *p_++;
    return true;
  }
  bool Bytes(size_t n, std::string_view* out) {
    if (n > remaining()) return false;
    *out = std::string_view(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return true;
  }
  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  size_t offset(const uint8_t* base) const { return static_cast<size_t>(p_ - base); }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

}  // namespace

Status EncodeCheckpoint(const MetaState& state, uint64_t seq, uint64_t epoch,
                        const std::function<Status(const void* data, size_t n)>& sink,
                        uint64_t* bytes_out) {
  CheckpointInfo ci;
  ci.format_version = kCheckpointFormatVersion;
  ci.seq = seq;
  ci.epoch = epoch;
  ci.dirs = state.NumDirs() - 1;
  ci.files = state.NumFiles();
  // Chunk references (non-zero chunk slots of files): the chunk count, but
  // a chunk shared with snapshots counts once per file naming it.
  ci.chunks = 0;
  state.ForEachChunk([&](const ChunkInfo& c) { ci.chunks += c.refs; });
  ci.next_file_id = state.NextFileId();
  ci.next_handle = state.NextHandle();

  Out out(sink);
  uint8_t head[kCheckpointHeaderSize];
  EncodeHeader(ci, head);
  out.Raw(head, sizeof head);
  out.Flush(/*body=*/false);
  state.VisitTree([&](const MetaState::TreeNode& n) {
    if (!out.status().ok()) return;
    out.Ensure(kMaxRecordHead);
    out.U8(n.is_dir ? kDirRecord : kFileRecord);
    out.Varint(n.parent);
    out.Varint(n.name.size());
    out.Raw(n.name.data(), n.name.size());
    if (!n.is_dir) {
      out.Varint(n.id);
      out.Varint(n.replication);
      out.Varint(n.chunk_size);
      out.Varint(n.length);
      out.Varint(ZigZag(n.mtime_ms));
      out.Varint(n.num_chunks);
      for (uint32_t i = 0; i < n.num_chunks; ++i) {
        out.Ensure(20);
        const uint64_t h = n.chunks[i];
        out.Varint(h);
        if (h != 0) {
          const ChunkInfo* c = state.FindChunk(h);
          out.Varint(c ? c->version : 0);
        }
      }
    }
    out.MaybeFlush();
  });
  out.Flush();
  GFS_RETURN_IF_ERROR(out.status());
  uint8_t foot[kCheckpointFooterSize];
  EncodeFooter(out.body_bytes(), out.crc(), foot);
  out.Raw(foot, sizeof foot);
  out.Flush(/*body=*/false);
  GFS_RETURN_IF_ERROR(out.status());
  if (bytes_out) *bytes_out = out.total();
  return Status::OK();
}

std::string EncodeCheckpointToString(const MetaState& state, uint64_t seq, uint64_t epoch) {
  std::string s;
  Status st = EncodeCheckpoint(state, seq, epoch, [&s](const void* p, size_t n) {
    s.append(static_cast<const char*>(p), n);
    return Status::OK();
  });
  (void)st;  // the sink cannot fail
  return s;
}

Status ReadCheckpointInfo(std::string_view bytes, CheckpointInfo* info) {
  const auto* d = reinterpret_cast<const uint8_t*>(bytes.data());
  const size_t n = bytes.size();
  if (n < kCheckpointHeaderSize + kCheckpointFooterSize) {
    return Corrupt("truncated (" + std::to_string(n) + " bytes)");
  }
  if (std::memcmp(d, kHeadMagic, 8) != 0) return Corrupt("bad magic");
  if (Mask(crc32c::Value(d, 76)) != LoadU32(d + 76)) return Corrupt("header checksum mismatch");
  CheckpointInfo ci;
  ci.format_version = LoadU32(d + 8);
  if (ci.format_version != kCheckpointFormatVersion) {
    return Corrupt("unsupported format version " + std::to_string(ci.format_version));
  }
  if (LoadU32(d + 12) != kCheckpointHeaderSize) return Corrupt("bad header size");
  ci.seq = LoadU64(d + 16);
  ci.epoch = LoadU64(d + 24);
  ci.dirs = LoadU64(d + 32);
  ci.files = LoadU64(d + 40);
  ci.chunks = LoadU64(d + 48);
  ci.next_file_id = LoadU64(d + 56);
  ci.next_handle = LoadU64(d + 64);
  ci.bytes = n;
  const uint8_t* f = d + n - kCheckpointFooterSize;
  // A checkpoint cut short ends in body bytes, not in a footer: the magic and
  // the footer's own CRC tell an incomplete file from a complete one.
  if (std::memcmp(f, kFootMagic, 8) != 0) return Corrupt("no footer (incomplete checkpoint)");
  if (Mask(crc32c::Value(f, 20)) != LoadU32(f + 20)) return Corrupt("footer checksum mismatch");
  const uint64_t body_len = LoadU64(f + 8);
  if (body_len != n - kCheckpointHeaderSize - kCheckpointFooterSize) {
    return Corrupt("body length " + std::to_string(body_len) + " does not match the file size");
  }
  if (Mask(crc32c::Value(d + kCheckpointHeaderSize, body_len)) != LoadU32(f + 16)) {
    return Corrupt("body checksum mismatch");
  }
  *info = ci;
  return Status::OK();
}

Status DecodeCheckpoint(std::string_view bytes, MetaState* state, CheckpointInfo* info) {
  CheckpointInfo ci;
  GFS_RETURN_IF_ERROR(ReadCheckpointInfo(bytes, &ci));
  if (state->NumFiles() != 0 || state->NumDirs() != 1 || state->NumChunks() != 0) {
    return Status::InvalidArgument("checkpoint: decoding into a non-empty state");
  }
  const auto* base = reinterpret_cast<const uint8_t*>(bytes.data());
  In in(base + kCheckpointHeaderSize, bytes.size() - kCheckpointHeaderSize - kCheckpointFooterSize);
  // A file record takes at least 9 bytes, a chunk 2: the header's counts
  // size the tables only as far as the input could back them.
  const uint64_t body = in.remaining();
  state->LoadReserve(std::min(ci.files, body / 9), std::min(ci.chunks, body / 2));
  uint64_t dirs = 0, files = 0, chunks = 0;
  std::vector<uint64_t> handles, versions;
  while (in.remaining() > 0) {
    const size_t at = kCheckpointHeaderSize + in.offset(base + kCheckpointHeaderSize);
    auto bad = [&](const std::string& what) {
      return Corrupt(what + " in record at offset " + std::to_string(at));
    };
    uint8_t kind = 0;
    uint32_t parent = 0, name_len = 0;
    std::string_view name;
    if (!in.U8(&kind) || !in.Varint32(&parent) || !in.Varint32(&name_len) ||
        name_len > kMaxNameLen || !in.Bytes(name_len, &name)) {
      return bad("malformed record head");
    }
    if (kind == kDirRecord) {
      if (++dirs > ci.dirs) return bad("more directories than the header says");
      uint32_t ordinal = 0;
      GFS_RETURN_IF_ERROR(state->LoadDir(parent, name, &ordinal));
      continue;
    }
    if (kind != kFileRecord) return bad("unknown record kind " + std::to_string(kind));
    if (++files > ci.files) return bad("more files than the header says");
    MetaState::TreeNode n;
    uint64_t mtime = 0;
    if (!in.Varint(&n.id) || !in.Varint32(&n.replication) || !in.Varint(&n.chunk_size) ||
        !in.Varint(&n.length) || !in.Varint(&mtime) || !in.Varint32(&n.num_chunks)) {
      return bad("malformed file record");
    }
    n.mtime_ms = UnZigZag(mtime);
    // Each chunk takes at least one byte: the count cannot ask for more
    // memory than the input could describe.
    if (n.num_chunks > kMaxChunksPerFile || n.num_chunks > in.remaining()) {
      return bad("chunk count " + std::to_string(n.num_chunks) + " out of range");
    }
    handles.resize(n.num_chunks);
    versions.resize(n.num_chunks);
    for (uint32_t i = 0; i < n.num_chunks; ++i) {
      versions[i] = 0;
      if (!in.Varint(&handles[i]) || (handles[i] != 0 && !in.Varint(&versions[i]))) {
        return bad("malformed chunk list");
      }
      if (handles[i] != 0 && ++chunks > ci.chunks) return bad("more chunks than the header says");
    }
    n.chunks = handles.data();
    GFS_RETURN_IF_ERROR(state->LoadFile(parent, name, n, versions.data()));
  }
  if (dirs != ci.dirs || files != ci.files || chunks != ci.chunks) {
    return Corrupt("counts do not match the header");
  }
  GFS_RETURN_IF_ERROR(state->LoadCounters(ci.next_file_id, ci.next_handle));
  if (info) *info = ci;
  return Status::OK();
}

Status WriteCheckpointFile(Env* env, const std::string& path, const MetaState& state, uint64_t seq,
                           uint64_t epoch, const std::function<Status(const std::string&)>& hook,
                           uint64_t* bytes_out) {
  const std::string tmp = path + ".tmp";
  if (env->FileExists(tmp)) GFS_RETURN_IF_ERROR(env->RemoveFile(tmp));
  std::unique_ptr<AppendFile> f;
  GFS_RETURN_IF_ERROR(env->OpenAppend(tmp, &f));
  GFS_RETURN_IF_ERROR(EncodeCheckpoint(
      state, seq, epoch, [&f](const void* p, size_t n) { return f->Append(p, n); }, bytes_out));
  if (hook) GFS_RETURN_IF_ERROR(hook("written"));
  GFS_RETURN_IF_ERROR(f->Sync());
  GFS_RETURN_IF_ERROR(f->Close());
  if (hook) GFS_RETURN_IF_ERROR(hook("synced"));
  GFS_RETURN_IF_ERROR(env->RenameFile(tmp, path));
  if (hook) GFS_RETURN_IF_ERROR(hook("renamed"));
  const size_t slash = path.rfind('/');
  return env->SyncDir(slash == std::string::npos ? "." : path.substr(0, slash));
}

void ResealCheckpoint(std::string* bytes) {
  if (bytes->size() < kCheckpointHeaderSize + kCheckpointFooterSize) return;
  auto* d = reinterpret_cast<uint8_t*>(bytes->data());
  StoreU32(d + 76, Mask(crc32c::Value(d, 76)));
  const size_t body = bytes->size() - kCheckpointHeaderSize - kCheckpointFooterSize;
  uint8_t* f = d + bytes->size() - kCheckpointFooterSize;
  EncodeFooter(body, crc32c::Value(d + kCheckpointHeaderSize, body), f);
}

}  // namespace gfs
