// The RPC log of a storage rank: one text line per request and reply it
// sends or receives (the envelope: type, id, peer, epoch, size, status; never
// file data), appended to <role dir>/rpc.log by a background thread and
// rolled by size into rpc.log.1, and the most recent lines kept in memory
// (`gfs report` shows the master's). LoggedTransport puts it in front of a
// rank's transport, so every message of the rank passes through one place.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "mpi/transport/transport.h"

namespace gfs {

class RpcLog {
 public:
  // Lines go to dir/rpc.log; once it holds max_bytes / 2, it becomes
  // rpc.log.1 (replacing the one before) and a new rpc.log begins, so the
  // two files hold at most about max_bytes. max_bytes 0: nothing is written
  // (the recent lines are still kept in memory).
  RpcLog(std::string dir, uint64_t max_bytes, size_t recent = 32);
  ~RpcLog();  // writes what is queued, then stops the writer
  RpcLog(const RpcLog&) = delete;
  RpcLog& operator=(const RpcLog&) = delete;

  // One message through this rank: `out` for sent, else received; bytes is
  // the whole message (envelope and body). Cheap: formats one line and
  // queues it (the writer thread does the file work).
  void Note(bool out, int peer, const uint8_t* msg, size_t bytes);
  // The most recent lines, oldest first.
  std::vector<std::string> Recent() const;
  // Lines dropped because the writer fell behind (queue over its bound).
  uint64_t dropped() const;

 private:
  void WriterLoop();
  void Append(const std::string& text);

  const std::string dir_;
  const uint64_t max_bytes_;
  const size_t recent_cap_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string queued_;              // lines waiting for the writer
  std::deque<std::string> recent_;  // the last recent_cap_ lines
  uint64_t dropped_ = 0;
  bool stop_ = false;
  std::thread writer_;
  // The writer's own state.
  int fd_ = -1;
  uint64_t file_bytes_ = 0;
};

// A Transport that notes every message it sends and receives in an RpcLog
// and otherwise does what the transport underneath does.
class LoggedTransport : public Transport {
 public:
  LoggedTransport(Transport* inner, RpcLog* log) : inner_(inner), log_(log) {}
  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  Status Send(int dest, Buffer data) override;
  Status SendWithTail(int dest, Buffer head, const uint8_t* tail, size_t n) override;
  size_t TailSendsPending() const override { return inner_->TailSendsPending(); }
  bool Poll(Incoming* in) override;
  bool Progress() override { return inner_->Progress(); }
  size_t PendingSends() const override { return inner_->PendingSends(); }
  uint64_t PendingBytesTo(int dest) const override { return inner_->PendingBytesTo(dest); }
  const std::map<int, PeerCounters>& counters() const override { return inner_->counters(); }
  void WaitForWork(uint64_t max_us) override { inner_->WaitForWork(max_us); }
  bool WakesOnMessage() const override { return inner_->WakesOnMessage(); }
  bool PeerGone(int rank) const override { return inner_->PeerGone(rank); }

 private:
  Transport* inner_;
  RpcLog* log_;
};

}  // namespace gfs
