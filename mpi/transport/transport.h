// Transport: how ranks exchange messages. The master, chunkserver and client
// logic talk only to this interface; MpiTransport (mpi_transport.h) runs it
// over MPI point-to-point, InProcFabric (inproc_transport.h) inside one
// process for unit tests. A message is opaque bytes to it (frame.h).
//
// Contract:
//  - Send never blocks: the buffer is queued and kept alive by the transport
//    until the peer has it or the send is abandoned (peer dead, deadline).
//  - Messages between one pair of ranks arrive in the order they were sent.
//  - Poll never blocks; it returns at most one message.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "mpi/transport/frame.h"

namespace gfs {

struct Incoming {
  int source = -1;
  Buffer data;
};

// Counters kept by every transport, per peer.
struct PeerCounters {
  uint64_t msgs_sent = 0, bytes_sent = 0;
  uint64_t msgs_recv = 0, bytes_recv = 0;
};

class Transport {
 public:
  virtual ~Transport() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Queues `data` for `dest`. Errors only for a bad destination or an MPI
  // failure that the transport could not recover from.
  virtual Status Send(int dest, Buffer data) = 0;
  // Sends one message made of `head` followed by the n bytes at `tail`,
  // which the transport may read in place instead of copying: the caller
  // keeps them unchanged and alive until TailSendsPending() is 0 again (each
  // such send completes or is abandoned within the send timeout). The peer
  // receives head + tail as one message. By default they are copied into one
  // buffer and sent with Send.
  virtual Status SendWithTail(int dest, Buffer head, const uint8_t* tail, size_t n);
  virtual size_t TailSendsPending() const { return 0; }
  // Returns true and fills *in when a message has arrived.
  virtual bool Poll(Incoming* in) = 0;
  // Advances queued sends; returns true when any completed. Sends pending
  // longer than the send timeout are abandoned (their buffers are kept until
  // the transport is destroyed, as MPI may still read them).
  virtual bool Progress() = 0;
  virtual size_t PendingSends() const = 0;
  // Bytes queued to `dest` and not yet completed (flow control).
  virtual uint64_t PendingBytesTo(int dest) const = 0;
  virtual const std::map<int, PeerCounters>& counters() const = 0;
  // Sleeps until a message may have arrived for this rank (or a send of ours
  // may have completed), at most `max_us`. A transport that cannot tell just
  // sleeps `max_us`; it may also return early for no reason.
  virtual void WaitForWork(uint64_t max_us) {
    std::this_thread::sleep_for(std::chrono::microseconds(max_us));
  }
  // True when WaitForWork returns as soon as a peer sends (so waiting ranks
  // need not poll back to back first).
  virtual bool WakesOnMessage() const { return false; }
  // True when `rank` is known to be gone (a dead process on this node); a
  // transport that cannot tell says false, and only deadlines find out.
  virtual bool PeerGone(int rank) const {
    (void)rank;
    return false;
  }
};

}  // namespace gfs
