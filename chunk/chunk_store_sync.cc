// ChunkStore: durability. Early writeback, Sync and SyncAll in the
// caller's thread, and SyncJob for a sync run in another thread.
#include "chunk/chunk_store.h"
#include "chunk/chunk_store_format.h"

namespace gfs {

bool ChunkStore::StartWriteback(OpenChunk* oc) {
  const bool any = oc->wb_lo < oc->wb_hi;
  if (any) oc->data->StartWriteback(oc->wb_lo, oc->wb_hi - oc->wb_lo);
  oc->wb_lo = UINT64_MAX;
  oc->wb_hi = 0;
  return any;
}

std::vector<ChunkStore::Writeback> ChunkStore::TakeWritebacks() {
  std::vector<Writeback> out;
  for (OpenChunk& oc : lru_) {
    if (oc.wb_lo >= oc.wb_hi) continue;
    out.push_back(Writeback{oc.data, oc.wb_lo, oc.wb_hi - oc.wb_lo});
    oc.wb_lo = UINT64_MAX;
    oc.wb_hi = 0;
    ++writebacks_batched_;
  }
  return out;
}

void ChunkStore::StartWritebackAll() {
  for (const Writeback& w : TakeWritebacks()) w.file->StartWriteback(w.offset, w.n);
}

Status ChunkStore::Sync(uint64_t handle) {
  Result<State*> str = Lookup(handle);
  if (!str.ok()) return str.status();
  State* st = *str;
  if (!st->dirty) return Status::OK();
  // Every dirty chunk is open (the cache syncs one before closing it): the
  // sync goes through the descriptors that wrote.
  auto it = open_.find(handle);
  if (it == open_.end()) {
    return Poison(handle, st, "losing its files",
                  Status::Internal("dirty chunk without open files"));
  }
  OpenChunk* oc = &*it->second;
  Status s = oc->data->Sync();
  if (s.ok()) s = oc->crc->Sync();
  if (s.ok() && st->need_dir_sync) s = env_->SyncDir(ChunksDir());
  if (!s.ok()) {
    // After a failed fsync the kernel may have dropped the dirty pages: a retry
    // could "succeed" without the data, so the chunk is not trusted again
    // until a repair has rewritten all of it.
    return Poison(handle, st, "a failed sync", s);
  }
  st->dirty = false;
  st->need_dir_sync = false;
  oc->wb_lo = UINT64_MAX;
  oc->wb_hi = 0;
  return Status::OK();
}

Result<std::unique_ptr<ChunkStore::SyncJob>> ChunkStore::PrepareSync(uint64_t handle) {
  Result<State*> str = Lookup(handle);
  if (!str.ok()) return str.status();
  State* st = *str;
  if (!st->dirty) return std::unique_ptr<SyncJob>();
  auto it = open_.find(handle);
  if (it == open_.end()) {
    return Poison(handle, st, "losing its files",
                  Status::Internal("dirty chunk without open files"));
  }
  if (jobs_out_ >= 4 * max_open_) {
    // Queued jobs hold descriptors: past this many, sync here instead.
    ++syncs_inline_;
    GFS_RETURN_IF_ERROR(Sync(handle));
    return std::unique_ptr<SyncJob>();
  }
  ++jobs_out_;
  auto job = std::make_unique<SyncJob>();
  job->handle = handle;
  job->gen = st->gen;
  job->data = it->second->data;
  job->crc = it->second->crc;
  if (st->need_dir_sync) job->dir = ChunksDir();
  job->env = env_;
  return job;
}

Status ChunkStore::SyncJob::Run() {
  for (const Writeback& w : writebacks) w.file->StartWriteback(w.offset, w.n);
  Status s = data->Sync();
  if (s.ok()) s = crc->Sync();
  if (s.ok() && !dir.empty()) s = env->SyncDir(dir);
  return s;
}

Status ChunkStore::FinishSync(const SyncJob& job, const Status& result) {
  if (jobs_out_ > 0) --jobs_out_;
  auto it = chunks_.find(job.handle);
  if (it == chunks_.end()) return result;  // deleted meanwhile: nothing left to sync
  State* st = &it->second;
  if (!st->poisoned.ok()) return st->poisoned;
  if (!result.ok()) return Poison(job.handle, st, "a failed sync", result);
  if (st->gen != job.gen) return Status::OK();  // changed meanwhile: still dirty
  st->dirty = false;
  if (!job.dir.empty()) st->need_dir_sync = false;
  auto oc = open_.find(job.handle);
  if (oc != open_.end()) {
    oc->second->wb_lo = UINT64_MAX;
    oc->second->wb_hi = 0;
  }
  return Status::OK();
}

Status ChunkStore::SyncAll() {
  Status first;
  bool dir_synced = false;
  for (auto& [h, st] : chunks_) {
    if (!st.dirty || !st.poisoned.ok()) continue;
    if (dir_synced) st.need_dir_sync = false;  // one directory fsync covers all
    const bool had_dir = st.need_dir_sync;
    Status s = Sync(h);
    if (s.ok() && had_dir) dir_synced = true;
    if (!s.ok() && first.ok()) first = s;
  }
  return first;
}

}  // namespace gfs
