// ChunkStore: writes, truncation and block repair, each under an intent in
// the checksum header, and the restore or poisoning of a chunk after a
// failed one.
#include <algorithm>

#include "chunk/chunk_store.h"
#include "chunk/chunk_store_format.h"

namespace gfs {

using chunk_format::AddRange;
using chunk_format::EncodeCrcHeader;
using chunk_format::ExtendZeros;
using chunk_format::Gather;
using chunk_format::kBS;
using chunk_format::kCrcHeaderSize;
using chunk_format::kDirectSliceBytes;
using chunk_format::NumBlocks;

Status ChunkStore::Write(uint64_t handle, uint64_t offset, const uint8_t* data, size_t n) {
  return Write(handle, offset, std::vector<ConstSlice>{ConstSlice{data, n}});
}

Status ChunkStore::Write(uint64_t handle, uint64_t offset, const std::vector<ConstSlice>& data,
                         const std::vector<uint32_t>* piece_crcs) {
  Result<State*> st = Lookup(handle);
  if (!st.ok()) return st.status();
  uint64_t n = 0;
  for (const ConstSlice& s : data) n += s.size;
  if (n == 0) return Status::OK();
  if (offset > kMaxLength || n > kMaxLength - offset) {
    return Status::InvalidArgument("chunk " + HandleName(handle) + ": write past max length");
  }
  return WriteImpl(handle, offset, data, n, std::max((*st)->length, offset + n), piece_crcs);
}

Status ChunkStore::WriteImpl(uint64_t handle, uint64_t off, const std::vector<ConstSlice>& data,
                             uint64_t n, uint64_t new_len,
                             const std::vector<uint32_t>* piece_crcs) {
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
      // The new bytes are one whole piece of the caller's: its CRC, no pass.
      const uint64_t rel = ws - off, piece = rel / kBS;
      const bool known = has_new && piece_crcs != nullptr && rel % kBS == 0 &&
                         piece < piece_crcs->size() && we - ws == std::min<uint64_t>(kBS, n - rel);
      if (known) {
        crc = (*piece_crcs)[piece];
        if (ws > bs) crc = crc32c::Combine(ExtendZeros(0, ws - bs), crc, we - ws);
        g.Skip(we - ws);
        crc = ExtendZeros(crc, be - we);
      } else if (has_new) {
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

}  // namespace gfs
