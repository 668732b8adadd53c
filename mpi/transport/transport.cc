#include "mpi/transport/transport.h"

#include <cstring>

#include "mpi/transport/buffer_pool.h"

namespace gfs {

Status Transport::SendWithTail(int dest, Buffer head, const uint8_t* tail, size_t n) {
  auto all = TakeBuffer(head->size() + n);
  std::memcpy(all->data(), head->data(), head->size());
  if (n > 0) std::memcpy(all->data() + head->size(), tail, n);
  return Send(dest, std::move(all));
}

}  // namespace gfs
