// Client: the library a job's own ranks use. Talks to the master only for
// metadata; moves data directly to and from chunkservers (chain push for
// writes, nearest replica for reads). Every call returns a Status or Result;
// nothing throws. One Client per rank, used from one thread.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/env.h"
#include "common/hosts.h"
#include "common/status.h"
#include "common/topology.h"
#include "mpi/protocol/config.h"
#include "mpi/protocol/rpc.h"
#include "mpi/protocol/stats.h"

namespace gfs {

struct FileStat {
  std::string path;
  bool is_dir = false;
  uint64_t id = 0;
  uint64_t size = 0;
  uint32_t replication = 0;
  uint64_t chunk_size = 0;
  uint32_t chunks = 0;
  int64_t mtime_ms = 0;
};

struct CreateOptions {
  uint32_t replication = 0;  // 0: the job's default
  uint64_t chunk_size = 0;   // 0: the job's default
  bool exclusive = true;     // fail if the file exists
  bool truncate = false;     // with !exclusive: cut an existing file to zero
};

// An open file. Obtained from Client::Create/Open; pass it back to the
// Client's data calls. Cheap to copy, but writes through one copy are not
// seen by the dirty-set of another (fsync through the one you wrote with).
struct File {
  std::string path;
  uint64_t id = 0;
  uint32_t replication = 0;
  uint64_t chunk_size = 0;
  uint64_t length = 0;  // as last seen by this client
  // Chunks written since the last fsync: handle -> replicas.
  std::map<uint64_t, std::vector<int32_t>> dirty;
  // Record append: the chunk index appends go to (kUnknownIndex: ask the
  // master for the last chunk).
  static constexpr uint32_t kUnknownIndex = 0xFFFFFFFFu;
  uint32_t append_index = kUnknownIndex;
};

// Progress callback for long transfers: bytes done so far.
using ProgressFn = std::function<void(uint64_t done)>;

struct ChunkLease;
class LeaseCache;
class MasterChannel;
class MutationEngine;
struct LocalView;
struct ReadState;
struct ReadStream;

class Client {
 public:
  // hosts: where every rank runs (index = rank), for nearest-replica choice
  // and short-circuit reads.
  Client(Transport* t, const JobConfig& cfg, int master_rank, std::vector<HostId> hosts);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  Status Mkdir(const std::string& path, bool parents);
  Result<FileStat> Stat(const std::string& path);
  Result<std::vector<FileStat>> List(const std::string& path);
  // Deletes at once (its chunks are freed); no trash.
  Status Remove(const std::string& path, bool recursive);
  // `gfs rm`: moves the entry to the trash (doc/architecture.md, "Trash and
  // garbage collection") and returns where it went; with skip_trash, when
  // the master keeps no trash, or for an entry in the trash, deletes it at
  // once and returns "".
  Result<std::string> Trash(const std::string& path, bool recursive, bool skip_trash);
  // Moves the most recent deletion of path back from the trash (kNotFound:
  // none; kAlreadyExists: path exists).
  Result<UndeleteReply> Undelete(const std::string& path);
  // Deletes the trash older than the retention (all of it with `all`) and
  // has the chunkservers delete every chunk no file refers to; returns once
  // they have.
  Result<ExpungeReply> Expunge(bool all);
  // With `replace`, an existing file at dst is replaced in the same logged
  // step (its chunks freed); without, an existing dst is kAlreadyExists.
  Status Rename(const std::string& src, const std::string& dst, bool replace = false);
  // Makes dst a snapshot of the file or tree at src: dst's files share src's
  // chunks, and the first write or append to a shared chunk (from either
  // side) copies it first, so later writes to one never show in the other.
  // kNotFound (src), kAlreadyExists (dst), kInvalidArgument (dst inside src).
  Status Snapshot(const std::string& src, const std::string& dst);

  Result<File> Create(const std::string& path, const CreateOptions& opts = {});
  Result<File> Open(const std::string& path);

  // Writes n bytes at offset (extending the file as needed). Acknowledged =
  // applied on every replica; durable after Fsync/Close. A write past the
  // end grows the length this client sees at once; the master (and so other
  // clients) learns the new length at Fsync, Close, Rename of the file, or
  // Finish, in one logged update instead of one per write.
  Status Write(File* f, uint64_t offset, const void* data, size_t n,
               const ProgressFn& progress = {});
  // Reads up to n bytes at offset; returns the bytes read (short at EOF).
  Result<size_t> Read(File* f, uint64_t offset, void* buf, size_t n,
                      const ProgressFn& progress = {});
  // Record append (GFS §3.3): appends the n bytes as one unit at an offset the
  // primary picks, atomically, with no coordination among clients. At least
  // once: after a failure the client retries, so the bytes may appear more than
  // once, and replicas may hold padding or garbage between records (readers use
  // self-validating frames, io/record.h). Returns the file offset where the
  // bytes begin. n must be at most chunk_size / 4 (kTooLarge otherwise, naming
  // the limit). Acknowledged = applied on every replica.
  Result<uint64_t> RecordAppend(File* f, const void* data, size_t n);
  // Appends many records, keeping up to append_window of them in flight (each
  // still atomic and at-least-once; their order in the file is not the order
  // given). (*offsets)[i] is where records[i] went.
  struct Span {
    const void* data;
    size_t size;
  };
  Status RecordAppendMany(File* f, const std::vector<Span>& records,
                          std::vector<uint64_t>* offsets);
  // The file's committed length: every append below it has completed on every
  // replica, so a tailing reader may read up to it. Also updates f->length.
  Result<uint64_t> CommittedLength(File* f);

