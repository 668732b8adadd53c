// In-process transport for unit tests: N endpoints sharing one fabric, each
// usable from its own thread. Same ordering contract as MPI (per pair FIFO).
// A rank can be "killed": messages to and from it are dropped from then on.
// A link can be cut one way: messages from one rank to another are dropped.
#pragma once

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "mpi/transport/transport.h"

namespace gfs {

class InProcFabric {
 public:
  explicit InProcFabric(int size);
  // Endpoint for `rank`; owned by the fabric, valid while it lives.
  Transport* endpoint(int rank);
  int size() const { return static_cast<int>(boxes_.size()); }
  void Kill(int rank);
  bool dead(int rank) const;
  // Drops (cut) or again delivers (!cut) what `from` sends to `to`.
  void Cut(int from, int to, bool cut);
  bool cut(int from, int to) const;

 private:
  friend class InProcEndpoint;
  struct Box {
    std::mutex mu;
    std::deque<Incoming> q;
    std::atomic<bool> dead{false};
  };
  std::vector<std::unique_ptr<Box>> boxes_;
  // cut_[from * size + to]
  std::unique_ptr<std::atomic<bool>[]> cut_;
  std::vector<std::unique_ptr<Transport>> endpoints_;
};

}  // namespace gfs
