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

// <handle>.crc header, format 2 (doc/disk-format-chunk.md): magic, format,
// block size, flags, recorded length, intent (first block, last block, length),
// reserved, crc32c of the first 44 bytes. Entries follow.
constexpr uint32_t kCrcMagic = 0x43534647;  // "GFSC" on disk
constexpr uint32_t kCrcFormat = 2;
constexpr size_t kCrcHeaderSize = 48;
constexpr uint32_t kFlagIntent = 1;
// Format 1's header (upgraded at Open): magic, format, block size, crc32c.
constexpr size_t kCrcHeaderSizeV1 = 16;

constexpr char kFormatFile[] = "FORMAT";
constexpr char kFormatText[] = "gfs chunk store format ";

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

// Adds [lo, hi) to a sorted list of disjoint ranges, merging neighbours.
void AddRange(std::vector<Range>* v, uint64_t lo, uint64_t hi) {
  if (hi <= lo) return;
  std::vector<Range> out;
  bool placed = false;
  for (const Range& r : *v) {
    const uint64_t rl = r.offset, rh = r.offset + r.length;
    if (rh < lo) {
      out.push_back(r);
    } else if (hi < rl) {
      if (!placed) out.push_back({lo, hi - lo});
      placed = true;
      out.push_back(r);
    } else {
      lo = std::min(lo, rl);
      hi = std::max(hi, rh);
    }
  }
  if (!placed) out.push_back({lo, hi - lo});
  std::sort(out.begin(), out.end(),
            [](const Range& a, const Range& b) { return a.offset < b.offset; });
  *v = std::move(out);
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

// The checksum file's header, decoded.
struct CrcHeader {
  uint32_t format = 0;
  uint64_t length = 0;
  bool intent = false;
  uint32_t first = 0, last = 0;
  uint64_t intent_length = 0;
};

std::vector<uint8_t> EncodeCrcHeader(uint64_t length, bool intent, uint32_t first, uint32_t last,
                                     uint64_t intent_length) {
  std::vector<uint8_t> hdr;
  Writer w(&hdr);
  w.U32(kCrcMagic);
  w.U32(kCrcFormat);
  w.U32(kBS);
  w.U32(intent ? kFlagIntent : 0);
  w.U64(length);
  w.U32(intent ? first : 0);
  w.U32(intent ? last : 0);
  w.U64(intent ? intent_length : 0);
  w.U32(0);
  w.U32(crc32c::Value(hdr.data(), hdr.size()));
  return hdr;
}

// Decodes a header of either format (format 1 has no length: 0). Every
// failure is a Corruption naming `path`.
Status DecodeCrcHeader(const std::string& path, const uint8_t* p, size_t n, CrcHeader* h) {
  Reader r(p, n);
  uint32_t magic = 0, bs = 0;
  if (!r.U32(&magic) || !r.U32(&h->format)) {
    return Status::Corruption(path + ": checksum file header truncated (" + std::to_string(n) +
                              " bytes)");
  }
  if (magic != kCrcMagic) {
    return Status::Corruption(path + ": bad checksum file magic " + Hex(magic));
  }
  if (h->format != 1 && h->format != kCrcFormat) {
    return Status::Corruption(path + ": unknown checksum file format version " +
                              std::to_string(h->format) + " (this build reads version " +
                              std::to_string(kCrcFormat) + ")");
  }
  const size_t size = h->format == 1 ? kCrcHeaderSizeV1 : kCrcHeaderSize;
  if (n < size || !r.U32(&bs)) {
    return Status::Corruption(path + ": checksum file header truncated (" + std::to_string(n) +
                              " bytes)");
  }
  uint32_t flags = 0, reserved = 0, crc = 0;
  if (h->format == kCrcFormat) {
    r.U32(&flags);
    r.U64(&h->length);
    r.U32(&h->first);
    r.U32(&h->last);
    r.U64(&h->intent_length);
    r.U32(&reserved);
  }
  r.U32(&crc);
  const uint32_t actual = crc32c::Value(p, size - 4);
  if (crc != actual) {
    return Status::Corruption(path + ": checksum file header checksum mismatch (stored " +
                              Hex(crc) + ", computed " + Hex(actual) + ")");
  }
  if (bs != kBS) {
    return Status::Corruption(path + ": checksum block size " + std::to_string(bs) +
                              ", this build uses " + std::to_string(kBS));
  }
  h->intent = (flags & kFlagIntent) != 0;
  if (h->length > ChunkStore::kMaxLength || h->intent_length > ChunkStore::kMaxLength ||
      h->first > h->last) {
    return Status::Corruption(path + ": checksum file header out of range");
  }
  return Status::OK();
}

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

Status ChunkStore::CheckFormat(const std::vector<std::string>& names) {
  const std::string path = ChunksDir() + "/" + kFormatFile;
  if (env_->FileExists(path)) {
    std::string text;
    GFS_RETURN_IF_ERROR(env_->ReadFile(path, &text));
    unsigned format = 0;
    if (text.rfind(kFormatText, 0) != 0 ||
        std::sscanf(text.c_str() + std::strlen(kFormatText), "%u", &format) != 1) {
      return Status::Corruption(path + ": not a chunk store format file");
    }
    if (format != kFormat) {
      return Status::InvalidArgument(ChunksDir() + " is chunk store format " +
                                     std::to_string(format) + "; this build reads format " +
                                     std::to_string(kFormat) + " (and upgrades format 1)");
    }
    return Status::OK();
  }
  // No FORMAT file: a new directory, or format 1 (which had none).
  bool any = false;
  for (const std::string& name : names) {
    uint64_t h = 0;
    std::string ext;
    if (!ParseName(name, &h, &ext) || ext != "meta") continue;
    any = true;
    GFS_RETURN_IF_ERROR(UpgradeCrcFile(h));
  }
  if (any) upgraded_from_ = 1;
  return env_->WriteFileAtomic(path, std::string(kFormatText) + std::to_string(kFormat) + "\n");
}

Status ChunkStore::UpgradeCrcFile(uint64_t h) {
  // Format 1 kept no length: it was the data file's size. The entries stay;
  // blocks they do not cover read as damaged instead of being cut off.
  std::string old;
  Status s = env_->ReadFile(CrcPath(h), &old);
  if (s.code() == Code::kNotFound) return Status::OK();  // never written
  GFS_RETURN_IF_ERROR(s);
  CrcHeader hdr;
  if (!DecodeCrcHeader(CrcPath(h), reinterpret_cast<const uint8_t*>(old.data()), old.size(), &hdr)
           .ok() ||
      hdr.format != 1) {
    return Status::OK();  // already format 2 (an interrupted upgrade), or unreadable: Open says
  }
  uint64_t length = 0;
  Result<uint64_t> size = env_->FileSize(DataPath(h));
  if (size.ok()) length = *size;
  std::vector<uint8_t> out = EncodeCrcHeader(length, false, 0, 0, 0);
  out.insert(out.end(), old.begin() + kCrcHeaderSizeV1, old.end());
  return env_->WriteFileAtomic(CrcPath(h), std::string(out.begin(), out.end()));
}

Status ChunkStore::Open() {
  const std::string cdir = ChunksDir();
  GFS_RETURN_IF_ERROR(env_->CreateDirs(cdir));
  GFS_RETURN_IF_ERROR(env_->LockFile(cdir + "/LOCK", &lock_));
  std::vector<std::string> names;
  GFS_RETURN_IF_ERROR(env_->GetChildren(cdir, &names));
  std::sort(names.begin(), names.end());
  std::vector<std::string> kept;
  for (const std::string& name : names) {
    if (EndsWith(name, ".tmp")) {
      Status s = env_->RemoveFile(cdir + "/" + name);
      if (!s.ok() && s.code() != Code::kNotFound) return s;
      continue;
    }
    kept.push_back(name);
  }
  GFS_RETURN_IF_ERROR(CheckFormat(kept));

  std::vector<uint64_t> metas;
  std::vector<std::pair<uint64_t, std::string>> others;  // data/crc files
  for (const std::string& name : kept) {
    uint64_t h = 0;
    std::string ext;
    if (!ParseName(name, &h, &ext)) continue;  // LOCK, FORMAT, foreign files: left alone
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
    State st;
    st.version = version;
    if (s.ok()) s = LoadChunk(h, &st);
    if (!s.ok()) {
      bad_.push_back(BadChunk{h, s});
      continue;
    }
    used_bytes_ += st.length;
    chunks_[h] = std::move(st);
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

Status ChunkStore::LoadChunk(uint64_t h, State* st) {
  uint64_t data_size = 0;
  Result<uint64_t> dsize = env_->FileSize(DataPath(h));
  if (dsize.ok()) {
    data_size = *dsize;
  } else if (dsize.status().code() != Code::kNotFound) {
    return dsize.status();
  }
  std::unique_ptr<RandomRWFile> crc;
  Status s = env_->OpenRandomRW(CrcPath(h), /*create=*/false, &crc);
  if (s.code() == Code::kNotFound) {
    // Never written (no files yet), or the checksums are gone: then every
    // byte the data file holds is unverifiable.
    st->length = data_size;
    if (data_size > 0) {
      st->broken = Status::Corruption(CrcPath(h) + ": checksum file missing for " +
                                      std::to_string(data_size) + " bytes of data");
    }
    return Status::OK();
  }
  GFS_RETURN_IF_ERROR(s);
  uint8_t raw[kCrcHeaderSize];
  size_t got = 0;
  GFS_RETURN_IF_ERROR(crc->Read(0, sizeof raw, raw, &got));
  CrcHeader hdr;
  s = DecodeCrcHeader(CrcPath(h), raw, got, &hdr);
  if (s.ok() && hdr.format != kCrcFormat) s = Status::Corruption(CrcPath(h) + ": format 1 header");
  if (!s.ok()) {
    // The recorded length is lost with the header: take the data file's size
    // (nothing is cut), and the whole replica is damaged until repaired.
    st->length = data_size;
    st->broken = s;
    return Status::OK();
  }
  Result<uint64_t> csize = crc->Size();
  if (!csize.ok()) return csize.status();
  uint64_t entries = *csize > kCrcHeaderSize ? (*csize - kCrcHeaderSize) / 4 : 0;
  uint64_t length = hdr.length;
  bool changed = false;
  if (hdr.intent) {
    // A mutation was under way when the process stopped: its range holds old
    // bytes, new bytes or a mix. The length becomes what the data file holds
    // between the old and the new one, and the blocks it meant to change are
    // checksummed as the file holds them.
    const uint64_t lo = std::min(hdr.length, hdr.intent_length);
    const uint64_t hi = std::max(hdr.length, hdr.intent_length);
    length = std::min(std::max(data_size, lo), hi);
    std::unique_ptr<RandomRWFile> data;
    if (data_size > 0) GFS_RETURN_IF_ERROR(env_->OpenReadOnly(DataPath(h), &data));
    std::vector<uint8_t> block;
    for (uint64_t i = hdr.first; i <= hdr.last && i < NumBlocks(length); ++i) {
      const uint64_t bs = i * kBS, be = std::min(bs + kBS, length);
      if (be > data_size) break;  // bytes missing: damaged, reported below
      block.resize(static_cast<size_t>(be - bs));
      size_t n = 0;
      GFS_RETURN_IF_ERROR(data->Read(bs, block.size(), block.data(), &n));
      if (n != block.size()) break;
      const uint32_t c = crc32c::Value(block.data(), block.size());
      GFS_RETURN_IF_ERROR(crc->Write(kCrcHeaderSize + i * 4, &c, 4));
      entries = std::max(entries, i + 1);
    }
    ++intents_finished_;
    changed = true;
  }
  if (data_size > length) {
    // Bytes past the recorded length belong to no acknowledged mutation (a
    // mutation is acknowledged after its length is recorded): not the chunk's.
    std::unique_ptr<RandomRWFile> data;
    GFS_RETURN_IF_ERROR(env_->OpenRandomRW(DataPath(h), /*create=*/false, &data));
    GFS_RETURN_IF_ERROR(data->Truncate(length));
    GFS_RETURN_IF_ERROR(data->Sync());
    unrecorded_tail_bytes_ += data_size - length;
    data_size = length;
  }
  if (changed) {
    const std::vector<uint8_t> fresh = EncodeCrcHeader(length, false, 0, 0, 0);
    GFS_RETURN_IF_ERROR(crc->Write(0, fresh.data(), fresh.size()));
    if (entries > NumBlocks(length)) {
      GFS_RETURN_IF_ERROR(crc->Truncate(kCrcHeaderSize + NumBlocks(length) * 4));
      entries = NumBlocks(length);
    }
    GFS_RETURN_IF_ERROR(crc->Sync());
  }
  st->length = length;
  // Damage visible without reading the data: blocks with no checksum, and
  // bytes the data file does not hold.
  if (entries < NumBlocks(length)) AddRange(&st->startup_damage, entries * kBS, length);
  if (data_size < length) AddRange(&st->startup_damage, data_size / kBS * kBS, length);
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

std::vector<Range> ChunkStore::StartupDamage(uint64_t handle) const {
  auto it = chunks_.find(handle);
  if (it == chunks_.end()) return {};
  const State& st = it->second;
  if (!st.poisoned.ok() || !st.broken.ok()) return {Range{0, st.length}};
  return st.startup_damage;
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
  if (version < it->second.version) {
    return Status::InvalidArgument("chunk " + HandleName(handle) + ": version " +
                                   std::to_string(version) + " is below its version " +
                                   std::to_string(it->second.version));
  }
  if (version == it->second.version) return Status::OK();
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

Status ChunkStore::MakeRoom() {
  while (open_.size() >= max_open_) {
    // The least recently used chunk with nothing unsynced goes first.
    auto victim = lru_.end();
    for (auto it = lru_.end(); it != lru_.begin();) {
      --it;
      auto st = chunks_.find(it->handle);
      if (st == chunks_.end() || !st->second.dirty) {
        victim = it;
        break;
      }
    }
    if (victim == lru_.end()) {
      // Every open chunk is dirty: sync the oldest through the descriptors
      // that wrote it before closing them, so no writeback error is lost.
      const uint64_t h = lru_.back().handle;
      ++evictions_synced_;
      Status s = Sync(h);
      if (!s.ok() && open_.count(h) == 0) continue;  // poisoned (and closed) by the failure
      victim = std::prev(lru_.end());
      if (!s.ok()) return s;
    }
    open_.erase(victim->handle);
    lru_.erase(victim);
  }
  return Status::OK();
}

Result<ChunkStore::OpenChunk*> ChunkStore::Acquire(uint64_t handle, State* st, bool create) {
  auto it = open_.find(handle);
  if (it != open_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second);
    return &lru_.front();
  }
  if (!st->broken.ok()) {
    return Status::Corruption("chunk " + HandleName(handle) + " has no usable checksums (" +
                              st->broken.message() + "); the replica awaits repair");
  }
  GFS_RETURN_IF_ERROR(MakeRoom());
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
  GFS_RETURN_IF_ERROR(LoadCrcs(&oc, *st, create));
  lru_.push_front(std::move(oc));
  open_[handle] = lru_.begin();
  return &lru_.front();
}

Status ChunkStore::LoadCrcs(OpenChunk* oc, const State& st, bool create) {
  const std::string path = CrcPath(oc->handle);
  Result<uint64_t> size = oc->crc->Size();
  if (!size.ok()) return size.status();
  oc->crcs.assign(NumBlocks(st.length), 0);
  oc->valid.assign(NumBlocks(st.length), 0);
  if (*size == 0) {
    if (st.length > 0) {
      return Status::Corruption(path + ": checksum file is empty but chunk " +
                                HandleName(oc->handle) + " has " + std::to_string(st.length) +
                                " bytes");
    }
    if (!create) return Status::OK();
    return WriteHeader(oc, 0, Intent());
  }
  uint8_t hdr[kCrcHeaderSize];
  size_t got = 0;
  GFS_RETURN_IF_ERROR(oc->crc->Read(0, sizeof hdr, hdr, &got));
  CrcHeader h;
  GFS_RETURN_IF_ERROR(DecodeCrcHeader(path, hdr, got, &h));
  const size_t want = oc->crcs.size() * 4;
  if (want == 0) return Status::OK();
  std::vector<uint8_t> raw(want);
  GFS_RETURN_IF_ERROR(oc->crc->Read(kCrcHeaderSize, want, raw.data(), &got));
  const size_t have = got / 4;  // entries past the end (torn by a crash) fail verification
  std::memcpy(oc->crcs.data(), raw.data(), have * 4);
  std::fill(oc->valid.begin(), oc->valid.begin() + static_cast<ptrdiff_t>(have), 1);
  return Status::OK();
}

Status ChunkStore::WriteHeader(OpenChunk* oc, uint64_t length, const Intent& in) {
  const std::vector<uint8_t> hdr = EncodeCrcHeader(length, in.set, in.first, in.last, in.length);
  return oc->crc->Write(0, hdr.data(), hdr.size());
}

Status ChunkStore::WriteCrcEntries(OpenChunk* oc, size_t first, const std::vector<uint32_t>& v) {
  if (v.empty()) return Status::OK();
  return oc->crc->Write(kCrcHeaderSize + first * 4, v.data(), v.size() * 4);  // little-endian host
}

Status ChunkStore::CheckBlock(const OpenChunk& oc, size_t i, const uint8_t* p, size_t n,
                              Range* bad) const {
  const std::string where = "chunk " + HandleName(oc.handle) + " block " + std::to_string(i) +
                            " (bytes " + std::to_string(uint64_t{i} * kBS) + ".." +
                            std::to_string(uint64_t{i} * kBS + n) + ")";
  Status s;
  if (i >= oc.crcs.size() || !oc.valid[i]) {
    s = Status::Corruption(where + ": checksum missing");
  } else {
    const uint32_t c = crc32c::Value(p, n);
    if (c != oc.crcs[i]) {
      s = Status::Corruption(where + ": checksum mismatch (stored " + Hex(oc.crcs[i]) +
                             ", computed " + Hex(c) + ")");
    }
  }
  if (!s.ok() && bad != nullptr) *bad = Range{uint64_t{i} * kBS, kBS};
  return s;
}

Status ChunkStore::ReadVerifiedBlock(OpenChunk* oc, uint64_t length, size_t i,
                                     std::vector<uint8_t>* buf) {
  const uint64_t bs = uint64_t{i} * kBS;
  const size_t n = static_cast<size_t>(std::min<uint64_t>(bs + kBS, length) - bs);
  buf->resize(n);
  size_t got = 0;
  GFS_RETURN_IF_ERROR(oc->data->Read(bs, n, buf->data(), &got));
  if (got != n) {
    return Status::Corruption("chunk " + HandleName(oc->handle) + " block " + std::to_string(i) +
                              ": data file ends before the chunk's length " +
                              std::to_string(length));
  }
  return CheckBlock(*oc, i, buf->data(), n, nullptr);
}

void ChunkStore::ClearDamage(State* st, uint64_t lo, uint64_t hi) {
  if (st->startup_damage.empty()) return;
  std::vector<Range> out;
  for (const Range& r : st->startup_damage) {
    const uint64_t rl = r.offset, rh = r.offset + r.length;
    if (rh <= lo || rl >= hi) {
      out.push_back(r);
      continue;
    }
    if (rl < lo) out.push_back({rl, lo - rl});
    if (rh > hi) out.push_back({hi, rh - hi});
  }
  st->startup_damage = std::move(out);
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
    } else if (old_end == L && (!has_new || ws >= L) && i < oc->valid.size() && oc->valid[i]) {
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

  // 2. The intent, the data, the changed CRC entries, the new length.
  Status s = WriteHeader(oc, L, Intent::Of(first, last, new_len));
  if (s.ok() && n > 0) {
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
  } else if (s.ok() && new_len > L) {
    s = oc->data->Truncate(new_len);
  }
  if (s.ok()) s = WriteCrcEntries(oc, first, ncrc);
  if (s.ok()) s = WriteHeader(oc, new_len, Intent());
  if (!s.ok()) {
    Restore(st, oc, off, end, data, s);
    return s;
  }

  // 3. Commit in memory.
  oc->crcs.resize(NumBlocks(new_len), 0);
  oc->valid.resize(NumBlocks(new_len), 0);
  std::copy(ncrc.begin(), ncrc.end(), oc->crcs.begin() + static_cast<ptrdiff_t>(first));
  std::fill(oc->valid.begin() + static_cast<ptrdiff_t>(first),
            oc->valid.begin() + static_cast<ptrdiff_t>(last + 1), 1);
  // Blocks rewritten whole are no longer damaged.
  ClearDamage(st, (std::min(off, L) + kBS - 1) / kBS * kBS,
              change_end == new_len ? new_len : end / kBS * kBS);
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

Status ChunkStore::RepairBlocks(uint64_t handle, uint64_t offset, const uint8_t* data, size_t n) {
  auto it = chunks_.find(handle);
  if (it == chunks_.end()) return Status::NotFound("chunk " + HandleName(handle));
  State* st = &it->second;
  const uint64_t L = st->length;
  if (offset % kBS != 0 || offset + n > L || (n == 0 && L != 0) ||
      (n > 0 && (offset + n) % kBS != 0 && offset + n != L)) {
    return Status::InvalidArgument("chunk " + HandleName(handle) + ": repair of " +
                                   std::to_string(n) + " bytes at " + std::to_string(offset) +
                                   " is not whole blocks inside length " + std::to_string(L));
  }
  if (!st->broken.ok() || !st->poisoned.ok()) {
    // The checksum file was unreadable, or a failed sync left the page cache
    // unknown: a new checksum file with the recorded length and no checksum,
    // so every block reads as damaged until a repair rewrites it.
    Evict(handle);
    std::unique_ptr<RandomRWFile> crc;
    GFS_RETURN_IF_ERROR(env_->OpenRandomRW(CrcPath(handle), /*create=*/true, &crc));
    GFS_RETURN_IF_ERROR(crc->Truncate(0));
    const std::vector<uint8_t> hdr = EncodeCrcHeader(L, false, 0, 0, 0);
    GFS_RETURN_IF_ERROR(crc->Write(0, hdr.data(), hdr.size()));
    GFS_RETURN_IF_ERROR(crc->Sync());
    st->broken = Status::OK();
    st->poisoned = Status::OK();
    st->need_dir_sync = true;
    st->startup_damage.clear();
    AddRange(&st->startup_damage, 0, L);
  }
  if (n == 0) return Status::OK();  // an empty chunk: nothing more to rewrite
  Result<OpenChunk*> ocr = Acquire(handle, st, /*create=*/true);
  if (!ocr.ok()) return ocr.status();
  OpenChunk* oc = *ocr;
  const size_t first = static_cast<size_t>(offset / kBS);
  const size_t last = static_cast<size_t>((offset + n - 1) / kBS);
  std::vector<uint32_t> ncrc;
  for (size_t i = first; i <= last; ++i) {
    const uint64_t bs = uint64_t{i} * kBS;
    const uint64_t be = std::min<uint64_t>(bs + kBS, offset + n);
    ncrc.push_back(crc32c::Value(data + (bs - offset), static_cast<size_t>(be - bs)));
  }
  Status s = WriteHeader(oc, L, Intent::Of(first, last, L));
  if (s.ok()) s = oc->data->Write(offset, data, n);
  if (s.ok()) s = WriteCrcEntries(oc, first, ncrc);
  if (s.ok()) s = WriteHeader(oc, L, Intent());
  if (!s.ok()) return Poison(handle, st, "a repair", s);
  std::copy(ncrc.begin(), ncrc.end(), oc->crcs.begin() + static_cast<ptrdiff_t>(first));
  std::fill(oc->valid.begin() + static_cast<ptrdiff_t>(first),
            oc->valid.begin() + static_cast<ptrdiff_t>(last + 1), 1);
  ClearDamage(st, offset, offset + n);
  st->dirty = true;
  ++st->gen;
  oc->wb_lo = std::min(oc->wb_lo, offset);
  oc->wb_hi = std::max(oc->wb_hi, offset + n);
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

Status ChunkStore::Poison(uint64_t handle, State* st, const char* after, const Status& s) {
  st->poisoned = Status(
      s.code(), "chunk " + HandleName(handle) + " unusable after " + after + ": " + s.ToString());
  Evict(handle);
  return st->poisoned;
}

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
      const size_t valid_end = std::min(b + 1, oc->valid.size());
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
          if (!oc->valid[i]) {
            v.push_back(oc->crcs[i]);  // never launder a block that had no checksum
            continue;
          }
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
    return WriteHeader(oc, L, Intent());  // the old length, no mutation under way
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
                                size_t* len, Range* bad) {
  *skip = 0;
  *len = 0;
  Span sp;
  Status s = Locate(handle, offset, n, &sp);
  if (!s.ok()) {
    if (bad != nullptr && s.code() == Code::kCorruption) *bad = Range{offset / kBS * kBS, n};
    return s;
  }
  if (sp.oc == nullptr) return Status::OK();
  OpenChunk* oc = sp.oc;
  const size_t first = sp.first, last = sp.last;
  const uint64_t rs = sp.rs, re = sp.re, want = sp.want;
  // Read the whole blocks straight into the caller's memory and verify them.
  uint8_t* buf = reserve(static_cast<size_t>(re - rs));
  size_t got = 0;
  s = oc->data->Read(rs, re - rs, buf, &got);
  if (!s.ok()) return s;
  for (size_t i = first; i <= last; ++i) {
    const uint64_t bs = uint64_t{i} * kBS;
    const uint64_t be = std::min<uint64_t>(bs + kBS, re);
    if (rs + got < be) {
      // The data file ends before the recorded length: these bytes are
      // missing (damaged), never zeros.
      if (bad != nullptr) *bad = Range{bs, sp.length - bs};
      return Status::Corruption("chunk " + HandleName(handle) + " block " + std::to_string(i) +
                                " (bytes " + std::to_string(bs) + ".." + std::to_string(be) +
                                "): data file ends at " + std::to_string(rs + got) +
                                ", before the chunk's length " + std::to_string(sp.length));
    }
    GFS_RETURN_IF_ERROR(CheckBlock(*oc, i, buf + (bs - rs), static_cast<size_t>(be - bs), bad));
  }
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
  for (size_t i = first; i <= last; ++i) {
    if (i >= oc->valid.size() || !oc->valid[i]) {
      return Status::Corruption("chunk " + HandleName(handle) + " block " + std::to_string(i) +
                                ": checksum missing");
    }
  }
  crcs->assign(oc->crcs.begin() + static_cast<ptrdiff_t>(first),
               oc->crcs.begin() + static_cast<ptrdiff_t>(last + 1));
  *base = sp.rs;
  *end = sp.re;
  return Status::OK();
}

Status ChunkStore::Read(uint64_t handle, uint64_t offset, size_t n, std::vector<uint8_t>* out,
                        Range* bad) {
  out->clear();
  size_t skip = 0, len = 0;
  Status s = ReadVerified(
      handle, offset, n,
      [out](size_t span) {
        out->resize(span);
        return out->data();
      },
      &skip, &len, bad);
  if (!s.ok()) {
    out->clear();
    return s;
  }
  if (skip > 0) out->erase(out->begin(), out->begin() + static_cast<ptrdiff_t>(skip));
  out->resize(len);
  return Status::OK();
}

Status ChunkStore::Scan(uint64_t handle, std::vector<Range>* damaged) {
  damaged->clear();
  auto it = chunks_.find(handle);
  if (it == chunks_.end()) return Status::NotFound("chunk " + HandleName(handle));
  State* st = &it->second;
  const uint64_t L = st->length;
  if (!st->poisoned.ok() || !st->broken.ok()) {
    damaged->push_back(Range{0, L});  // all of it (an empty range for an empty chunk)
    return Status::OK();
  }
  if (L == 0) return Status::OK();
  Result<OpenChunk*> ocr = Acquire(handle, st, /*create=*/false);
  if (!ocr.ok()) {
    if (ocr.status().code() != Code::kCorruption) return ocr.status();
    AddRange(damaged, 0, L);  // the checksum file cannot be loaded
    return Status::OK();
  }
  OpenChunk* oc = *ocr;
  constexpr uint64_t kPiece = 16 * kBS;
  for (uint64_t pos = 0; pos < L; pos += kPiece) {
    const size_t len = static_cast<size_t>(std::min(kPiece, L - pos));
    scratch_.resize(len);
    size_t got = 0;
    GFS_RETURN_IF_ERROR(oc->data->Read(pos, len, scratch_.data(), &got));
    for (uint64_t b = 0; b < len; b += kBS) {
      const size_t blen = static_cast<size_t>(std::min<uint64_t>(kBS, len - b));
      const size_t i = static_cast<size_t>((pos + b) / kBS);
      if (b + blen > got || !CheckBlock(*oc, i, scratch_.data() + b, blen, nullptr).ok()) {
        AddRange(damaged, pos + b, pos + b + blen);
      }
    }
  }
  return Status::OK();
}

Status ChunkStore::Verify(uint64_t handle) {
  auto it = chunks_.find(handle);
  if (it != chunks_.end() && !it->second.broken.ok()) return it->second.broken;
  if (it != chunks_.end() && !it->second.poisoned.ok()) return it->second.poisoned;
  std::vector<Range> damaged;
  GFS_RETURN_IF_ERROR(Scan(handle, &damaged));
  if (damaged.empty()) return Status::OK();
  return Status::Corruption("chunk " + HandleName(handle) + ": " + std::to_string(damaged.size()) +
                            " damaged range(s), the first bytes " +
                            std::to_string(damaged[0].offset) + ".." +
                            std::to_string(damaged[0].offset + damaged[0].length));
}

// ------------------------------------------------------------ truncate / sync

Status ChunkStore::Truncate(uint64_t handle, uint64_t length) {
  Result<State*> str = Lookup(handle);
  if (!str.ok()) return str.status();
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
  const size_t edge = nb == 0 ? 0 : nb - 1;
  Status s = WriteHeader(oc, L, Intent::Of(edge, edge, length));
  if (s.ok()) s = oc->data->Truncate(length);
  if (s.ok() && tail != 0) s = WriteCrcEntries(oc, nb - 1, {last_crc});
  if (s.ok()) s = oc->crc->Truncate(kCrcHeaderSize + uint64_t{nb} * 4);
  if (s.ok()) s = WriteHeader(oc, length, Intent());
  used_bytes_ -= L - length;
  st->length = length;
  st->dirty = true;
  ++st->gen;
  ClearDamage(st, length, UINT64_MAX);
  if (!s.ok()) return Poison(handle, st, "a failed truncate", s);
  oc->crcs.resize(nb);
  oc->valid.resize(nb);
  if (tail != 0) oc->crcs[nb - 1] = last_crc;
  return Status::OK();
}

Status ChunkStore::Sync(uint64_t handle) {
  Result<State*> str = Lookup(handle);
  if (!str.ok()) return str.status();
  State* st = *str;
  if (!st->dirty) return Status::OK();
  // Every dirty chunk is open (the cache syncs one before closing it): the
  // sync goes through the descriptors that wrote.
  auto it = open_.find(handle);
  if (it == open_.end()) {
    return Poison(handle, st, "losing its files",
                  Status::Internal("dirty chunk without open files"));
  }
  OpenChunk* oc = &*it->second;
  Status s = oc->data->Sync();
  if (s.ok()) s = oc->crc->Sync();
  if (s.ok() && st->need_dir_sync) s = env_->SyncDir(ChunksDir());
  if (!s.ok()) {
    // After a failed fsync the kernel may have dropped the dirty pages: a retry
    // could "succeed" without the data, so the chunk is not trusted again
    // until a repair has rewritten all of it.
    return Poison(handle, st, "a failed sync", s);
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
  auto it = open_.find(handle);
  if (it == open_.end()) {
    return Poison(handle, st, "losing its files",
                  Status::Internal("dirty chunk without open files"));
  }
  if (jobs_out_ >= 4 * max_open_) {
    // Queued jobs hold descriptors: past this many, sync here instead.
    ++syncs_inline_;
    GFS_RETURN_IF_ERROR(Sync(handle));
    return std::unique_ptr<SyncJob>();
  }
  ++jobs_out_;
  auto job = std::make_unique<SyncJob>();
  job->handle = handle;
  job->gen = st->gen;
  job->data = it->second->data;
  job->crc = it->second->crc;
  if (st->need_dir_sync) job->dir = ChunksDir();
  job->env = env_;
  return job;
}

Status ChunkStore::SyncJob::Run() {
  for (const Writeback& w : writebacks) w.file->StartWriteback(w.offset, w.n);
  Status s = data->Sync();
  if (s.ok()) s = crc->Sync();
  if (s.ok() && !dir.empty()) s = env->SyncDir(dir);
  return s;
}

Status ChunkStore::FinishSync(const SyncJob& job, const Status& result) {
  if (jobs_out_ > 0) --jobs_out_;
  auto it = chunks_.find(job.handle);
  if (it == chunks_.end()) return result;  // deleted meanwhile: nothing left to sync
  State* st = &it->second;
  if (!st->poisoned.ok()) return st->poisoned;
  if (!result.ok()) return Poison(job.handle, st, "a failed sync", result);
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
