// MasterServer's core: construction, logging a mutation (Mutate), message
// dispatch, the group commit after each batch (AfterBatch), Tick (which
// drives every timed duty of the other files), shutdown and statistics.
// The other parts of the class: startup.cc, namespace_service.cc,
// leases.cc, registry.cc, recovery.cc, repair.cc, rereplication.cc, fsck.cc,
// trash.cc and master_group.cc.
#include "master/master_server.h"

#include <algorithm>
#include <chrono>

#include "common/clock.h"
#include "common/log.h"

namespace gfs {
namespace {

constexpr uint64_t kRegisterGraceUs = 10ull * 1000 * 1000;

}  // namespace

MasterServer::MasterServer(Transport* t, Env* env, const JobConfig& cfg, std::string dir,
                           std::vector<int> chunkserver_ranks, std::vector<int> client_ranks,
                           MasterGroup group, std::unique_ptr<PlacementPolicy> placement)
    : t_(t),
      env_(env),
      cfg_(cfg),
      dir_(std::move(dir)),
      cs_ranks_(std::move(chunkserver_ranks)),
      client_ranks_(std::move(client_ranks)),
      meta_(std::make_unique<MetaState>()),
      placement_(placement ? std::move(placement)
                           : std::make_unique<DefaultPlacement>(DefaultPlacement::Options{0, 8})),
      group_(std::move(group)),
      calls_(t, env),
      timers_(env),
      unserved_(t, env),
      chunk_waiters_(t, env),
      done_msgs_(t, env) {
  for (int r : cs_ranks_) servers_[r].rank = r;
  if (!cfg_.topology_file.empty()) {
    // The launcher checked the file before the job; should it fail to read
    // now, placement still separates hosts, only not racks.
    auto topo = Topology::Load(cfg_.topology_file);
    if (topo.ok()) {
      topology_ = std::move(*topo);
    } else {
      GFS_LOG_WARN("master: %s; every host taken as a rack of its own",
                   topo.status().message().c_str());
    }
  }
  if (group_.members.empty()) group_.members.push_back(group_.self);
  leader_ = group_.members.front();
  mode_ = group_.self == leader_ ? Mode::kMaster : Mode::kShadow;
  if (mode_ == Mode::kMaster) {
    for (int r : group_.members) {
      if (r != group_.self) peers_[r] = Peer{};
    }
  }
  // Placement counts the chunks a server was given lately; the count halves
  // every 10 s.
  timers_.Every(10ull * 1000 * 1000, [this] {
    for (auto& [rank, st] : servers_) st.recent_creations /= 2;
  });
  StartTrashTimers();
}

void MasterServer::SetEpoch(uint64_t e) {
  epoch_ = e;
  calls_.set_epoch(e);
  unserved_.set_epoch(e);
  chunk_waiters_.set_epoch(e);
  done_msgs_.set_epoch(e);
}

void MasterServer::NoteEpochOf(const Result<Message>& r) {
  if (r.ok() && r->h.epoch > epoch_ && mode_ == Mode::kMaster) {
    // Someone has heard of a newer master: this one was deposed.
    StepDown(r->h.epoch, -1);
  }
}

CallDone MasterServer::AsMaster(std::function<void(const Result<Message>&)> fn) {
  return [this, term = term_, fn = std::move(fn)](Result<Message> r) {
    NoteEpochOf(r);
    if (term == term_ && mode_ == Mode::kMaster) fn(r);
  };
}

FanDone MasterServer::AsMasterFan(std::function<void(const FanResult&)> fn) {
  return [this, term = term_, fn = std::move(fn)](const FanResult& fan) {
    for (const Result<Message>& r : fan.results) NoteEpochOf(r);
    if (term == term_ && mode_ == Mode::kMaster) fn(fan);
  };
}

void MasterServer::DeferStart(std::function<void()> start, std::function<void()> dropped) {
  Outgoing o;
  o.start = std::move(start);
  o.dropped = std::move(dropped);
  deferred_.push_back(std::move(o));
}

int64_t MasterServer::NowMs() const { return env_->WallMillis(); }

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
  stats_.counters[Counter::kMutations]++;
  return Status::OK();
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

void MasterServer::AfterBatch() {
  if (log_ && log_->last_seq() != log_->synced_seq()) {
    Status s = log_->Sync();
    if (!s.ok()) {
      broken_ = s;
      GFS_LOG_ERROR("master: op log sync failed: %s", s.ToString().c_str());
      // Nothing that depended on the lost records may leave: fail them all.
      std::vector<Outgoing> lost = std::move(deferred_);
      deferred_.clear();
      for (Outgoing& o : lost) {
        if (o.start) {
          if (o.dropped) o.dropped();
          continue;
        }
        Message req;
        if (ParseMessage(Incoming{o.dest, o.buf}, &req).ok() && req.is_reply()) {
          LogIfSendFailed(t_->Send(o.dest, EncodeErrorReply(req, s, epoch_)), "an error reply");
        }
      }
      return;
    }
    stats_.counters[Counter::kLogSyncs]++;
  }
  if (log_) {
    Status s = log_->Poll();
    if (!s.ok()) {
      GFS_LOG_ERROR("%s: checkpoint failed: %s", mode_ == Mode::kMaster ? "master" : "shadow",
                    s.ToString().c_str());
    }
  }
  if (mode_ != Mode::kMaster || peers_.empty()) {
    std::vector<Outgoing> out = std::move(deferred_);
    deferred_.clear();
    for (Outgoing& o : out) {
      if (o.start) {
        o.start();
      } else {
        LogIfSendFailed(t_->Send(o.dest, std::move(o.buf)), "a deferred message");
      }
    }
    return;
  }
  // With shadows: ship the batch, then hold what depends on it until the
  // synchronous shadows have it too.
  if (!unshipped_.empty() || !dirty_locs_.empty()) ShipLog(Now(), false);
  const uint64_t need = log_->last_seq();
  // Replies may depend on chunk locations shipped in this round (a lease
  // reply: its replicas), not only on log records.
  for (Outgoing& o : deferred_) {
    uncommitted_.push_back({need, loc_round_, o.dest, std::move(o.buf), std::move(o.start)});
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
  if (mode_ == Mode::kMaster && !m.is_reply()) NoteClient(m.source, Now());
  if (m.is_reply()) {
    // Replies to the calls in calls_ went to their continuations; a late
    // one (its call ended) is dropped here.
    if (mode_ != Mode::kMaster) return;
    if (m.type() == MsgType::kShutdown) return OnShutdownReply(m);
    return;
  }
  stats_.counters.requests(m.h.type)++;
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
      stats_.counters[Counter::kFileBytesReceived] += m.buf->size();
      return DeferError(m, Status::Protocol("the master does not take file data"));
    }
    default:
      break;
  }
  if (!serving_ || reviving_ > 0) {
    // Not yet serving, or replicas are being brought forward (ResolveBehind):
    // answers given now could miss them. Held until then, or until the
    // request's deadline passes (then answered kTimeout).
    unserved_.Hold(0, m);
    return;
  }
  Dispatch(m);
}

