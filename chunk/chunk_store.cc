// ChunkStore implementation. File formats: doc/disk-format-chunk.md.
#include "chunk/chunk_store.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <utility>

#include "common/coding.h"
#include "common/crc32c.h"

namespace gfs {
namespace {

constexpr uint32_t kBS = ChunkStore::kBlockSize;

// <handle>.meta: magic, format version, handle, version, crc32c of the first 24 bytes.
constexpr uint32_t kMetaMagic = 0x4D534647;  // "GFSM" on disk
constexpr uint32_t kMetaFormat = 1;
constexpr size_t kMetaSize = 28;

// <handle>.crc header: magic, format version, block size, crc32c of the first 12 bytes.
constexpr uint32_t kCrcMagic = 0x43534647;  // "GFSC" on disk
constexpr uint32_t kCrcFormat = 1;
constexpr size_t kCrcHeaderSize = 16;

// Coalesce a gather list into one buffer (one pwrite) unless its slices
// average at least this much (then one pwrite per slice, no copy).
constexpr size_t kDirectSliceBytes = 256 * 1024;

uint64_t NumBlocks(uint64_t length) { return (length + kBS - 1) / kBS; }

std::string Hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08" PRIx32, v);
  return buf;
}

uint32_t ExtendZeros(uint32_t crc, uint64_t n) {
  static const uint8_t kZeros[kBS] = {};
  while (n > 0) {
    const size_t k = n < kBS ? static_cast<size_t>(n) : kBS;
    crc = crc32c::Extend(crc, kZeros, k);
    n -= k;
  }
  return crc;
}

// Parses "<16 lowercase hex digits>.<ext>"; false if `name` is not of that form.
bool ParseName(const std::string& name, uint64_t* handle, std::string* ext) {
  if (name.size() < 18 || name[16] != '.') return false;
  uint64_t h = 0;
  for (int i = 0; i < 16; ++i) {
    const char c = name[i];
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else {
      return false;
    }
    h = (h << 4) | static_cast<uint64_t>(d);
  }
  *handle = h;
  *ext = name.substr(17);
  return true;
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Walks a gather list front to back.
class Gather {
 public:
  explicit Gather(const std::vector<ConstSlice>& s) : s_(s) {}
  uint32_t Crc(uint32_t crc, uint64_t n) {
    Walk(n, [&](const uint8_t* p, size_t k) { crc = crc32c::Extend(crc, p, k); });
    return crc;
  }
  void Copy(uint8_t* dst, uint64_t n) {
    Walk(n, [&](const uint8_t* p, size_t k) {
      std::memcpy(dst, p, k);
      dst += k;
    });
  }
  void Skip(uint64_t n) {
    Walk(n, [](const uint8_t*, size_t) {});
  }
  // True if the next n bytes equal p[0, n) (consumes them either way).
  bool Equal(const uint8_t* p, uint64_t n) {
    bool eq = true;
    Walk(n, [&](const uint8_t* q, size_t k) {
      eq = eq && std::memcmp(p, q, k) == 0;
      p += k;
    });
    return eq;
  }

 private:
  template <typename F>
  void Walk(uint64_t n, F f) {
    while (n > 0 && i_ < s_.size()) {
      const size_t avail = s_[i_].size - pos_;
      const size_t k = avail < n ? avail : static_cast<size_t>(n);
      if (k > 0) f(s_[i_].data + pos_, k);
      pos_ += k;
      n -= k;
      if (pos_ == s_[i_].size) {
        ++i_;
        pos_ = 0;
      }
    }
  }
  const std::vector<ConstSlice>& s_;
  size_t i_ = 0;
  size_t pos_ = 0;
};

}  // namespace

ChunkStore::ChunkStore(Env* env, std::string dir, size_t max_open_chunks)
    : env_(env), dir_(std::move(dir)), max_open_(max_open_chunks == 0 ? 1 : max_open_chunks) {}

ChunkStore::~ChunkStore() = default;

std::string ChunkStore::HandleName(uint64_t handle) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, handle);
  return buf;
}
std::string ChunkStore::MetaPath(uint64_t h) const {
  return ChunksDir() + "/" + HandleName(h) + ".meta";
}
std::string ChunkStore::DataPath(uint64_t h) const {
  return ChunksDir() + "/" + HandleName(h) + ".chunk";
}
std::string ChunkStore::CrcPath(uint64_t h) const {
  return ChunksDir() + "/" + HandleName(h) + ".crc";
}

// ---------------------------------------------------------------- Open / meta

namespace {

// Decodes a meta file. Every failure is a Corruption naming `path`.
Status DecodeMeta(const std::string& path, const std::string& s, uint64_t* handle,
                  uint64_t* version) {
  Reader r(s);
  uint32_t magic = 0, format = 0, crc = 0;
  if (!r.U32(&magic) || !r.U32(&format)) {
    return Status::Corruption(path + ": chunk meta file truncated (" + std::to_string(s.size()) +
                              " bytes)");
  }
  if (magic != kMetaMagic) return Status::Corruption(path + ": bad chunk meta magic " + Hex(magic));
  if (format != kMetaFormat) {
    return Status::Corruption(path + ": unknown chunk meta format version " +
                              std::to_string(format) + " (this build reads version " +
                              std::to_string(kMetaFormat) + ")");
  }
  if (s.size() != kMetaSize || !r.U64(handle) || !r.U64(version) || !r.U32(&crc)) {
    return Status::Corruption(path + ": chunk meta file has " + std::to_string(s.size()) +
                              " bytes, expected " + std::to_string(kMetaSize));
  }
  const uint32_t actual = crc32c::Value(s.data(), kMetaSize - 4);
  if (crc != actual) {
    return Status::Corruption(path + ": chunk meta checksum mismatch (stored " + Hex(crc) +
                              ", computed " + Hex(actual) + ")");
  }
  return Status::OK();
}

}  // namespace

Status ChunkStore::WriteMeta(uint64_t handle, uint64_t version) {
  std::vector<uint8_t> buf;
  Writer w(&buf);
  w.U32(kMetaMagic);
  w.U32(kMetaFormat);
  w.U64(handle);
  w.U64(version);
  w.U32(crc32c::Value(buf.data(), buf.size()));
  return env_->WriteFileAtomic(MetaPath(handle), std::string(buf.begin(), buf.end()));
}

