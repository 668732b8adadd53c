// ChunkStore's on-disk format (doc/disk-format-chunk.md), shared by the files
// of its implementation: the constants of the meta and checksum files, their
// encoding and decoding, and small helpers over block ranges and gather lists.
// Internal to chunk/: nothing outside the store includes it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "chunk/chunk_store.h"
#include "common/crc32c.h"
#include "common/status.h"

namespace gfs::chunk_format {

inline constexpr uint32_t kBS = ChunkStore::kBlockSize;

// <handle>.meta: magic, format version, handle, version, crc32c of the first 24 bytes.
inline constexpr uint32_t kMetaMagic = 0x4D534647;  // "GFSM" on disk
inline constexpr uint32_t kMetaFormat = 1;
inline constexpr size_t kMetaSize = 28;

// <handle>.crc header, format 2 (doc/disk-format-chunk.md): magic, format,
// block size, flags, recorded length, intent (first block, last block, length),
// reserved, crc32c of the first 44 bytes. Entries follow.
inline constexpr uint32_t kCrcMagic = 0x43534647;  // "GFSC" on disk
inline constexpr uint32_t kCrcFormat = 2;
inline constexpr size_t kCrcHeaderSize = 48;
inline constexpr uint32_t kFlagIntent = 1;
// Format 1's header (upgraded at Open): magic, format, block size, crc32c.
inline constexpr size_t kCrcHeaderSizeV1 = 16;

inline constexpr char kFormatFile[] = "FORMAT";
inline constexpr char kFormatText[] = "gfs chunk store format ";

// Coalesce a gather list into one buffer (one pwrite) unless its slices
// average at least this much (then one pwrite per slice, no copy).
inline constexpr size_t kDirectSliceBytes = 256 * 1024;

inline uint64_t NumBlocks(uint64_t length) { return (length + kBS - 1) / kBS; }

// 0x followed by 8 hex digits.
std::string Hex(uint32_t v);

// crc extended with n zero bytes.
uint32_t ExtendZeros(uint32_t crc, uint64_t n);

// Parses "<16 lowercase hex digits>.<ext>"; false if `name` is not of that form.
bool ParseName(const std::string& name, uint64_t* handle, std::string* ext);

bool EndsWith(const std::string& s, const std::string& suffix);

// Adds [lo, hi) to a sorted list of disjoint ranges, merging neighbours.
void AddRange(std::vector<Range>* v, uint64_t lo, uint64_t hi);

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
                                     uint64_t intent_length);

// Decodes a header of either format (format 1 has no length: 0). Every
// failure is a Corruption naming `path`.
Status DecodeCrcHeader(const std::string& path, const uint8_t* p, size_t n, CrcHeader* h);

// Decodes a meta file. Every failure is a Corruption naming `path`.
Status DecodeMeta(const std::string& path, const std::string& s, uint64_t* handle,
                  uint64_t* version);

}  // namespace gfs::chunk_format
