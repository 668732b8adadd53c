// Bounds-checked little-endian binary encoding used by the wire format
// (doc/wire-format.md) and the on-disk formats (doc/disk-format.md).
//
// Writer appends to a byte vector. Reader walks a byte span; every getter
// returns false (and latches failure) instead of reading past the end, and
// strings/blobs/vectors are length-prefixed with a caller-supplied maximum so
// a hostile length can never cause an unbounded allocation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace gfs {

// An allocator that leaves new elements default-initialised (for bytes: not
// zeroed), so a buffer about to be filled by a receive or a read is not
// written twice.
template <typename T>
struct DefaultInitAllocator : std::allocator<T> {
  template <typename U>
  struct rebind {
    using other = DefaultInitAllocator<U>;
  };
  using std::allocator<T>::allocator;
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

// Message and I/O buffers: bytes whose resize() does not zero-fill.
using Bytes = std::vector<uint8_t, DefaultInitAllocator<uint8_t>>;

// Fixed-width little-endian loads and stores at a raw pointer (the host is
// little-endian; see mpi/protocol/wire.cc).
inline uint32_t LoadU32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint64_t LoadU64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline void StoreU32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }
inline void StoreU64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }

template <typename V>
class BasicWriter {
 public:
  explicit BasicWriter(V* out) : out_(out) {}

  void U8(uint8_t v) { out_->push_back(v); }
  void U16(uint16_t v) { Raw(&v, 2); }
  void U32(uint32_t v) { Raw(&v, 4); }
  void U64(uint64_t v) { Raw(&v, 8); }
  void I64(int64_t v) { Raw(&v, 8); }
  void Bool(bool v) { U8(v ? 1 : 0); }
  // u32 length + bytes.
  void Str(std::string_view s) {
    U32(static_cast<uint32_t>(s.size()));
    Raw(s.data(), s.size());
  }
  void Raw(const void* p, size_t n) {
    // Host is little-endian (x86_64/aarch64); static_assert in coding.cc.
    if (n == 0) return;
    const size_t at = out_->size();
    out_->resize(at + n);
    std::memcpy(out_->data() + at, p, n);
  }
  size_t size() const { return out_->size(); }
  // Overwrite a u32 previously written at `pos` (for back-patched lengths).
  void PatchU32(size_t pos, uint32_t v) { std::memcpy(out_->data() + pos, &v, 4); }

 private:
  V* out_;
};

using Writer = BasicWriter<std::vector<uint8_t>>;
using BytesWriter = BasicWriter<Bytes>;

class Reader {
 public:
  Reader(const uint8_t* data, size_t n) : p_(data), end_(data + n) {}
  explicit Reader(std::string_view s)
      : Reader(reinterpret_cast<const uint8_t*>(s.data()), s.size()) {}

  bool U8(uint8_t* v) { return Fixed(v, 1); }
  bool U16(uint16_t* v) { return Fixed(v, 2); }
  bool U32(uint32_t* v) { return Fixed(v, 4); }
  bool U64(uint64_t* v) { return Fixed(v, 8); }
  bool I64(int64_t* v) { return Fixed(v, 8); }
  bool Bool(bool* v) {
    uint8_t b = 0;
    if (!U8(&b)) return false;
    if (b > 1) return Fail();
    *v = b != 0;
    return true;
  }
  bool Str(std::string* s, size_t max_len = 4096) {
    uint32_t n = 0;
    if (!U32(&n)) return false;
    if (n > max_len || n > remaining()) return Fail();
    s->assign(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return true;
  }
  // A length-prefixed blob returned as a view into the input (no copy).
  bool Blob(const uint8_t** data, uint32_t* n, size_t max_len) {
    if (!U32(n)) return false;
    if (*n > max_len || *n > remaining()) return Fail();
    *data = p_;
    p_ += *n;
    return true;
  }
  // Reads a u32 element count and checks it against `max` and against the
  // bytes left (each element needs at least `min_elem_bytes`).
  bool Count(uint32_t* n, uint32_t max, size_t min_elem_bytes) {
    if (!U32(n)) return false;
    if (*n > max) return Fail();
    if (min_elem_bytes > 0 && static_cast<size_t>(*n) * min_elem_bytes > remaining()) return Fail();
    return true;
  }
  bool Skip(size_t n) {
    if (n > remaining()) return Fail();
    p_ += n;
    return true;
  }

  size_t remaining() const { return ok_ ? static_cast<size_t>(end_ - p_) : 0; }
  const uint8_t* pos() const { return p_; }
  bool ok() const { return ok_; }
  bool done() const { return ok_ && p_ == end_; }
  bool Fail() {
    ok_ = false;
    return false;
  }

 private:
  bool Fixed(void* v, size_t n) {
    if (!ok_ || static_cast<size_t>(end_ - p_) < n) return Fail();
    std::memcpy(v, p_, n);
    p_ += n;
    return true;
  }
  const uint8_t* p_;
  const uint8_t* end_;
  bool ok_ = true;
};

}  // namespace gfs
