#include "master/master_server.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "common/clock.h"
#include "common/log.h"
#include "common/random.h"

namespace gfs {
namespace {

constexpr uint32_t kLookupPrefetch = 32;  // chunks returned beyond those asked for
constexpr uint64_t kRegisterGraceUs = 10ull * 1000 * 1000;

}  // namespace

MasterServer::MasterServer(Transport* t, Env* env, const JobConfig& cfg, std::string dir,
                           std::vector<int> chunkserver_ranks, std::vector<int> client_ranks,
                           MasterGroup group)
    : t_(t),
      env_(env),
      cfg_(cfg),
      dir_(std::move(dir)),
      cs_ranks_(std::move(chunkserver_ranks)),
      client_ranks_(std::move(client_ranks)),
      meta_(std::make_unique<MetaState>()),
      placement_(DefaultPlacement::Options{0, 8}),
      group_(std::move(group)) {
  for (int r : cs_ranks_) servers_[r].rank = r;
  if (group_.members.empty()) group_.members.push_back(group_.self);
  leader_ = group_.members.front();
  mode_ = group_.self == leader_ ? Mode::kMaster : Mode::kShadow;
  if (mode_ == Mode::kMaster) {
    for (int r : group_.members) {
      if (r != group_.self) peers_[r] = Peer{};
    }
  }
}

int64_t MasterServer::NowMs() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace {

constexpr char kVersionFile[] = "/VERSION";

// <dir>/VERSION: "gfs master layout N\nstore HEX\n". *exists false when absent.
Status LoadMasterVersion(Env* env, const std::string& dir, bool* exists, uint32_t* layout,
                         uint64_t* store) {
  *exists = false;
  *layout = 0;
  *store = 0;
  const std::string path = dir + kVersionFile;
  if (!env->FileExists(path)) return Status::OK();
  std::string text;
  GFS_RETURN_IF_ERROR(env->ReadFile(path, &text));
  unsigned l = 0;
  unsigned long long id = 0;
  if (std::sscanf(text.c_str(), "gfs master layout %u\nstore %llx", &l, &id) != 2) {
    return Status::Corruption(path + ": not a master VERSION file");
  }
  *exists = true;
  *layout = l;
  *store = id;
  return Status::OK();
}

Status SaveMasterVersion(Env* env, const std::string& dir, uint64_t store) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "gfs master layout %u\nstore %016llx\n", MasterServer::kLayout,
                static_cast<unsigned long long>(store));
  return env->WriteFileAtomic(dir + kVersionFile, buf);
}

}  // namespace

Status MasterServer::AdoptStore(uint64_t id) {
  if (id == 0 || (id == store_id_ && !fresh_)) return Status::OK();
  GFS_RETURN_IF_ERROR(SaveMasterVersion(env_, dir_, id));
  store_id_ = id;
  fresh_ = false;
  return Status::OK();
}

void MasterServer::CreateStore() {
  Status s = SaveMasterVersion(env_, dir_, store_id_);
  if (!s.ok()) {
    refusal_ = Status(s.code(), "making a new store: " + s.ToString());
    return;
  }
  fresh_ = false;
  stats_.counters["stores_created"]++;
}

Status MasterServer::Start(std::string* warning) {
  GFS_RETURN_IF_ERROR(env_->CreateDirs(dir_));
  if (cfg_.format) {
    // gfs format: the metadata this directory holds is discarded.
    std::vector<std::string> names;
    GFS_RETURN_IF_ERROR(env_->GetChildren(dir_, &names));
    for (const std::string& n : names) {
      if (n == "LOCK" || n == "IDENTITY") continue;
      GFS_RETURN_IF_ERROR(env_->RemoveFile(dir_ + "/" + n));
    }
    GFS_RETURN_IF_ERROR(env_->SyncDir(dir_));
  }
  bool has_version = false;
  uint32_t layout = 0;
  GFS_RETURN_IF_ERROR(LoadMasterVersion(env_, dir_, &has_version, &layout, &store_id_));
  if (has_version && layout != kLayout) {
    return Status::Unavailable(dir_ + " holds master metadata of layout " + std::to_string(layout) +
                               "; this build reads layout " + std::to_string(kLayout) +
                               " (and upgrades layout 1)");
  }
  uint64_t last_seq = 0;
  JournalOptions jo;
  jo.roll_bytes = cfg_.log_roll_bytes;
  jo.keep_checkpoints = static_cast<int>(cfg_.keep_checkpoints);
  log_ = std::make_unique<MetaJournal>(env_, dir_, jo);
  GFS_RETURN_IF_ERROR(log_->Open(meta_.get(), &last_seq, warning));
  if (!has_version && last_seq > 0 && group_.self == group_.members.front()) {
    // Layout 1 had no VERSION file and no store identity: the metadata is
    // kept as it is, and the store gets its identity now.
    const uint64_t id = RandomIdentity();
    GFS_RETURN_IF_ERROR(SaveMasterVersion(env_, dir_, id));
    store_id_ = id;
    upgraded_ = true;
    GFS_LOG_WARN("master: %s: metadata upgraded from layout 1 to layout %u (store %016llx)",
                 dir_.c_str(), kLayout, static_cast<unsigned long long>(id));
  }
  if (!has_version && store_id_ == 0 && last_seq == 0) {
    fresh_ = true;  // no metadata at all: a new store, once the chunkservers agree
    store_id_ = RandomIdentity();
  }
  epoch_ = log_->epoch();
  start_us_ = Now();
  last_heard_us_ = start_us_;
  for (auto& [r, p] : peers_) p.acked = p.sent = last_seq;
  unshipped_first_ = last_seq + 1;
  stats_.counters["replayed_seq"] = last_seq;
  stats_.counters["file_bytes_received"] = 0;
  stats_.counters["lookups"] = 0;
  return Status::OK();
}

Status MasterServer::BeginEpoch(uint64_t epoch) {
  GFS_RETURN_IF_ERROR(log_->StartEpoch(epoch));
  epoch_ = epoch;
  return Status::OK();
}

Status MasterServer::InstallSnapshot(const std::string& bytes) {
  auto fresh = std::make_unique<MetaState>();
  uint64_t seq = 0;
  GFS_RETURN_IF_ERROR(log_->InstallSnapshot(bytes, fresh.get(), &seq));
  meta_ = std::move(fresh);
  for (auto& [r, p] : peers_) p.acked = p.sent = seq;
  unshipped_first_ = seq + 1;
  stats_.counters["replayed_seq"] = seq;
  if (fresh_ && seq > 0) CreateStore();  // metadata of a store that had no identity yet
  return refusal_;
}

Status MasterServer::Mutate(const MetaOp& op, std::vector<uint64_t>* freed) {
  if (!broken_.ok()) return broken_;
  if (mode_ != Mode::kMaster) return NotMaster();
  GFS_RETURN_IF_ERROR(meta_->Check(op));
  uint64_t seq = 0;
  Status s = log_->Append(op, &seq);
  if (!s.ok()) {
    broken_ = s;
    return s;
  }
  s = meta_->Apply(op, freed);
  if (!s.ok()) {
    broken_ = Status::Internal("applying a checked op failed: " + s.ToString());
    return broken_;
  }
  if (!peers_.empty()) {
    if (unshipped_.empty()) unshipped_first_ = seq;
    LogRecord rec;
    std::vector<uint8_t> bytes;
    op.EncodeTo(&bytes);
    rec.op.assign(bytes.begin(), bytes.end());
    unshipped_.push_back(std::move(rec));
  }
  stats_.counters["mutations"]++;
  return Status::OK();
}

void MasterServer::RecoverLengths() {
  // Lengths are logged lazily (at fsync, close, rename, a client's end), so a
  // job killed before that leaves acknowledged bytes past a file's logged
  // length. The replicas say how far each chunk reaches: the file grows to
  // cover the last chunk holding bytes on a replica at the logged version.
  struct Grow {
    uint64_t id, length;
    int64_t mtime_ms;
  };
  std::vector<Grow> grows;
  meta_->ForEachFile([&](const std::string&, const FileInfo& f) {
    if (f.chunk_size == 0) return;
    for (size_t i = f.chunks.size(); i-- > 0;) {
      auto rl = reported_len_.find(f.chunks[i]);
      if (f.chunks[i] == 0 || rl == reported_len_.end()) continue;
      uint64_t longest = 0;
      for (const auto& [rank, len] : rl->second) longest = std::max(longest, len);
      if (longest == 0) continue;
      const uint64_t end = uint64_t{i} * f.chunk_size + longest;
      if (end > f.length) grows.push_back({f.id, end, f.mtime_ms});
      break;
    }
  });
  for (const Grow& g : grows) {
    if (!Mutate(MetaOp::SetLength(g.id, g.length, g.mtime_ms)).ok()) return;
    stats_.counters["lengths_recovered"]++;
  }
}

