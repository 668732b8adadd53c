#include "mpi/buffer_pool.h"

namespace gfs {

BufferPool& BufferPool::Get() {
  static BufferPool* pool = new BufferPool;  // intentionally leaked
  return *pool;
}

std::shared_ptr<Bytes> BufferPool::Take(size_t n, size_t slack) {
  const size_t want = n + slack;
  if (want < kMinPooled) {
    auto b = std::make_shared<Bytes>();
    b->reserve(want);
    b->resize(n);
    return b;
  }
  Bytes* b = nullptr;
  {
    std::lock_guard<std::mutex> l(mu_);
    // Best fit among buffers big enough but not wastefully so (at most 2x).
    size_t best = idle_.size();
    for (size_t i = 0; i < idle_.size(); ++i) {
      const size_t cap = idle_[i]->capacity();
      if (cap >= want && cap <= 2 * want &&
          (best == idle_.size() || cap < idle_[best]->capacity())) {
        best = i;
      }
    }
    if (best < idle_.size()) {
      b = idle_[best];
      idle_[best] = idle_.back();
      idle_.pop_back();
      idle_bytes_ -= b->capacity();
      ++reused_;
    }
  }
  if (b == nullptr) {
    b = new Bytes;
    // Round up so slightly different sizes (a header more or less) share.
    b->reserve((want + kMinPooled - 1) / kMinPooled * kMinPooled);
  }
  b->resize(n);  // within capacity: no reallocation, no zero-fill
  return std::shared_ptr<Bytes>(b, [this](Bytes* p) { Return(p); });
}

void BufferPool::Return(Bytes* b) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (idle_bytes_ + b->capacity() <= kMaxIdleBytes) {
      idle_bytes_ += b->capacity();
      idle_.push_back(b);
      return;
    }
  }
  delete b;
}

size_t BufferPool::idle_bytes() const {
  std::lock_guard<std::mutex> l(mu_);
  return idle_bytes_;
}

uint64_t BufferPool::reused() const {
  std::lock_guard<std::mutex> l(mu_);
  return reused_;
}

}  // namespace gfs
