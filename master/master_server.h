// MasterServer: the master role's logic, driven by RunServer() over any
// Transport. Owns the namespace and chunk metadata (MetaState, persisted
// through the OpLog), chunk locations (soft state from chunkserver reports),
// leases and placement. Never carries file data.
//
// Durability: every mutation is appended to the op log and the log is synced
// once per drained batch of messages (group commit) before any reply or order
// that depends on it leaves the master (see AfterBatch).
//
// Master group (--shadows S): the same class runs on the master rank and on
// every shadow-master rank (doc/architecture.md, "Shadow masters"). The
// master ships each synced batch of log records to the shadows and holds the
// replies and orders that depend on them until every shadow in the
// synchronous set has made them durable too; a shadow that does not answer in
// time leaves the set (the master never waits forever) and rejoins once it
// has caught up. Shadows replay the records, answer stat/list/lookup, and
// when the master falls silent one of them is elected by a majority of the
// group, raises the master epoch, and takes over. Every message carries the
// epoch; a message from an older epoch is refused, so a deposed master's
// orders have no effect.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/hosts.h"
#include "common/topology.h"
#include "master/journal.h"
#include "master/meta_state.h"
#include "master/placement.h"
#include "mpi/protocol/config.h"
#include "mpi/protocol/rpc.h"
#include "mpi/protocol/rpc_log.h"
#include "mpi/protocol/server_rpc.h"
#include "mpi/protocol/stats.h"

namespace gfs {

// Who is in the master group and which member this is. group[0] is the
// master the job starts with.
struct MasterGroup {
  int self = 0;
  std::vector<int> members{0};
};

class MasterServer : public Server {
 public:
  // chunkserver_ranks: the ranks expected to register; client_ranks: the
  // ranks whose ClientDone ends the job. Pointers not owned. placement:
  // where new replicas go (DefaultPlacement when null).
  MasterServer(Transport* t, Env* env, const JobConfig& cfg, std::string dir,
               std::vector<int> chunkserver_ranks, std::vector<int> client_ranks,
               MasterGroup group = {}, std::unique_ptr<PlacementPolicy> placement = nullptr);

  // Replays the op log and opens it for appending. *warning gets a torn-tail
  // warning, if any.
  Status Start(std::string* warning);
  // Durably raises the master epoch (the master of a new job with shadows,
  // and a shadow taking over).
  Status BeginEpoch(uint64_t epoch);
  // Replaces this member's metadata (memory and disk) with a snapshot of a
  // more advanced copy (job start-up; MetaJournal::EncodeSnapshot bytes).
  Status InstallSnapshot(const std::string& bytes);
  void Handle(Message& m) override;
  // Reads the Env's clock (which tests can make jump), not `now_us`: every
  // time this server keeps (leases, heartbeats, deadlines) is on that clock.
  void Tick(uint64_t now_us) override;
  void AfterBatch() override;
  bool done() const override { return done_; }
  // The calls this master makes to chunkservers and to the other members
  // of its group, and its timers (the event loop routes their replies and
  // fires their deadlines).
  PendingCalls* calls() override { return &calls_; }
  Timers* timers() override { return &timers_; }

  // Where every rank of the job runs (index = rank, with its process), so
  // that a client rank whose process ended is not waited for (master/clients.cc).
  void set_hosts(std::vector<HostId> hosts);
  // This rank's RPC log, whose most recent lines `report` returns (null: none).
  void set_rpc_log(const RpcLog* log) { rpc_log_ = log; }

  const RoleStats& stats() const { return stats_; }
  const MetaState& meta() const { return *meta_; }
  bool is_master() const { return mode_ == Mode::kMaster; }
  uint64_t epoch() const { return epoch_; }
  int leader() const { return leader_; }
  // The journal (for the job start-up that makes every copy of the log equal).
  MetaJournal* journal() { return log_.get(); }
  // The store this master group keeps (0: none yet, a new store whose id is
  // made once every chunkserver has registered holding nothing). Recorded in
  // <dir>/VERSION with the metadata layout (doc/disk-format-master.md).
  uint64_t store_id() const { return fresh_ ? 0 : store_id_; }
  // A group member without a store id takes the group's (job start-up).
  Status AdoptStore(uint64_t id);
  // The master layout this build writes; layout 1 (no VERSION file) is
  // upgraded at Start.
  static constexpr uint32_t kLayout = 2;

