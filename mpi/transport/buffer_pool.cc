#include "mpi/transport/buffer_pool.h"

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
      // Keep the order (oldest first): eviction in Return relies on it.
      idle_.erase(idle_.begin() + static_cast<std::ptrdiff_t>(best));
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
  // Over the limit, the buffers idle longest go, not the one coming back:
  // it has the size in use now (after a job's writes the pool is full of
  // push slices; its reads then want other sizes, which must stay warm).
  std::vector<Bytes*> evicted;
  {
    std::lock_guard<std::mutex> l(mu_);
    idle_bytes_ += b->capacity();
    idle_.push_back(b);
    size_t drop = 0;
    while (idle_bytes_ > kMaxIdleBytes && drop + 1 < idle_.size()) {
      idle_bytes_ -= idle_[drop]->capacity();
      evicted.push_back(idle_[drop]);
      ++drop;
    }
    if (drop > 0) idle_.erase(idle_.begin(), idle_.begin() + static_cast<std::ptrdiff_t>(drop));
  }
  for (Bytes* e : evicted) delete e;  // outside the lock
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
