// Namespace calls: create, open, stat, list, mkdir, remove, rename, and the
// cluster-wide reports (report, fsck) and the end of the job.
#include <algorithm>

#include "io/client.h"

namespace gfs {
namespace {

FileStat ToStat(const std::string& path, const FileAttr& a) {
  FileStat s;
  s.path = path;
  s.is_dir = a.is_dir;
  s.id = a.id;
  s.size = a.length;
  s.replication = a.replication;
  s.chunk_size = a.chunk_size;
  s.chunks = a.num_chunks;
  s.mtime_ms = a.mtime_ms;
  return s;
}

}  // namespace

Status Client::Mkdir(const std::string& path, bool parents) {
  Empty rep;
  return MasterCall(MkdirReq{path, parents}, &rep);
}

Result<FileStat> Client::Stat(const std::string& path) {
  StatReq req;
  req.path = path;
  StatReply rep;
  Status s = MasterCall(req, &rep);
  if (!s.ok()) return s;
  FileStat st = ToStat(path, rep.attr);
  auto u = unreported_.find(st.id);
  if (u != unreported_.end()) st.size = std::max(st.size, u->second.end);  // our own writes
  return st;
}

Result<std::vector<FileStat>> Client::List(const std::string& path) {
  ListReq req;
  req.path = path;
  ListReply rep;
  Status s = MasterCall(req, &rep);
  if (!s.ok()) return s;
  std::vector<FileStat> out;
  out.reserve(rep.entries.size());
  for (const ListEntry& e : rep.entries) {
    out.push_back(ToStat(e.name, e.attr));
    auto u = unreported_.find(e.attr.id);
    if (u != unreported_.end()) out.back().size = std::max(out.back().size, u->second.end);
  }
  return out;
}

Status Client::Remove(const std::string& path, bool recursive) {
  Empty rep;
  return MasterCall(DeleteReq{path, recursive}, &rep);
}

Result<std::string> Client::Trash(const std::string& path, bool recursive, bool skip_trash) {
  // Lengths are reported under the path they were written at.
  GFS_RETURN_IF_ERROR(ReportLengthsUnder(path));
  RemoveReply rep;
  Status s = MasterCall(RemoveReq{path, recursive, skip_trash}, &rep);
  if (!s.ok()) return s;
  return rep.trash_path;
}

Result<UndeleteReply> Client::Undelete(const std::string& path) {
  UndeleteReply rep;
  Status s = MasterCall(UndeleteReq{path}, &rep);
  if (!s.ok()) return s;
  return rep;
}

Result<ExpungeReply> Client::Expunge(bool all) {
  ExpungeReply rep;
  // The chunkservers answer after deleting: allow more than one request's time.
  Status s = MasterCall(ExpungeReq{all}, &rep, cfg_.request_timeout_ms * 4);
  if (!s.ok()) return s;
  return rep;
}

Status Client::Rename(const std::string& src, const std::string& dst, bool replace) {
  // Lengths are reported under the path they were written at.
  GFS_RETURN_IF_ERROR(ReportLengthsUnder(src));
  Empty rep;
  return MasterCall(RenameReq{src, dst, replace}, &rep);
}

Status Client::Snapshot(const std::string& src, const std::string& dst) {
  // The snapshot takes the lengths the master knows: ours first.
  GFS_RETURN_IF_ERROR(ReportLengthsUnder(src));
  Empty rep;
  return MasterCall(SnapshotReq{src, dst}, &rep);
}

Result<File> Client::Create(const std::string& path, const CreateOptions& opts) {
  CreateReq req;
  req.path = path;
  req.replication = opts.replication;
  req.chunk_size = opts.chunk_size;
  req.exclusive = opts.exclusive;
  req.truncate = opts.truncate;
  StatReply rep;
  Status s = MasterCall(req, &rep);
  if (!s.ok()) return s;
  if (opts.truncate) unreported_.erase(rep.attr.id);  // cut to zero: older ends are gone
  File f;
  f.path = path;
  f.id = rep.attr.id;
  f.replication = rep.attr.replication;
  f.chunk_size = rep.attr.chunk_size;
  f.length = rep.attr.length;
  return f;
}

Result<File> Client::Open(const std::string& path) {
  auto st = Stat(path);
  if (!st.ok()) return st.status();
  if (st->is_dir) return Status(Code::kIsADirectory, path);
  File f;
  f.path = path;
  f.id = st->id;
  f.replication = st->replication;
  f.chunk_size = st->chunk_size;
  f.length = st->size;
  return f;
}

Result<ReportReply> Client::Report() {
  ReportReply rep;
  Status s = MasterCall(ReportReq{}, &rep);
  if (!s.ok()) return s;
  return rep;
}

Result<FsckReply> Client::Fsck(const std::string& path, bool verify) {
  FsckReply rep;
  FsckReq req;
  req.path = path;
  req.verify = verify;
  // Verification reads every replica: allow it more time than one request.
  Status s = MasterCall(req, &rep, cfg_.request_timeout_ms * 4);
  if (!s.ok()) return s;
  return rep;
}

Result<uint64_t> Client::SetReplication(const std::string& path, uint32_t replication) {
  SetReplicationReply rep;
  SetReplicationReq req;
  req.path = path;
  req.replication = replication;
  Status s = MasterCall(req, &rep);
  if (!s.ok()) return s;
  return rep.files;
}

Result<ReplicationStateReply> Client::ReplicationState(const std::string& path) {
  ReplicationStateReply rep;
  ReplicationStateReq req;
  req.path = path;
  Status s = MasterCall(req, &rep);
  if (!s.ok()) return s;
  return rep;
}

Status Client::Finish(int status) {
  // Lengths not yet told (files written and never closed). A file removed or
  // replaced since then has no length to keep.
  while (!unreported_.empty()) {
    const uint64_t id = unreported_.begin()->first;
    Status s = ReportLength(id);
    if (!s.ok() && s.code() != Code::kNotFound) return s;
    unreported_.erase(id);
  }
  Empty rep;
  return MasterCall(ClientDoneReq{status}, &rep, 120000);
}

Result<std::vector<int>> Client::GoneClients() {
  ClientsGoneReply rep;
  Status s = MasterCall(ClientsGoneReq{}, &rep);
  if (!s.ok()) return s;
  return std::vector<int>(rep.ranks.begin(), rep.ranks.end());
}

}  // namespace gfs
