// ChunkStore::Open: the directory's format (and the upgrade of format 1),
// loading every chunk, finishing the mutations a crash interrupted, and the
// damage found on the way.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <utility>

#include "chunk/chunk_store.h"
#include "chunk/chunk_store_format.h"

namespace gfs {

using chunk_format::AddRange;
using chunk_format::CrcHeader;
using chunk_format::DecodeCrcHeader;
using chunk_format::DecodeMeta;
using chunk_format::EncodeCrcHeader;
using chunk_format::EndsWith;
using chunk_format::kBS;
using chunk_format::kCrcFormat;
using chunk_format::kCrcHeaderSize;
using chunk_format::kCrcHeaderSizeV1;
using chunk_format::kFormatFile;
using chunk_format::kFormatText;
using chunk_format::NumBlocks;
using chunk_format::ParseName;

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

}  // namespace gfs
