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

namespace {

// Bit-reflected polynomials over GF(2), as the CRC register holds them: bit
// 31 is x^0. kPoly is the generator without its x^32 term.
constexpr uint32_t kPoly = 0x82F63B78u;
constexpr uint32_t kOne = 1u << 31;

// a * b mod the generator.
uint32_t MulMod(uint32_t a, uint32_t b) {
  uint32_t product = 0;
  for (uint32_t bit = kOne; bit != 0; bit >>= 1) {
    if ((a & bit) != 0) product ^= b;
    b = (b & 1) != 0 ? (b >> 1) ^ kPoly : b >> 1;  // b *= x
  }
  return product;
}

// squares[k] = x^(2^k) mod the generator.
struct Squares {
  uint32_t v[64];
  Squares() {
    uint32_t p = kOne >> 1;  // x^1
    for (uint32_t& e : v) {
      e = p;
      p = MulMod(p, p);
    }
  }
};

}  // namespace

uint32_t Combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b) {
  // Appending len_b bytes multiplies A's register by x^(8 len_b); B's own
  // CRC (with its pre- and post-inversion) adds on top, and the inversions
  // of the two parts cancel as they do in zlib's crc32_combine.
  static const Squares squares;
  uint32_t shift = kOne;  // x^0
  uint64_t n = len_b;
  for (unsigned k = 3; n != 0; n >>= 1, ++k) {  // x^(8 n) = product of x^(2^k) over n's bits
    if ((n & 1) != 0) shift = MulMod(squares.v[k & 63], shift);
  }
  return MulMod(shift, crc_a) ^ crc_b;
}

}  // namespace gfs::crc32c