Status ChunkStore::Open() {
  const std::string cdir = ChunksDir();
  GFS_RETURN_IF_ERROR(env_->CreateDirs(cdir));
  GFS_RETURN_IF_ERROR(env_->LockFile(cdir + "/LOCK", &lock_));
  std::vector<std::string> names;
  GFS_RETURN_IF_ERROR(env_->GetChildren(cdir, &names));
  std::sort(names.begin(), names.end());

  std::vector<uint64_t> metas;
  std::vector<std::pair<uint64_t, std::string>> others;  // data/crc files
  for (const std::string& name : names) {
    if (EndsWith(name, ".tmp")) {
      Status s = env_->RemoveFile(cdir + "/" + name);
      if (!s.ok() && s.code() != Code::kNotFound) return s;
      continue;
    }
    uint64_t h = 0;
    std::string ext;
    if (!ParseName(name, &h, &ext)) continue;  // LOCK, foreign files: left alone
    if (ext == "meta") {
      metas.push_back(h);
    } else if (ext == "chunk" || ext == "crc") {
      others.emplace_back(h, name);
    }
  }

  for (uint64_t h : metas) {
    const std::string path = MetaPath(h);
    std::string content;
    uint64_t handle = 0, version = 0;
    Status s = env_->ReadFile(path, &content);
    if (s.ok()) s = DecodeMeta(path, content, &handle, &version);
    if (s.ok() && handle != h) {
      s = Status::Corruption(path + ": meta file names chunk " + HandleName(handle));
    }
    uint64_t length = 0;
    if (s.ok()) {
      Result<uint64_t> size = env_->FileSize(DataPath(h));
      if (size.ok()) {
        length = *size;
      } else if (size.status().code() != Code::kNotFound) {
        s = size.status();
      }
    }
    if (!s.ok()) {
      bad_.push_back(BadChunk{h, s});
      continue;
    }
    if (length > 0) {
      s = CutUncheckedTail(h, &length, &version);
      if (!s.ok()) {
        bad_.push_back(BadChunk{h, s});
        continue;
      }
    }
    State st;
    st.version = version;
    st.length = length;
    chunks_[h] = std::move(st);
    used_bytes_ += length;
  }

  // Data/checksum files without a meta file: leftovers of an interrupted
  // Delete (meta is removed first) or of a Create that never committed.
  for (const auto& [h, name] : others) {
    if (chunks_.count(h)) continue;
    if (std::any_of(bad_.begin(), bad_.end(), [h = h](const BadChunk& b) { return b.handle == h; }))
      continue;
    Status s = env_->RemoveFile(cdir + "/" + name);
    if (!s.ok() && s.code() != Code::kNotFound) return s;
  }
  return Status::OK();
}

Status ChunkStore::CutUncheckedTail(uint64_t h, uint64_t* length, uint64_t* version) {
  // A data file longer than its checksums cover was being written when the
  // server stopped: bytes a writer (a short-circuit writer above all, whose
  // ranges stay open while it writes) put there before their checksums were
  // stored. None was acknowledged durable (a sync stores the checksums
  // first), and none can be verified: the chunk is cut back to the longest
  // prefix its checksums cover, instead of its last blocks reading as
  // corrupt (which would cost the whole replica). It costs one read of the
  // last checksummed block per chunk.
  // A cut replica may now be shorter than its peers at the same version, so
  // its version goes one back: the master deletes it if a current replica
  // exists and brings it forward if none does (the most advanced replicas
  // hold every acknowledged byte).
  Result<uint64_t> crc_size = env_->FileSize(CrcPath(h));
  if (!crc_size.ok()) return Status::OK();  // missing: reported on first use
  const uint64_t entries = *crc_size < kCrcHeaderSize ? 0 : (*crc_size - kCrcHeaderSize) / 4;
  const uint64_t covered = std::min(*length, entries * kBS);
  uint64_t keep = covered;
  if (covered > 0) {
    std::unique_ptr<RandomRWFile> data, crc;
    GFS_RETURN_IF_ERROR(env_->OpenReadOnly(DataPath(h), &data));
    GFS_RETURN_IF_ERROR(env_->OpenReadOnly(CrcPath(h), &crc));
    const uint64_t b = (covered - 1) / kBS, bs = b * kBS;
    uint8_t raw[4];
    size_t got = 0;
    GFS_RETURN_IF_ERROR(crc->Read(kCrcHeaderSize + b * 4, 4, raw, &got));
    std::vector<uint8_t> block(static_cast<size_t>(covered - bs));
    size_t n = 0;
    GFS_RETURN_IF_ERROR(data->Read(bs, block.size(), block.data(), &n));
    if (got != 4 || n != block.size()) return Status::OK();
    uint32_t want = 0;
    std::memcpy(&want, raw, 4);  // little-endian host, as written
    if (crc32c::Value(block.data(), block.size()) != want) {
      // The last block's checksum covers a prefix of it: find that prefix.
      // None matching: the block is corrupt, and reads say so.
      keep = *length;
      uint32_t run = 0;
      for (size_t k = 0; k + 1 < block.size(); ++k) {
        run = crc32c::Extend(run, block.data() + k, 1);
        if (run == want) keep = bs + k + 1;
      }
      if (keep == *length) return Status::OK();
    }
  }
  if (keep == *length) return Status::OK();
  std::unique_ptr<RandomRWFile> data;
  GFS_RETURN_IF_ERROR(env_->OpenRandomRW(DataPath(h), /*create=*/false, &data));
  GFS_RETURN_IF_ERROR(data->Truncate(keep));
  GFS_RETURN_IF_ERROR(data->Sync());
  if (*version > 0) {
    GFS_RETURN_IF_ERROR(WriteMeta(h, *version - 1));
    --*version;
  }
  tail_bytes_cut_ += *length - keep;
  *length = keep;
  return Status::OK();
}

std::vector<ChunkMeta> ChunkStore::List() const {
  std::vector<ChunkMeta> out;
  out.reserve(chunks_.size());
  for (const auto& [h, st] : chunks_) out.push_back(ChunkMeta{h, st.version, st.length});
  return out;
}

bool ChunkStore::Has(uint64_t handle) const { return chunks_.count(handle) != 0; }

Result<ChunkMeta> ChunkStore::Meta(uint64_t handle) const {
  auto it = chunks_.find(handle);
  if (it == chunks_.end()) return Status::NotFound("chunk " + HandleName(handle));
  return ChunkMeta{handle, it->second.version, it->second.length};
}

uint64_t ChunkStore::UsedBytes() const { return used_bytes_; }
size_t ChunkStore::NumChunks() const { return chunks_.size(); }

Result<ChunkStore::State*> ChunkStore::Lookup(uint64_t handle) {
  auto it = chunks_.find(handle);
  if (it == chunks_.end()) return Status::NotFound("chunk " + HandleName(handle));
  if (!it->second.poisoned.ok()) return it->second.poisoned;
  return &it->second;
}

Status ChunkStore::Create(uint64_t handle, uint64_t version) {
  const bool bad = std::any_of(bad_.begin(), bad_.end(),
                               [handle](const BadChunk& b) { return b.handle == handle; });
  if (chunks_.count(handle) || bad) {
    return Status::AlreadyExists("chunk " + HandleName(handle) + (bad ? " (corrupt)" : ""));
  }
  GFS_RETURN_IF_ERROR(WriteMeta(handle, version));
  State st;
  st.version = version;
  chunks_[handle] = std::move(st);
  return Status::OK();
}

Status ChunkStore::SetVersion(uint64_t handle, uint64_t version) {
  auto it = chunks_.find(handle);
  if (it == chunks_.end()) return Status::NotFound("chunk " + HandleName(handle));
  GFS_RETURN_IF_ERROR(WriteMeta(handle, version));
  it->second.version = version;
  return Status::OK();
}

Status ChunkStore::Delete(uint64_t handle) {
  auto it = chunks_.find(handle);
  auto bit = std::find_if(bad_.begin(), bad_.end(),
                          [handle](const BadChunk& b) { return b.handle == handle; });
  if (it == chunks_.end() && bit == bad_.end()) {
    return Status::NotFound("chunk " + HandleName(handle));
  }
  Evict(handle);
  external_.erase(handle);
  appends_.erase(handle);
  Status s = env_->RemoveFile(MetaPath(handle));  // the commit point
  if (!s.ok() && s.code() != Code::kNotFound) return s;
  if (it != chunks_.end()) {
    used_bytes_ -= it->second.length;
    chunks_.erase(it);
  }
  if (bit != bad_.end()) bad_.erase(bit);
  for (const std::string& p : {DataPath(handle), CrcPath(handle)}) {
    s = env_->RemoveFile(p);
    if (!s.ok() && s.code() != Code::kNotFound) return s;  // orphan: removed by the next Open
  }
  return env_->SyncDir(ChunksDir());
}

