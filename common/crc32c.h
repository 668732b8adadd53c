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

}  // namespace gfs::crc32c
