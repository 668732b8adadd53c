// ChunkStore's on-disk format: encoding and decoding of the meta and checksum
// file headers, and the helpers declared in chunk_store_format.h.
#include "chunk/chunk_store_format.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <utility>

#include "common/coding.h"

namespace gfs::chunk_format {

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

}  // namespace gfs::chunk_format
