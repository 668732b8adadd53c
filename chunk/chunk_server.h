// ChunkServer: the chunkserver role's logic, driven by an EventLoop over any
// Transport (MPI in a job, in-process in unit tests). Stores chunks through
// ChunkStore; holds pushed data in a bounded buffer until the primary's order
// arrives; applies mutations in the primary's serial order. Its calls to
// other ranks (mutations forwarded to secondaries, the reads of a clone or a
// repair) are PendingCalls, each with a continuation and a deadline.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "chunk/chunk_store.h"
#include "common/hosts.h"
#include "mpi/protocol/config.h"
#include "mpi/protocol/rpc.h"
#include "mpi/protocol/server_rpc.h"
#include "mpi/protocol/stats.h"

namespace gfs {

class ChunkServer : public Server {
 public:
  // dir: this chunkserver's own directory, already chosen and locked by the
  // caller (see ClaimChunkserverDir). Neither pointer is owned.
  ChunkServer(Transport* t, Env* env, const JobConfig& cfg, int master_rank, std::string dir,
              uint64_t server_id, std::string host);
  ~ChunkServer() override;
  ChunkServer(const ChunkServer&) = delete;
  ChunkServer& operator=(const ChunkServer&) = delete;

  // Opens the store and registers with the master.
  Status Start();
  void Handle(Message& m) override;
  // Reads the Env's clock (which tests can make jump), not `now_us`: every
  // time this server keeps (leases, heartbeats, deadlines) is on that clock.
  void Tick(uint64_t now_us) override;
  // Writes the record appends queued while the batch was handled, and
  // answers the syncs the sync thread finished.
  void AfterBatch() override {
    DrainApply();
    FlushAppends();
    FinishSyncs();
  }
  bool done() const override { return done_; }
  // Replies to the calls below reach their continuations, not Handle.
  PendingCalls* calls() override { return &calls_; }
  // The store this server's directory belongs to (0: none recorded yet).
  uint64_t store_id() const { return store_id_; }

  // The client ranks that run on this chunkserver's machine, with their
  // processes: each heartbeat names the ones whose process has ended, so
  // that the master does not wait for them (master/clients.cc).
  void WatchClients(std::vector<std::pair<int, HostId>> local_clients) {
    watched_clients_ = std::move(local_clients);
  }

  const RoleStats& stats() const { return stats_; }
  ChunkStore* store() { return &store_; }

 private:
  struct PushEntry {
    uint64_t total = 0;
    uint64_t received = 0;
    bool rejected = false;
    uint64_t held = 0;  // bytes charged against push_buffer_limit
    int timeline = -1;  // index in stats_.push_timeline, if recorded
    uint64_t expires_us = 0;
    std::vector<std::pair<Buffer, BlobView>> slices;  // in arrival (= offset) order
    // The CRC32C of each 64 KiB piece of the data (from its first byte; the
    // last may be shorter), taken in the event loop while the apply thread
    // writes the mutation before: the write then checksums only the blocks
    // the data does not cover piece for piece (ChunkStore::Write).
    std::vector<uint32_t> piece_crcs;
  };
  using PushKey = std::pair<int, uint64_t>;  // (origin rank, data id)

  // A mutation applied here (the primary) and waiting for the secondaries.
  struct PendingWrite {
    enum Kind { kWrite, kAppend, kPad } kind = kWrite;
    Message client_req;
    uint64_t handle = 0;
    uint64_t offset = 0;  // kAppend: where the record went (chunk offset)
  };