// ----------------------------------------------------------- open-file cache

void ChunkStore::Evict(uint64_t handle) {
  auto it = open_.find(handle);
  if (it == open_.end()) return;
  lru_.erase(it->second);
  open_.erase(it);
}

Result<ChunkStore::OpenChunk*> ChunkStore::Acquire(uint64_t handle, State* st, bool create) {
  auto it = open_.find(handle);
  if (it != open_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second);
    return &lru_.front();
  }
  while (open_.size() >= max_open_) {
    open_.erase(lru_.back().handle);
    lru_.pop_back();
  }
  OpenChunk oc;
  oc.handle = handle;
  const std::string dpath = DataPath(handle), cpath = CrcPath(handle);
  const bool existed = !create || (env_->FileExists(dpath) && env_->FileExists(cpath));
  for (auto [path, file] : {std::pair{&dpath, &oc.data}, std::pair{&cpath, &oc.crc}}) {
    std::unique_ptr<RandomRWFile> opened;
    Status s = env_->OpenRandomRW(*path, create, &opened);
    if (s.code() == Code::kNotFound) {
      return Status::Corruption(*path + ": missing file of chunk " + HandleName(handle) +
                                " (length " + std::to_string(st->length) + ")");
    }
    GFS_RETURN_IF_ERROR(s);
    *file = std::move(opened);
  }
  if (!existed) st->need_dir_sync = true;
  GFS_RETURN_IF_ERROR(LoadCrcs(&oc, st->length, create));
  lru_.push_front(std::move(oc));
  open_[handle] = lru_.begin();
  return &lru_.front();
}

Status ChunkStore::LoadCrcs(OpenChunk* oc, uint64_t length, bool create) {
  const std::string path = CrcPath(oc->handle);
  Result<uint64_t> size = oc->crc->Size();
  if (!size.ok()) return size.status();
  oc->crcs.assign(NumBlocks(length), 0);
  oc->crcs_valid = 0;
  if (*size == 0) {
    if (length > 0) {
      return Status::Corruption(path + ": checksum file is empty but chunk " +
                                HandleName(oc->handle) + " has " + std::to_string(length) +
                                " bytes");
    }
    if (!create) return Status::OK();
    std::vector<uint8_t> hdr;
    Writer w(&hdr);
    w.U32(kCrcMagic);
    w.U32(kCrcFormat);
    w.U32(kBS);
    w.U32(crc32c::Value(hdr.data(), hdr.size()));
    return oc->crc->Write(0, hdr.data(), hdr.size());
  }
  uint8_t hdr[kCrcHeaderSize];
  size_t got = 0;
  GFS_RETURN_IF_ERROR(oc->crc->Read(0, sizeof hdr, hdr, &got));
  Reader r(hdr, got);
  uint32_t magic = 0, format = 0, bs = 0, crc = 0;
  if (!r.U32(&magic) || !r.U32(&format)) {
    return Status::Corruption(path + ": checksum file header truncated (" + std::to_string(got) +
                              " bytes)");
  }
  if (magic != kCrcMagic)
    return Status::Corruption(path + ": bad checksum file magic " + Hex(magic));
  if (format != kCrcFormat) {
    return Status::Corruption(path + ": unknown checksum file format version " +
                              std::to_string(format) + " (this build reads version " +
                              std::to_string(kCrcFormat) + ")");
  }
  if (!r.U32(&bs) || !r.U32(&crc)) {
    return Status::Corruption(path + ": checksum file header truncated (" + std::to_string(got) +
                              " bytes)");
  }
  const uint32_t actual = crc32c::Value(hdr, kCrcHeaderSize - 4);
  if (crc != actual) {
    return Status::Corruption(path + ": checksum file header checksum mismatch (stored " +
                              Hex(crc) + ", computed " + Hex(actual) + ")");
  }
  if (bs != kBS) {
    return Status::Corruption(path + ": checksum block size " + std::to_string(bs) +
                              ", this build uses " + std::to_string(kBS));
  }
  const size_t want = oc->crcs.size() * 4;
  if (want == 0) return Status::OK();
  std::vector<uint8_t> raw(want);
  GFS_RETURN_IF_ERROR(oc->crc->Read(kCrcHeaderSize, want, raw.data(), &got));
  oc->crcs_valid = got / 4;  // entries past the end (torn by a crash) fail verification
  std::memcpy(oc->crcs.data(), raw.data(), oc->crcs_valid * 4);
  return Status::OK();
}

Status ChunkStore::WriteCrcEntries(OpenChunk* oc, size_t first, const std::vector<uint32_t>& v) {
  if (v.empty()) return Status::OK();
  return oc->crc->Write(kCrcHeaderSize + first * 4, v.data(), v.size() * 4);  // little-endian host
}

Status ChunkStore::CheckBlock(const OpenChunk& oc, size_t i, const uint8_t* p, size_t n) const {
  const std::string where = "chunk " + HandleName(oc.handle) + " block " + std::to_string(i) +
                            " (bytes " + std::to_string(uint64_t{i} * kBS) + ".." +
                            std::to_string(uint64_t{i} * kBS + n) + ")";
  if (i >= oc.crcs_valid || i >= oc.crcs.size()) {
    return Status::Corruption(where + ": checksum missing (checksum file too short)");
  }
  const uint32_t c = crc32c::Value(p, n);
  if (c != oc.crcs[i]) {
    return Status::Corruption(where + ": checksum mismatch (stored " + Hex(oc.crcs[i]) +
                              ", computed " + Hex(c) + ")");
  }
  return Status::OK();
}

Status ChunkStore::ReadVerifiedBlock(OpenChunk* oc, uint64_t length, size_t i,
                                     std::vector<uint8_t>* buf) {
  const uint64_t bs = uint64_t{i} * kBS;
  const size_t n = static_cast<size_t>(std::min<uint64_t>(bs + kBS, length) - bs);
  buf->resize(n);
  size_t got = 0;
  GFS_RETURN_IF_ERROR(oc->data->Read(bs, n, buf->data(), &got));
  if (got != n) {
    return Status::Corruption(DataPath(oc->handle) + ": data file shorter than chunk length " +
                              std::to_string(length));
  }
  return CheckBlock(*oc, i, buf->data(), n);
}

// --------------------------------------------------------------------- write

Status ChunkStore::Write(uint64_t handle, uint64_t offset, const uint8_t* data, size_t n) {
  return Write(handle, offset, std::vector<ConstSlice>{ConstSlice{data, n}});
}

Status ChunkStore::Write(uint64_t handle, uint64_t offset, const std::vector<ConstSlice>& data) {
  Result<State*> st = Lookup(handle);
  if (!st.ok()) return st.status();
  uint64_t n = 0;
  for (const ConstSlice& s : data) n += s.size;
  if (n == 0) return Status::OK();
  if (offset > kMaxLength || n > kMaxLength - offset) {
    return Status::InvalidArgument("chunk " + HandleName(handle) + ": write past max length");
  }
  GFS_RETURN_IF_ERROR(NotExternal(handle));
  GFS_RETURN_IF_ERROR(NoAppends(handle));
  return WriteImpl(handle, offset, data, n, std::max((*st)->length, offset + n));
}

