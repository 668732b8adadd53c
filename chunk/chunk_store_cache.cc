// ChunkStore: the open-file cache (at most max_open_chunks chunks keep open
// files and loaded checksums, least recently used closed first), the checksum
// file's header and entries, and block verification.
#include <algorithm>
#include <utility>

#include "chunk/chunk_store.h"
#include "chunk/chunk_store_format.h"

namespace gfs {

using chunk_format::CrcHeader;
using chunk_format::DecodeCrcHeader;
using chunk_format::EncodeCrcHeader;
using chunk_format::Hex;
using chunk_format::kBS;
using chunk_format::kCrcHeaderSize;
using chunk_format::NumBlocks;

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

}  // namespace gfs
