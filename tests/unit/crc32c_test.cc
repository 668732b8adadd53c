// CRC32C: the known answer and Combine against checksumming the whole.
#include "common/crc32c.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

namespace gfs {
namespace {

TEST(Crc32c, KnownAnswer) {
  // RFC 3720, B.4: 32 bytes of zeros.
  std::vector<uint8_t> zeros(32, 0);
  EXPECT_EQ(crc32c::Value(zeros.data(), zeros.size()), 0x8A9136AAu);
  EXPECT_EQ(crc32c::Value("123456789", 9), 0xE3069283u);
}

TEST(Crc32c, CombineEqualsTheChecksumOfTheWhole) {
  std::mt19937_64 rng(7);
  std::vector<uint8_t> data(300000);
  for (auto& b : data) b = static_cast<uint8_t>(rng());
  // Split points at 0, at 1, inside a word, at block sizes, and at random.
  std::vector<size_t> cuts = {0, 1, 3, 8, 4096, 65536, 65537, data.size() - 1, data.size()};
  for (int i = 0; i < 40; ++i) cuts.push_back(static_cast<size_t>(rng() % data.size()));
  for (size_t cut : cuts) {
    const uint32_t a = crc32c::Value(data.data(), cut);
    const uint32_t b = crc32c::Value(data.data() + cut, data.size() - cut);
    EXPECT_EQ(crc32c::Combine(a, b, data.size() - cut), crc32c::Value(data.data(), data.size()))
        << "cut at " << cut;
  }
  // Three pieces folded left to right, as a block written by three writers.
  const uint32_t p1 = crc32c::Value(data.data(), 1000);
  const uint32_t p2 = crc32c::Value(data.data() + 1000, 20000);
  const uint32_t p3 = crc32c::Value(data.data() + 21000, 44536);
  EXPECT_EQ(crc32c::Combine(crc32c::Combine(p1, p2, 20000), p3, 44536),
            crc32c::Value(data.data(), 65536));
}

}  // namespace
}  // namespace gfs