Status ChunkStore::WriteImpl(uint64_t handle, uint64_t off, const std::vector<ConstSlice>& data,
                             uint64_t n, uint64_t new_len) {
  State* st = &chunks_[handle];
  Result<OpenChunk*> ocr = Acquire(handle, st, /*create=*/true);
  if (!ocr.ok()) return ocr.status();
  OpenChunk* oc = *ocr;
  const uint64_t L = st->length;
  const uint64_t end = off + n;
  // Bytes whose content changes: [min(off, L), change_end).
  const uint64_t change_end = new_len > L ? new_len : end;
  const size_t first = static_cast<size_t>(std::min(off, L) / kBS);
  const size_t last = static_cast<size_t>((change_end - 1) / kBS);

  // 1. New CRCs of the changed blocks (reads only partially overwritten edges).
  std::vector<uint32_t> ncrc(last - first + 1);
  Gather g(data);
  for (size_t i = first; i <= last; ++i) {
    const uint64_t bs = uint64_t{i} * kBS;
    const uint64_t be = std::min(bs + kBS, new_len);
    const uint64_t old_end = std::min(be, L);  // old bytes: [bs, old_end)
    const uint64_t ws = std::max(bs, off), we = std::min(be, end);
    const bool has_new = ws < we;
    bool keeps_old;  // some old byte of the block is not overwritten
    if (old_end <= bs) {
      keeps_old = false;
    } else if (!has_new) {
      keeps_old = true;
    } else {
      keeps_old = bs < ws || we < old_end;
    }
    uint32_t crc;
    if (!keeps_old) {
      // Content: zeros (gap) [bs, ws), new bytes [ws, we), zeros [we, be).
      if (has_new) {
        crc = ExtendZeros(0, ws - bs);
        crc = g.Crc(crc, we - ws);
        crc = ExtendZeros(crc, be - we);
      } else {
        crc = ExtendZeros(0, be - bs);
      }
    } else if (old_end == L && (!has_new || ws >= L) && i < oc->crcs_valid) {
      // Append to the old partial last block: its stored CRC covers exactly
      // [bs, L), so extend it with the gap zeros and the new bytes.
      crc = oc->crcs[i];
      const uint64_t zend = has_new ? ws : be;
      crc = ExtendZeros(crc, zend - L);
      if (has_new) {
        crc = g.Crc(crc, we - ws);
        crc = ExtendZeros(crc, be - we);
      }
    } else {
      // Partial overwrite: verify the old block, then compose the new one.
      Status s = ReadVerifiedBlock(oc, L, i, &scratch_);
      if (!s.ok()) {
        return Status(s.code(), s.message() + "; refusing to overwrite part of the block");
      }
      scratch_.resize(be - bs, 0);  // zeros past the old length
      if (has_new) g.Copy(scratch_.data() + (ws - bs), we - ws);
      crc = crc32c::Value(scratch_.data(), scratch_.size());
    }
    ncrc[i - first] = crc;
  }

  // 2. The data, then the changed CRC entries.
  Status s;
  if (n > 0) {
    size_t nonempty = 0;
    for (const ConstSlice& sl : data) nonempty += sl.size > 0;
    if (nonempty == 1 || n / nonempty >= kDirectSliceBytes) {
      uint64_t pos = off;
      for (const ConstSlice& sl : data) {
        if (sl.size == 0) continue;
        s = oc->data->Write(pos, sl.data, sl.size);
        if (!s.ok()) break;
        pos += sl.size;
      }
    } else {
      scratch_.resize(n);
      Gather(data).Copy(scratch_.data(), n);
      s = oc->data->Write(off, scratch_.data(), n);
      if (scratch_.capacity() > (8u << 20)) std::vector<uint8_t>().swap(scratch_);
    }
  } else if (new_len > L) {
    s = oc->data->Truncate(new_len);
  }
  if (s.ok()) s = WriteCrcEntries(oc, first, ncrc);
  if (!s.ok()) {
    Restore(st, oc, off, end, data, s);
    return s;
  }

  // 3. Commit in memory.
  oc->crcs.resize(NumBlocks(new_len), 0);
  std::copy(ncrc.begin(), ncrc.end(), oc->crcs.begin() + static_cast<ptrdiff_t>(first));
  if (first <= oc->crcs_valid) oc->crcs_valid = std::max(oc->crcs_valid, last + 1);
  used_bytes_ += new_len - L;
  st->length = new_len;
  st->dirty = true;
  ++st->gen;
  oc->wb_lo = std::min(oc->wb_lo, off);
  oc->wb_hi = std::max(oc->wb_hi, end);
  if (writeback_bytes_ > 0 && oc->wb_hi - oc->wb_lo >= writeback_bytes_ && StartWriteback(oc)) {
    ++writebacks_early_;
  }
  return Status::OK();
}

// ----------------------------------------------------- short-circuit writes

Status ChunkStore::NotExternal(uint64_t handle) const {
  if (external_.count(handle) == 0) return Status::OK();
  return Status(Code::kBusy, "chunk " + HandleName(handle) + ": a short-circuit write is open");
}

Status ChunkStore::BeginExternalWrite(uint64_t handle, uint64_t offset, uint64_t n,
                                      uint64_t window_end, uint64_t* granted_end) {
  Result<State*> str = Lookup(handle);
  if (!str.ok()) return str.status();
  GFS_RETURN_IF_ERROR(NotExternal(handle));
  GFS_RETURN_IF_ERROR(NoAppends(handle));
  if (n == 0 || offset > kMaxLength || n > kMaxLength - offset) {
    return Status::InvalidArgument("chunk " + HandleName(handle) + ": short-circuit write of " +
                                   std::to_string(n) + " bytes at " + std::to_string(offset));
  }
  State* st = *str;
  Result<OpenChunk*> ocr = Acquire(handle, st, /*create=*/true);
  if (!ocr.ok()) return ocr.status();
  OpenChunk* oc = *ocr;
  const uint64_t L = st->length, end = offset + n;
  // Old blocks that keep old bytes beside the new ones are checksummed anew
  // at the end from what the file holds: verify their old bytes now.
  std::vector<size_t> edges = {static_cast<size_t>(offset / kBS),
                               static_cast<size_t>((end - 1) / kBS)};
  if (L > 0 && L < offset) edges.push_back(static_cast<size_t>((L - 1) / kBS));
  std::sort(edges.begin(), edges.end());
  edges.erase(std::unique(edges.begin(), edges.end()), edges.end());
  for (size_t i : edges) {
    const uint64_t bs = uint64_t{i} * kBS;
    if (i >= NumBlocks(L) || (offset <= bs && std::min(bs + kBS, L) <= end)) continue;
    Status s = ReadVerifiedBlock(oc, L, i, &scratch_);
    if (!s.ok()) return Status(s.code(), s.message() + "; refusing to overwrite part of the block");
  }
  // A held grant: past `end` (>= L) the file holds no old byte, so the
  // writer may go on there without any block to verify first.
  const uint64_t limit = window_end > end && end >= L ? std::min(window_end, kMaxLength) : end;
  external_[handle] = External{offset, end, limit};
  if (granted_end != nullptr) *granted_end = limit;
  return Status::OK();
}

Status ChunkStore::EndExternalWrite(uint64_t handle, const std::vector<uint32_t>& crcs) {
  auto it = external_.find(handle);
  return EndExternalWrite(handle, it == external_.end() ? 0 : it->second.end, crcs);
}

