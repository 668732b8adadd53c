// ChunkServer: syncs. Each runs in a thread of its own, one at a time in
// arrival order, and is answered back in the event loop (FinishSyncs).
#include "chunk/chunk_server.h"

namespace gfs {

void ChunkServer::OnSync(Message& m) {
  SyncReq r;
  Status s = m.Decode(&r);
  if (!s.ok()) return Reply(m, s);
  StartSync(m, r.handle);
}

void ChunkServer::StartSync(Message& m, uint64_t handle) {
  auto job = store_.PrepareSync(handle);
  if (!job.ok()) return Reply(m, job.status());
  if (*job == nullptr) {  // nothing written since the last sync
    store_.StartWritebackAll();
    return Reply(m, Status::OK());
  }
  // The device writes of every chunk written since the last sync start
  // first, in the sync thread too (sync_file_range takes 10-20 ms per
  // 64 MiB chunk here), so the disk gets the batch while this one waits.
  (*job)->writebacks = store_.TakeWritebacks();
  std::unique_lock<std::mutex> l(sync_mu_);
  if (sync_stop_) {  // shutting down: no thread any more
    l.unlock();
    return Reply(m, store_.FinishSync(**job, (*job)->Run()));
  }
  stats_.counters[Counter::kSyncsInThread]++;
  if (!sync_thread_.joinable()) sync_thread_ = std::thread([this] { SyncLoop(); });
  sync_queue_.push_back(SyncTask{std::move(*job), m, Status::OK()});
  sync_cv_.notify_one();
}

void ChunkServer::SyncLoop() {
  std::unique_lock<std::mutex> l(sync_mu_);
  for (;;) {
    sync_cv_.wait(l, [this] { return sync_stop_ || !sync_queue_.empty(); });
    if (sync_queue_.empty()) return;  // stopping, nothing left
    SyncTask t = std::move(sync_queue_.front());
    sync_queue_.pop_front();
    l.unlock();
    t.result = t.job->Run();
    l.lock();
    sync_done_.push_back(std::move(t));
  }
}

void ChunkServer::FinishSyncs() {
  std::deque<SyncTask> done;
  {
    std::lock_guard<std::mutex> l(sync_mu_);
    if (sync_done_.empty()) return;
    done.swap(sync_done_);
  }
  for (SyncTask& t : done) {
    Status s = store_.FinishSync(*t.job, t.result);
    // A failed sync leaves the replica unusable until it is rewritten from
    // a good copy: the master hears of it now, not at the next verification.
    if (!s.ok() && !store_.StartupDamage(t.job->handle).empty()) ReportCorrupt(t.job->handle, {});
    Reply(t.req, s);
  }
}

void ChunkServer::StopSyncThread() {
  {
    std::lock_guard<std::mutex> l(sync_mu_);
    sync_stop_ = true;
    sync_cv_.notify_one();
  }
  if (sync_thread_.joinable()) sync_thread_.join();
  FinishSyncs();
}
}  // namespace gfs