void MasterServer::DispatchHeld() {
  if (!serving_ || reviving_ > 0) return;
  for (Message& m : unserved_.Release(0)) Dispatch(m);
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
    case MsgType::kSnapshot:
      return OnSnapshot(m);
    case MsgType::kClientDone:
      return OnClientDone(m);
    case MsgType::kClientsGone:
      return OnClientsGone(m);
    case MsgType::kReport:
      return OnReport(m);
    case MsgType::kFsck:
      return OnFsck(m);
    case MsgType::kRemove:
      return OnRemove(m);
    case MsgType::kUndelete:
      return OnUndelete(m);
    case MsgType::kExpunge:
      return OnExpunge(m);
    case MsgType::kSetReplication:
      return OnSetReplication(m);
    case MsgType::kReplicationState:
      return OnReplicationState(m);
    default:
      DeferError(
          m, Status::Protocol(std::string("the master does not serve ") + MsgTypeName(m.h.type)));
  }
}

void MasterServer::OnClientDone(Message& m) {
  clients_done_.insert(m.source);
  done_msgs_.Hold(0, m);
  MaybeShutdown();
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

void MasterServer::OnStats(Message& m) {
  StatsReply r;
  for (const auto& [k, v] : stats_.counters.Named()) {
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
    // Back by d: a lease's end moves with it.
    const uint64_t d = last - now;
    for (auto& [handle, l] : leases_) l.expiry_us = l.expiry_us > d ? l.expiry_us - d : 0;
  }
  for (auto& [rank, p] : peers_) {
    if (p.waiting_since != 0) p.waiting_since = now;
    p.last_send_us = std::min(p.last_send_us, now);
  }
  stats_.counters[Counter::kClockGaps]++;
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
      // Replicas an earlier job removed or moved away but could not tell
      // (it ended first) are back: trimmed before any request is answered.
      ScheduleTrims(now);
      DispatchHeld();
      AfterBatch();
    }
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
  if (mode_ == Mode::kMaster && serving_) CheckClients(now, dead_after);
  // Requests held past their deadline are answered kTimeout, not served late.
  unserved_.Expire();
  chunk_waiters_.Expire();
  done_msgs_.Expire();
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
    ScheduleTrims(now);
    ScheduleRebalance(now);
  }
  if (shutting_down_ && !done_ && (shutdown_waiting_ == 0 || now >= shutdown_deadline_us_)) {
    for (Message& m : done_msgs_.Release(0)) DeferReply(m, Empty{});
    AfterBatch();
    done_ = true;
  }
  AfterBatch();
}

}  // namespace gfs