Status ChunkStore::EndExternalWrite(uint64_t handle, uint64_t end,
                                    const std::vector<uint32_t>& crcs) {
  auto it = external_.find(handle);
  if (it == external_.end()) {
    return Status::NotFound("chunk " + HandleName(handle) + ": no short-circuit write is open");
  }
  External e = it->second;
  if (end < e.end || end > e.limit) {
    Status s = FinishExternal(handle, e, nullptr);
    if (!s.ok()) return s;
    return Status::InvalidArgument("short-circuit write of chunk " + HandleName(handle) +
                                   ": written to " + std::to_string(end) + ", outside its grant [" +
                                   std::to_string(e.end) + ", " + std::to_string(e.limit) +
                                   "]; aborted");
  }
  e.end = e.limit = end;
  const uint64_t boundary = (e.off + kBS - 1) / kBS * kBS;
  const size_t want = boundary >= e.end ? 0 : static_cast<size_t>(NumBlocks(e.end - boundary));
  if (crcs.size() != want) {
    Status s = FinishExternal(handle, e, nullptr);
    if (!s.ok()) return s;
    return Status::InvalidArgument("short-circuit write of chunk " + HandleName(handle) + ": " +
                                   std::to_string(crcs.size()) + " checksums for " +
                                   std::to_string(want) + " blocks; aborted");
  }
  return FinishExternal(handle, e, &crcs);
}

Status ChunkStore::AbortExternalWrite(uint64_t handle) {
  auto it = external_.find(handle);
  if (it == external_.end()) {
    return Status::NotFound("chunk " + HandleName(handle) + ": no short-circuit write is open");
  }
  return FinishExternal(handle, it->second, nullptr);
}

Status ChunkStore::FinishExternal(uint64_t handle, External e, const std::vector<uint32_t>* crcs) {
  external_.erase(handle);
  if (crcs == nullptr) e.end = e.limit;  // aborted: anything up to the granted end may be there
  Result<State*> str = Lookup(handle);
  if (!str.ok()) return str.status();
  State* st = *str;
  Result<OpenChunk*> ocr = Acquire(handle, st, /*create=*/false);
  if (!ocr.ok()) return ocr.status();
  OpenChunk* oc = *ocr;
  const uint64_t L = st->length;
  Result<uint64_t> size = oc->data->Size();
  if (!size.ok()) return size.status();
  Status short_file;
  if (crcs != nullptr && *size < e.end) {
    short_file = Status::IOError(DataPath(handle) + ": " + std::to_string(*size) +
                                 " bytes after a short-circuit write to " + std::to_string(e.end) +
                                 "; aborted");
    crcs = nullptr;
  }
  // Aborted: keep what landed past the old length (never more than the range).
  const uint64_t new_len = std::max(L, std::min(*size, e.end));
  auto fail = [&](const Status& s) { return Poison(handle, st, "a short-circuit write", s); };
  if (*size > new_len) {
    Status s = oc->data->Truncate(new_len);
    if (!s.ok()) return fail(s);
  }
  // Blocks whose bytes may have changed: from the first the range or the
  // gap before it touches, to the last below the range's end or new length.
  const uint64_t lo = std::min(e.off, L);
  const uint64_t hi = std::max(std::min(e.end, new_len), new_len > L ? new_len : 0);
  std::vector<uint32_t> ncrc;
  size_t first = 0;
  if (hi > lo) {
    first = static_cast<size_t>(lo / kBS);
    const size_t last = static_cast<size_t>((hi - 1) / kBS);
    const uint64_t boundary = (e.off + kBS - 1) / kBS * kBS;
    ncrc.resize(last - first + 1);
    for (size_t i = first; i <= last; ++i) {
      const uint64_t bs = uint64_t{i} * kBS;
      const uint64_t be = std::min(bs + kBS, new_len);
      if (crcs != nullptr && bs >= e.off && be <= e.end) {
        ncrc[i - first] = (*crcs)[static_cast<size_t>((bs - boundary) / kBS)];
        continue;
      }
      scratch_.resize(static_cast<size_t>(be - bs));
      size_t got = 0;
      Status s = oc->data->Read(bs, scratch_.size(), scratch_.data(), &got);
      if (s.ok() && got != scratch_.size()) s = Status::IOError(DataPath(handle) + ": short read");
      if (!s.ok()) return fail(s);
      ncrc[i - first] = crc32c::Value(scratch_.data(), scratch_.size());
    }
  }
  GFS_RETURN_IF_ERROR(SetBlocks(handle, st, oc, first, ncrc, lo, hi, new_len));
  return short_file;
}

Status ChunkStore::Poison(uint64_t handle, State* st, const char* after, const Status& s) {
  st->poisoned = Status(
      s.code(), "chunk " + HandleName(handle) + " unusable after " + after + ": " + s.ToString());
  Evict(handle);
  return st->poisoned;
}

Status ChunkStore::SetBlocks(uint64_t handle, State* st, OpenChunk* oc, size_t first,
                             const std::vector<uint32_t>& ncrc, uint64_t lo, uint64_t hi,
                             uint64_t new_len) {
  if (!ncrc.empty()) {
    Status s = WriteCrcEntries(oc, first, ncrc);
    if (!s.ok()) return Poison(handle, st, "a short-circuit write", s);
    oc->crcs.resize(NumBlocks(new_len), 0);
    std::copy(ncrc.begin(), ncrc.end(), oc->crcs.begin() + static_cast<ptrdiff_t>(first));
    if (first <= oc->crcs_valid) oc->crcs_valid = std::max(oc->crcs_valid, first + ncrc.size());
    oc->wb_lo = std::min(oc->wb_lo, lo);
    oc->wb_hi = std::max(oc->wb_hi, hi);
  }
  used_bytes_ += new_len - st->length;
  st->length = new_len;
  st->dirty = true;
  ++st->gen;
  if (writeback_bytes_ > 0 && oc->wb_hi > oc->wb_lo && oc->wb_hi - oc->wb_lo >= writeback_bytes_ &&
      StartWriteback(oc)) {
    ++writebacks_early_;
  }
  return Status::OK();
}

// ------------------------------------------------------ short-circuit appends

Status ChunkStore::NoAppends(uint64_t handle) const {
  if (appends_.count(handle) == 0) return Status::OK();
  return Status(Code::kBusy, "chunk " + HandleName(handle) + ": short-circuit appends are open");
}

uint64_t ChunkStore::AppendEnd(uint64_t handle) const {
  auto a = appends_.find(handle);
  if (a != appends_.end()) return a->second.reserved;
  auto c = chunks_.find(handle);
  return c == chunks_.end() ? 0 : c->second.length;
}

uint64_t ChunkStore::LandedEnd(uint64_t handle) const {
  uint64_t end = AppendEnd(handle);
  auto a = appends_.find(handle);
  if (a == appends_.end()) return end;
  end = 0;
  for (auto r = a->second.ranges.rbegin(); r != a->second.ranges.rend(); ++r) {
    if (r->second.landed) {  // the highest landed range
      end = r->second.end;
      break;
    }
  }
  auto c = chunks_.find(handle);
  return std::max(end, c == chunks_.end() ? 0 : c->second.length);
}

Status ChunkStore::ReserveAppend(uint64_t handle, uint64_t n, uint64_t* offset) {
  Result<State*> str = Lookup(handle);
  if (!str.ok()) return str.status();
  GFS_RETURN_IF_ERROR(NotExternal(handle));
  const uint64_t at = AppendEnd(handle);
  if (n == 0 || n > kMaxLength - at) {
    return Status::InvalidArgument("chunk " + HandleName(handle) + ": append of " +
                                   std::to_string(n) + " bytes at " + std::to_string(at));
  }
  Result<OpenChunk*> ocr = Acquire(handle, *str, /*create=*/true);
  if (!ocr.ok()) return ocr.status();
  Appends& a = appends_[handle];
  a.reserved = at + n;
  a.ranges[at].end = at + n;
  *offset = at;
  return Status::OK();
}

