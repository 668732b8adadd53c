#include "common/crc32c.h"

#include <isa-l/crc.h>

namespace gfs::crc32c {

uint32_t Extend(uint32_t crc, const void* data, size_t n) {
  // crc32_iscsi works on the pre/post-inverted register.
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t reg = crc ^ 0xFFFFFFFFu;
  while (n > 0) {
    const int step = n > (1u << 30) ? (1 << 30) : static_cast<int>(n);
    reg = crc32_iscsi(const_cast<unsigned char*>(p), step, reg);
    p += step;
    n -= static_cast<size_t>(step);
  }
  return reg ^ 0xFFFFFFFFu;
}

}  // namespace gfs::crc32c