 private:
  enum class Mode { kMaster, kShadow };
  // A shadow as the master sees it.
  struct Peer {
    bool in_sync = true;
    bool need_snapshot = false;
    uint64_t acked = 0;          // its last durable record
    uint64_t sent = 0;           // the last record shipped to it
    uint64_t waiting_since = 0;  // when the oldest unacknowledged batch left
    uint64_t last_send_us = 0;
    uint64_t snapshot_id = 0;                          // request id of the last snapshot sent
    std::deque<std::pair<uint64_t, uint64_t>> rounds;  // (request id, ship round) unacknowledged
    uint64_t acked_round = 0;
  };
  struct Election {
    uint64_t epoch = 0;
    int votes = 0;
    uint64_t deadline_us = 0;
  };

  struct ServerState {
    int rank = -1;
    uint64_t id = 0;
    std::string dir_name, host;
    uint64_t capacity = 0, used = 0;
    uint32_t chunks = 0;
    uint32_t recent_creations = 0;
    uint64_t last_seen_us = 0;
    bool registered = false;
    bool alive = false;
    std::vector<uint64_t> to_delete;
  };
  struct Lease {
    int primary = -1;
    uint64_t expiry_us = 0;
  };
  // A lease being prepared: waiting for every replica to record the
  // version. The lease requests it answers wait in chunk_waiters_.
  struct Prepare {
    uint64_t serial = 0;  // tells this prepare from a later one of the chunk
    uint32_t index = 0;
    uint64_t handle = 0;
    uint64_t version = 0;
    int primary = -1;
    std::vector<int32_t> replicas;
  };