Status ChunkStore::FindRange(uint64_t handle, uint64_t offset, AppendRange** r) {
  auto a = appends_.find(handle);
  if (a != appends_.end()) {
    auto it = a->second.ranges.find(offset);
    if (it != a->second.ranges.end() && !it->second.landed) {
      *r = &it->second;
      return Status::OK();
    }
  }
  return Status::NotFound("chunk " + HandleName(handle) + ": no open append range at " +
                          std::to_string(offset));
}

namespace {
// The pieces of [off, end) between block boundaries.
size_t PieceCount(uint64_t off, uint64_t end) {
  return static_cast<size_t>((end - 1) / kBS - off / kBS + 1);
}
}  // namespace

Status ChunkStore::LandAppend(uint64_t handle, uint64_t offset, const std::vector<uint32_t>& crcs) {
  AppendRange* r = nullptr;
  GFS_RETURN_IF_ERROR(FindRange(handle, offset, &r));
  const size_t want = PieceCount(offset, r->end);
  if (crcs.size() != want) {
    GFS_RETURN_IF_ERROR(AbortAppend(handle, offset));
    return Status::InvalidArgument("append to chunk " + HandleName(handle) + " at " +
                                   std::to_string(offset) + ": " + std::to_string(crcs.size()) +
                                   " checksums for " + std::to_string(want) +
                                   " pieces; checksummed from the file instead");
  }
  r->crcs = crcs;
  r->landed = true;
  return Fold(handle);
}

Status ChunkStore::AbortAppend(uint64_t handle, uint64_t offset) {
  AppendRange* r = nullptr;
  GFS_RETURN_IF_ERROR(FindRange(handle, offset, &r));
  Result<State*> str = Lookup(handle);
  if (!str.ok()) return str.status();
  Result<OpenChunk*> ocr = Acquire(handle, *str, /*create=*/false);
  if (!ocr.ok()) return ocr.status();
  OpenChunk* oc = *ocr;
  // Only this range's writer writes inside it, and it started nothing it
  // could not finish before now: read what it left, and fill with zeros
  // where the file ends first (never truncate: later ranges may be written).
  std::vector<uint32_t> crcs;
  for (uint64_t p = offset; p < r->end;) {
    const uint64_t q = std::min((p / kBS + 1) * kBS, r->end);
    scratch_.resize(static_cast<size_t>(q - p));
    size_t got = 0;
    Status s = oc->data->Read(p, scratch_.size(), scratch_.data(), &got);
    if (s.ok() && got < scratch_.size()) {
      std::memset(scratch_.data() + got, 0, scratch_.size() - got);
      s = oc->data->Write(p + got, scratch_.data() + got, scratch_.size() - got);
    }
    if (!s.ok()) return Poison(handle, *str, "an abandoned append", s);
    crcs.push_back(crc32c::Value(scratch_.data(), scratch_.size()));
    p = q;
  }
  r->crcs = std::move(crcs);
  r->landed = true;
  return Fold(handle);
}

Status ChunkStore::WriteAppend(uint64_t handle, const std::vector<ConstSlice>& data,
                               uint64_t* offset) {
  uint64_t n = 0;
  for (const ConstSlice& s : data) n += s.size;
  GFS_RETURN_IF_ERROR(ReserveAppend(handle, n, offset));
  Result<State*> str = Lookup(handle);
  Result<OpenChunk*> ocr = Acquire(handle, *str, /*create=*/false);
  Status s = ocr.status();
  uint64_t at = *offset;
  for (size_t i = 0; s.ok() && i < data.size(); at += data[i].size, ++i) {
    s = (*ocr)->data->Write(at, data[i].data, data[i].size);
  }
  if (!s.ok()) {
    AbortAppend(handle, *offset);  // what landed is checksummed as it is, like a failed Write
    return s;
  }
  std::vector<uint32_t> crcs;
  Gather g(data);
  for (uint64_t p = *offset, end = *offset + n; p < end;) {
    const uint64_t q = std::min((p / kBS + 1) * kBS, end);
    crcs.push_back(g.Crc(0, q - p));
    p = q;
  }
  return LandAppend(handle, *offset, crcs);
}

Status ChunkStore::PadAppend(uint64_t handle, uint64_t end) {
  const uint64_t at = AppendEnd(handle);
  if (end <= at) return Status::OK();
  uint64_t offset = 0;
  GFS_RETURN_IF_ERROR(ReserveAppend(handle, end - at, &offset));
  Result<State*> str = Lookup(handle);
  Result<OpenChunk*> ocr = Acquire(handle, *str, /*create=*/false);
  Status s = ocr.status();
  Result<uint64_t> size = s.ok() ? (*ocr)->data->Size() : Result<uint64_t>(s);
  if (!size.ok()) s = size.status();
  if (s.ok() && *size > offset) {  // old bytes past every range: make them zeros
    std::vector<uint8_t> zeros(static_cast<size_t>(std::min(*size, end) - offset), 0);
    s = (*ocr)->data->Write(offset, zeros.data(), zeros.size());
  }
  // Writers of earlier ranges end below `offset`: growing the file to `end`
  // cuts none of their bytes.
  if (s.ok() && *size < end) s = (*ocr)->data->Truncate(end);
  if (!s.ok()) {
    AbortAppend(handle, offset);
    return s;
  }
  std::vector<uint32_t> crcs;
  for (uint64_t p = offset; p < end;) {
    const uint64_t q = std::min((p / kBS + 1) * kBS, end);
    crcs.push_back(ExtendZeros(0, q - p));
    p = q;
  }
  return LandAppend(handle, offset, crcs);
}

Status ChunkStore::Fold(uint64_t handle) {
  auto a = appends_.find(handle);
  if (a == appends_.end()) return Status::OK();
  Result<State*> str = Lookup(handle);
  if (!str.ok()) return str.status();
  State* st = *str;
  auto& ranges = a->second.ranges;
  while (!ranges.empty() && ranges.begin()->first == st->length && ranges.begin()->second.landed) {
    const uint64_t off = ranges.begin()->first;
    AppendRange r = std::move(ranges.begin()->second);
    ranges.erase(ranges.begin());
    Result<OpenChunk*> ocr = Acquire(handle, st, /*create=*/false);
    if (!ocr.ok()) return ocr.status();
    OpenChunk* oc = *ocr;
    const size_t first = static_cast<size_t>(off / kBS);
    std::vector<uint32_t> ncrc = std::move(r.crcs);
    if (off % kBS != 0) {
      // The block the range starts in began with the bytes before it.
      const uint64_t piece = std::min((off / kBS + 1) * kBS, r.end) - off;
      ncrc[0] = crc32c::Combine(first < oc->crcs.size() ? oc->crcs[first] : 0, ncrc[0], piece);
    }
    GFS_RETURN_IF_ERROR(SetBlocks(handle, st, oc, first, ncrc, off, r.end, r.end));
  }
  if (ranges.empty()) appends_.erase(a);
  return Status::OK();
}

bool ChunkStore::StartWriteback(OpenChunk* oc) {
  const bool any = oc->wb_lo < oc->wb_hi;
  if (any) oc->data->StartWriteback(oc->wb_lo, oc->wb_hi - oc->wb_lo);
  oc->wb_lo = UINT64_MAX;
  oc->wb_hi = 0;
  return any;
}

std::vector<ChunkStore::Writeback> ChunkStore::TakeWritebacks() {
  std::vector<Writeback> out;
  for (OpenChunk& oc : lru_) {
    if (oc.wb_lo >= oc.wb_hi) continue;
    out.push_back(Writeback{oc.data, oc.wb_lo, oc.wb_hi - oc.wb_lo});
    oc.wb_lo = UINT64_MAX;
    oc.wb_hi = 0;
    ++writebacks_batched_;
  }
  return out;
}

