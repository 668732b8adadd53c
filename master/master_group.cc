// The master group: log shipping to shadow masters, the synchronous set,
// elections and takeover (the MasterServer members declared under "Master
// group" in master_server.h). Protocol: doc/architecture.md, "Shadow
// masters"; messages: doc/wire-format.md.
#include <algorithm>
#include <cstdio>

#include "common/clock.h"
#include "common/log.h"
#include "master/master_server.h"

namespace gfs {
namespace {

// How long a shadow waits without hearing from the master before it stands
// for election, and how long the master waits for a synchronous shadow's
// acknowledgement before dropping it from the set.
uint64_t ElectionTimeoutUs(const JobConfig& cfg) {
  return std::max<uint64_t>(5ull * cfg.heartbeat_ms * 1000, 1000000);
}
uint64_t AckTimeoutUs(const JobConfig& cfg) {
  return std::max<uint64_t>(3ull * cfg.heartbeat_ms * 1000, 1000000);
}

}  // namespace

bool MasterServer::HandleGroup(Message& m) {
  switch (m.type()) {
    case MsgType::kLogBatch:
      m.is_reply() ? OnLogBatchReply(m) : OnLogBatch(m);
      return true;
    case MsgType::kVote:
      // A reply comes here only when its call has ended (late): dropped.
      if (!m.is_reply()) OnVote(m);
      return true;
    case MsgType::kNewMaster:
      if (!m.is_reply()) OnNewMaster(m);
      return true;
    case MsgType::kWhoIsMaster:
      if (!m.is_reply()) {
        WhoIsMasterReply rep;
        rep.epoch = epoch_;
        rep.master = election_.epoch != 0 ? -1 : leader_;
        LogIfSendFailed(t_->Send(m.source, EncodeReply(m, rep, epoch_)), "a reply");
      }
      return true;
    default:
      return false;
  }
}

void MasterServer::ShipLog(uint64_t now, bool keepalive) {
  const uint64_t hb = static_cast<uint64_t>(cfg_.heartbeat_ms) * 1000;
  const uint64_t last = log_->last_seq();
  if (keepalive) {
    // Drop a synchronous shadow that stopped answering: the master never
    // waits forever. It rejoins once it has caught up (OnLogBatchReply).
    for (auto& [r, p] : peers_) {
      if (p.in_sync && p.waiting_since != 0 && Elapsed(now, p.waiting_since) > AckTimeoutUs(cfg_)) {
        p.in_sync = false;
        stats_.counters[Counter::kShadowsDropped]++;
        GFS_LOG_WARN(
            "master: shadow rank %d did not acknowledge the log in time; it leaves "
            "the synchronous set",
            r);
      }
    }
    ReleaseCommitted();
    if (!unshipped_.empty()) return;  // AfterBatch ships those
  }
  std::vector<LocationUpdate> locs;
  for (uint64_t h : dirty_locs_) {
    LocationUpdate u;
    u.handle = h;
    auto it = locations_.find(h);
    if (it != locations_.end()) u.replicas = it->second;
    locs.push_back(std::move(u));
  }
  std::vector<int32_t> live;
  for (const auto& [rank, st] : servers_) {
    if (st.alive) live.push_back(rank);
  }
  ++ship_round_;
  if (!locs.empty()) loc_round_ = ship_round_;
  for (auto& [r, p] : peers_) {
    if (keepalive && !p.need_snapshot && Elapsed(now, p.last_send_us) < hb) {
      if (p.rounds.empty()) p.acked_round = ship_round_;  // nothing outstanding
      continue;
    }
    LogBatchReq b;
    b.store_id = store_id();
    b.first_seq = keepalive ? last + 1 : unshipped_first_;
    if (p.need_snapshot) {
      // A whole checkpoint replaces the shadow's state; the records of this
      // batch are already in it.
      b.snapshot = MetaJournal::EncodeSnapshot(*meta_, last, epoch_);
      b.first_seq = last + 1;
      p.need_snapshot = false;
      stats_.counters[Counter::kSnapshotsSent]++;
    } else if (!keepalive) {
      b.records = unshipped_;
    }
    b.in_sync = p.in_sync;
    b.locations = locs;
    b.live_servers = live;
    Header h = OrderHeader(MsgType::kLogBatch, static_cast<uint32_t>(AckTimeoutUs(cfg_) / 1000));
    if (!b.snapshot.empty()) p.snapshot_id = h.id;
    p.rounds.push_back({h.id, ship_round_});
    Status s = t_->Send(r, EncodeMessage(h, b));
    if (!s.ok() && p.in_sync) {
      p.in_sync = false;
      GFS_LOG_WARN("master: shadow rank %d unreachable: %s", r, s.ToString().c_str());
    }
    p.sent = last;
    if (p.waiting_since == 0 && p.acked < p.sent) p.waiting_since = now;
    p.last_send_us = now;
  }
  unshipped_.clear();
  dirty_locs_.clear();
  unshipped_first_ = last + 1;
}

void MasterServer::OnLogBatchReply(Message& m) {
  if (mode_ != Mode::kMaster) return;
  auto it = peers_.find(m.source);
  if (it == peers_.end()) return;
  Peer& p = it->second;
  // Replies come back in order: every round up to this request's is done.
  while (!p.rounds.empty() && p.rounds.front().first <= m.h.id) {
    p.acked_round = std::max(p.acked_round, p.rounds.front().second);
    p.rounds.pop_front();
  }
  LogBatchReply rep;
  if (!m.status().ok() || !m.Decode(&rep).ok()) return;
  if (rep.need_snapshot) {
    // Replies to batches sent before the last snapshot are already answered
    // by it.
    if (m.h.id > p.snapshot_id) {
      p.need_snapshot = true;
      p.in_sync = false;
    }
    return;
  }
  p.acked = std::max(p.acked, rep.last_seq);
  p.waiting_since = p.acked >= p.sent ? 0 : Now();
  if (!p.in_sync && !p.need_snapshot && p.acked >= log_->last_seq()) {
    p.in_sync = true;
    stats_.counters[Counter::kShadowsRejoined]++;
  }
  ReleaseCommitted();
}

void MasterServer::OnLogBatch(Message& m) {
  LogBatchReq r;
  Status s = m.Decode(&r);
  if (s.ok() && (mode_ == Mode::kMaster || m.h.epoch < epoch_)) {
    s = Status(Code::kStaleEpoch, "log batch of epoch " + std::to_string(m.h.epoch) +
                                      " refused: rank " + std::to_string(group_.self) +
                                      " is at epoch " + std::to_string(epoch_));
    stats_.counters[Counter::kStaleEpochRefused]++;
  }
  if (!s.ok()) {
    LogIfSendFailed(t_->Send(m.source, EncodeErrorReply(m, s, epoch_)), "a reply");
    return;
  }
  if (m.h.epoch > epoch_ || leader_ != m.source) {
    SetEpoch(m.h.epoch);
    leader_ = m.source;
    voted_epoch_ = std::max(voted_epoch_, epoch_);
  }
  election_ = Election{};
  last_heard_us_ = Now();
  if (store_id() == 0 && r.store_id != 0) {
    Status a = AdoptStore(r.store_id);  // a new store: the shadow records its identity too
    if (!a.ok()) {
      GFS_LOG_ERROR("shadow rank %d: %s", group_.self, a.ToString().c_str());
    }
  }
  LogBatchReply rep;
  if (!r.snapshot.empty()) {
    auto fresh = std::make_unique<MetaState>();
    uint64_t seq = 0;
    s = log_->InstallSnapshot(r.snapshot, fresh.get(), &seq);
    if (s.ok()) {
      meta_ = std::move(fresh);
      locations_.clear();
      stats_.counters[Counter::kSnapshotsInstalled]++;
    } else {
      GFS_LOG_WARN("shadow rank %d: installing the master's snapshot: %s", group_.self,
                   s.ToString().c_str());
      rep.need_snapshot = true;
    }
  } else if (r.first_seq != log_->last_seq() + 1) {
    rep.need_snapshot = true;  // a gap (or a divergent tail): start over from a snapshot
  } else {
    uint64_t seq = r.first_seq;
    for (const LogRecord& rec : r.records) {
      auto op = MetaOp::Decode(reinterpret_cast<const uint8_t*>(rec.op.data()), rec.op.size());
      s = op.ok() ? log_->AppendAt(seq, *op) : op.status();
      if (s.ok()) s = meta_->Apply(*op);
      if (!s.ok()) {
        GFS_LOG_WARN("shadow rank %d: record %llu: %s", group_.self,
                     static_cast<unsigned long long>(seq), s.ToString().c_str());
        rep.need_snapshot = true;
        break;
      }
      ++seq;
    }
    stats_.counters[Counter::kRecordsReplicated] += r.records.size();
  }
  s = log_->Sync();
  if (!s.ok()) {
    LogIfSendFailed(t_->Send(m.source, EncodeErrorReply(m, s, epoch_)), "a reply");
    return;
  }
  in_sync_ = r.in_sync && !rep.need_snapshot;
  for (const LocationUpdate& u : r.locations) {
    if (u.replicas.empty()) {
      locations_.erase(u.handle);
    } else {
      locations_[u.handle] = u.replicas;
    }
  }
  for (auto& [rank, st] : servers_) st.alive = false;
  for (int32_t rank : r.live_servers) {
    auto it = servers_.find(rank);
    if (it != servers_.end()) it->second.alive = true;
  }
  rep.last_seq = log_->last_seq();
  LogIfSendFailed(t_->Send(m.source, EncodeReply(m, rep, epoch_)), "a reply");
}

void MasterServer::ShadowTick(uint64_t now) {
  if (election_.epoch != 0) {
    if (now >= election_.deadline_us) {
      election_ = Election{};
      next_election_us_ = now + ElectionTimeoutUs(cfg_);  // back off before trying again
      stats_.counters[Counter::kElectionsLost]++;
    }
    return;
  }
  if (!in_sync_ || done_ || now < next_election_us_) return;
  // Stagger by position in the group so that shadows rarely split the vote.
  const auto pos =
      std::find(group_.members.begin(), group_.members.end(), group_.self) - group_.members.begin();
  const uint64_t timeout =
      ElectionTimeoutUs(cfg_) + static_cast<uint64_t>(pos) * cfg_.heartbeat_ms * 1000ull;
  if (Elapsed(now, last_heard_us_) > timeout) StartElection(now);
}

void MasterServer::StartElection(uint64_t now) {
  election_.epoch = std::max(epoch_, voted_epoch_) + 1;
  voted_epoch_ = election_.epoch;
  election_.votes = 1;  // its own
  election_.deadline_us = now + std::max<uint64_t>(2ull * cfg_.heartbeat_ms * 1000, 500000);
  stats_.counters[Counter::kElectionsStarted]++;
  GFS_LOG_WARN("shadow rank %d: master rank %d silent; standing for epoch %llu", group_.self,
               leader_, static_cast<unsigned long long>(election_.epoch));
  VoteReq v;
  v.epoch = election_.epoch;
  v.log_epoch = log_->epoch();
  v.last_seq = log_->last_seq();
  // The silent master last: a send to a dead rank may be slow to fail.
  std::vector<int> voters;
  for (int r : group_.members) {
    if (r != group_.self && r != leader_) voters.push_back(r);
  }
  if (leader_ >= 0 && leader_ != group_.self) voters.push_back(leader_);
  for (int r : voters) {
    const uint64_t epoch = election_.epoch;
    calls_.Call(r, v, static_cast<uint32_t>((election_.deadline_us - now) / 1000),
                [this, epoch](Result<Message> rep) { OnVoteReply(epoch, rep); });
  }
  if (2 * election_.votes > static_cast<int>(group_.members.size())) TakeOver();
}

void MasterServer::OnVote(Message& m) {
  VoteReq r;
  VoteReply rep;
  if (m.Decode(&r).ok() && mode_ == Mode::kShadow && r.epoch > epoch_ && r.epoch > voted_epoch_) {
    const uint64_t now = Now();
    const bool log_ok = r.log_epoch > log_->epoch() ||
                        (r.log_epoch == log_->epoch() && r.last_seq >= log_->last_seq());
    // A voter that still hears the master refuses: it is not dead.
    const bool master_silent = Elapsed(now, last_heard_us_) > 2ull * cfg_.heartbeat_ms * 1000;
    if (log_ok && master_silent) {
      rep.granted = true;
      voted_epoch_ = r.epoch;
      next_election_us_ = now + ElectionTimeoutUs(cfg_);  // the candidate's turn first
    }
  }
  LogIfSendFailed(t_->Send(m.source, EncodeReply(m, rep, epoch_)), "a reply");
}

void MasterServer::OnVoteReply(uint64_t epoch, const Result<Message>& r) {
  // No answer in time: no vote (the election ends at its own deadline).
  if (!r.ok()) return;
  const Message& m = *r;
  VoteReply rep;
  if (election_.epoch != epoch || !m.status().ok() || !m.Decode(&rep).ok() || !rep.granted) return;
  ++election_.votes;
  if (2 * election_.votes > static_cast<int>(group_.members.size())) TakeOver();
}

void MasterServer::TakeOver() {
  const uint64_t epoch = election_.epoch;
  election_ = Election{};
  Status s = BeginEpoch(epoch);
  if (!s.ok()) {
    GFS_LOG_WARN("shadow rank %d: cannot record epoch %llu: %s", group_.self,
                 static_cast<unsigned long long>(epoch), s.ToString().c_str());
    return;
  }
  const int old = leader_;
  const uint64_t now = Now();
  mode_ = Mode::kMaster;
  leader_ = group_.self;
  // Every other member starts again from a snapshot of this state: a shadow
  // (or the deposed master) may hold records this master never had.
  peers_.clear();
  for (int r : group_.members) {
    if (r == group_.self) continue;
    Peer p;
    p.in_sync = false;
    p.need_snapshot = true;
    peers_[r] = p;
  }
  unshipped_.clear();
  dirty_locs_.clear();
  unshipped_first_ = log_->last_seq() + 1;
  // Locations and leases are soft state: rebuilt from the chunkservers'
  // registrations. A primary's old lease is revoked by the version bump of
  // the next lease on its chunk.
  // Which chunks had replicas by the old master's account: a lease reply
  // leaves the master only after the batch carrying its chunk's locations is
  // on every synchronous shadow, so a chunk missing here never took data.
  located_at_takeover_.clear();
  for (const auto& [h, reps] : locations_) {
    if (!reps.empty()) located_at_takeover_.insert(h);
  }
  took_over_ = true;
  locations_.clear();
  leases_.clear();
  for (auto& [rank, st] : servers_) {
    st.registered = false;
    st.alive = false;
    st.last_seen_us = now;
    st.to_delete.clear();
  }
  serving_ = false;
  start_us_ = now;
  adopt_until_us_ = now + std::max<uint64_t>(3ull * cfg_.heartbeat_ms * 1000, 2000000);
  stats_.counters[Counter::kTakeovers]++;
  GFS_LOG_WARN("shadow rank %d: took over from rank %d as master (epoch %llu)", group_.self, old,
               static_cast<unsigned long long>(epoch));
  NewMasterReq nm{epoch, group_.self};
  auto announce = [&](int r) {
    Header h = OrderHeader(MsgType::kNewMaster, 0);
    LogIfSendFailed(t_->Send(r, EncodeMessage(h, nm)), "a new-master announcement");
  };
  for (int r : cs_ranks_) announce(r);
  for (int r : client_ranks_) announce(r);
  for (int r : group_.members) {
    if (r != group_.self) announce(r);
  }
}

void MasterServer::OnNewMaster(Message& m) {
  NewMasterReq r;
  if (!m.Decode(&r).ok() || r.epoch <= epoch_) return;
  if (mode_ == Mode::kMaster) StepDown(r.epoch, r.master);
  SetEpoch(r.epoch);
  leader_ = r.master;
  voted_epoch_ = std::max(voted_epoch_, r.epoch);
  election_ = Election{};
  last_heard_us_ = Now();
}

void MasterServer::StepDown(uint64_t epoch, int leader) {
  if (mode_ == Mode::kMaster) {
    GFS_LOG_WARN("master rank %d: deposed (epoch %llu is newer than %llu); stepping down",
                 group_.self, static_cast<unsigned long long>(epoch),
                 static_cast<unsigned long long>(epoch_));
    stats_.counters[Counter::kDeposed]++;
    // Nothing unacknowledged may be acknowledged now: answer "not the
    // master" instead, and drop orders.
    const Status nm(Code::kNotMaster, "the master was deposed; ask the new one");
    auto fail = [&](int dest, const Buffer& buf) {
      Message req;
      if (ParseMessage(Incoming{dest, buf}, &req).ok() && req.is_reply()) {
        LogIfSendFailed(t_->Send(dest, EncodeErrorReply(req, nm, epoch)), "a reply");
      }
    };
    // Orders not sent yet are dropped (calls included: nothing is asked).
    for (auto& h : uncommitted_) {
      if (!h.start) fail(h.dest, h.buf);
    }
    for (Outgoing& o : deferred_) {
      if (!o.start) fail(o.dest, o.buf);
    }
    uncommitted_.clear();
    deferred_.clear();
    for (Message& w : unserved_.Release(0))
      LogIfSendFailed(t_->Send(w.source, EncodeErrorReply(w, nm, epoch)), "a reply");
    mode_ = Mode::kShadow;
    in_sync_ = false;  // its log may hold records nobody acknowledged
    peers_.clear();
    unshipped_.clear();
    // The calls it made end without effect (their continuations see the
    // new term), and the lease requests waiting on its chunk operations
    // are dropped unanswered, as those operations are.
    ++term_;
    for (const auto& [h, p] : prepares_) chunk_waiters_.Release(h);
    for (const auto& [h, op] : clones_) chunk_waiters_.Release(h);
    for (const auto& [h, op] : repairs_) {
      chunk_waiters_.Release(h);
      if (op.timer != 0) timers_.Cancel(op.timer);
    }
    DropSnapshotWork();
    prepares_.clear();
    clones_.clear();
    repairs_.clear();
    reviving_ = 0;
    leases_.clear();
  }
  SetEpoch(std::max(epoch_, epoch));
  voted_epoch_ = std::max(voted_epoch_, epoch);
  leader_ = leader;
  last_heard_us_ = Now();
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
    Held h = std::move(uncommitted_.front());
    uncommitted_.pop_front();
    if (h.start) {
      h.start();
    } else {
      LogIfSendFailed(t_->Send(h.dest, std::move(h.buf)), "a deferred message");
    }
  }
}

}  // namespace gfs