  void OnPushData(Message& m);
  void OnWrite(Message& m);
  void OnApply(Message& m);
  void OnAppend(Message& m);
  void OnCommitted(Message& m);
  // Record appends accepted while one batch of messages is handled are
  // written together, one write per chunk instead of one per record (many
  // producers keep many small appends waiting), when the batch ends or any
  // other message comes; then each is replicated and answered as before.
  struct QueuedAppend {
    PendingWrite pw;
    ApplyReq a;
    std::vector<int32_t> secondaries;
    PushEntry push;  // the record's data, taken out of pushes_
    // When the client's deadline passes (0: none): a queued append past it
    // is answered kTimeout instead of being written late.
    uint64_t deadline_us = 0;
  };
  void FlushAppends();
  // The chunk's length once its queued appends are written.
  uint64_t QueuedEnd(uint64_t handle, uint64_t length) const;
  // Sends `a` (serial filled in here) to every secondary, a fan-out that
  // completes `pw` once all answered or the deadline passed; answers the
  // client at once when there are none.
  void Replicate(PendingWrite pw, ApplyReq a, const std::vector<int32_t>& secondaries);
  void Complete(const PendingWrite& pw, const Status& s);
  // A call to a peer ended (`answered`: with its reply, which is I/O the
  // scrubber waits for): queued appends are written first, as for any
  // message but another append.
  void OnPeerReply(bool answered);
  // Lowest chunk offset of an append still in flight, or the chunk length.
  uint64_t CommittedOf(uint64_t handle);
  void OnRead(Message& m);
  void OnReadLocal(Message& m);
  void StartSync(Message& m, uint64_t handle);
  // kWrite / kAppend checks: the replica is at `version` and we hold an
  // unexpired lease on it.
  Status CheckPrimary(uint64_t handle, uint64_t version);
  // Decodes a read or read-local request and checks the replica's version.
  Status CheckReadable(Message& m, ReadReq* r, ChunkMeta* meta);
  void ReplyReadError(Message& m, uint64_t handle, const Status& s, const Range& bad);
  void OnSync(Message& m);
  // Syncs run in sync_thread_, one at a time in arrival order: an fdatasync
  // can take a third of a second on one disk, and the event loop (other
  // clients' writes and reads, heartbeats) must not wait for it. The reply
  // is sent by FinishSyncs, in the event loop, once the store has recorded
  // the outcome.
  struct SyncTask {
    std::unique_ptr<ChunkStore::SyncJob> job;
    Message req;
    Status result;
  };
  void SyncLoop();
  void FinishSyncs();
  // Stops the sync thread after the syncs queued so far.
  void StopSyncThread();
  std::mutex sync_mu_;
  std::condition_variable sync_cv_;
  std::deque<SyncTask> sync_queue_;  // to run
  std::deque<SyncTask> sync_done_;   // run, to be answered
  bool sync_stop_ = false;
  std::thread sync_thread_;
  void OnPrepare(Message& m);
  // Refuses what a deposed master sends and follows a new one (kNewMaster).
  bool MasterEpochOk(Message& m);
  void OnRegisterReply(Message& m);
  void OnHeartbeatReply(Message& m);
  void OnShutdown(Message& m);
  void OnStats(Message& m);
  void OnVerify(Message& m);
  // The master's chunk scan: deletes the chunks it names, then answers with
  // every chunk held.
  void OnHeldChunks(Message& m);
  void OnClone(Message& m);
  // Snapshots (chunk/snapshot_copy.cc): a lease given up on the master's
  // order, and copy-on-write of a shared chunk within this store.
  void OnRevokeLease(Message& m);
  void OnCopyChunk(Message& m);
  Status CopyChunkLocally(uint64_t from, uint64_t to, uint64_t version);
  // A mutation this primary ordered ended (Complete): answers the
  // revocations waiting for the chunk's last one.
  void MutationDone(uint64_t handle);
  // Re-replication: a clone copies a chunk from a peer, one read at a time.
  struct Clone {
    Message master_req;
    uint64_t handle = 0, version = 0, offset = 0;
    int32_t source = -1;
  };
  void ReadForClone(std::shared_ptr<Clone> c);
  void OnCloneRead(const std::shared_ptr<Clone>& c, Result<Message> r);
  void FinishClone(const Clone& c, const Status& s);
  // Repair (kRepair): the damaged blocks of a replica are fetched from peers
  // at the same version, one piece at a time, and rewritten in place; a piece
  // no source can give whole is tried block by block, each block from the
  // first source whose copy of it is good. Nothing is deleted.
  void OnRepair(Message& m);
  void OnRepairRead(uint64_t handle, Result<Message> r);
  void NextRepairPiece(uint64_t handle);
  void FinishRepair(uint64_t handle, const Status& s);
  struct Repair {
    Message master_req;
    uint64_t handle = 0, version = 0;
    std::vector<int32_t> sources;
    std::deque<Range> todo;  // pieces still to fetch (block aligned)
    size_t source = 0;       // the source asked for todo.front()
    uint64_t read_id = 0;    // the call of the read in flight (0: none)
    uint64_t repaired = 0;
  };
  std::map<uint64_t, Repair> repairs_;  // by handle
  // Tells the master which blocks of a replica were found damaged (on a
  // read, a write, a scrub); empty ranges: somewhere in it.
  void ReportCorrupt(uint64_t handle, const std::vector<Range>& ranges);
  // Ranges as the wire carries them.
  static std::vector<ByteRange> ToWire(const std::vector<Range>& v);
  // A store error of a mutation: damage found on the way is reported, and the
  // client is told to retry (the master has the replica repaired first).
  Status MutationError(uint64_t handle, const Status& s);
  void SendRegister();
  // Applies a mutation to the local replica. `push` is null for truncation.
  // A pushed record bounced to the next chunk: kept briefly for its retry.
  void KeepBounced(PushEntry* e);
  // Fills e->piece_crcs from its slices.
  static void TakePieceCrcs(PushEntry* e);
  Status ApplyLocal(uint8_t kind, uint64_t handle, uint64_t offset, uint64_t length,
                    const PushEntry* push);
  // Writes of pushed data (kWrite, on the primary and on a secondary) run in
  // apply_thread_, one at a time, while the event loop goes on receiving the
  // next mutations' pushed data (most of the bytes): the receive copy of one
  // mutation overlaps the CRC pass and the pwrite of the one before, on the
  // other core. Every other use of the store first waits for the write under
  // way (DrainApply: each message but pushed data, the end of a batch, the
  // tick, the continuations of calls to peers), so the store is only ever
  // used by one thread at a time and writes are applied in the order they
  // arrived, which is the primary's serial order.
  struct ApplyTask {
    uint64_t handle = 0, offset = 0;
    PushEntry push;  // the data, taken out of pushes_ (and still charged)
    Status result;
    std::function<void(const Status&)> done;  // run in the event loop
  };
  // Checks the pushed data and the room for it here, then writes it in the
  // apply thread; `done` gets the outcome (in DrainApply, or at once when a
  // check failed). `push` (null: nothing was pushed) is moved from.
  void ApplyWrite(uint64_t handle, uint64_t offset, uint64_t length, PushEntry* push,
                  std::function<void(const Status&)> done);
  // Takes the checksums of the pushed data of a kWrite from (origin,
  // data_id) when all of it is here (the store is not touched).
  void PrepareWrite(int origin, uint64_t data_id, uint8_t kind);
  // Waits for the write under way, if any, and runs its `done`.
  void DrainApply();
  void ApplyLoop();
  void StopApplyThread();
  std::mutex apply_mu_;
  std::condition_variable apply_cv_;
  bool apply_busy_ = false;   // a task is in apply_task_, written or not
  bool apply_ready_ = false;  // apply_task_ was written (its result is set)
  bool apply_stop_ = false;
  ApplyTask apply_task_;
  std::thread apply_thread_;
  void DeleteChunks(const std::vector<uint64_t>& handles);
  uint64_t Capacity();
  // With --capacity: kNoSpace unless the store can grow to hold `handle` up to
  // `end` (a new chunk when `handle` is absent) without passing the cap.
  Status RoomFor(uint64_t handle, uint64_t end);
  // Background scrubbing: verifies the next piece of the next chunk when the
  // server has been idle a moment, at no more than --scrub-mb-per-s.
  void Scrub(uint64_t now);
  // Drops pushed data nobody used before it expired.
  void ExpirePushes(uint64_t now);
  // Moves every time kept back with a clock that jumped back.
  void NoteClockGap(uint64_t now);
  void Reply(const Message& m, const Status& s);