void ChunkStore::StartWritebackAll() {
  for (const Writeback& w : TakeWritebacks()) w.file->StartWriteback(w.offset, w.n);
}

// After a failed write: cut the data and checksum files back to the old length
// and re-checksum the old blocks the write overlapped, so the chunk stays
// readable. A block is re-checksummed only if its bytes can be vouched for:
// they still match the stored CRC (the write did not reach them), or every
// byte inside the write range equals the new data (old bytes outside the range
// were verified before the write, see WriteImpl). Anything else (a write torn
// inside the block, or old bytes that were already corrupt and never read)
// keeps the old CRC, so the block reads as Corruption instead of laundering
// bad bytes under a fresh checksum. If restoring fails, poison the chunk.
void ChunkStore::Restore(State* st, OpenChunk* oc, uint64_t off, uint64_t end,
                         const std::vector<ConstSlice>& data, const Status& cause) {
  const uint64_t L = st->length;
  st->dirty = true;
  ++st->gen;
  auto fix = [&]() -> Status {
    Result<uint64_t> dsize = oc->data->Size();
    if (!dsize.ok()) return dsize.status();
    if (*dsize != L) GFS_RETURN_IF_ERROR(oc->data->Truncate(L));
    // From the first block whose checksum entry the write may have changed
    // on disk: with off >= L that is the old partial last block, whose entry
    // is rewritten in place before the entries that grow the file.
    if (L > 0 && std::min(off, L) / kBS < NumBlocks(L)) {
      const size_t a = static_cast<size_t>(std::min(off, L) / kBS);
      const size_t b = static_cast<size_t>((std::min(end, L) - 1) / kBS);
      const size_t valid_end = std::min(b + 1, oc->crcs_valid);  // don't launder missing ones
      if (a < valid_end) {
        std::vector<uint32_t> v;
        Gather g(data);
        uint64_t g_pos = off;  // write offset of the gather's next byte
        for (size_t i = a; i < valid_end; ++i) {
          const uint64_t bs = uint64_t{i} * kBS;
          const size_t len = static_cast<size_t>(std::min<uint64_t>(bs + kBS, L) - bs);
          scratch_.resize(len);
          size_t got = 0;
          GFS_RETURN_IF_ERROR(oc->data->Read(bs, len, scratch_.data(), &got));
          if (got != len) return Status::Corruption(DataPath(oc->handle) + ": short read");
          const uint32_t cur = crc32c::Value(scratch_.data(), len);
          if (cur == oc->crcs[i]) {
            v.push_back(cur);
            continue;
          }
          const uint64_t ws = std::max(bs, off), we = std::min(bs + len, end);
          bool is_new = false;
          if (ws < we) {
            g.Skip(ws - g_pos);
            is_new = g.Equal(scratch_.data() + (ws - bs), we - ws);
            g_pos = we;
          }
          v.push_back(is_new ? cur : oc->crcs[i]);
        }
        GFS_RETURN_IF_ERROR(WriteCrcEntries(oc, a, v));
        std::copy(v.begin(), v.end(), oc->crcs.begin() + static_cast<ptrdiff_t>(a));
      }
    }
    const uint64_t want = kCrcHeaderSize + NumBlocks(L) * 4;
    Result<uint64_t> csize = oc->crc->Size();
    if (!csize.ok()) return csize.status();
    if (*csize > want) GFS_RETURN_IF_ERROR(oc->crc->Truncate(want));
    return Status::OK();
  };
  Status r = fix();
  if (!r.ok()) {
    st->poisoned = Status(cause.code(), "chunk " + HandleName(oc->handle) + " unusable after " +
                                            cause.ToString() + "; restore failed: " + r.ToString());
    Evict(oc->handle);
  }
}

// ---------------------------------------------------------------------- read

Status ChunkStore::Locate(uint64_t handle, uint64_t offset, size_t n, Span* sp) {
  *sp = Span();
  Result<State*> str = Lookup(handle);
  if (!str.ok()) return str.status();
  GFS_RETURN_IF_ERROR(NotExternal(handle));
  State* st = *str;
  const uint64_t L = st->length;
  if (offset >= L || n == 0) return Status::OK();
  sp->length = L;
  sp->want = std::min<uint64_t>(n, L - offset);
  Result<OpenChunk*> ocr = Acquire(handle, st, /*create=*/false);
  if (!ocr.ok()) return ocr.status();
  sp->oc = *ocr;
  sp->first = static_cast<size_t>(offset / kBS);
  sp->last = static_cast<size_t>((offset + sp->want - 1) / kBS);
  sp->rs = uint64_t{sp->first} * kBS;
  sp->re = std::min<uint64_t>(uint64_t{sp->last + 1} * kBS, L);
  return Status::OK();
}

Status ChunkStore::ReadVerified(uint64_t handle, uint64_t offset, size_t n,
                                const std::function<uint8_t*(size_t)>& reserve, size_t* skip,
                                size_t* len) {
  *skip = 0;
  *len = 0;
  Span sp;
  GFS_RETURN_IF_ERROR(Locate(handle, offset, n, &sp));
  if (sp.oc == nullptr) return Status::OK();
  OpenChunk* oc = sp.oc;
  const size_t first = sp.first, last = sp.last;
  const uint64_t rs = sp.rs, re = sp.re, want = sp.want;
  // Read the whole blocks straight into the caller's memory and verify them.
  uint8_t* buf = reserve(static_cast<size_t>(re - rs));
  size_t got = 0;
  Status s = oc->data->Read(rs, re - rs, buf, &got);
  if (s.ok() && got != re - rs) {
    s = Status::Corruption(DataPath(handle) + ": data file shorter than chunk length " +
                           std::to_string(sp.length));
  }
  for (size_t i = first; s.ok() && i <= last; ++i) {
    const uint64_t bs = uint64_t{i} * kBS;
    s = CheckBlock(*oc, i, buf + (bs - rs), std::min<uint64_t>(kBS, re - bs));
  }
  if (!s.ok()) return s;
  *skip = static_cast<size_t>(offset - rs);
  *len = static_cast<size_t>(want);
  return Status::OK();
}

Status ChunkStore::BlockChecksums(uint64_t handle, uint64_t offset, size_t n, uint64_t* base,
                                  uint64_t* end, std::vector<uint32_t>* crcs) {
  *base = *end = 0;
  crcs->clear();
  Span sp;
  GFS_RETURN_IF_ERROR(Locate(handle, offset, n, &sp));
  if (sp.oc == nullptr) return Status::OK();
  const OpenChunk* oc = sp.oc;
  const size_t first = sp.first, last = sp.last;
  if (last >= oc->crcs_valid || last >= oc->crcs.size()) {
    return Status::Corruption("chunk " + HandleName(handle) + " block " + std::to_string(last) +
                              ": checksum missing (checksum file too short)");
  }
  crcs->assign(oc->crcs.begin() + static_cast<ptrdiff_t>(first),
               oc->crcs.begin() + static_cast<ptrdiff_t>(last + 1));
  *base = sp.rs;
  *end = sp.re;
  return Status::OK();
}

Status ChunkStore::Read(uint64_t handle, uint64_t offset, size_t n, std::vector<uint8_t>* out) {
  out->clear();
  size_t skip = 0, len = 0;
  Status s = ReadVerified(
      handle, offset, n,
      [out](size_t span) {
        out->resize(span);
        return out->data();
      },
      &skip, &len);
  if (!s.ok()) {
    out->clear();
    return s;
  }
  if (skip > 0) out->erase(out->begin(), out->begin() + static_cast<ptrdiff_t>(skip));
  out->resize(len);
  return Status::OK();
}

