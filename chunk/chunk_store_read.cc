// ChunkStore: verified reads, stored checksums for short-circuit readers,
// and the scan of a whole chunk for damaged blocks.
#include <algorithm>

#include "chunk/chunk_store.h"
#include "chunk/chunk_store_format.h"

namespace gfs {

using chunk_format::AddRange;
using chunk_format::kBS;

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

}  // namespace gfs
