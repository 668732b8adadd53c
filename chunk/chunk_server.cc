// ChunkServer: start-up, registration and heartbeats, dispatch of every
// message, the master's orders (prepare, delete, shutdown) and its epoch,
// the periodic Tick. The rest of the class lives in the files named in
// doc/architecture.md (push_buffer.cc, mutation_order.cc, appends.cc,
// reads.cc, sync_worker.cc, clone_repair.cc).
#include "chunk/chunk_server.h"

#include <filesystem>

#include "common/clock.h"
#include "common/log.h"

namespace gfs {

namespace {
// `dir` made absolute (as it is if the working directory cannot be read): the
// store's file names go to clients for short-circuit reads.
std::string Absolute(const std::string& dir) {
  std::error_code ec;
  std::string abs = std::filesystem::absolute(dir, ec).string();
  return ec ? dir : abs;
}
}  // namespace

std::vector<ByteRange> ChunkServer::ToWire(const std::vector<Range>& v) {
  std::vector<ByteRange> out;
  out.reserve(v.size());
  for (const Range& r : v) out.push_back(ByteRange{r.offset, r.length});
  return out;
}

ChunkServer::ChunkServer(Transport* t, Env* env, const JobConfig& cfg, int master_rank,
                         std::string dir, uint64_t server_id, std::string host)
    : t_(t),
      env_(env),
      cfg_(cfg),
      master_(master_rank),
      dir_(std::move(dir)),
      server_id_(server_id),
      host_(std::move(host)),
      store_(env, Absolute(dir_)),
      calls_(t, env) {
  store_.set_writeback_bytes(cfg_.writeback_bytes);
}

Status ChunkServer::Start() {
  if (cfg_.format) {
    // gfs format: every chunk of this directory is discarded, and its store.
    const std::string chunks = dir_ + "/chunks";
    std::vector<std::string> names;
    if (env_->FileExists(chunks)) GFS_RETURN_IF_ERROR(env_->GetChildren(chunks, &names));
    for (const std::string& n : names) {
      if (n == "LOCK") continue;
      GFS_RETURN_IF_ERROR(env_->RemoveFile(chunks + "/" + n));
    }
    if (env_->FileExists(dir_ + "/STORE")) GFS_RETURN_IF_ERROR(env_->RemoveFile(dir_ + "/STORE"));
    if (!names.empty()) GFS_RETURN_IF_ERROR(env_->SyncDir(chunks));
    GFS_RETURN_IF_ERROR(env_->SyncDir(dir_));
  }
  GFS_RETURN_IF_ERROR(LoadStoreId(env_, dir_, &store_id_));
  GFS_RETURN_IF_ERROR(store_.Open());
  if (store_.upgraded_from() != 0) {
    GFS_LOG_WARN("chunkserver %s: upgraded %zu chunks from chunk store format %u to %u",
                 dir_.c_str(), store_.NumChunks(), store_.upgraded_from(), ChunkStore::kFormat);
  }
  stats_.counters[Counter::kIntentsFinishedAtOpen] = store_.intents_finished();
  stats_.counters[Counter::kUnrecordedTailBytesAtOpen] = store_.unrecorded_tail_bytes();
  SendRegister();
  return Status::OK();
}

uint64_t ChunkServer::Capacity() {
  if (cfg_.capacity > 0) return cfg_.capacity;
  auto free = env_->FreeSpace(dir_);
  return (free.ok() ? *free : 0) + store_.UsedBytes();
}

Status ChunkServer::RoomFor(uint64_t handle, uint64_t end) {
  if (cfg_.capacity == 0) return Status::OK();
  const uint64_t used = store_.UsedBytes();
  auto meta = store_.Meta(handle);
  if (!meta.ok()) {
    // A new chunk: only while some space is left under the cap.
    if (used < cfg_.capacity) return Status::OK();
  } else {
    uint64_t grow = end > meta->length ? end - meta->length : 0;
    if (used + grow <= cfg_.capacity) return Status::OK();
  }
  stats_.counters[Counter::kNoSpace]++;
  std::string msg = "chunkserver " + dir_ + " is at its capacity (";
  msg += std::to_string(used) + " of " + std::to_string(cfg_.capacity) + " bytes used)";
  return Status::NoSpace(msg);
}

void ChunkServer::SendRegister() {
  RegisterReq r;
  r.server_id = server_id_;
  auto slash = dir_.rfind('/');
  r.dir_name = slash == std::string::npos ? dir_ : dir_.substr(slash + 1);
  r.host = host_;
  r.capacity = Capacity();
  r.used = store_.UsedBytes();
  r.store_id = store_id_;
  for (const ChunkMeta& c : store_.List()) {
    r.chunks.push_back({c.handle, c.version, c.length, ToWire(store_.StartupDamage(c.handle))});
  }
  register_id_ = ++next_id_;
  register_sent_us_ = Now();
  LogIfSendFailed(SendRequest(t_, master_, r, register_id_, cfg_.request_timeout_ms, master_epoch_),
                  "a registration");
}

void ChunkServer::Reply(const Message& m, const Status& s) {
  if (s.ok()) {
    LogIfSendFailed(SendReply(t_, m, Empty{}), "a reply");
  } else {
    LogIfSendFailed(SendErrorReply(t_, m, s), "a reply");
  }
}

void ChunkServer::Handle(Message& m) {
  if (!MasterEpochOk(m)) return;
  // Anything but the master's bookkeeping and stats counts as I/O: the
  // scrubber stays out of its way.
  const MsgType type = m.type();
  // Only pushed data is received while a write is under way in the apply
  // thread: everything else may use the store, and sees that write done
  // (the next write or apply first checksums its data, then waits).
  if (m.is_reply() ||
      (type != MsgType::kPushData && type != MsgType::kWrite && type != MsgType::kApply)) {
    DrainApply();
  }
  if (type != MsgType::kHeartbeat && type != MsgType::kRegister && type != MsgType::kGetStats) {
    last_io_us_ = Now();
  }
  // Only more appends (and their data) may pass queued appends: everything
  // else sees them written.
  if (!queued_appends_.empty() &&
      (m.is_reply() || (type != MsgType::kAppend && type != MsgType::kPushData))) {
    FlushAppends();
  }
  if (refused_) {
    // Of another store: this server serves nothing (the master said why).
    if (!m.is_reply()) {
      LogIfSendFailed(
          SendErrorReply(t_, m,
                         Status(Code::kWrongStore, "chunkserver " + dir_ + " is of another store")),
          "a reply");
    }
    if (m.type() == MsgType::kShutdown) done_ = true;
    return;
  }
  if (m.is_reply()) {
    // Replies to calls_ (applies, clone and repair reads) never come here:
    // the event loop hands them to their continuations.
    switch (m.type()) {
      case MsgType::kRegister:
        OnRegisterReply(m);
        return;
      case MsgType::kHeartbeat:
        OnHeartbeatReply(m);
        return;
      default:
        return;  // late or unknown reply
    }
  }
  switch (m.type()) {
    case MsgType::kPushData:
      OnPushData(m);
      return;
    case MsgType::kWrite:
      OnWrite(m);
      return;
    case MsgType::kAppend:
      OnAppend(m);
      return;
    case MsgType::kCommitted:
      OnCommitted(m);
      return;
    case MsgType::kApply:
      OnApply(m);
      return;
    case MsgType::kRead:
      OnRead(m);
      return;
    case MsgType::kReadLocal:
      OnReadLocal(m);
      return;
    case MsgType::kRepair:
      OnRepair(m);
      return;
    case MsgType::kSync:
      OnSync(m);
      return;
    case MsgType::kPrepareChunk:
      OnPrepare(m);
      return;
    case MsgType::kShutdown:
      OnShutdown(m);
      return;
    case MsgType::kVerify:
      OnVerify(m);
      return;
    case MsgType::kClone:
      OnClone(m);
      return;
    case MsgType::kCopyChunk:
      OnCopyChunk(m);
      return;
    case MsgType::kRevokeLease:
      OnRevokeLease(m);
      return;
    case MsgType::kHeldChunks:
      OnHeldChunks(m);
      return;
    case MsgType::kGetStats:
      OnStats(m);
      return;
    case MsgType::kNewMaster:
      return;  // handled by MasterEpochOk
    default:
      LogIfSendFailed(SendErrorReply(t_, m,
                                     Status::Protocol(std::string("chunkserver does not serve ") +
                                                      MsgTypeName(m.h.type))),
                      "a reply");
  }
}

ChunkServer::~ChunkServer() {
  StopApplyThread();
  StopSyncThread();
}

void ChunkServer::OnPrepare(Message& m) {
  PrepareChunkReq p;
  Status s = m.Decode(&p);
  if (!s.ok()) return Reply(m, s);
  if (p.create && !store_.Has(p.handle)) {
    s = RoomFor(p.handle, 0);
    if (s.ok()) s = store_.Create(p.handle, p.version);
  } else {
    auto meta = store_.Meta(p.handle);
    if (!meta.ok()) return Reply(m, meta.status());
    if (meta->version < p.version) s = store_.SetVersion(p.handle, p.version);
  }
  if (!s.ok()) return Reply(m, s);
  if (p.primary) {
    // Expire our view of the lease a tenth early: the master counts from
    // before it sent the grant, we count from after we received it.
    uint64_t lease_us = static_cast<uint64_t>(p.lease_ms) * 1000;
    leases_[p.handle] = Now() + lease_us - lease_us / 10;
    next_serial_[p.handle] = 0;
  } else {
    leases_.erase(p.handle);
  }
  Reply(m, Status::OK());
}

void ChunkServer::DeleteChunks(const std::vector<uint64_t>& handles) {
  for (uint64_t h : handles) {
    if (repairs_.count(h) != 0) continue;  // never under a repair (the master waits for it)
    if (store_.Has(h) && store_.Delete(h).ok()) stats_.counters[Counter::kChunksDeleted]++;
    leases_.erase(h);
  }
}

bool ChunkServer::MasterEpochOk(Message& m) {
  // Messages that come from the master (orders, and replies to what this
  // server sent the master) carry the master's epoch: an older epoch is a
  // deposed master and is refused; a newer one is the master now.
  bool from_master = false;
  if (m.is_reply()) {
    from_master = m.type() == MsgType::kRegister || m.type() == MsgType::kHeartbeat;
  } else {
    switch (m.type()) {
      case MsgType::kPrepareChunk:
      case MsgType::kShutdown:
      case MsgType::kVerify:
      case MsgType::kHeldChunks:
      case MsgType::kClone:
      case MsgType::kRepair:
      case MsgType::kCopyChunk:
      case MsgType::kRevokeLease:
      case MsgType::kNewMaster:
        from_master = true;
        break;
      default:
        break;
    }
  }
  if (!from_master) return true;
  if (m.h.epoch < master_epoch_) {
    stats_.counters[Counter::kStaleEpochRefused]++;
    if (!m.is_reply()) {
      LogIfSendFailed(
          SendErrorReply(t_, m,
                         Status(Code::kStaleEpoch,
                                "orders of master epoch " + std::to_string(m.h.epoch) +
                                    " refused: epoch " + std::to_string(master_epoch_) + " rules"),
                         master_epoch_),
          "a reply");
    }
    return false;
  }
  if (m.type() == MsgType::kNewMaster) {
    NewMasterReq r;
    if (m.Decode(&r).ok() && r.epoch > master_epoch_) {
      master_epoch_ = r.epoch;
      master_ = r.master;
      registered_ = false;
      stats_.counters[Counter::kNewMasters]++;
      SendRegister();  // the new master rebuilds chunk locations from it
    }
    return false;
  }
  if (m.h.epoch > master_epoch_) {
    master_epoch_ = m.h.epoch;
    if (!m.is_reply()) master_ = m.source;
  }
  return true;
}

void ChunkServer::OnRegisterReply(Message& m) {
  if (m.h.id != register_id_) return;
  if (m.status().code() == Code::kWrongStore) {
    // Not this store's: serve nothing and delete nothing (the master says why).
    refused_ = true;
    stats_.counters[Counter::kRefusedWrongStore]++;
    return;
  }
  RegisterReply r;
  if (!m.status().ok() || !m.Decode(&r).ok()) return;
  if (r.store_id != 0 && r.store_id != store_id_ && (store_id_ == 0 || store_.NumChunks() == 0)) {
    // A new or empty directory (or one of an older format) joins the
    // master's store; one holding chunks of another store is refused instead.
    Status s = SaveStoreId(env_, dir_, r.store_id);
    if (!s.ok()) {
      GFS_LOG_ERROR("chunkserver %s: %s", dir_.c_str(), s.ToString().c_str());
      return;  // registers again later
    }
    store_id_ = r.store_id;
  }
  registered_ = true;
  DeleteChunks(r.delete_handles);
}

void ChunkServer::OnHeartbeatReply(Message& m) {
  HeartbeatReply r;
  if (!m.status().ok() || !m.Decode(&r).ok()) return;
  if (r.store_id != 0 && r.store_id != store_id_ && (store_id_ == 0 || store_.NumChunks() == 0) &&
      SaveStoreId(env_, dir_, r.store_id).ok()) {
    store_id_ = r.store_id;  // a new store got its identity
  }
  uint64_t lease_us = static_cast<uint64_t>(r.lease_ms) * 1000;
  for (uint64_t h : r.extended) {
    auto it = leases_.find(h);
    if (it != leases_.end()) it->second = Now() + lease_us - lease_us / 10;
  }
  DeleteChunks(r.delete_handles);
}

void ChunkServer::OnShutdown(Message& m) {
  StopSyncThread();  // answers the syncs still queued first
  Status s = store_.SyncAll();
  stats_.counters[Counter::kWritebacksEarly] = store_.writebacks_early();
  stats_.counters[Counter::kWritebacksBatched] = store_.writebacks_batched();
  stats_.counters[Counter::kEvictionsSynced] = store_.evictions_synced();
  Reply(m, s);
  done_ = true;
}

void ChunkServer::ReportCorrupt(uint64_t handle, const std::vector<Range>& ranges) {
  stats_.counters[Counter::kCorruptFound]++;
  CorruptReq r;
  r.handle = handle;
  r.ranges = ToWire(ranges);
  LogIfSendFailed(SendRequest(t_, master_, r, ++next_id_, cfg_.request_timeout_ms, master_epoch_),
                  "a report to the master");
}
void ChunkServer::OnStats(Message& m) {
  StatsReply r;
  for (const auto& [k, v] : stats_.counters.Named()) {
    r.names.push_back(k);
    r.values.push_back(v);
  }
  LogIfSendFailed(SendReply(t_, m, r), "a reply");
}

void ChunkServer::NoteClockGap(uint64_t now) {
  const uint64_t last = last_tick_us_;
  last_tick_us_ = now;
  if (last == 0 || now >= last) return;
  // The clock jumped back by `d`: every time kept moves back with it, so
  // what was due in 10 ms still is (a heartbeat, a lease's end).
  const uint64_t d = last - now;
  auto back = [&](uint64_t& t) { t = t > d ? t - d : 0; };
  back(register_sent_us_);
  back(next_heartbeat_us_);
  back(next_scrub_us_);
  back(last_io_us_);
  for (auto& [handle, expiry] : leases_) back(expiry);
  for (auto& [key, p] : pushes_) back(p.expires_us);
  stats_.counters[Counter::kClockGaps]++;
}

void ChunkServer::Tick(uint64_t) {
  DrainApply();
  FinishSyncs();
  if (refused_) return;
  const uint64_t now = Now();
  NoteClockGap(now);
  if (!registered_ &&
      Elapsed(now, register_sent_us_) > static_cast<uint64_t>(cfg_.request_timeout_ms) * 1000) {
    SendRegister();
  }
  if (registered_ && now >= next_heartbeat_us_) {
    next_heartbeat_us_ = now + static_cast<uint64_t>(cfg_.heartbeat_ms) * 1000;
    HeartbeatReq hb;
    hb.used = store_.UsedBytes();
    hb.capacity = Capacity();
    hb.num_chunks = static_cast<uint32_t>(store_.NumChunks());
    hb.extend_leases.assign(lease_used_.begin(), lease_used_.end());
    lease_used_.clear();
    for (auto it = watched_clients_.begin(); it != watched_clients_.end();) {
      if (ProcessEnded(it->second.pid, it->second.start_ticks)) {
        ended_clients_.push_back(it->first);
        it = watched_clients_.erase(it);
      } else {
        ++it;
      }
    }
    hb.ended_clients = ended_clients_;
    LogIfSendFailed(SendRequest(t_, master_, hb, ++next_id_, cfg_.heartbeat_ms * 2, master_epoch_),
                    "a heartbeat");
  }
  // The deadlines of calls to peers are in calls_ (the event loop ends them).
  ExpirePushes(now);
  Scrub(now);
}
}  // namespace gfs
