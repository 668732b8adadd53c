// In-process transport for unit tests: N endpoints sharing one fabric, each
// usable from its own thread. Same ordering contract as MPI (per pair FIFO).
// A rank can be "killed": messages to and from it are dropped from then on.
// A link can be cut one way: messages from one rank to another are dropped.
// InProcGroup gives threads the collectives that MPI gives ranks.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "mpi/transport/collective.h"
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

// Collectives among `size` threads of one process (what MpiCollective is
// over MPI): member(i) is used by one thread each, and each call waits until
// every member has made its own.
class InProcGroup {
 public:
  explicit InProcGroup(int size);
  // Member i's view; owned by the group, valid while it lives.
  Collective* member(int i);
  int size() const { return static_cast<int>(members_.size()); }

 private:
  friend class InProcMember;
  // Every member gives `mine`; returns what each gave, in member order.
  std::vector<std::string> Exchange(int i, std::string mine);

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> given_;   // this round's contributions
  int arrived_ = 0;                  // members that gave in this round
  uint64_t round_ = 0;               // rounds completed
  std::vector<std::string> result_;  // the last completed round's
  std::vector<std::unique_ptr<Collective>> members_;
};

}  // namespace gfs