void MasterServer::DropChunksPastEnd() {
  struct Cut {
    uint64_t id, length, cover;
    int64_t mtime_ms;
  };
  std::vector<Cut> cuts;
  meta_->ForEachFile([&](const std::string&, const FileInfo& f) {
    if (f.chunk_size == 0) return;
    const uint64_t keep = f.length / f.chunk_size + (f.length % f.chunk_size != 0 ? 1 : 0);
    if (f.chunks.size() > keep) {
      cuts.push_back({f.id, f.length, f.chunks.size() * f.chunk_size, f.mtime_ms});
    }
  });
  for (const Cut& c : cuts) {
    // Two plain records (a length over every chunk, then the real one, which
    // frees those past it): replay on any copy does the same.
    std::vector<uint64_t> freed;
    if (!Mutate(MetaOp::SetLength(c.id, c.cover, c.mtime_ms)).ok() ||
        !Mutate(MetaOp::SetLength(c.id, c.length, c.mtime_ms), &freed).ok()) {
      return;  // the log is broken: requests will say so
    }
    stats_.counters["chunks_past_end_dropped"] += freed.size();
    ForgetChunks(freed);
  }
}

Status MasterServer::NotMaster() const {
  std::string m = "rank " + std::to_string(group_.self) + " is not the master";
  if (leader_ >= 0 && leader_ != group_.self) {
    m += " (rank " + std::to_string(leader_) + " is, epoch " + std::to_string(epoch_) + ")";
  }
  return Status(Code::kNotMaster, m);
}

Header MasterServer::OrderHeader(MsgType type, uint32_t deadline_ms) {
  Header h;
  h.type = static_cast<uint16_t>(type);
  h.id = ++next_id_;
  h.epoch = epoch_;
  h.deadline_ms = deadline_ms;
  return h;
}

uint64_t MasterServer::CommittedSeq() const {
  uint64_t c = log_->synced_seq();
  for (const auto& [r, p] : peers_) {
    if (p.in_sync) c = std::min(c, p.acked);
  }
  return c;
}

void MasterServer::ReleaseCommitted() {
  const uint64_t c = CommittedSeq();
  uint64_t round = ship_round_;
  for (const auto& [r, p] : peers_) {
    if (p.in_sync) round = std::min(round, p.acked_round);
  }
  while (!uncommitted_.empty() && uncommitted_.front().seq <= c &&
         uncommitted_.front().round <= round) {
    t_->Send(uncommitted_.front().dest, std::move(uncommitted_.front().buf));
    uncommitted_.pop_front();
  }
}

void MasterServer::AfterBatch() {
  if (log_ && log_->last_seq() != log_->synced_seq()) {
    Status s = log_->Sync();
    if (!s.ok()) {
      broken_ = s;
      GFS_LOG_ERROR("master: op log sync failed: %s", s.ToString().c_str());
      // Nothing that depended on the lost records may leave: fail them all.
      for (auto& [dest, buf] : deferred_) {
        Message req;
        if (ParseMessage(Incoming{dest, buf}, &req).ok() && req.is_reply()) {
          t_->Send(dest, EncodeErrorReply(req, s, epoch_));
        }
      }
      deferred_.clear();
      return;
    }
    stats_.counters["log_syncs"]++;
  }
  if (log_) {
    Status s = log_->Poll();
    if (!s.ok()) {
      GFS_LOG_ERROR("%s: checkpoint failed: %s", mode_ == Mode::kMaster ? "master" : "shadow",
                    s.ToString().c_str());
    }
  }
  if (mode_ != Mode::kMaster || peers_.empty()) {
    for (auto& [dest, buf] : deferred_) t_->Send(dest, std::move(buf));
    deferred_.clear();
    return;
  }
  // With shadows: ship the batch, then hold what depends on it until the
  // synchronous shadows have it too.
  if (!unshipped_.empty() || !dirty_locs_.empty()) ShipLog(Now(), false);
  const uint64_t need = log_->last_seq();
  // Replies may depend on chunk locations shipped in this round (a lease
  // reply: its replicas), not only on log records.
  for (auto& [dest, buf] : deferred_) {
    uncommitted_.push_back({need, loc_round_, dest, std::move(buf)});
  }
  deferred_.clear();
  ReleaseCommitted();
}

void MasterServer::Handle(Message& m) {
  if (m.h.epoch > epoch_ && mode_ == Mode::kMaster && m.type() != MsgType::kVote &&
      m.type() != MsgType::kNewMaster) {
    // Someone has heard of a newer master: this one was deposed.
    StepDown(m.h.epoch, -1);
  }
  if (HandleGroup(m)) return;
  if (m.is_reply()) {
    if (mode_ != Mode::kMaster) return;
    if (m.type() == MsgType::kPrepareChunk) return OnPrepareReply(m);
    if (m.type() == MsgType::kRepair) return OnRepairReply(m);
    if (m.type() == MsgType::kShutdown) return OnShutdownReply(m);
    if (m.type() == MsgType::kVerify) return OnVerifyReply(m);
    if (m.type() == MsgType::kClone) return OnCloneReply(m);
    return;
  }
  stats_.counters[std::string("req_") + MsgTypeName(m.h.type)]++;
  if (mode_ == Mode::kShadow) {
    // Read-only service from the replayed state; everything else is the
    // master's.
    switch (m.type()) {
      case MsgType::kStat:
        return OnStat(m);
      case MsgType::kList:
        return OnList(m);
      case MsgType::kLookup:
        return OnLookup(m);
      case MsgType::kGetStats:
        return OnStats(m);
      case MsgType::kShutdown:
        done_ = true;
        return DeferReply(m, Empty{});
      default:
        return DeferError(m, NotMaster());
    }
  }
  switch (m.type()) {
    case MsgType::kRegister:
      return OnRegister(m);
    case MsgType::kHeartbeat:
      return OnHeartbeat(m);
    case MsgType::kGetStats:
      return OnStats(m);
    case MsgType::kCorrupt:
      return OnCorrupt(m);
    case MsgType::kPushData:
    case MsgType::kWrite: {
      // File data never belongs here; count it so tests can prove it.
      stats_.counters["file_bytes_received"] += m.buf->size();
      return DeferError(m, Status::Protocol("the master does not take file data"));
    }
    default:
      break;
  }
  if (!serving_ || !revive_req_.empty()) {
    // Not yet serving, or replicas are being brought forward (ResolveBehind):
    // answers given now could miss them.
    held_.push_back(m);
    return;
  }
  Dispatch(m);
}

void MasterServer::DispatchHeld() {
  while (!held_.empty() && serving_ && revive_req_.empty()) {
    Message m = std::move(held_.front());
    held_.pop_front();
    Dispatch(m);
  }
}

void MasterServer::Dispatch(Message& m) {
  if (!refusal_.ok() && m.type() != MsgType::kClientDone && m.type() != MsgType::kGetStats) {
    return DeferError(m, refusal_);
  }
  switch (m.type()) {
    case MsgType::kMkdir:
      return OnMkdir(m);
    case MsgType::kCreate:
      return OnCreate(m);
    case MsgType::kDelete:
      return OnDelete(m);
    case MsgType::kRename:
      return OnRename(m);
    case MsgType::kList:
      return OnList(m);
    case MsgType::kStat:
      return OnStat(m);
    case MsgType::kLookup:
      return OnLookup(m);
    case MsgType::kLease:
      return OnLease(m);
    case MsgType::kSetLength:
      return OnSetLength(m);
    case MsgType::kClientDone:
      return OnClientDone(m);
    case MsgType::kReport:
      return OnReport(m);
    case MsgType::kFsck:
      return OnFsck(m);
    default:
      DeferError(
          m, Status::Protocol(std::string("the master does not serve ") + MsgTypeName(m.h.type)));
  }
}

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

