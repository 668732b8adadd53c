// MpiTransport: Transport over one MPI communicator (a private duplicate of
// the job's communicator, with MPI_ERRORS_RETURN so a dead peer is an error,
// not an abort). Receives use MPI_Improbe/MPI_Imrecv so probe and receive
// cannot be split; every MPI return code goes through Check().
//
// Doorbells: MPI has no way to sleep until a message arrives (its blocking
// calls spin), so idle ranks sleep and poll. To keep a sleeping rank from
// adding its sleep to every hop of a request, the ranks of one node share a
// small memory segment with one doorbell per rank (an event count: a counter
// and a futex). Send rings the destination's bell after MPI_Isend; receiving a
// large message rings the sender's (its send can now complete). WaitForWork
// sleeps on the rank's own bell, so a local peer wakes it at once; peers on
// other nodes are still only noticed at the end of the sleep. Without the
// segment (shm_open failed) the bells are off and ranks just sleep.
#pragma once

#include <mpi.h>

#include <deque>
#include <map>
#include <vector>

#include "mpi/transport/collective.h"
#include "mpi/transport/transport.h"

namespace gfs {

// Turns an MPI return code into a Status naming the call.
Status CheckMpi(int rc, const char* what);

// Collective over an MPI communicator (not duplicated, not freed): each call
// is one MPI collective on MPI_BYTE (a Broadcast above 2 GiB is several).
class MpiCollective : public Collective {
 public:
  explicit MpiCollective(MPI_Comm comm);
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  Status AllGather(const void* mine, size_t n, void* all) override;
  Status Gather(int root, const void* mine, size_t n, void* all) override;
  Status Broadcast(int root, void* data, size_t n) override;

 private:
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
};

class MpiTransport : public Transport {
 public:
  // comm is duplicated; the duplicate is freed by the destructor.
  MpiTransport(MPI_Comm comm, uint64_t send_timeout_us);
  ~MpiTransport() override;
  MpiTransport(const MpiTransport&) = delete;
  MpiTransport& operator=(const MpiTransport&) = delete;

  Status init_status() const { return init_; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  Status Send(int dest, Buffer data) override;
  // Two MPI messages on the same tag, head then tail (the tail straight from
  // the caller's memory); the head's flags say a tail follows, and the
  // receiver joins them (doc/wire-format.md).
  Status SendWithTail(int dest, Buffer head, const uint8_t* tail, size_t n) override;
  size_t TailSendsPending() const override { return tails_pending_; }
  bool Poll(Incoming* in) override;
  bool Progress() override;
  size_t PendingSends() const override { return pending_.size(); }
  uint64_t PendingBytesTo(int dest) const override;
  const std::map<int, PeerCounters>& counters() const override { return counters_; }
  uint64_t abandoned_sends() const { return abandoned_.size(); }
  // Messages whose delivery was given up (sender gone or too slow).
  uint64_t receives_given_up() const { return receives_given_up_; }
  void WaitForWork(uint64_t max_us) override;
  bool WakesOnMessage() const override { return bells_ != nullptr; }
  // A rank on this node whose process is gone (by its doorbell's pid).
  bool PeerGone(int src) const override;

 private:
  struct PendingSend {
    MPI_Request req;
    Buffer data;  // null for a tail (the caller's memory)
    int dest;
    uint64_t start_us;
    size_t bytes;
  };
  Status Isend(int dest, const uint8_t* p, size_t n, Buffer keep);
  // Receives a matched message into dst; false (given up) when the sender
  // died in the middle.
  bool ReceiveMatched(MPI_Message* msg, uint8_t* dst, int count, const Buffer& keep, int src);

  uint64_t receives_given_up_ = 0;
  Status init_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = -1, size_ = 0;
  uint64_t send_timeout_us_;
  std::vector<PendingSend> pending_;
  std::vector<Buffer> abandoned_;
  std::deque<Incoming> loopback_;
  std::map<int, PeerCounters> counters_;
  std::map<int, uint64_t> pending_bytes_;
  size_t tails_pending_ = 0;
  // Tails still to come from a sender whose tail was given up on: the next
  // messages from it, to be dropped.
  std::map<int, uint32_t> orphan_tails_;

  struct Bell;
  void SetUpBells();
  void Ring(int dest);
  Bell* bells_ = nullptr;          // node-local ranks' bells (shared mapping)
  size_t bells_bytes_ = 0;         // size of the mapping
  std::vector<int> bell_of_;       // comm rank -> index into bells_, or -1 (other node)
  uint32_t bell_seen_ = 0;         // own bell's count, read before the last Poll's probe
  std::vector<MPI_Request> reqs_;  // scratch for Progress
  std::vector<int> done_idx_;
};

}  // namespace gfs