  void Dispatch(Message& m);
  // Master group.
  bool HandleGroup(Message& m);  // true when m was a master-group message
  void OnLogBatch(Message& m);
  void OnLogBatchReply(Message& m);
  void OnVote(Message& m);
  void OnVoteReply(uint64_t epoch, const Result<Message>& r);
  void OnNewMaster(Message& m);
  void ShipLog(uint64_t now, bool keepalive);
  void ReleaseCommitted();
  uint64_t CommittedSeq() const;
  void ShadowTick(uint64_t now);
  // Gives every peer a fresh interval after this rank stalled or its clock
  // jumped (forward past a few heartbeats, or back).
  void NoteClockGap(uint64_t now);
  void StartElection(uint64_t now);
  void TakeOver();
  // A higher epoch exists: stop acting as master (the deposed master turns
  // into an out-of-sync shadow and never acknowledges anything again).
  void StepDown(uint64_t epoch, int leader);
  void TouchLocation(uint64_t handle) {
    if (!peers_.empty()) dirty_locs_.insert(handle);
  }
  Status NotMaster() const;
  void OnMkdir(Message& m);
  void OnCreate(Message& m);
  void OnDelete(Message& m);
  void OnRename(Message& m);
  void OnList(Message& m);
  void OnStat(Message& m);
  void OnLookup(Message& m);
  void OnLease(Message& m);
  void OnSetLength(Message& m);
  // Snapshots and copy-on-write (master/snapshots.cc).
  void OnSnapshot(Message& m);
  void ContinueSnapshot(uint64_t job);
  void EndSnapshot(uint64_t job, const Status& s);
  void StartCopyOnWrite(Message& lease_req, const FileInfo& f, uint32_t index, uint64_t handle);
  void OnCopied(uint64_t handle, uint64_t serial, const FanResult& fan);
  void DropSnapshotWork();
  // A handle for a new chunk: never one logged, nor one a copy under way
  // took.
  uint64_t NewHandle();
  // Trash and garbage collection (master/trash.cc).
  void OnRemove(Message& m);
  void OnUndelete(Message& m);
  void OnExpunge(Message& m);
  int64_t RetentionMs() const;
  void StartTrashTimers();
  // The namespace scan: deletes the trash older than the retention (all of
  // it with `all`) and old transfer temporaries, counting them in *counts.
  // True when it logged anything.
  bool TrashScan(bool all, ExpungeReply* counts);
  // The chunk scan, after the next log sync: every live chunkserver gets its
  // queued deletes and names what it holds; chunks no file refers to are
  // queued for it. Up to `rounds` rounds (the next confirms the deletes of
  // the orphans found); then `done` (also when the log sync fails).
  struct ChunkScanState {
    ExpungeReply counts;
    // Orphans found so far (rank, handle): one found again in a later round
    // (its delete went out in a heartbeat reply that left after that round's
    // request) is deleted again but counted once.
    std::set<std::pair<int32_t, uint64_t>> orphans;
  };
  void ChunkScan(int rounds, std::shared_ptr<ChunkScanState> scan, std::function<void()> done);
  // Heartbeat replies carry no deletes before this time: a chunk scan round
  // is under way (bounded by its calls' deadline, so it never sticks).
  uint64_t scan_holds_deletes_until_us_ = 0;
  void OnClientDone(Message& m);
  void OnRegister(Message& m);
  // A chunkserver of another store, or holding chunks of none: refused.
  void RefuseServer(const Message& m, const std::string& dir_name, const Status& why);
  void OnHeartbeat(Message& m);
  // Every replica answered the prepare (or its call ended without an
  // answer: a failure too).
  void OnPrepared(uint64_t handle, uint64_t serial, const FanResult& fan);
  void OnShutdownReply(Message& m);
  void OnStats(Message& m);
  void OnReport(Message& m);
  void OnFsck(Message& m);
  // One chunkserver's verification: its replicas' damage as it found it.
  void OnVerified(int rank, const Message& reply);
  void OnCorrupt(Message& m);
  // Builds the fsck answer for the files at or under `path`.
  Status FsckAnswer(const std::string& path, FsckReply* rep) const;
  // Live replicas that are not known to be damaged.
  std::vector<int32_t> GoodReplicas(uint64_t handle) const;
  // What clients are given to read: the good replicas, or, when none is
  // good, the damaged ones too (they serve every block that is not damaged).
  std::vector<int32_t> ReadableReplicas(uint64_t handle) const;
  // Placement input: every chunkserver, eligible when alive, registered, not
  // in `busy` and with `room` bytes free.
  std::vector<ServerLoad> Loads(uint64_t room, const std::set<int32_t>& busy) const;
  // Damage of a replica (blocks that failed their checksums, bytes or
  // checksums missing). The replica is kept and still serves its good
  // blocks; a repair rewrites the damaged ones from good copies (never a
  // deletion). Empty ranges: somewhere in it (a full scan finds where).
  void MarkDamaged(uint64_t handle, int32_t rank, const std::vector<ByteRange>& ranges);
  // The replica verified clean (or was repaired): no longer damaged.
  void ClearDamaged(uint64_t handle, int32_t rank);
  // Chunk ranges no live replica holds a good copy of.
  std::vector<ByteRange> Unreadable(uint64_t handle) const;
  // Repairs: a damaged replica's chunk goes to a new version on every live
  // replica (no primary: no mutation can land meanwhile), then each damaged
  // replica is told to fetch its damaged blocks from the others (kRepair).
  // Lease requests for the chunk wait. Scheduled for chunks with damage and
  // a possible source, without a live lease.
  bool Repairable(uint64_t handle) const;
  bool StartRepair(uint64_t handle, uint64_t now);
  void OnRepairPrepared(uint64_t handle, uint64_t serial, const FanResult& fan);
  void SendNextRepair(uint64_t handle);
  void OnRepairReply(uint64_t handle, uint64_t serial, const Result<Message>& r);
  void EndRepair(uint64_t handle, bool ok);
  void ScheduleRepairs(uint64_t now);
  // At a new job's start, once every chunkserver registered: replicas at the
  // logged version whose recorded lengths differ (a job killed during an
  // append) keep the longest; the shorter ones are dropped (the longest
  // hold every acknowledged byte) and re-replication restores R.
  void ResolveLengths();
  // Replicas reported behind the logged version: deleted once a current
  // replica exists; brought forward when every chunkserver has reported and
  // none is current (the master died between logging and preparing).
  void ResolveBehind();
  // At a new job's start: grows each file's length over the bytes its
  // replicas hold past the logged length (a killed job wrote them and never
  // reported the length: acknowledged bytes are kept), then frees the chunks
  // still wholly past it (no replica holds a byte of them, so a later write
  // past the end finds zeros there).
  void RecoverLengths();
  void DropChunksPastEnd();
  // Dispatches held client requests once serving and no revival is running.
  void DispatchHeld();
  // Re-replication: finds chunks with fewer good replicas than their file's
  // replication and orders clones, most-missing first, one per target at a
  // time. Chunks under a live lease wait until it expires.
  void ScheduleClones(uint64_t now);
  // False when cloning a chunk held by `good` (all on one rack) to `target`
  // (on that rack too) would keep it on one rack although a live server of
  // another rack could take the copy once free: the clone waits for it.
  bool SecondRackOrWait(const std::vector<int32_t>& good, int32_t target,
                        uint32_t replication) const;
  void OnCloneReply(uint64_t handle, uint64_t serial, const Result<Message>& r);

