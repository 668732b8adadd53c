// Random identities (store, server ids): 64 bits from std::random_device,
// never 0 (0 means "none" wherever an identity is kept).
#pragma once

#include <cstdint>
#include <random>

namespace gfs {

inline uint64_t RandomIdentity() {
  std::random_device rd;
  uint64_t v = 0;
  while (v == 0) v = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  return v;
}

}  // namespace gfs
