// CRC32C (Castagnoli), the checksum used for chunk blocks, op-log records and
// appended records. Backed by ISA-L's crc32_iscsi (hardware accelerated).
#pragma once

#include <cstddef>
#include <cstdint>

namespace gfs::crc32c {

// Returns the CRC32C of data[0,n) continuing from a previous CRC32C value
// `crc` (0 for a fresh start). Value(x) == Extend(0, x).
uint32_t Extend(uint32_t crc, const void* data, size_t n);
inline uint32_t Value(const void* data, size_t n) { return Extend(0, data, n); }

// The CRC32C of A followed by B from crc_a = Value(A), crc_b = Value(B) and
// len_b = |B|, without the bytes (a polynomial product mod the generator,
// O(log len_b)). Lets a chunkserver checksum a block written in pieces by
// different writers from the pieces' checksums.
uint32_t Combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

}  // namespace gfs::crc32c