  Transport* t_;
  Env* env_;
  uint64_t Now() const { return env_->NowMicros(); }
  JobConfig cfg_;
  int master_;
  uint64_t master_epoch_ = 0;  // epoch of the master this server follows
  std::string dir_;
  uint64_t server_id_;
  std::string host_;
  ChunkStore store_;
  PendingCalls calls_;
  uint64_t store_id_ = 0;  // <dir>/STORE
  bool refused_ = false;   // the master is of another store: serve nothing

  bool done_ = false;
  bool registered_ = false;
  uint64_t register_sent_us_ = 0;
  uint64_t register_id_ = 0;
  uint64_t next_heartbeat_us_ = 0;
  uint64_t last_tick_us_ = 0;  // NoteClockGap
  uint64_t next_id_ = 0;

  std::map<PushKey, PushEntry> pushes_;
  uint64_t push_held_ = 0;
  std::map<uint64_t, uint64_t> leases_;  // handle -> expiry (us), where we are primary
  std::set<uint64_t> lease_used_;        // handles mutated since last heartbeat
  std::vector<std::pair<int, HostId>> watched_clients_;  // client rank, its process here
  std::vector<int32_t> ended_clients_;                   // of those, the ones that ended
  std::map<uint64_t, uint64_t> next_serial_;
  // Mutations ordered here (as primary) and not yet answered, per chunk; and
  // the lease revocations waiting for them.
  std::map<uint64_t, uint32_t> mutations_in_flight_;
  std::map<uint64_t, std::vector<Message>> revoke_waiters_;
  std::map<uint64_t, std::multiset<uint64_t>> appends_in_flight_;  // handle -> offsets
  std::map<uint64_t, std::vector<QueuedAppend>> queued_appends_;   // handle -> in offset order
  std::map<uint64_t, uint64_t> queued_end_;  // handle -> chunk length after its queued appends
  // Scrubbing: the chunk and offset to verify next, when, and the last time a
  // client or peer asked for I/O (the scrubber only runs after a quiet spell).
  uint64_t scrub_handle_ = 0;
  uint64_t scrub_offset_ = 0;
  uint64_t next_scrub_us_ = 0;
  uint64_t scrub_pass_start_us_ = 0;  // 0: no pass under way
  uint64_t last_io_us_ = 0;
  std::vector<uint8_t> scrub_buf_;
  RoleStats stats_;
};

// Picks this chunkserver's directory under data_dir: chunkserver-<n> for the
// first n >= preferred that it can lock, creating it (and its IDENTITY) when
// new. *lock keeps it ours for the life of the job.
Status ClaimChunkserverDir(Env* env, const std::string& data_dir, int preferred, std::string* dir,
                           uint64_t* server_id, std::unique_ptr<FileLock>* lock);

// Reads or creates DIR/IDENTITY (a random 64-bit id in hex).
Status LoadOrCreateIdentity(Env* env, const std::string& dir, uint64_t* id);

// DIR/STORE: the identity of the store a chunkserver directory belongs to
// (16 hex digits); 0 when the file does not exist.
Status LoadStoreId(Env* env, const std::string& dir, uint64_t* id);
Status SaveStoreId(Env* env, const std::string& dir, uint64_t id);

}  // namespace gfs
