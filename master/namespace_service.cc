// MasterServer's namespace requests: mkdir, create, delete, rename, list,
// stat, lookup and set-length. Each mutation is logged (Mutate) and its reply
// leaves after the log sync.
#include <algorithm>

#include "master/master_server.h"

namespace gfs {

namespace {

constexpr uint32_t kLookupPrefetch = 32;  // chunks returned beyond those asked for

}  // namespace

FileAttr MasterServer::AttrOf(const FileInfo& f) const {
  FileAttr a;
  a.id = f.id;
  a.is_dir = false;
  a.replication = f.replication;
  a.chunk_size = f.chunk_size;
  a.length = f.length;
  a.num_chunks = static_cast<uint32_t>(f.chunks.size());
  a.mtime_ms = f.mtime_ms;
  return a;
}

void MasterServer::OnMkdir(Message& m) {
  MkdirReq r;
  Status s = m.Decode(&r);
  if (s.ok()) s = Mutate(MetaOp::Mkdir(r.path, r.parents));
  if (!s.ok()) return DeferError(m, s);
  DeferReply(m, Empty{});
}

void MasterServer::OnCreate(Message& m) {
  CreateReq r;
  Status s = m.Decode(&r);
  if (!s.ok()) return DeferError(m, s);
  auto existing = meta_->StatFile(r.path);
  if (existing.ok() && !r.exclusive) {
    if (r.truncate && existing->length > 0) {
      std::vector<uint64_t> freed;
      s = Mutate(MetaOp::SetLength(existing->id, 0, NowMs()), &freed);
      if (!s.ok()) return DeferError(m, s);
      ForgetChunks(freed);
      existing = meta_->StatFile(r.path);
    }
    return DeferReply(m, StatReply{AttrOf(*existing)});
  }
  uint32_t repl = r.replication ? r.replication : cfg_.replication;
  uint64_t cs = r.chunk_size ? r.chunk_size : cfg_.chunk_size;
  if (repl == 0 || repl > cs_ranks_.size()) {
    return DeferError(m, Status::InvalidArgument("replication " + std::to_string(repl) +
                                                 " needs as many chunkservers (the job has " +
                                                 std::to_string(cs_ranks_.size()) + ")"));
  }
  if (cs < 65536 || cs % 65536 != 0 || cs > (4ull << 30)) {
    return DeferError(m,
                      Status::InvalidArgument("chunk size must be a multiple of 64K, at most 4G"));
  }
  s = Mutate(MetaOp::Create(r.path, meta_->NextFileId(), repl, cs, NowMs()));
  if (!s.ok()) return DeferError(m, s);
  DeferReply(m, StatReply{AttrOf(*meta_->StatFile(r.path))});
}

void MasterServer::ForgetChunks(const std::vector<uint64_t>& handles) {
  for (uint64_t h : handles) {
    auto it = locations_.find(h);
    if (it != locations_.end()) {
      for (int32_t r : it->second) servers_[r].to_delete.push_back(h);
      locations_.erase(it);
      TouchLocation(h);
    }
    leases_.erase(h);
    damaged_.erase(h);
    repair_backoff_.erase(h);
    clone_backoff_.erase(h);
    reported_len_.erase(h);
  }
}

void MasterServer::OnDelete(Message& m) {
  DeleteReq r;
  Status s = m.Decode(&r);
  std::vector<uint64_t> freed;
  if (s.ok()) s = Mutate(MetaOp::Delete(r.path, r.recursive), &freed);
  if (!s.ok()) return DeferError(m, s);
  ForgetChunks(freed);
  DeferReply(m, Empty{});
}

void MasterServer::OnRename(Message& m) {
  RenameReq r;
  Status s = m.Decode(&r);
  std::vector<uint64_t> freed;
  if (s.ok())
    s = Mutate(r.replace ? MetaOp::Replace(r.src, r.dst) : MetaOp::Rename(r.src, r.dst), &freed);
  if (!s.ok()) return DeferError(m, s);
  ForgetChunks(freed);
  DeferReply(m, Empty{});
}

void MasterServer::OnList(Message& m) {
  ListReq r;
  Status s = m.Decode(&r);
  if (!s.ok()) return DeferError(m, s);
  auto entries = meta_->List(r.path);
  if (!entries.ok()) return DeferError(m, entries.status());
  ListReply rep;
  rep.entries.reserve(entries->size());
  for (const DirEntry& e : *entries) {
    ListEntry le;
    le.name = e.name;
    if (e.is_dir) {
      le.attr.is_dir = true;
    } else {
      le.attr = AttrOf(e.file);
    }
    rep.entries.push_back(std::move(le));
  }
  DeferReply(m, rep);
}

void MasterServer::OnStat(Message& m) {
  StatReq r;
  Status s = m.Decode(&r);
  if (!s.ok()) return DeferError(m, s);
  auto f = meta_->StatFile(r.path);
  if (f.ok()) return DeferReply(m, StatReply{AttrOf(*f)});
  if (f.status().code() == Code::kIsADirectory) {
    StatReply rep;
    rep.attr.is_dir = true;
    return DeferReply(m, rep);
  }
  DeferError(m, f.status());
}

void MasterServer::OnLookup(Message& m) {
  LookupReq r;
  Status s = m.Decode(&r);
  if (!s.ok()) return DeferError(m, s);
  stats_.counters["lookups"]++;
  auto f = meta_->StatFile(r.path);
  if (!f.ok()) return DeferError(m, f.status());
  if (r.first == 0xFFFFFFFFu) {  // the last chunk
    r.first = f->chunks.empty() ? 0 : static_cast<uint32_t>(f->chunks.size() - 1);
  }
  LookupReply rep;
  rep.attr = AttrOf(*f);
  uint64_t end = std::min<uint64_t>(f->chunks.size(),
                                    static_cast<uint64_t>(r.first) + r.count + kLookupPrefetch);
  for (uint64_t i = r.first; i < end; ++i) {
    rep.chunks.push_back(LocationOf(static_cast<uint32_t>(i), f->chunks[i]));
  }
  DeferReply(m, rep);
}

void MasterServer::OnSetLength(Message& m) {
  SetLengthReq r;
  Status s = m.Decode(&r);
  if (!s.ok()) return DeferError(m, s);
  auto f = meta_->StatFile(r.path);
  if (!f.ok()) return DeferError(m, f.status());
  if (r.file_id != 0 && r.file_id != f->id) {
    return DeferError(m, Status::NotFound(r.path + " was replaced by another file"));
  }
  SetLengthReply rep;
  const uint64_t keep = r.length / f->chunk_size + (r.length % f->chunk_size != 0 ? 1 : 0);
  if (!r.grow_only && r.length >= f->length && f->chunks.size() > keep) {
    // A truncation to above the logged length, with chunks past it: clients
    // report lengths lazily (at fsync/close), so those chunks may hold bytes
    // written before this truncation. A length over every chunk first, so
    // the truncation below frees them (two plain records; replay agrees).
    s = Mutate(MetaOp::SetLength(f->id, f->chunks.size() * f->chunk_size, NowMs()));
    if (!s.ok()) return DeferError(m, s);
    f = meta_->StatFile(r.path);
  }
  if (r.grow_only ? r.length > f->length : r.length != f->length) {
    std::vector<uint64_t> freed;
    s = Mutate(MetaOp::SetLength(f->id, r.length, NowMs()), &freed);
    if (!s.ok()) return DeferError(m, s);
    ForgetChunks(freed);
    f = meta_->StatFile(r.path);
  }
  rep.length = f->length;
  uint64_t idx = f->length / f->chunk_size;
  if (!r.grow_only && idx < f->chunks.size()) {
    rep.last = LocationOf(static_cast<uint32_t>(idx), f->chunks[idx]);
  }
  DeferReply(m, rep);
}

}  // namespace gfs