  // Replication changes and rebalancing (balance.cc).
  void OnSetReplication(Message& m);
  void OnReplicationState(Message& m);
  // A replica of a live chunkserver that a move could take elsewhere.
  struct MovableChunk {
    uint64_t handle = 0;
    uint64_t bytes = 0;  // the chunk's length
    uint32_t replication = 0;
  };
  // Bytes of chunks per live chunkserver as the master counts them (each
  // live replica counts its chunk's share of the file's length); with
  // by_server, also each server's replicas.
  std::map<int32_t, uint64_t> ChunkBytes(
      std::map<int32_t, std::vector<MovableChunk>>* by_server) const;
  // Every live chunkserver within --rebalance-threshold of the mean.
  bool Balanced(const std::map<int32_t, uint64_t>& bytes) const;
  // Removes a replica: out of the locations, deleted at its next heartbeat.
  void DropReplica(uint64_t handle, int32_t rank);
  std::vector<ServerLoad> LoadsOf(const std::vector<int32_t>& ranks) const;
  // Chunks with more good replicas than their replication lose the extras
  // (ChooseExtraReplicas); chunks being written, cloned, prepared or
  // repaired wait.
  void ScheduleTrims(uint64_t now);
  // At most cfg_.rebalance_moves moves started a second, one clone at a
  // time per server (as target or source).
  void ScheduleRebalance(uint64_t now);

  // Logs and applies one mutation. Replies queued after this wait for the
  // next log sync.
  Status Mutate(const MetaOp& op, std::vector<uint64_t>* freed = nullptr);
  void ForgetChunks(const std::vector<uint64_t>& handles);
  FileAttr AttrOf(const FileInfo& f) const;
  ChunkLocation LocationOf(uint32_t index, uint64_t handle) const;
  std::vector<int32_t> LiveReplicas(uint64_t handle) const;
  void StartPrepare(Message& lease_req, uint32_t index, uint64_t handle, uint64_t version,
                    bool create, std::vector<int32_t> replicas);
  void FinishPrepare(uint64_t handle, const std::vector<int32_t>& failed);
  void BeginShutdown();
  int64_t NowMs() const;

  // Queue a message to leave after the next log sync (and, with shadows,
  // once the synchronous shadows hold the records too).
  void Defer(int dest, Buffer b) {
    Outgoing o;
    o.dest = dest;
    o.buf = std::move(b);
    deferred_.push_back(std::move(o));
  }
  template <typename Body>
  void DeferReply(const Message& req, const Body& body) {
    Defer(req.source, EncodeReply(req, body, epoch_));
  }
  void DeferError(const Message& req, const Status& s) {
    Defer(req.source, EncodeErrorReply(req, s, epoch_));
  }
  // Runs `start` (which makes calls) after the next log sync, in order with
  // the deferred messages: orders that depend on logged records leave only
  // once the records are durable (and, with shadows, committed). `dropped`
  // runs instead when the sync fails.
  void DeferStart(std::function<void()> start, std::function<void()> dropped);
  // A header for an order this master sends, stamped with its epoch.
  Header OrderHeader(MsgType type, uint32_t deadline_ms);
  // The epoch this member is at, also stamped on its calls and on the
  // answers to requests it held.
  void SetEpoch(uint64_t e);
  // Continuations for calls the master makes: a reply from a newer epoch
  // deposes it (as any message does), and nothing runs once it stopped
  // being the master it was when it made the call.
  CallDone AsMaster(std::function<void(const Result<Message>&)> fn);
  FanDone AsMasterFan(std::function<void(const FanResult&)> fn);
  void NoteEpochOf(const Result<Message>& r);