  // Makes f's written bytes durable on every replica, then its length on
  // the master.
  Status Fsync(File* f);
  Status Close(File* f);
  Status Truncate(File* f, uint64_t length);

  // Cluster health as the master sees it (gfs report / gfs fsck). With
  // `verify`, every chunkserver checks all its replicas' checksums first.
  Result<ReportReply> Report();
  Result<FsckReply> Fsck(const std::string& path, bool verify);
  // Sets the replication of a file, or of every file of a tree (gfs setrep);
  // returns how many files it set.
  Result<uint64_t> SetReplication(const std::string& path, uint32_t replication);
  // How far the files at or under `path` are from their replication, and the
  // chunkservers' bytes of chunks (gfs setrep -w, gfs balance, gfs report).
  Result<ReplicationStateReply> ReplicationState(const std::string& path);

  // Tells the master this client is finished (the job ends when all are).
  Status Finish(int status);
  // The client ranks (world ranks) the master has taken as gone: their
  // process ended, or their host was lost (master/clients.cc). A job whose
  // ranks wait for each other stops waiting for these.
  Result<std::vector<int>> GoneClients();

  RoleStats& stats() { return stats_; }
  // The file system and clock the client uses: short-circuit reads open
  // chunk files through it; leases, read-ahead and retries read its time
  // (Env::Posix() by default; tests inject faults). Must outlive the client.
  void set_env(Env* env) {
    env_ = env;
    rpc_.set_env(env);
  }

  // Sequential reads are read ahead (JobConfig::read_ahead bytes); bytes that
  // arrived longer ago than this are read anew, so another client's write is
  // seen within this long.
  static constexpr uint64_t kAheadMaxAgeUs = 500000;
  // Most bytes one short-circuit answer covers (its checksums: 16 KiB).
  static constexpr uint64_t kLocalWindow = 256ull << 20;
  Transport* transport() { return rpc_.transport(); }

 private:
  // Writes, appends and truncations run in the engine (io/client/), which
  // shares the client's leases, pushed-data acks and counters.
  friend class MutationEngine;

  // A request to the master through the master channel, which fails over
  // between the master and its shadows (io/client/master_channel.h).
  // timeout_ms 0 = the job's request timeout.
  template <typename Req, typename Rep>
  Status MasterCall(const Req& req, Rep* rep, uint32_t timeout_ms = 0) {
    static_assert(kRepliesWith<Req, Rep>, "the protocol table gives this request another reply");
    constexpr MsgType kType = ProtocolOf<Req>::kType;
    constexpr bool kReadOnly =
        kType == MsgType::kStat || kType == MsgType::kList || kType == MsgType::kLookup;
    auto m = MasterRequest([&](int dest, uint32_t ms) { return rpc_.Start(dest, req, ms); },
                           kReadOnly, timeout_ms ? timeout_ms : cfg_.request_timeout_ms);
    if (!m.ok()) return m.status();
    if (!m->status().ok()) return m->status();
    return m->Decode(rep);
  }
  Result<Message> MasterRequest(const std::function<Result<uint64_t>(int, uint32_t)>& start,
                                bool read_only, uint32_t timeout_ms);
  Result<ChunkLease> GetLease(File* f, uint32_t index);
  // Asks the master for the lease of the chunk record appends go to (its
  // file's last); caches it and returns the chunk's index.
  Result<uint32_t> GetAppendLease(File* f);
  void PumpOrIdle();
  // Pushed slices are sent from the caller's memory (Transport::SendWithTail):
  // a call that pushed waits, on leaving, until no such send is pending.
  struct TailGuard {
    Client* c;
    ~TailGuard();
  };
  Status FetchLocations(File* f, uint32_t first, uint32_t count);