std::vector<int32_t> MasterServer::LiveReplicas(uint64_t handle) const {
  std::vector<int32_t> out;
  auto it = locations_.find(handle);
  if (it == locations_.end()) return out;
  for (int32_t r : it->second) {
    auto s = servers_.find(r);
    if (s != servers_.end() && s->second.alive) out.push_back(r);
  }
  return out;
}

ChunkLocation MasterServer::LocationOf(uint32_t index, uint64_t handle) const {
  ChunkLocation loc;
  loc.index = index;
  loc.handle = handle;
  if (handle != 0) {
    const ChunkInfo* c = meta_->FindChunk(handle);
    loc.version = c ? c->version : 0;
    loc.replicas = ReadableReplicas(handle);
  }
  return loc;
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

void MasterServer::OnLease(Message& m) {
  LeaseReq r;
  Status s = m.Decode(&r);
  if (!s.ok()) return DeferError(m, s);
  auto f = meta_->StatFile(r.path);
  if (!f.ok()) return DeferError(m, f.status());
  if (r.file_id != 0 && r.file_id != f->id) {
    return DeferError(m, Status::NotFound(r.path + " was replaced by another file"));
  }
  if (r.append) {
    // Record append goes to the file's last chunk (the first, for an empty file).
    r.index = f->chunks.empty() ? 0 : static_cast<uint32_t>(f->chunks.size() - 1);
  }
  if (r.index >= kMaxChunksPerFile)
    return DeferError(m, Status::InvalidArgument("chunk index too large"));
  const uint64_t now = Now();
  uint64_t handle = r.index < f->chunks.size() ? f->chunks[r.index] : 0;
  if (handle == 0) {
    // Allocate: place R replicas, log the chunk, create it on each replica.
    std::vector<ServerLoad> loads = Loads(f->chunk_size, {});
    std::vector<int> chosen =
        placement_.ChooseNew(loads, static_cast<int>(f->replication), {}, ++seed_);
    if (chosen.size() < f->replication) {
      return DeferError(m,
                        Status::Unavailable("only " + std::to_string(chosen.size()) +
                                            " chunkservers can take a new chunk; the file needs " +
                                            std::to_string(f->replication)));
    }
    handle = meta_->NextHandle();
    s = Mutate(MetaOp::AddChunk(f->id, r.index, handle, 1, NowMs()));
    if (!s.ok()) return DeferError(m, s);
    for (int c : chosen) {
      servers_[c].recent_creations++;
      servers_[c].chunks++;
      // Count the new chunk as full until the next heartbeat says better:
      // otherwise chunks placed before then all see the old use and can
      // land on a server that has room for only one of them.
      servers_[c].used += f->chunk_size;
    }
    stats_.counters["chunks_created"]++;
    return StartPrepare(m, r.index, handle, 1, true,
                        std::vector<int32_t>(chosen.begin(), chosen.end()));
  }
  auto pending = prepare_by_handle_.find(handle);
  if (pending != prepare_by_handle_.end()) {
    prepares_[pending->second].waiters.push_back(m);
    return;
  }
  auto cloning = clones_.find(handle);
  if (cloning != clones_.end()) {
    cloning->second.waiters.push_back(m);  // answered when the clone ends
    return;
  }
  // A damaged replica is repaired before the chunk is mutated again (a
  // partial overwrite of a damaged block could not be applied there).
  auto repairing = repairs_.find(handle);
  if (repairing == repairs_.end() && damaged_.count(handle) != 0 && Repairable(handle) &&
      StartRepair(handle, now)) {
    repairing = repairs_.find(handle);
  }
  if (repairing != repairs_.end()) {
    repairing->second.waiters.push_back(m);  // answered when the repair ends
    return;
  }
  std::vector<int32_t> replicas = LiveReplicas(handle);
  const ChunkInfo* c = meta_->FindChunk(handle);
  auto lease = leases_.find(handle);
  // A replica that died leaves the chain under a new version, so its copy
  // (which misses what follows) is stale when its directory is back.
  // find, not operator[]: an entry, even an empty one, says some chunkserver
  // has held this chunk (the re-creation below must not happen then).
  auto known = locations_.find(handle);
  const bool lost = known != locations_.end() && replicas.size() < known->second.size();
  if (lost) known->second = replicas;
  if (!lost && lease != leases_.end() && lease->second.expiry_us > now &&
      std::find(replicas.begin(), replicas.end(), lease->second.primary) != replicas.end()) {
    LeaseReply rep;
    rep.index = r.index;
    rep.handle = handle;
    rep.version = c->version;
    rep.primary = lease->second.primary;
    rep.replicas = replicas;
    std::stable_partition(rep.replicas.begin(), rep.replicas.end(),
                          [&](int32_t x) { return x == rep.primary; });
    rep.lease_ms = static_cast<uint32_t>((lease->second.expiry_us - now) / 1000);
    return DeferReply(m, rep);
  }
  if (replicas.empty()) {
    // A chunk logged by a master that died before any chunkserver created
    // it: every chunkserver is registered and alive, none reported it (not
    // even behind), and it lies wholly past the file's length, so it holds
    // no acknowledged byte (or, after a takeover, the old master never
    // reported a replica of it). Create it afresh, at a new version.
    const bool everyone = std::all_of(cs_ranks_.begin(), cs_ranks_.end(), [&](int cr) {
      auto it = servers_.find(cr);
      return it != servers_.end() && it->second.registered && it->second.alive;
    });
    const bool past_end = static_cast<uint64_t>(r.index) * f->chunk_size >= f->length;
    const bool never_located = took_over_ && !located_at_takeover_.count(handle);
    if (everyone && (past_end || never_located) && !behind_.count(handle) &&
        known == locations_.end()) {
      std::vector<int> chosen = placement_.ChooseNew(Loads(f->chunk_size, {}),
                                                     static_cast<int>(f->replication), {}, ++seed_);
      if (chosen.size() >= f->replication) {
        const uint64_t version = c->version + 1;
        s = Mutate(MetaOp::SetVersion(handle, version));
        if (!s.ok()) return DeferError(m, s);
        stats_.counters["chunks_recreated"]++;
        return StartPrepare(m, r.index, handle, version, true,
                            std::vector<int32_t>(chosen.begin(), chosen.end()));
      }
    }
    return DeferError(m, Status::Unavailable("no live replica of chunk " + std::to_string(r.index) +
                                             " of " + r.path));
  }
  // A new lease: bump the version so replicas that miss it become stale.
  uint64_t version = c->version + 1;
  s = Mutate(MetaOp::SetVersion(handle, version));
  if (!s.ok()) return DeferError(m, s);
  StartPrepare(m, r.index, handle, version, false, std::move(replicas));
}

void MasterServer::StartPrepare(Message& lease_req, uint32_t index, uint64_t handle,
                                uint64_t version, bool create, std::vector<int32_t> replicas) {
  uint64_t key = ++next_id_;
  Prepare& p = prepares_[key];
  p.index = index;
  p.handle = handle;
  p.version = version;
  p.primary = replicas.front();
  p.replicas = std::move(replicas);
  p.waiting = static_cast<int>(p.replicas.size());
  p.deadline_us = Now() + static_cast<uint64_t>(cfg_.request_timeout_ms) * 1000 / 2;
  p.waiters.push_back(lease_req);
  prepare_by_handle_[handle] = key;
  leases_.erase(handle);
  for (int32_t r : p.replicas) {
    PrepareChunkReq req;
    req.handle = handle;
    req.version = version;
    req.create = create;
    req.primary = r == p.primary;
    req.lease_ms = cfg_.lease_seconds * 1000;
    Header h = OrderHeader(MsgType::kPrepareChunk, cfg_.request_timeout_ms / 2);
    prepare_req_[h.id] = key;
    // Ordered after the log sync that made the version durable.
    Defer(r, EncodeMessage(h, req));
  }
}

void MasterServer::OnPrepareReply(Message& m) {
  auto rv = revive_req_.find(m.h.id);
  if (rv != revive_req_.end()) {
    const auto [handle, rank] = rv->second;
    revive_req_.erase(rv);
    if (m.status().ok() && meta_->FindChunk(handle) != nullptr) {
      auto& loc = locations_[handle];
      if (std::find(loc.begin(), loc.end(), rank) == loc.end()) loc.push_back(rank);
      TouchLocation(handle);
    }
    DispatchHeld();
    return;
  }
  auto rq = repair_req_.find(m.h.id);
  if (rq != repair_req_.end()) {
    const uint64_t handle = rq->second;
    repair_req_.erase(rq);
    auto op = repairs_.find(handle);
    if (op == repairs_.end()) return;
    if (!m.status().ok()) {
      // This replica did not take the version: stale from now on.
      auto& loc = locations_[handle];
      auto pos = std::find(loc.begin(), loc.end(), m.source);
      if (pos != loc.end()) loc.erase(pos);
      TouchLocation(handle);
      auto& t = op->second.targets;
      t.erase(std::remove(t.begin(), t.end(), m.source), t.end());
      ClearDamaged(handle, m.source);
    }
    --op->second.waiting;
    OnRepairPrepared(handle);
    return;
  }
  auto it = prepare_req_.find(m.h.id);
  if (it == prepare_req_.end()) return;
  uint64_t key = it->second;
  prepare_req_.erase(it);
  auto p = prepares_.find(key);
  if (p == prepares_.end()) return;
  p->second.answered.push_back(m.source);
  if (!m.status().ok()) p->second.failed.push_back(m.source);
  if (--p->second.waiting == 0) FinishPrepare(key);
}

void MasterServer::FinishPrepare(uint64_t key) {
  auto it = prepares_.find(key);
  Prepare& p = it->second;
  prepare_by_handle_.erase(p.handle);
  // Replicas that did not record the version are stale from now on.
  std::vector<int32_t> good;
  for (int32_t r : p.replicas) {
    if (std::find(p.failed.begin(), p.failed.end(), r) == p.failed.end()) good.push_back(r);
  }
  auto& loc = locations_[p.handle];
  TouchLocation(p.handle);
  for (int32_t r : p.replicas) {
    bool ok = std::find(good.begin(), good.end(), r) != good.end();
    auto pos = std::find(loc.begin(), loc.end(), r);
    if (ok && pos == loc.end()) loc.push_back(r);
    if (!ok && pos != loc.end()) loc.erase(pos);
  }
  const bool primary_ok = std::find(good.begin(), good.end(), p.primary) != good.end();
  if (!p.failed.empty() || !primary_ok) {
    // Simplest safe answer: the client retries and gets a fresh lease on the
    // replicas that are left.
    for (Message& w : p.waiters) {
      DeferError(w, Status::Unavailable("a replica did not take chunk version " +
                                        std::to_string(p.version)));
    }
  } else {
    uint64_t lease_us = static_cast<uint64_t>(cfg_.lease_seconds) * 1000000;
    leases_[p.handle] = Lease{p.primary, Now() + lease_us};
    LeaseReply rep;
    rep.index = p.index;
    rep.handle = p.handle;
    rep.version = p.version;
    rep.primary = p.primary;
    rep.replicas = good;
    rep.lease_ms = cfg_.lease_seconds * 1000;
    for (Message& w : p.waiters) DeferReply(w, rep);
  }
  prepares_.erase(it);
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

void MasterServer::OnClientDone(Message& m) {
  clients_done_.insert(m.source);
  done_msgs_.push_back(m);
  if (clients_done_.size() >= client_ranks_.size() && !shutting_down_) BeginShutdown();
}

void MasterServer::BeginShutdown() {
  shutting_down_ = true;
  shutdown_deadline_us_ = Now() + 10ull * 1000 * 1000;
  for (int r : cs_ranks_) {
    Header h = OrderHeader(MsgType::kShutdown, 0);
    Defer(r, EncodeMessage(h, ShutdownReq{}));
    if (servers_[r].alive) ++shutdown_waiting_;  // a dead one never answers
  }
  // Shadows (and a deposed master) end with the job; nobody waits for them.
  for (int r : group_.members) {
    if (r == group_.self) continue;
    Header h = OrderHeader(MsgType::kShutdown, 0);
    Defer(r, EncodeMessage(h, ShutdownReq{}));
  }
  if (shutdown_waiting_ == 0) shutdown_deadline_us_ = 0;
}

void MasterServer::OnShutdownReply(Message& m) {
  if (std::find(cs_ranks_.begin(), cs_ranks_.end(), m.source) == cs_ranks_.end()) return;
  if (shutting_down_ && --shutdown_waiting_ == 0) shutdown_deadline_us_ = 0;
}

void MasterServer::RefuseServer(const Message& m, const std::string& dir_name, const Status& why) {
  // Registered (the job does not wait for it) but never alive: it serves
  // nothing and is told nothing to delete.
  stats_.counters["chunkservers_refused"]++;
  ServerState& st = servers_[m.source];
  st.rank = m.source;
  st.dir_name = dir_name;
  st.registered = true;
  st.alive = false;
  DeferError(m, why);
}

void MasterServer::OnRegister(Message& m) {
  RegisterReq r;
  Status s = m.Decode(&r);
  if (!s.ok()) return DeferError(m, s);
  if ((fresh_ || (r.store_id == 0 && !upgraded_)) && !r.chunks.empty()) {
    // No metadata here, but the chunkserver holds chunks: the master's
    // directory was lost or is not this store's. Or chunks of no known store
    // beside a store made in an earlier job (a directory of the previous
    // format joins only the master upgraded with it). Start nothing (a new
    // store) and delete nothing.
    if (!fresh_) {
      GFS_LOG_WARN(
          "master: %s holds %zu chunks of no store (no STORE file): refused, its chunks are left "
          "alone",
          r.dir_name.c_str(), r.chunks.size());
      return RefuseServer(m, r.dir_name,
                          Status(Code::kWrongStore, r.dir_name + " holds chunks of no store"));
    }
    if (refusal_.ok()) {
      char sid[40] = "";
      if (r.store_id != 0) {
        std::snprintf(sid, sizeof sid, " of store %016llx",
                      static_cast<unsigned long long>(r.store_id));
      }
      refusal_ = Status(Code::kWrongStore,
                        "refusing to start: " + dir_ + " holds no master metadata, but " +
                            r.dir_name + " holds " + std::to_string(r.chunks.size()) + " chunks" +
                            sid + "; 'gfs format -f' discards them and makes a new store");
    }
    return RefuseServer(m, r.dir_name, refusal_);
  }
  if (!fresh_ && r.store_id != 0 && r.store_id != store_id_ && !r.chunks.empty()) {
    // A chunkserver directory of another store: refused, its chunks left alone.
    char msg[256];
    std::snprintf(msg, sizeof msg,
                  "%s belongs to store %016llx; this master's store is %016llx: refused, its "
                  "chunks are left alone",
                  r.dir_name.c_str(), static_cast<unsigned long long>(r.store_id),
                  static_cast<unsigned long long>(store_id_));
    GFS_LOG_WARN("master: %s", msg);
    return RefuseServer(m, r.dir_name, Status(Code::kWrongStore, msg));
  }
  ServerState& st = servers_[m.source];
  st.rank = m.source;
  st.id = r.server_id;
  st.dir_name = r.dir_name;
  st.host = r.host;
  st.capacity = r.capacity;
  st.used = r.used;
  st.chunks = static_cast<uint32_t>(r.chunks.size());
  st.registered = true;
  st.alive = true;
  st.last_seen_us = Now();
  RegisterReply rep;
  rep.store_id = store_id_;
  for (const ChunkReport& c : r.chunks) {
    const ChunkInfo* info = meta_->FindChunk(c.handle);
    if (info == nullptr) {
      rep.delete_handles.push_back(c.handle);  // orphan
      stats_.counters["orphan_replicas"]++;
      continue;
    }
    if (c.version < info->version) {
      // Behind the logged version: stale if a current replica exists, but
      // the master may also have died between logging a new version and
      // the replicas recording it. Never served; decided by ResolveBehind.
      auto& b = behind_[c.handle];
      b.erase(std::remove_if(
                  b.begin(), b.end(),
                  [&](const std::pair<int32_t, uint64_t>& e) { return e.first == m.source; }),
              b.end());
      b.push_back({m.source, c.version});
      stats_.counters["stale_replicas"]++;
      stale_seen_[c.handle]++;
      continue;
    }
    if (c.version > info->version) {
      // The master failed while granting: the replica's version is current.
      if (!Mutate(MetaOp::SetVersion(c.handle, c.version)).ok()) continue;
      // Replicas registered earlier at the old version are now stale.
      auto& loc = locations_[c.handle];
      for (int32_t old : loc) servers_[old].to_delete.push_back(c.handle);
      loc.clear();
    }
    TouchLocation(c.handle);
    auto& loc = locations_[c.handle];
    if (std::find(loc.begin(), loc.end(), m.source) == loc.end()) loc.push_back(m.source);
    if (!c.damaged.empty()) {
      MarkDamaged(c.handle, m.source, c.damaged);
    } else {
      ClearDamaged(c.handle, m.source);  // a re-registration after a repair elsewhere
    }
    if (!took_over_ && !lengths_resolved_) reported_len_[c.handle][m.source] = c.length;
  }
  DeferReply(m, rep);
  if (serving_) ResolveBehind();
}

void MasterServer::ResolveBehind() {
  const bool all_registered = std::all_of(cs_ranks_.begin(), cs_ranks_.end(), [&](int r) {
    auto it = servers_.find(r);
    return it != servers_.end() && it->second.registered;
  });
  for (auto it = behind_.begin(); it != behind_.end();) {
    const uint64_t handle = it->first;
    const ChunkInfo* info = meta_->FindChunk(handle);
    if (info == nullptr || !LiveReplicas(handle).empty()) {
      // A current replica exists (or the chunk is gone): these are stale.
      for (const auto& [rank, v] : it->second) servers_[rank].to_delete.push_back(handle);
      it = behind_.erase(it);
      continue;
    }
    if (!all_registered) {
      ++it;  // a missing server may hold the current version: wait for it
      continue;
    }
    // Every chunkserver has reported and none holds the logged version: no
    // lease was ever granted at it (a lease needs every replica to record
    // the version first), so the most advanced replicas hold every
    // acknowledged byte. Bring them to the logged version.
    uint64_t best = 0;
    for (const auto& e : it->second) best = std::max(best, e.second);
    for (const auto& [rank, v] : it->second) {
      if (v != best) {
        servers_[rank].to_delete.push_back(handle);
        continue;
      }
      PrepareChunkReq req;
      req.handle = handle;
      req.version = info->version;
      Header h = OrderHeader(MsgType::kPrepareChunk, cfg_.request_timeout_ms / 2);
      revive_req_[h.id] = {handle, rank};
      revive_deadline_us_ = Now() + cfg_.request_timeout_ms * 500ull;
      t_->Send(rank, EncodeMessage(h, req));
    }
    stats_.counters["versions_recovered"]++;
    GFS_LOG_WARN(
        "master: chunk %016llx: no replica holds logged version %llu; bringing "
        "the version-%llu replicas forward",
        static_cast<unsigned long long>(handle), static_cast<unsigned long long>(info->version),
        static_cast<unsigned long long>(best));
    it = behind_.erase(it);
  }
}

void MasterServer::OnHeartbeat(Message& m) {
  HeartbeatReq r;
  Status s = m.Decode(&r);
  if (!s.ok()) return DeferError(m, s);
  ServerState& st = servers_[m.source];
  if (!st.registered) return DeferError(m, Status::Unavailable("register first"));
  st.used = r.used;
  st.capacity = r.capacity;
  st.chunks = r.num_chunks;
  st.last_seen_us = Now();
  st.alive = true;
  HeartbeatReply rep;
  rep.lease_ms = cfg_.lease_seconds * 1000;
  const uint64_t now = Now();
  for (uint64_t h : r.extend_leases) {
    auto it = leases_.find(h);
    if (it != leases_.end() && it->second.primary == m.source && it->second.expiry_us > now) {
      it->second.expiry_us = now + static_cast<uint64_t>(cfg_.lease_seconds) * 1000000;
      rep.extended.push_back(h);
    }
  }
  rep.delete_handles.swap(st.to_delete);
  rep.store_id = store_id_;
  DeferReply(m, rep);
}

std::vector<ServerLoad> MasterServer::Loads(uint64_t room, const std::set<int32_t>& busy) const {
  std::vector<ServerLoad> loads;
  for (const auto& [rank, st] : servers_) {
    ServerLoad l;
    l.id = rank;
    l.host = st.host;
    l.used_bytes = st.used;
    l.capacity_bytes = st.capacity;
    l.chunks = st.chunks;
    l.recent_creations = st.recent_creations;
    l.alive = st.alive && st.registered && !busy.count(rank) &&
              (st.capacity == 0 || st.capacity >= st.used + room);
    loads.push_back(l);
  }
  return loads;
}

std::vector<int32_t> MasterServer::GoodReplicas(uint64_t handle) const {
  std::vector<int32_t> live = LiveReplicas(handle);
  auto bad = damaged_.find(handle);
  if (bad == damaged_.end()) return live;
  std::vector<int32_t> out;
  for (int32_t r : live) {
    if (!bad->second.count(r)) out.push_back(r);
  }
  return out;
}

std::vector<int32_t> MasterServer::ReadableReplicas(uint64_t handle) const {
  std::vector<int32_t> good = GoodReplicas(handle);
  return good.empty() ? LiveReplicas(handle) : good;
}

namespace {
// Adds [lo, hi) to a sorted list of disjoint ranges, merging neighbours.
void MergeRange(std::vector<ByteRange>* v, uint64_t lo, uint64_t hi) {
  if (hi <= lo) return;
  std::vector<ByteRange> out;
  for (const ByteRange& r : *v) {
    if (r.offset + r.length < lo || hi < r.offset) {
      out.push_back(r);
    } else {
      lo = std::min(lo, r.offset);
      hi = std::max(hi, r.offset + r.length);
    }
  }
  out.push_back(ByteRange{lo, hi - lo});
  std::sort(out.begin(), out.end(),
            [](const ByteRange& a, const ByteRange& b) { return a.offset < b.offset; });
  *v = std::move(out);
}

// Ranges in both a and b (each sorted and disjoint).
std::vector<ByteRange> Intersect(const std::vector<ByteRange>& a, const std::vector<ByteRange>& b) {
  std::vector<ByteRange> out;
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    const uint64_t lo = std::max(a[i].offset, b[j].offset);
    const uint64_t hi = std::min(a[i].offset + a[i].length, b[j].offset + b[j].length);
    if (lo < hi) out.push_back(ByteRange{lo, hi - lo});
    if (a[i].offset + a[i].length < b[j].offset + b[j].length) {
      ++i;
    } else {
      ++j;
    }
  }
  return out;
}
}  // namespace

void MasterServer::MarkDamaged(uint64_t handle, int32_t rank,
                               const std::vector<ByteRange>& ranges) {
  if (meta_->FindChunk(handle) == nullptr) return;
  auto known = damaged_.find(handle);
  if (known == damaged_.end() || known->second.count(rank) == 0) {
    repair_backoff_.erase(handle);  // news: worth a repair again
  }
  auto& mine = damaged_[handle][rank];
  if (ranges.empty()) {
    // Somewhere: the whole chunk until a scan (verify, repair) says where.
    const ChunkInfo* ci = meta_->FindChunk(handle);
    (void)ci;
    MergeRange(&mine, 0, UINT64_MAX / 2);
  }
  for (const ByteRange& r : ranges)
    MergeRange(&mine, r.offset, r.offset + std::max<uint64_t>(r.length, 1));
  // The replica stays (it serves its good blocks and may hold the only good
  // copy of others). The chunk's lease ends here: the next one waits for the
  // repair, at a new version, so no mutation races it.
  leases_.erase(handle);
  stats_.counters["damaged_replicas_reported"]++;
}

void MasterServer::ClearDamaged(uint64_t handle, int32_t rank) {
  auto it = damaged_.find(handle);
  if (it == damaged_.end()) return;
  it->second.erase(rank);
  if (it->second.empty()) damaged_.erase(it);
}

std::vector<ByteRange> MasterServer::Unreadable(uint64_t handle) const {
  std::vector<int32_t> live = LiveReplicas(handle);
  auto bad = damaged_.find(handle);
  if (live.empty() || bad == damaged_.end()) return {};
  std::vector<ByteRange> common;
  bool first = true;
  for (int32_t r : live) {
    auto d = bad->second.find(r);
    if (d == bad->second.end()) return {};  // a good replica: everything readable
    common = first ? d->second : Intersect(common, d->second);
    first = false;
  }
  return common;
}

bool MasterServer::Repairable(uint64_t handle) const {
  // A source is any other live replica at the logged version: even one with
  // damage of its own may hold good copies of the blocks this one lacks.
  auto bad = damaged_.find(handle);
  if (bad == damaged_.end()) return false;
  std::vector<int32_t> live = LiveReplicas(handle);
  if (live.size() < 2) return false;
  for (int32_t r : live) {
    if (bad->second.count(r) != 0) return true;
  }
  return false;
}

bool MasterServer::StartRepair(uint64_t handle, uint64_t now) {
  const ChunkInfo* ci = meta_->FindChunk(handle);
  if (ci == nullptr || repairs_.count(handle) || clones_.count(handle) ||
      prepare_by_handle_.count(handle)) {
    return false;
  }
  auto back = repair_backoff_.find(handle);
  if (back != repair_backoff_.end() && now < back->second) return false;
  std::vector<int32_t> live = LiveReplicas(handle);
  // A new version on every live replica, with no primary: a mutation of the
  // old lease that is still on its way is refused everywhere, so nothing
  // lands while damaged blocks are rewritten from their peers.
  const uint64_t version = ci->version + 1;
  if (!Mutate(MetaOp::SetVersion(handle, version)).ok()) return false;
  RepairOp& op = repairs_[handle];
  op.version = version;
  op.replicas = live;
  op.deadline_us = now + static_cast<uint64_t>(cfg_.request_timeout_ms) * 1000 * 4;
  for (const auto& [rank, ranges] : damaged_[handle]) {
    if (std::find(live.begin(), live.end(), rank) != live.end()) op.targets.push_back(rank);
  }
  leases_.erase(handle);
  for (int32_t r : live) {
    PrepareChunkReq req;
    req.handle = handle;
    req.version = version;
    Header h = OrderHeader(MsgType::kPrepareChunk, cfg_.request_timeout_ms / 2);
    repair_req_[h.id] = handle;
    ++op.waiting;
    Defer(r, EncodeMessage(h, req));  // after the log sync that made the version durable
  }
  stats_.counters["repairs_started"]++;
  return true;
}

void MasterServer::OnRepairPrepared(uint64_t handle) {
  auto it = repairs_.find(handle);
  if (it == repairs_.end() || it->second.waiting > 0) return;
  if (!it->second.ok) return EndRepair(handle, false);
  SendNextRepair(handle);
}

void MasterServer::SendNextRepair(uint64_t handle) {
  auto it = repairs_.find(handle);
  if (it == repairs_.end()) return;
  RepairOp& op = it->second;
  if (op.targets.empty()) return EndRepair(handle, true);
  const int32_t target = op.targets.front();
  RepairReq req;
  req.handle = handle;
  req.version = op.version;
  // Sources: the replicas that are not damaged first, then the others.
  std::vector<int32_t> good = GoodReplicas(handle);
  for (int32_t r : good) {
    if (r != target) req.sources.push_back(r);
  }
  for (int32_t r : op.replicas) {
    if (r != target && std::find(req.sources.begin(), req.sources.end(), r) == req.sources.end()) {
      req.sources.push_back(r);
    }
  }
  Header h = OrderHeader(MsgType::kRepair, cfg_.request_timeout_ms * 4);
  op.req_id = h.id;
  repair_req_[h.id] = handle;
  t_->Send(target, EncodeMessage(h, req));
}

void MasterServer::OnRepairReply(Message& m) {
  auto rq = repair_req_.find(m.h.id);
  if (rq == repair_req_.end()) return;
  const uint64_t handle = rq->second;
  repair_req_.erase(rq);
  auto it = repairs_.find(handle);
  if (it == repairs_.end() || it->second.req_id != m.h.id) return;
  RepairOp& op = it->second;
  op.req_id = 0;
  const int32_t target = op.targets.front();
  op.targets.erase(op.targets.begin());
  RepairReply rep;
  if (m.status().ok() && m.Decode(&rep).ok()) {
    stats_.counters["repair_bytes"] += rep.repaired_bytes;
    if (rep.still_damaged.empty()) {
      ClearDamaged(handle, target);
      stats_.counters["replicas_repaired"]++;
      GFS_LOG_INFO("master: chunk %016llx: the replica on rank %d is repaired (%llu bytes)",
                   static_cast<unsigned long long>(handle), target,
                   static_cast<unsigned long long>(rep.repaired_bytes));
    } else {
      damaged_[handle][target] = rep.still_damaged;
      stats_.counters["replicas_partly_repaired"]++;
      op.partial = true;
    }
  } else {
    op.ok = false;
    stats_.counters["repairs_failed"]++;
  }
  SendNextRepair(handle);
}

void MasterServer::EndRepair(uint64_t handle, bool ok) {
  auto it = repairs_.find(handle);
  if (it == repairs_.end()) return;
  RepairOp op = std::move(it->second);
  repairs_.erase(it);
  for (auto q = repair_req_.begin(); q != repair_req_.end();) {
    q = q->second == handle ? repair_req_.erase(q) : std::next(q);
  }
  if (!ok || damaged_.count(handle) != 0) {
    // Not (fully) repaired: not tried again for a while; meanwhile the lease
    // requests go ahead with the replicas as they are. Blocks no replica
    // holds good will not be found on the next try either: a minute, unless
    // new damage is reported meanwhile.
    const uint64_t wait = op.partial && ok
                              ? 60000000ull
                              : std::max<uint64_t>(5ull * cfg_.heartbeat_ms * 1000, 2000000);
    repair_backoff_[handle] = Now() + wait;
  } else {
    repair_backoff_.erase(handle);
  }
  for (Message& w : op.waiters) Dispatch(w);
}

void MasterServer::ScheduleRepairs(uint64_t now) {
  size_t running = repairs_.size();
  std::vector<uint64_t> handles;
  for (const auto& [h, reps] : damaged_) handles.push_back(h);
  for (uint64_t h : handles) {
    if (running >= 4) break;
    auto lease = leases_.find(h);
    if (lease != leases_.end() && lease->second.expiry_us > now) continue;
    if (Repairable(h) && StartRepair(h, now)) ++running;
  }
}

void MasterServer::ResolveLengths() {
  lengths_resolved_ = true;
  for (const auto& [handle, lens] : reported_len_) {
    const ChunkInfo* ci = meta_->FindChunk(handle);
    if (ci == nullptr || lens.size() < 2) continue;
    uint64_t longest = 0;
    for (const auto& [rank, len] : lens) longest = std::max(longest, len);
    // Only beside a longest replica that is whole: never the last good copy.
    auto bad = damaged_.find(handle);
    bool whole = false;
    for (const auto& [rank, len] : lens) {
      whole = whole || (len == longest && (bad == damaged_.end() || !bad->second.count(rank)));
    }
    if (!whole) continue;
    std::vector<int32_t> shorter;
    for (const auto& [rank, len] : lens) {
      if (len < longest) shorter.push_back(rank);
    }
    if (shorter.empty()) continue;
    auto& loc = locations_[handle];
    for (int32_t r : shorter) {
      auto pos = std::find(loc.begin(), loc.end(), r);
      if (pos == loc.end()) continue;
      loc.erase(pos);
      servers_[r].to_delete.push_back(handle);
      ClearDamaged(handle, r);
      stats_.counters["short_replicas_dropped"]++;
    }
    TouchLocation(handle);
    GFS_LOG_WARN(
        "master: chunk %016llx: %zu replica(s) at version %llu shorter than %llu "
        "bytes (a mutation cut short by a crash); the longest are kept",
        static_cast<unsigned long long>(handle), shorter.size(),
        static_cast<unsigned long long>(ci->version), static_cast<unsigned long long>(longest));
  }
  reported_len_.clear();
}

void MasterServer::ScheduleClones(uint64_t now) {
  struct Need {
    uint64_t handle;
    uint32_t missing;
    std::vector<int32_t> good;
  };
  std::vector<Need> needs;
  meta_->ForEachFile([&](const std::string&, const FileInfo& f) {
    for (uint64_t h : f.chunks) {
      if (h == 0 || clones_.count(h) || prepare_by_handle_.count(h) || repairs_.count(h)) continue;
      auto back = clone_backoff_.find(h);
      if (back != clone_backoff_.end() && now < back->second) continue;  // it just failed
      // A damaged replica is repaired in place, not replaced.
      if (damaged_.count(h) != 0 && Repairable(h)) continue;
      std::vector<int32_t> good = GoodReplicas(h);
      if (good.empty() || good.size() >= f.replication) continue;
      auto lease = leases_.find(h);
      if (lease != leases_.end() && lease->second.expiry_us > now) continue;
      needs.push_back({h, static_cast<uint32_t>(f.replication - good.size()), std::move(good)});
    }
  });
  if (needs.empty()) return;
  // Two replicas missing before one.
  std::stable_sort(needs.begin(), needs.end(),
                   [](const Need& a, const Need& b) { return a.missing > b.missing; });
  std::set<int32_t> busy;  // one clone per target at a time (throttle)
  for (const auto& [h, op] : clones_) busy.insert(op.target);
  for (const Need& n : needs) {
    std::vector<ServerLoad> loads = Loads(0, busy);
    std::vector<int> exclude(n.good.begin(), n.good.end());
    auto loc = locations_.find(n.handle);
    if (loc != locations_.end())
      exclude.insert(exclude.end(), loc->second.begin(), loc->second.end());
    // A server whose replica is corrupt may take the new copy: the clone
    // replaces the bad replica.
    std::vector<int> target = placement_.ChooseNew(loads, 1, exclude, ++seed_);
    if (target.empty()) continue;
    const ChunkInfo* ci = meta_->FindChunk(n.handle);
    CloneOp op;
    op.target = target[0];
    op.source = n.good[static_cast<size_t>(seed_ % n.good.size())];
    op.version = ci->version;
    op.deadline_us = now + static_cast<uint64_t>(cfg_.request_timeout_ms) * 1000 * 4;
    Header h = OrderHeader(MsgType::kClone, cfg_.request_timeout_ms * 4);
    clone_req_[h.id] = n.handle;
    t_->Send(op.target, EncodeMessage(h, CloneReq{n.handle, op.version, op.source}));
    busy.insert(op.target);
    auto& del = servers_[op.target].to_delete;
    del.erase(std::remove(del.begin(), del.end(), n.handle), del.end());
    clones_[n.handle] = std::move(op);
    stats_.counters["clones_ordered"]++;
  }
}

void MasterServer::OnCloneReply(Message& m) {
  auto r = clone_req_.find(m.h.id);
  if (r == clone_req_.end()) return;
  uint64_t handle = r->second;
  clone_req_.erase(r);
  auto it = clones_.find(handle);
  if (it == clones_.end()) return;
  CloneOp op = std::move(it->second);
  clones_.erase(it);
  const ChunkInfo* ci = meta_->FindChunk(handle);
  if (m.status().ok() && ci != nullptr && ci->version == op.version) {
    auto& loc = locations_[handle];
    if (std::find(loc.begin(), loc.end(), op.target) == loc.end()) loc.push_back(op.target);
    TouchLocation(handle);
    servers_[op.target].chunks++;
    ClearDamaged(handle, op.target);
    stats_.counters["clones_done"]++;
    clone_backoff_.erase(handle);
  } else {
    if (ci == nullptr || m.status().ok()) servers_[op.target].to_delete.push_back(handle);
    stats_.counters["clones_failed"]++;
    // Not ordered again at once (a target that keeps refusing would get
    // the order in a loop): after a heartbeat or so.
    clone_backoff_[handle] = Now() + std::max<uint64_t>(2ull * cfg_.heartbeat_ms * 1000, 500000);
  }
  for (Message& w : op.waiters) Dispatch(w);
  // The target is free again: order its next clone now, not at the next scan.
  ScheduleClones(Now());
}

void MasterServer::OnCorrupt(Message& m) {
  CorruptReq r;
  if (!m.Decode(&r).ok()) return;
  auto known = damaged_.find(r.handle);
  if (meta_->FindChunk(r.handle) != nullptr &&
      (known == damaged_.end() || known->second.count(m.source) == 0)) {
    GFS_LOG_WARN(
        "master: chunk %016llx on rank %d failed its checksum; the replica is kept and repaired "
        "from a good copy",
        static_cast<unsigned long long>(r.handle), m.source);
  }
  MarkDamaged(r.handle, m.source, r.ranges);
  DeferReply(m, Empty{});
}

void MasterServer::OnReport(Message& m) {
  ReportReply rep;
  rep.store_id = store_id();
  for (const auto& [rank, st] : servers_) {
    ServerReport s;
    s.rank = rank;
    s.id = st.id;
    s.dir_name = st.dir_name;
    s.host = st.host;
    s.alive = st.alive;
    s.capacity = st.capacity;
    s.used = st.used;
    s.chunks = st.chunks;
    rep.servers.push_back(s);
  }
  meta_->ForEachFile([&](const std::string&, const FileInfo& f) {
    for (uint64_t h : f.chunks) {
      if (h == 0) continue;
      ++rep.chunks;
      size_t good = GoodReplicas(h).size();
      if (LiveReplicas(h).empty() || !Unreadable(h).empty()) {
        ++rep.lost;
      } else if (good < f.replication) {
        ++rep.under_replicated;
      }
    }
  });
  DeferReply(m, rep);
}

Status MasterServer::FsckAnswer(const std::string& path, FsckReply* rep) const {
  std::string norm;
  GFS_RETURN_IF_ERROR(NormalizePath(path, &norm));
  if (!meta_->Exists(norm)) return Status::NotFound(norm);
  const std::string prefix = norm == "/" ? "/" : norm + "/";
  meta_->ForEachFile([&](const std::string& p, const FileInfo& f) {
    if (p != norm && p.rfind(prefix, 0) != 0) return;
    FsckFile ff;
    ff.path = p;
    ff.replication = f.replication;
    ff.length = f.length;
    ff.chunk_size = f.chunk_size;
    for (size_t i = 0; i < f.chunks.size(); ++i) {
      if (f.chunks[i] == 0) continue;
      FsckChunk c;
      c.index = static_cast<uint32_t>(i);
      c.handle = f.chunks[i];
      const ChunkInfo* ci = meta_->FindChunk(c.handle);
      c.version = ci ? ci->version : 0;
      c.replicas = GoodReplicas(c.handle);
      auto bad = damaged_.find(c.handle);
      if (bad != damaged_.end()) {
        std::vector<int32_t> live = LiveReplicas(c.handle);
        for (const auto& [rank, ranges] : bad->second) {
          if (std::find(live.begin(), live.end(), rank) == live.end()) continue;
          c.corrupt.push_back(rank);
          ReplicaDamage d;
          d.rank = rank;
          for (const ByteRange& r : ranges) {
            // Clipped to the chunk ("somewhere" is the whole chunk).
            const uint64_t end = std::min<uint64_t>(r.offset + r.length, f.chunk_size);
            if (r.offset < end) d.ranges.push_back(ByteRange{r.offset, end - r.offset});
          }
          c.damaged.push_back(std::move(d));
        }
        for (const ByteRange& r : Unreadable(c.handle)) {
          const uint64_t end = std::min<uint64_t>(r.offset + r.length, f.chunk_size);
          if (r.offset < end) c.unreadable.push_back(ByteRange{r.offset, end - r.offset});
        }
      }
      auto st = stale_seen_.find(c.handle);
      c.stale = st == stale_seen_.end() ? 0 : st->second;
      ff.chunks.push_back(std::move(c));
    }
    rep->files.push_back(std::move(ff));
  });
  std::sort(rep->files.begin(), rep->files.end(),
            [](const FsckFile& a, const FsckFile& b) { return a.path < b.path; });
  return Status::OK();
}

void MasterServer::OnFsck(Message& m) {
  FsckReq r;
  Status s = m.Decode(&r);
  if (!s.ok()) return DeferError(m, s);
  if (r.path.empty()) r.path = "/";
  if (!r.verify) {
    FsckReply rep;
    s = FsckAnswer(r.path, &rep);
    if (!s.ok()) return DeferError(m, s);
    return DeferReply(m, rep);
  }
  // Ask every live chunkserver to verify all its replicas, answer when all did.
  uint64_t key = ++next_id_;
  FsckOp& op = fscks_[key];
  op.req = m;
  op.path = r.path;
  op.deadline_us = Now() + static_cast<uint64_t>(cfg_.request_timeout_ms) * 1000 * 4;
  for (const auto& [rank, st] : servers_) {
    if (!st.alive) continue;
    Header h = OrderHeader(MsgType::kVerify, cfg_.request_timeout_ms * 4);
    verify_req_[h.id] = key;
    ++op.waiting;
    t_->Send(rank, EncodeMessage(h, VerifyReq{}));
  }
  if (op.waiting == 0) {
    FsckReply rep;
    s = FsckAnswer(r.path, &rep);
    s.ok() ? DeferReply(m, rep) : DeferError(m, s);
    fscks_.erase(key);
  }
}

void MasterServer::OnVerifyReply(Message& m) {
  auto it = verify_req_.find(m.h.id);
  if (it == verify_req_.end()) return;
  uint64_t key = it->second;
  verify_req_.erase(it);
  VerifyReply v;
  if (m.status().ok() && m.Decode(&v).ok()) {
    // Every replica this server holds was checked: the listed ones have
    // exactly that damage, the others none.
    std::set<uint64_t> listed;
    for (const ChunkDamage& d : v.damaged) {
      listed.insert(d.handle);
      ClearDamaged(d.handle, m.source);
      MarkDamaged(d.handle, m.source, d.ranges);
    }
    std::vector<uint64_t> clean;
    for (const auto& [h, reps] : damaged_) {
      // A replica under repair was not verified: its repair says.
      if (reps.count(m.source) != 0 && listed.count(h) == 0 && repairs_.count(h) == 0) {
        clean.push_back(h);
      }
    }
    for (uint64_t h : clean) ClearDamaged(h, m.source);
    stats_.counters["replicas_verified"] += v.checked;
  }
  auto op = fscks_.find(key);
  if (op == fscks_.end()) return;
  if (--op->second.waiting == 0) {
    FsckReply rep;
    Status s = FsckAnswer(op->second.path, &rep);
    s.ok() ? DeferReply(op->second.req, rep) : DeferError(op->second.req, s);
    fscks_.erase(op);
  }
}

void MasterServer::OnStats(Message& m) {
  StatsReply r;
  for (const auto& [k, v] : stats_.counters) {
    r.names.push_back(k);
    r.values.push_back(v);
  }
  DeferReply(m, r);
}

void MasterServer::NoteClockGap(uint64_t now) {
  const uint64_t last = last_tick_us_;
  last_tick_us_ = now;
  const uint64_t stall = std::max<uint64_t>(2ull * cfg_.heartbeat_ms * 1000, 1000000);
  if (last == 0 || (now >= last && now - last <= stall)) return;
  // This rank did not run for a while (stopped, starved) or its clock
  // jumped: what it did not hear meanwhile is not the others' silence. Every
  // peer gets a fresh interval (leases keep their expiry: one that now looks
  // expired is granted anew at a new version, which is safe).
  for (auto& [rank, st] : servers_) st.last_seen_us = now;
  last_heard_us_ = now;
  if (now < last) {
    // Back by d: a lease's end and a prepare's deadline move with it.
    const uint64_t d = last - now;
    for (auto& [handle, l] : leases_) l.expiry_us = l.expiry_us > d ? l.expiry_us - d : 0;
    for (auto& [key, p] : prepares_) p.deadline_us = p.deadline_us > d ? p.deadline_us - d : 0;
  }
  for (auto& [rank, p] : peers_) {
    if (p.waiting_since != 0) p.waiting_since = now;
    p.last_send_us = std::min(p.last_send_us, now);
  }
  stats_.counters["clock_gaps"]++;
}

void MasterServer::Tick(uint64_t) {
  const uint64_t now = Now();
  NoteClockGap(now);
  if (mode_ == Mode::kShadow) {
    ShadowTick(now);
    AfterBatch();
    return;
  }
  if (!peers_.empty()) ShipLog(now, true);
  if (!serving_) {
    bool all = std::all_of(cs_ranks_.begin(), cs_ranks_.end(),
                           [&](int r) { return servers_[r].registered; });
    const uint64_t grace = adopt_until_us_ ? adopt_until_us_ : start_us_ + kRegisterGraceUs;
    if (all || now > grace) {
      serving_ = true;
      if (fresh_ && refusal_.ok()) CreateStore();
      if (!took_over_) {
        // Clients of this job wrote nothing yet: what the replicas hold past
        // a file's logged length was acknowledged (or was being written) by
        // an earlier job; the chunks with no byte anywhere are freed.
        RecoverLengths();
        DropChunksPastEnd();
      }
      ResolveBehind();
      DispatchHeld();
      AfterBatch();
    }
  }
  if (!revive_req_.empty() && now >= revive_deadline_us_) {
    revive_req_.clear();  // unanswered: those replicas stay out of service
    DispatchHeld();
  }
  // A chunkserver silent for several heartbeat intervals is taken as dead.
  const uint64_t dead_after = static_cast<uint64_t>(cfg_.heartbeat_ms) * 1000 * 5 +
                              static_cast<uint64_t>(cfg_.request_timeout_ms) * 1000;
  for (auto& [rank, st] : servers_) {
    if (st.alive && Elapsed(now, st.last_seen_us) > dead_after) {
      st.alive = false;
      GFS_LOG_WARN("master: chunkserver rank %d (%s) missed its heartbeats", rank,
                   st.dir_name.c_str());
    }
  }
  if (now >= next_decay_us_) {
    next_decay_us_ = now + 10ull * 1000 * 1000;
    for (auto& [rank, st] : servers_) st.recent_creations /= 2;
  }
  for (auto it = prepares_.begin(); it != prepares_.end();) {
    auto next = std::next(it);
    if (now >= it->second.deadline_us) {
      // Replicas that never answered count as failed.
      Prepare& p = it->second;
      for (auto q = prepare_req_.begin(); q != prepare_req_.end();) {
        if (q->second == it->first) {
          q = prepare_req_.erase(q);
        } else {
          ++q;
        }
      }
      for (int32_t r : p.replicas) {
        if (std::find(p.answered.begin(), p.answered.end(), r) == p.answered.end()) {
          p.failed.push_back(r);
        }
      }
      p.waiting = 0;
      FinishPrepare(it->first);
    }
    it = next;
  }
  for (auto it = clones_.begin(); it != clones_.end();) {
    if (now >= it->second.deadline_us) {
      for (auto q = clone_req_.begin(); q != clone_req_.end();) {
        q = q->second == it->first ? clone_req_.erase(q) : std::next(q);
      }
      std::vector<Message> waiters = std::move(it->second.waiters);
      servers_[it->second.target].to_delete.push_back(it->first);
      it = clones_.erase(it);
      for (Message& w : waiters) Dispatch(w);
      stats_.counters["clones_failed"]++;
    } else {
      ++it;
    }
  }
  std::vector<uint64_t> late_repairs;
  for (const auto& [h, op] : repairs_) {
    if (now >= op.deadline_us) late_repairs.push_back(h);
  }
  for (uint64_t h : late_repairs) {
    stats_.counters["repairs_timed_out"]++;
    EndRepair(h, false);
  }
  if (serving_ && !lengths_resolved_ && !took_over_ &&
      std::all_of(cs_ranks_.begin(), cs_ranks_.end(), [&](int r) {
        auto it = servers_.find(r);
        return it != servers_.end() && it->second.registered;
      })) {
    ResolveLengths();
  }
  if (serving_ && now >= next_clone_scan_us_) {
    next_clone_scan_us_ = now + std::min<uint64_t>(500000, cfg_.heartbeat_ms * 1000ull);
    ScheduleRepairs(now);
    ScheduleClones(now);
  }
  for (auto it = fscks_.begin(); it != fscks_.end();) {
    if (now >= it->second.deadline_us) {
      DeferError(it->second.req, Status::Timeout("a chunkserver did not finish verifying in time"));
      it = fscks_.erase(it);
    } else {
      ++it;
    }
  }
  if (shutting_down_ && !done_ && (shutdown_waiting_ == 0 || now >= shutdown_deadline_us_)) {
    for (Message& m : done_msgs_) DeferReply(m, Empty{});
    done_msgs_.clear();
    AfterBatch();
    done_ = true;
  }
  AfterBatch();
}

}  // namespace gfs