  Transport* t_;
  Env* env_;
  uint64_t Now() const { return env_->NowMicros(); }
  JobConfig cfg_;
  std::string dir_;
  std::vector<int> cs_ranks_, client_ranks_;
  std::unique_ptr<MetaState> meta_;
  std::unique_ptr<MetaJournal> log_;
  std::unique_ptr<PlacementPolicy> placement_;
  // Racks of the hosts (cfg_.topology_file), given to placement with each
  // server's load; empty: every host a rack of its own.
  Topology topology_;
  Status broken_;  // sticky log failure: mutations refused
  // The store's identity. A master that starts with no metadata (fresh_)
  // proposes a new one, told to chunkservers as they register, and records
  // it (VERSION) once every chunkserver has registered holding no chunk.
  uint64_t store_id_ = 0;
  bool fresh_ = false;
  bool upgraded_ = false;  // this job upgraded layout-1 metadata (its chunkservers have no STORE)
  // Set when this master has no metadata but a chunkserver holds chunks (or
  // belongs to a store): every client request is refused with it, nothing is
  // deleted, and no store is made (doc/architecture.md#store-identity).
  Status refusal_;
  void CreateStore();

  std::map<int, ServerState> servers_;
  std::unordered_map<uint64_t, std::vector<int32_t>> locations_;
  std::unordered_map<uint64_t, Lease> leases_;
  std::unordered_map<uint64_t, Prepare> prepares_;  // by handle
  uint64_t next_id_ = 0;
  uint64_t next_serial_ = 0;  // of prepares, repairs and clones
  uint64_t term_ = 0;         // raised when this member stops being the master

  // What leaves after the next log sync: a message, or calls to start.
  struct Outgoing {
    int dest = -1;
    Buffer buf;
    std::function<void()> start, dropped;
  };
  std::vector<Outgoing> deferred_;
  uint64_t start_us_ = 0;
  bool serving_ = false;