  // Reads, read-ahead and short-circuit reads (io/client/read*.cc,
  // short_circuit.cc; their state in io/client/read_state.h).
  ReadStream& Stream(uint64_t file_id);
  void DropAhead(ReadStream* rs);
  void ForgetStream(uint64_t file_id);
  // Copies what read-ahead holds for [offset, offset + n) from its start;
  // returns the bytes copied.
  size_t TakeAhead(File* f, ReadStream* rs, uint64_t offset, uint8_t* out, size_t n);
  void TopUpAhead(File* f, ReadStream* rs, uint64_t from);
  Status ReadPieces(File* f, uint64_t offset, uint8_t* out, size_t n, const ProgressFn& progress);
  // A piece every replica failed a checksum in: read it again one checksum
  // block at a time, each from a replica whose copy of it is good. Fails
  // (Corruption naming the file and the first range no replica holds good)
  // only when some block is good nowhere.
  Status ReadAround(File* f, uint64_t offset, uint8_t* out, size_t n, const Status& last);
  // A replica that did not answer a read leaves the cached locations of the
  // chunk (unless it is the last), so later reads and read-ahead do not wait
  // for it again; a location refresh from the master brings back the truth.
  void ForgetReplica(uint64_t file_id, uint32_t index, int32_t rank);
  // A replica to read from: the nearest, spread over equally near ones by
  // `turn` (one ReadState::read_rr value per request), then the next one per attempt.
  int32_t PickReplica(const ChunkLocation& loc, uint64_t turn, size_t attempt);
  // The furthest end written or appended to a file, not yet told to the
  // master (see Write).
  void NoteEnd(File* f, uint64_t end);
  // Tells the master the length noted for file `id`, if any (grow only).
  Status ReportLength(uint64_t id);
  // ReportLength for every file at `path` or under it.
  Status ReportLengthsUnder(const std::string& path);
  // `ranks` in push-chain order from rank `from`: each next one the nearest
  // (Distance) to the one before, ties in the given order.
  std::vector<int32_t> OrderByDistance(std::vector<int32_t> ranks, int from) const;
  // How far apart two ranks are: 0 on one host, 1 on two hosts of one rack
  // (cfg.topology_file), 2 otherwise (or a rank unknown).
  int Distance(int32_t a, int32_t b) const;
  void OnUnsolicited(Message& m);

  // Short-circuit reads (io/client/short_circuit.cc): whether a replica's
  // data file is read by this client itself.
  bool ShortCircuit(int32_t target) const;
  // A chunkserver on this host (same name and boot id; not this rank) whose
  // files this client can open.
  bool LocalPeer(int32_t target) const;
  bool SameHostName(int32_t a, int32_t b) const;
  // A read-local answer's path is opened only if it is the data file of that
  // very chunk under the job's data directory (no other file on the host).
  bool ChunkFilePath(const std::string& path, uint64_t handle) const;
  // Reads [chunk_off, chunk_off + n) (inside [v->base, v->end)) into out and
  // verifies every block it touches.
  Status ReadFromView(LocalView* v, uint64_t chunk_off, uint8_t* out, size_t n);
  // Reads the blocks [from, to) of v (from a block start to a block end or
  // v->end) into dst and checks each against v's checksums.
  static Status ReadBlocksChecked(LocalView* v, uint64_t from, uint64_t to, uint8_t* dst);
  // Reads what the file's last short-circuit answer covers of
  // [offset, offset + n) from its start; returns the bytes read.
  size_t TakeLocal(File* f, uint64_t offset, uint8_t* out, size_t n);
  // A kReadLocal answer for chunk `index`: reads its [chunk_off, +n) into
  // out (*got bytes: fewer past the chunk's length) and keeps the answer.
  // A chunkserver whose file cannot be opened is not asked again (its
  // replicas are read through it from then on).
  Status ReadLocalPiece(File* f, uint32_t index, uint64_t handle, int32_t target,
                        ReadLocalReply& rep, uint64_t chunk_off, uint8_t* out, size_t n,
                        size_t* got);

  RpcClient rpc_;
  JobConfig cfg_;
  std::unique_ptr<MasterChannel> master_channel_;  // io/client/master_channel.h
  std::vector<HostId> hosts_;
  Topology topology_;         // racks of the hosts; empty: every host a rack of its own
  std::string data_dir_abs_;  // cfg_.data_dir, absolute and normalised
  uint64_t next_data_id_ = 0;
  // Push-acks of the data ids in flight (an entry is made when the push is
  // sent; acks of other ids are dropped): how many came, and the first
  // refusal among them.
  struct PushAcks {
    uint16_t status = 0;  // Code
    uint32_t count = 0;
  };
  std::map<uint64_t, PushAcks> push_acks_;
  std::unique_ptr<LeaseCache> cache_;  // leases and locations (io/client/lease_cache.h)
  struct Unreported {
    std::string path;
    uint64_t end = 0;
  };
  std::map<uint64_t, Unreported> unreported_;  // file id -> NoteEnd
  std::unique_ptr<ReadState> reads_;           // io/client/read_state.h
  Env* env_ = Env::Posix();
  RoleStats stats_;
};

}  // namespace gfs