Status ChunkStore::Verify(uint64_t handle) {
  Result<State*> str = Lookup(handle);
  if (!str.ok()) return str.status();
  GFS_RETURN_IF_ERROR(NotExternal(handle));
  State* st = *str;
  const uint64_t L = st->length;
  if (L == 0) return Status::OK();
  Result<OpenChunk*> ocr = Acquire(handle, st, /*create=*/false);
  if (!ocr.ok()) return ocr.status();
  OpenChunk* oc = *ocr;
  constexpr uint64_t kPiece = 16 * kBS;
  for (uint64_t pos = 0; pos < L; pos += kPiece) {
    const size_t len = static_cast<size_t>(std::min(kPiece, L - pos));
    scratch_.resize(len);
    size_t got = 0;
    GFS_RETURN_IF_ERROR(oc->data->Read(pos, len, scratch_.data(), &got));
    if (got != len) {
      return Status::Corruption(DataPath(handle) + ": data file shorter than chunk length " +
                                std::to_string(L));
    }
    for (uint64_t b = 0; b < len; b += kBS) {
      GFS_RETURN_IF_ERROR(CheckBlock(*oc, static_cast<size_t>((pos + b) / kBS), scratch_.data() + b,
                                     std::min<uint64_t>(kBS, len - b)));
    }
  }
  return Status::OK();
}

// ------------------------------------------------------------ truncate / sync

Status ChunkStore::Truncate(uint64_t handle, uint64_t length) {
  Result<State*> str = Lookup(handle);
  if (!str.ok()) return str.status();
  GFS_RETURN_IF_ERROR(NotExternal(handle));
  GFS_RETURN_IF_ERROR(NoAppends(handle));
  State* st = *str;
  const uint64_t L = st->length;
  if (length == L) return Status::OK();
  if (length > kMaxLength) {
    return Status::InvalidArgument("chunk " + HandleName(handle) + ": truncate past max length");
  }
  if (length > L) return WriteImpl(handle, length, {}, 0, length);

  Result<OpenChunk*> ocr = Acquire(handle, st, /*create=*/false);
  if (!ocr.ok()) return ocr.status();
  OpenChunk* oc = *ocr;
  const size_t nb = static_cast<size_t>(NumBlocks(length));
  const size_t tail = static_cast<size_t>(length % kBS);
  uint32_t last_crc = 0;
  if (tail != 0) {  // the new last block is partial: verify it, checksum its prefix
    Status s = ReadVerifiedBlock(oc, L, nb - 1, &scratch_);
    if (!s.ok()) return Status(s.code(), s.message() + "; refusing to truncate inside the block");
    last_crc = crc32c::Value(scratch_.data(), tail);
  }
  GFS_RETURN_IF_ERROR(oc->data->Truncate(length));
  Status s;
  if (tail != 0) s = WriteCrcEntries(oc, nb - 1, {last_crc});
  if (s.ok()) s = oc->crc->Truncate(kCrcHeaderSize + uint64_t{nb} * 4);
  used_bytes_ -= L - length;
  st->length = length;
  st->dirty = true;
  ++st->gen;
  if (!s.ok()) {
    st->poisoned = Status(s.code(), "chunk " + HandleName(handle) +
                                        " unusable after failed truncate: " + s.ToString());
    Evict(handle);
    return s;
  }
  oc->crcs.resize(nb);
  if (tail != 0) oc->crcs[nb - 1] = last_crc;
  oc->crcs_valid = std::min(oc->crcs_valid, nb);
  return Status::OK();
}

Status ChunkStore::Sync(uint64_t handle) {
  Result<State*> str = Lookup(handle);
  if (!str.ok()) return str.status();
  State* st = *str;
  if (!st->dirty) return Status::OK();
  Result<OpenChunk*> ocr = Acquire(handle, st, /*create=*/false);
  if (!ocr.ok()) return ocr.status();
  OpenChunk* oc = *ocr;
  Status s = oc->data->Sync();
  if (s.ok()) s = oc->crc->Sync();
  if (s.ok() && st->need_dir_sync) s = env_->SyncDir(ChunksDir());
  if (!s.ok()) {
    // After a failed fsync the kernel may have dropped the dirty pages: a retry
    // could "succeed" without the data, so the chunk is not trusted again.
    st->poisoned = Status(
        s.code(), "chunk " + HandleName(handle) + " unusable after failed sync: " + s.ToString());
    Evict(handle);
    return st->poisoned;
  }
  st->dirty = false;
  st->need_dir_sync = false;
  oc->wb_lo = UINT64_MAX;
  oc->wb_hi = 0;
  return Status::OK();
}

Result<std::unique_ptr<ChunkStore::SyncJob>> ChunkStore::PrepareSync(uint64_t handle) {
  Result<State*> str = Lookup(handle);
  if (!str.ok()) return str.status();
  State* st = *str;
  if (!st->dirty) return std::unique_ptr<SyncJob>();
  if (!st->poisoned.ok()) return st->poisoned;
  auto job = std::make_unique<SyncJob>();
  job->handle = handle;
  job->gen = st->gen;
  job->data_path = DataPath(handle);
  job->crc_path = CrcPath(handle);
  if (st->need_dir_sync) job->dir = ChunksDir();
  job->env = env_;
  return job;
}

Status ChunkStore::SyncJob::Run() {
  for (const Writeback& w : writebacks) w.file->StartWriteback(w.offset, w.n);
  std::unique_ptr<RandomRWFile> data, crc;
  Status s = env->OpenRandomRW(data_path, /*create=*/false, &data);
  if (s.ok()) s = env->OpenRandomRW(crc_path, /*create=*/false, &crc);
  if (!s.ok()) {
    open_failed = true;
    return s;
  }
  s = data->Sync();
  if (s.ok()) s = crc->Sync();
  if (s.ok() && !dir.empty()) s = env->SyncDir(dir);
  return s;
}

Status ChunkStore::FinishSync(const SyncJob& job, const Status& result) {
  auto it = chunks_.find(job.handle);
  if (it == chunks_.end()) {  // deleted meanwhile: nothing left to sync
    return job.open_failed ? Status::OK() : result;
  }
  State* st = &it->second;
  if (!st->poisoned.ok()) return st->poisoned;
  if (!result.ok() && job.open_failed) return result;  // still dirty, still usable
  if (!result.ok()) {
    // As in Sync: the kernel may have dropped the dirty pages.
    st->poisoned = Status(result.code(), "chunk " + HandleName(job.handle) +
                                             " unusable after failed sync: " + result.ToString());
    Evict(job.handle);
    return st->poisoned;
  }
  if (st->gen != job.gen) return Status::OK();  // changed meanwhile: still dirty
  st->dirty = false;
  if (!job.dir.empty()) st->need_dir_sync = false;
  auto oc = open_.find(job.handle);
  if (oc != open_.end()) {
    oc->second->wb_lo = UINT64_MAX;
    oc->second->wb_hi = 0;
  }
  return Status::OK();
}

Status ChunkStore::SyncAll() {
  Status first;
  bool dir_synced = false;
  for (auto& [h, st] : chunks_) {
    if (!st.dirty || !st.poisoned.ok()) continue;
    if (dir_synced) st.need_dir_sync = false;  // one directory fsync covers all
    const bool had_dir = st.need_dir_sync;
    Status s = Sync(h);
    if (s.ok() && had_dir) dir_synced = true;
    if (!s.ok() && first.ok()) first = s;
  }
  return first;
}

}  // namespace gfs
