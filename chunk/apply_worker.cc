// ChunkServer: the apply thread. A write of pushed data (the CRC pass over
// its bytes and the pwrite into the chunk file) runs there while the event
// loop receives the next mutation's data, so that on a host with two cores
// both work; see ApplyTask in chunk_server.h for the rule that keeps the
// store used by one thread at a time.
#include "chunk/chunk_server.h"

namespace gfs {

void ChunkServer::ApplyWrite(uint64_t handle, uint64_t offset, uint64_t length, PushEntry* push,
                             std::function<void(const Status&)> done) {
  DrainApply();  // one write at a time, in arrival order
  if (push == nullptr || push->rejected || push->received != push->total || push->total != length) {
    if (push != nullptr) push_held_ -= push->held;
    return done(Status(Code::kDataMissing, "pushed data not (fully) received"));
  }
  Status s = RoomFor(handle, offset + length);
  if (!s.ok()) {
    push_held_ -= push->held;
    return done(s);
  }
  std::unique_lock<std::mutex> l(apply_mu_);
  apply_task_.handle = handle;
  apply_task_.offset = offset;
  apply_task_.push = std::move(*push);
  apply_task_.result = Status::OK();
  apply_task_.done = std::move(done);
  if (apply_stop_) {  // shutting down: no thread any more, write here
    l.unlock();
    apply_busy_ = true;
    apply_ready_ = false;
    std::vector<ConstSlice> slices;
    for (const auto& sl : apply_task_.push.slices)
      slices.push_back({sl.second.data, sl.second.size});
    apply_task_.result = store_.Write(handle, offset, slices, &apply_task_.push.piece_crcs);
    apply_ready_ = true;
    DrainApply();
    return;
  }
  if (!apply_thread_.joinable()) apply_thread_ = std::thread([this] { ApplyLoop(); });
  apply_busy_ = true;
  apply_ready_ = false;
  apply_cv_.notify_all();
}

void ChunkServer::ApplyLoop() {
  std::unique_lock<std::mutex> l(apply_mu_);
  for (;;) {
    apply_cv_.wait(l, [this] { return apply_stop_ || (apply_busy_ && !apply_ready_); });
    if (!apply_busy_ || apply_ready_) return;  // stopping, nothing left
    l.unlock();
    // The event loop does not touch the store (nor this task) until
    // apply_ready_ is set: it only receives pushed data meanwhile.
    std::vector<ConstSlice> slices;
    slices.reserve(apply_task_.push.slices.size());
    for (const auto& sl : apply_task_.push.slices)
      slices.push_back({sl.second.data, sl.second.size});
    Status s =
        store_.Write(apply_task_.handle, apply_task_.offset, slices, &apply_task_.push.piece_crcs);
    l.lock();
    apply_task_.result = s;
    apply_ready_ = true;
    apply_cv_.notify_all();
  }
}

void ChunkServer::DrainApply() {
  std::unique_lock<std::mutex> l(apply_mu_);
  if (!apply_busy_) return;
  apply_cv_.wait(l, [this] { return apply_ready_; });
  ApplyTask t = std::move(apply_task_);
  apply_task_ = ApplyTask{};
  apply_busy_ = false;
  apply_ready_ = false;
  l.unlock();
  push_held_ -= t.push.held;
  if (t.result.ok()) stats_.counters[Counter::kBytesWritten] += t.push.total;
  t.push = PushEntry{};  // the received buffers go back before the reply
  t.done(t.result);
}

void ChunkServer::StopApplyThread() {
  DrainApply();
  {
    std::lock_guard<std::mutex> l(apply_mu_);
    apply_stop_ = true;
    apply_cv_.notify_all();
  }
  if (apply_thread_.joinable()) apply_thread_.join();
}

}  // namespace gfs