  std::set<int> clients_done_;
  // Client ranks taken as gone (master/clients.cc): their process ended
  // (presumed = false), or every storage rank of their host stopped and they
  // have been silent since (presumed = true: they may come back).
  struct GoneClient {
    bool presumed = false;
  };
  std::map<int, GoneClient> clients_gone_;
  std::map<int, uint64_t> client_seen_us_;  // the last message from each client rank
  std::vector<HostId> hosts_;               // index = rank; empty: not known
  const RpcLog* rpc_log_ = nullptr;
  uint64_t next_client_check_us_ = 0;
  bool IsClientRank(int rank) const;
  void NoteClient(int rank, uint64_t now);
  void ClientGone(int rank, bool presumed, const std::string& why);
  void CheckClients(uint64_t now, uint64_t dead_after_us);
  void NoteEndedClients(int reporter, const std::vector<int32_t>& ranks);
  void OnClientsGone(Message& m);
  void MaybeShutdown();
  bool shutting_down_ = false;
  int shutdown_waiting_ = 0;
  uint64_t shutdown_deadline_us_ = 0;
  bool done_ = false;
  uint64_t seed_ = 1;
  // handle -> damaged replica rank -> its damaged ranges (empty: unknown where)
  std::unordered_map<uint64_t, std::map<int32_t, std::vector<ByteRange>>> damaged_;
  std::unordered_map<uint64_t, uint32_t> stale_seen_;  // handle -> count
  // A repair; the lease requests for its chunk wait in chunk_waiters_.
  struct RepairOp {
    uint64_t serial = 0;
    uint64_t version = 0;
    std::vector<int32_t> replicas;  // live replicas at the start
    std::vector<int32_t> targets;   // damaged replicas still to repair
    uint64_t timer = 0;             // ends it when it runs too long
    bool ok = true;
    bool partial = false;  // a replica kept blocks no source held good
  };
  std::unordered_map<uint64_t, RepairOp> repairs_;         // by handle
  std::unordered_map<uint64_t, uint64_t> repair_backoff_;  // handle -> not before (us)
  uint64_t next_repair_scan_us_ = 0;
  // handle -> (rank -> recorded length) as registered at this job's start
  std::unordered_map<uint64_t, std::map<int32_t, uint64_t>> reported_len_;
  bool lengths_resolved_ = false;
  std::map<uint64_t, std::vector<std::pair<int32_t, uint64_t>>>
      behind_;        // handle -> (rank, version)
  int reviving_ = 0;  // replicas being brought forward (ResolveBehind)
  // A clone; the lease requests for its chunk wait in chunk_waiters_.
  struct CloneOp {
    uint64_t serial = 0;
    int32_t target = -1, source = -1;
    uint64_t version = 0;
    // A rebalancing move: this replica is removed once the clone is done.
    int32_t move_from = -1;
  };
  // A move's clone is complete: the source's replica is removed.
  void FinishMove(uint64_t handle, const CloneOp& op);
  std::unordered_map<uint64_t, CloneOp> clones_;  // by handle
  uint64_t next_clone_scan_us_ = 0;
  // A snapshot waiting for the leases on its source's chunks to be revoked.
  struct SnapshotJob {
    Message req;
    std::string src, dst;
    std::set<uint64_t> frozen;   // source chunks whose lease requests wait
    int revokes = 0;             // revocations not answered yet
    uint64_t not_before_us = 0;  // a primary did not answer: its lease's end
  };
  std::map<uint64_t, SnapshotJob> snapshots_;  // by job number
  uint64_t next_snapshot_ = 0;
  std::unordered_map<uint64_t, uint32_t> frozen_;  // handle -> snapshots holding it
  // A copy-on-write under way: the replicas copy the shared chunk to `to`;
  // the lease requests for it wait in chunk_waiters_.
  struct CowOp {
    uint64_t serial = 0;
    uint64_t file_id = 0;
    uint32_t index = 0;
    uint64_t to = 0, version = 0;
  };
  std::unordered_map<uint64_t, CowOp> cows_;  // by the shared chunk's handle
  uint64_t reserved_handle_ = 0;              // NewHandle: handles below are taken
  uint64_t next_rebalance_us_ = 0;
  std::unordered_map<uint64_t, uint64_t> clone_backoff_;  // handle -> not before (us)
  RoleStats stats_;

  // Master group.
  MasterGroup group_;
  Mode mode_ = Mode::kMaster;
  uint64_t epoch_ = 0;
  int leader_ = 0;
  std::map<int, Peer> peers_;         // master: the shadows
  std::vector<LogRecord> unshipped_;  // master: records not yet sent to shadows
  uint64_t unshipped_first_ = 0;      // seq of unshipped_[0]
  uint64_t ship_round_ = 0;           // ShipLog calls so far
  uint64_t loc_round_ = 0;            // the last round that carried chunk locations
  std::set<uint64_t> dirty_locs_;     // master: locations changed since the last ship
  struct Held {
    uint64_t seq;    // released once CommittedSeq() reaches it
    uint64_t round;  // ... and every synchronous shadow acknowledged this ship round
    int dest;
    Buffer buf;
    std::function<void()> start;  // set: calls to start instead of a message
  };
  std::deque<Held> uncommitted_;
  bool in_sync_ = true;         // shadow: in the master's synchronous set
  uint64_t last_heard_us_ = 0;  // shadow: last message from the master
  uint64_t last_tick_us_ = 0;   // NoteClockGap
  uint64_t voted_epoch_ = 0;
  uint64_t next_election_us_ = 0;  // shadow: no candidacy before this
  Election election_;
  uint64_t adopt_until_us_ = 0;
  bool took_over_ = false;
  std::set<uint64_t> located_at_takeover_;  // chunks with replicas when this master took over  //
                                            // new master: chunkservers still re-registering

  PendingCalls calls_;
  Timers timers_;
  // Client requests held until the master serves (every chunkserver has
  // registered, or the grace period ended) and no replica is being brought
  // forward: one key, 0.
  HeldRequests<int> unserved_;
  // Lease requests waiting for the prepare, clone or repair of their chunk
  // (at most one runs per chunk), by handle.
  HeldRequests<uint64_t> chunk_waiters_;
  // The clients' ClientDone requests, answered at the end of the job: key 0.
  HeldRequests<int> done_msgs_;
};

}  // namespace gfs
