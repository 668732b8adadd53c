// ChunkStore: construction, file names, the table of chunks and the
// operations on a chunk as a whole (create, set version, delete). File
// formats: doc/disk-format-chunk.md; the rest of the class is in
// chunk_store_{open,cache,write,read,sync}.cc.
#include "chunk/chunk_store.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <utility>

#include "chunk/chunk_store_format.h"
#include "common/coding.h"

namespace gfs {

using chunk_format::kMetaFormat;
using chunk_format::kMetaMagic;

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

}  // namespace gfs
