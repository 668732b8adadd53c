// Recycled message buffers for the data path.
//
// A large buffer freed to malloc goes back to the kernel (glibc maps blocks
// above its mmap threshold one by one and trims the heap top), and the next
// one is fresh memory again: every 4 KiB page faults on first touch. On the
// VMs this project runs on a page fault costs about 30 us, so a fresh 1 MiB
// buffer costs ~7 ms -- more than moving the megabyte through MPI, checksum
// and page cache together. Data slices, read replies and record units are
// therefore taken from this pool and returned to it when their last
// shared_ptr goes, so their pages stay mapped and warm.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

#include "common/coding.h"

namespace gfs {

class BufferPool {
 public:
  // Buffers below this are plain allocations (malloc keeps those in its
  // arenas anyway).
  static constexpr size_t kMinPooled = 64u << 10;
  // Bytes of idle buffers one process keeps; more are freed.
  static constexpr size_t kMaxIdleBytes = 256u << 20;

  // The process-wide pool (never destroyed: buffers may be released during
  // static destruction).
  static BufferPool& Get();

  // A buffer of `n` bytes with undefined contents and room for `n + slack`
  // without reallocating. Thread-safe.
  std::shared_ptr<Bytes> Take(size_t n, size_t slack = 0);

  size_t idle_bytes() const;
  uint64_t reused() const;

 private:
  BufferPool() = default;
  void Return(Bytes* b);

  mutable std::mutex mu_;
  std::vector<Bytes*> idle_;
  size_t idle_bytes_ = 0;
  uint64_t reused_ = 0;
};

// Shorthand for BufferPool::Get().Take(n).
inline std::shared_ptr<Bytes> TakeBuffer(size_t n, size_t slack = 0) {
  return BufferPool::Get().Take(n, slack);
}

}  // namespace gfs
