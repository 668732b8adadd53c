// Message bodies. Each struct names its MsgType and lists its fields once in
// Visit(). See doc/wire-format.md for the table of messages and their flows.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "mpi/protocol/wire.h"

namespace gfs {

#define GFS_MSG(T) static constexpr MsgType kType = MsgType::T

// ---- shared pieces ----

struct FileAttr {
  uint64_t id = 0;
  bool is_dir = false;
  uint32_t replication = 0;
  uint64_t chunk_size = 0;
  uint64_t length = 0;
  uint32_t num_chunks = 0;
  int64_t mtime_ms = 0;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.id) && v(s.is_dir) && v(s.replication) && v(s.chunk_size) && v(s.length) &&
           v(s.num_chunks) && v(s.mtime_ms);
  }
};

struct ListEntry {
  std::string name;
  FileAttr attr;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.name) && s.attr.Visit(v);
  }
};

// Bytes [offset, offset + length) of a chunk. Damage is found and repaired
// in whole 64 KiB checksum blocks (the chunk's last block may be partial).
struct ByteRange {
  uint64_t offset = 0;
  uint64_t length = 0;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.offset) && v(s.length);
  }
};

struct ChunkLocation {
  uint32_t index = 0;
  uint64_t handle = 0;  // 0: a hole (never written)
  uint64_t version = 0;
  std::vector<int32_t> replicas;  // chunkserver ranks, nearest-first is the client's job
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.index) && v(s.handle) && v(s.version) && v(s.replicas, 64);
  }
};

// ---- client -> master ----

struct MkdirReq {
  GFS_MSG(kMkdir);
  std::string path;
  bool parents = false;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.path) && v(s.parents);
  }
};

struct CreateReq {
  GFS_MSG(kCreate);
  std::string path;
  uint32_t replication = 0;  // 0: the job's default
  uint64_t chunk_size = 0;   // 0: the job's default
  bool exclusive = true;     // false: an existing file is opened, not an error
  bool truncate = false;     // with !exclusive: cut an existing file to 0
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.path) && v(s.replication) && v(s.chunk_size) && v(s.exclusive) && v(s.truncate);
  }
};

struct DeleteReq {
  GFS_MSG(kDelete);
  std::string path;
  bool recursive = false;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.path) && v(s.recursive);
  }
};

// `gfs rm`: moves the entry into the trash (doc/architecture.md "Trash and
// garbage collection"), or deletes it at once with skip_trash, when the
// trash is off (--trash-retention 0), or for an entry already in the trash.
struct RemoveReq {
  GFS_MSG(kRemove);
  std::string path;
  bool recursive = false;
  bool skip_trash = false;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.path) && v(s.recursive) && v(s.skip_trash);
  }
};
struct RemoveReply {
  std::string trash_path;  // where the entry went; empty: deleted at once
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.trash_path);
  }
};

// `gfs undelete`: moves the most recent deletion of `path` back.
struct UndeleteReq {
  GFS_MSG(kUndelete);
  std::string path;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.path);
  }
};
struct UndeleteReply {
  std::string trash_path;  // the trash entry restored
  int64_t deleted_ms = 0;  // its deletion time
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.trash_path) && v(s.deleted_ms);
  }
};

// `gfs expunge`: removes the trash older than the retention (all of it with
// `all`), then has every live chunkserver delete the chunks no file refers
// to; answered once they have.
struct ExpungeReq {
  GFS_MSG(kExpunge);
  bool all = false;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.all);
  }
};
struct ExpungeReply {
  uint64_t trash_removed = 0;    // deletion-time directories of the trash removed
  uint64_t temps_removed = 0;    // left-over transfer temporaries removed
  uint64_t chunks_deleted = 0;   // replicas the chunkservers were told to delete
  uint64_t orphans_deleted = 0;  // of which held by chunkservers but known to no file
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.trash_removed) && v(s.temps_removed) && v(s.chunks_deleted) && v(s.orphans_deleted);
  }
};

struct RenameReq {
  GFS_MSG(kRename);
  std::string src, dst;
  bool replace = false;  // an existing file at dst is replaced (wire version 4)
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.src) && v(s.dst) && v(s.replace);
  }
};

// Client -> master: make dst a snapshot of the file or tree at src (its
// files share src's chunks until either side writes one: copy-on-write).
struct SnapshotReq {
  GFS_MSG(kSnapshot);
  std::string src, dst;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.src) && v(s.dst);
  }
};

struct PathReq {  // list, stat
  std::string path;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.path);
  }
};
struct ListReq : PathReq {
  GFS_MSG(kList);
};
struct StatReq : PathReq {
  GFS_MSG(kStat);
};

struct ListReply {
  std::vector<ListEntry> entries;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.entries);
  }
};

struct StatReply {
  FileAttr attr;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return s.attr.Visit(v);
  }
};

// Locations of chunks [first, first+count); the master adds the chunks that
// follow (prefetch) up to its own limit.
struct LookupReq {
  GFS_MSG(kLookup);
  std::string path;
  uint32_t first = 0;
  uint32_t count = 1;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.path) && v(s.first) && v(s.count);
  }
};

struct LookupReply {
  FileAttr attr;
  std::vector<ChunkLocation> chunks;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return s.attr.Visit(v) && v(s.chunks, 1u << 20);
  }
};

// Who holds the lease on chunk `index` of `path`; allocates the chunk if it
// does not exist yet. Replicas are listed primary first.
struct LeaseReq {
  GFS_MSG(kLease);
  std::string path;
  uint64_t file_id = 0;  // must match, so a replaced file is not written by mistake
  uint32_t index = 0;
  bool append = false;  // true: the file's last chunk (index ignored)
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.path) && v(s.file_id) && v(s.index) && v(s.append);
  }
};

struct LeaseReply {
  uint32_t index = 0;
  uint64_t handle = 0;
  uint64_t version = 0;
  int32_t primary = -1;
  std::vector<int32_t> replicas;  // all replicas including the primary
  uint32_t lease_ms = 0;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.index) && v(s.handle) && v(s.version) && v(s.primary) && v(s.replicas, 64) &&
           v(s.lease_ms);
  }
};

struct SetLengthReq {
  GFS_MSG(kSetLength);
  std::string path;
  uint64_t file_id = 0;
  uint64_t length = 0;
  bool grow_only = true;  // true: max(current, length) (after a write); false: truncate
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.path) && v(s.file_id) && v(s.length) && v(s.grow_only);
  }
};

struct SetLengthReply {
  uint64_t length = 0;
  // With !grow_only: the chunk that now ends the file, so the client can cut it.
  ChunkLocation last;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.length) && s.last.Visit(v);
  }
};

struct ClientDoneReq {
  GFS_MSG(kClientDone);
  int32_t status = 0;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.status);
  }
};

// Per-rank counters, asked for by tests and `gfs` diagnostics.
struct GetStatsReq {
  GFS_MSG(kGetStats);
  template <class V>
  bool Visit(V&) const {
    return true;
  }
};

// Client -> master: which client ranks of the job has the master taken as
// gone (their process ended, or their host was lost)? A job that waits for
// its peers (the producer-consumer job) stops waiting for those.
struct ClientsGoneReq {
  GFS_MSG(kClientsGone);
  template <class V>
  bool Visit(V&) const {
    return true;
  }
};

struct ClientsGoneReply {
  std::vector<int32_t> ranks;  // world ranks, ascending
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.ranks);
  }
};

// Chunkservers as the master sees them.
struct ReportReq {
  GFS_MSG(kReport);
  template <class V>
  bool Visit(V&) const {
    return true;
  }
};

struct ServerReport {
  int32_t rank = -1;
  uint64_t id = 0;
  std::string dir_name, host;
  bool alive = false;
  uint64_t capacity = 0, used = 0;
  uint32_t chunks = 0;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.rank) && v(s.id) && v(s.dir_name) && v(s.host) && v(s.alive) && v(s.capacity) &&
           v(s.used) && v(s.chunks);
  }
};

struct ReportReply {
  std::vector<ServerReport> servers;
  uint64_t chunks = 0;
  uint64_t under_replicated = 0;
  uint64_t lost = 0;
  uint64_t store_id = 0;  // the store's identity
  // The master's most recent requests and replies, oldest first (its RPC
  // log's lines: mpi/protocol/rpc_log.h).
  std::vector<std::string> recent_rpcs;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.servers, 65536) && v(s.chunks) && v(s.under_replicated) && v(s.lost) &&
           v(s.store_id) && v(s.recent_rpcs, 256);
  }
};

// `gfs setrep`: every file at or under `path` gets `replication` (a logged
// op); the master then clones or removes replicas to match.
struct SetReplicationReq {
  GFS_MSG(kSetReplication);
  std::string path;
  uint32_t replication = 0;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.path) && v(s.replication);
  }
};

struct SetReplicationReply {
  uint64_t files = 0;  // files whose replication is now the one asked
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.files);
  }
};

// Where replication and balance stand for the files at or under `path`
// (`gfs setrep -w`, `gfs balance`).
struct ReplicationStateReq {
  GFS_MSG(kReplicationState);
  std::string path;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.path);
  }
};

// Bytes of chunk replicas on one chunkserver, as the master counts them
// (each replica counts its chunk's length from the file's length).
struct ServerBytes {
  int32_t rank = -1;
  uint64_t chunk_bytes = 0;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.rank) && v(s.chunk_bytes);
  }
};

struct ReplicationStateReply {
  uint64_t chunks = 0;
  // Chunks whose good replicas are not exactly their file's replication, or
  // with a clone or a move under way.
  uint64_t off_target = 0;
  uint64_t under = 0;       // of them, chunks with fewer good replicas than their replication
  uint64_t moves_done = 0;  // rebalancing moves finished by this master
  bool balanced = true;     // live chunkservers within the rebalance threshold
  std::vector<ServerBytes> servers;  // live chunkservers
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.chunks) && v(s.off_target) && v(s.under) && v(s.moves_done) && v(s.balanced) &&
           v(s.servers, 65536);
  }
};

// Per-file health. With `verify`, every live chunkserver first checks the
// checksums of all its replicas (a replica that fails is corrupt).
struct FsckReq {
  GFS_MSG(kFsck);
  std::string path;
  bool verify = false;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.path) && v(s.verify);
  }
};

// Where a replica failed its checksums (or lacks bytes or checksums).
struct ReplicaDamage {
  int32_t rank = -1;
  std::vector<ByteRange> ranges;  // chunk offsets, whole blocks
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.rank) && v(s.ranges);
  }
};

struct FsckChunk {
  uint32_t index = 0;
  uint64_t handle = 0;
  uint64_t version = 0;
  std::vector<int32_t> replicas;  // live, current, not known damaged
  std::vector<int32_t> corrupt;   // live, current replicas with damaged blocks (kept, repaired)
  uint32_t stale = 0;             // replicas found at an older version (removed)
  std::vector<ReplicaDamage> damaged;  // the damaged blocks of each `corrupt` replica
  // Chunk ranges no live replica holds a good copy of: reads of them fail.
  std::vector<ByteRange> unreadable;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.index) && v(s.handle) && v(s.version) && v(s.replicas, 64) && v(s.corrupt, 64) &&
           v(s.stale) && v(s.damaged, 64) && v(s.unreadable);
  }
};

struct FsckFile {
  std::string path;
  uint32_t replication = 0;
  uint64_t length = 0;
  uint64_t chunk_size = 0;  // so chunk ranges can be told as file offsets
  std::vector<FsckChunk> chunks;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.path) && v(s.replication) && v(s.length) && v(s.chunk_size) && v(s.chunks);
  }
};

struct FsckReply {
  std::vector<FsckFile> files;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.files);
  }
};

// Master -> chunkserver: verify the checksums of every replica now.
struct VerifyReq {
  GFS_MSG(kVerify);
  template <class V>
  bool Visit(V&) const {
    return true;
  }
};

// A replica and its damaged ranges (none: it verified clean).
struct ChunkDamage {
  uint64_t handle = 0;
  std::vector<ByteRange> ranges;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.handle) && v(s.ranges);
  }
};

struct VerifyReply {
  uint32_t checked = 0;
  std::vector<ChunkDamage> damaged;  // only replicas with damage; the rest verified clean
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.checked) && v(s.damaged);
  }
};

// Chunkserver -> master: blocks of a replica failed their checksums (on a
// read, a scrub or a verification). The replica is kept and serves its good
// blocks; the master has the damaged ones repaired from a good copy.
struct CorruptReq {
  GFS_MSG(kCorrupt);
  uint64_t handle = 0;
  std::vector<ByteRange> ranges;  // the damage found (empty: somewhere, unknown)
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.handle) && v(s.ranges);
  }
};

// Master -> the chunkserver of a damaged replica at `version`: verify it,
// fetch every damaged block from the first of `sources` (replicas at the
// same version) whose copy of that block is good, write it in place, sync.
// Nothing is deleted; blocks no source holds good stay damaged.
struct RepairReq {
  GFS_MSG(kRepair);
  uint64_t handle = 0;
  uint64_t version = 0;
  std::vector<int32_t> sources;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.handle) && v(s.version) && v(s.sources, 64);
  }
};

struct RepairReply {
  uint64_t repaired_bytes = 0;
  std::vector<ByteRange> still_damaged;  // empty: the replica verifies clean
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.repaired_bytes) && v(s.still_damaged);
  }
};

// Master -> chunkserver: make a replica of `handle` at `version` by reading
// it from the chunkserver `source` (re-replication).
struct CloneReq {
  GFS_MSG(kClone);
  uint64_t handle = 0;
  uint64_t version = 0;
  int32_t source = -1;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.handle) && v(s.version) && v(s.source);
  }
};

// ---- chunkserver <-> master ----

struct ChunkReport {
  uint64_t handle = 0;
  uint64_t version = 0;
  uint64_t length = 0;             // the replica's recorded length
  std::vector<ByteRange> damaged;  // found at start-up: bytes or checksums missing
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.handle) && v(s.version) && v(s.length) && v(s.damaged);
  }
};

struct RegisterReq {
  GFS_MSG(kRegister);
  uint64_t server_id = 0;  // stable identity from the chunkserver's directory
  std::string dir_name;
  std::string host;
  uint64_t capacity = 0;
  uint64_t used = 0;
  // The store this chunkserver's directory belongs to (0: none yet: a new
  // directory, or one of an older format that takes the master's).
  uint64_t store_id = 0;
  std::vector<ChunkReport> chunks;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.server_id) && v(s.dir_name) && v(s.host) && v(s.capacity) && v(s.used) &&
           v(s.store_id) && v(s.chunks);
  }
};

// A chunkserver of another store is refused (kWrongStore) and deletes nothing.
struct RegisterReply {
  uint64_t store_id = 0;                 // the master's store: recorded by a new directory
  std::vector<uint64_t> delete_handles;  // orphans and stale replicas
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.store_id) && v(s.delete_handles);
  }
};

struct HeartbeatReq {
  GFS_MSG(kHeartbeat);
  uint64_t used = 0;
  uint64_t capacity = 0;
  uint32_t num_chunks = 0;
  std::vector<uint64_t> extend_leases;  // handles this primary is still mutating
  // Client ranks on this chunkserver's machine whose process has ended
  // (every one seen so far, in each heartbeat).
  std::vector<int32_t> ended_clients;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.used) && v(s.capacity) && v(s.num_chunks) && v(s.extend_leases) &&
           v(s.ended_clients);
  }
};

struct HeartbeatReply {
  std::vector<uint64_t> extended;  // leases extended by lease_ms
  uint32_t lease_ms = 0;
  std::vector<uint64_t> delete_handles;
  uint64_t store_id = 0;  // the master's store (a new store gets its id once all registered)
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.extended) && v(s.lease_ms) && v(s.delete_handles) && v(s.store_id);
  }
};

// Master -> chunkserver (the chunk scan of garbage collection): delete
// these chunks first, then answer with every chunk still held, so that the
// reply confirms the deletes and the master finds the orphans.
struct HeldChunksReq {
  GFS_MSG(kHeldChunks);
  std::vector<uint64_t> delete_handles;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.delete_handles);
  }
};
struct HeldChunksReply {
  std::vector<uint64_t> handles;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.handles);
  }
};

// Master -> chunkserver before a lease is handed to a client: record the new
// version durably (creating the chunk when `create`); the primary also learns
// its lease.
struct PrepareChunkReq {
  GFS_MSG(kPrepareChunk);
  uint64_t handle = 0;
  uint64_t version = 0;
  bool create = false;
  bool primary = false;
  uint32_t lease_ms = 0;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.handle) && v(s.version) && v(s.create) && v(s.primary) && v(s.lease_ms);
  }
};

// Master -> every chunkserver holding chunk `from`: copy it, bytes and
// checksums, into a new chunk `to` at `version` in the same store (no
// network transfer), synced before the reply (copy-on-write of a snapshot's
// shared chunk).
struct CopyChunkReq {
  GFS_MSG(kCopyChunk);
  uint64_t from = 0;
  uint64_t to = 0;
  uint64_t version = 0;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.from) && v(s.to) && v(s.version);
  }
};

// Master -> a chunk's primary: give up the lease on `handle` (a snapshot is
// about to share the chunk). Answered once no mutation of the chunk that
// this primary ordered is still in flight, so none lands after the reply.
struct RevokeLeaseReq {
  GFS_MSG(kRevokeLease);
  uint64_t handle = 0;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.handle);
  }
};

struct ShutdownReq {
  GFS_MSG(kShutdown);
  template <class V>
  bool Visit(V&) const {
    return true;
  }
};

// ---- data path ----

// One slice of pushed data. Servers store it under (origin, data_id) and
// forward the identical buffer to the next rank in `chain`; the last rank in
// the chain, or a rank not in it (an empty chain: a star push, where the
// client sends to each replica), sends PushAck to `origin` once it holds all
// `total` bytes.
struct PushDataMsg {
  GFS_MSG(kPushData);
  int32_t origin = -1;
  uint64_t data_id = 0;
  uint64_t total = 0;
  uint64_t offset = 0;  // of this slice within the pushed data
  std::vector<int32_t> chain;
  BlobView bytes;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.origin) && v(s.data_id) && v(s.total) && v(s.offset) && v(s.chain, 64) && v(s.bytes);
  }
};

struct PushAckMsg {
  GFS_MSG(kPushAck);
  uint64_t data_id = 0;
  uint16_t status = 0;  // Code
  int32_t from = -1;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.data_id) && v(s.status) && v(s.from);
  }
};

enum class MutationKind : uint8_t { kWrite = 1, kTruncate = 2, kPad = 3 };

// Client -> primary: apply pushed data `data_id` at `offset` of the chunk.
struct WriteReq {
  GFS_MSG(kWrite);
  uint64_t handle = 0;
  uint64_t version = 0;
  uint8_t kind = static_cast<uint8_t>(MutationKind::kWrite);
  uint64_t offset = 0;  // for kTruncate: the new chunk length
  uint64_t length = 0;
  uint64_t data_id = 0;
  std::vector<int32_t> secondaries;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.handle) && v(s.version) && v(s.kind) && v(s.offset) && v(s.length) && v(s.data_id) &&
           v(s.secondaries, 64);
  }
};

// Primary -> secondary: apply mutation `serial` exactly as the primary did.
struct ApplyReq {
  GFS_MSG(kApply);
  uint64_t serial = 0;
  uint64_t handle = 0;
  uint64_t version = 0;
  uint8_t kind = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
  int32_t origin = -1;  // whose pushed data
  uint64_t data_id = 0;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.serial) && v(s.handle) && v(s.version) && v(s.kind) && v(s.offset) && v(s.length) &&
           v(s.origin) && v(s.data_id);
  }
};

struct ReadReq {
  GFS_MSG(kRead);
  uint64_t handle = 0;
  uint64_t version = 0;
  uint64_t offset = 0;
  uint32_t length = 0;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.handle) && v(s.version) && v(s.offset) && v(s.length);
  }
};

struct ReadReply {
  uint64_t chunk_length = 0;
  BlobView bytes;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.chunk_length) && v(s.bytes);
  }
};

// Client -> a chunkserver on the client's own host: a short-circuit read. The
// chunkserver checks the version as for kRead and answers with where the
// chunk's data file is and the checksums of the blocks covering
// [offset, offset + length) (clipped to the chunk's length); the client reads
// the file itself and verifies every block against them. A client that cannot
// (no access, a short file, a checksum mismatch) falls back to kRead.
struct ReadLocalReq : ReadReq {  // the same fields
  GFS_MSG(kReadLocal);
};

struct ReadLocalReply {
  uint64_t chunk_length = 0;
  std::string path;            // the chunk's data file, absolute
  uint32_t block_size = 0;     // bytes per checksummed block
  uint64_t base = 0;           // chunk offset of the first block (a multiple of block_size)
  uint64_t end = 0;            // end of the checksummed bytes: min(last block's end, chunk_length)
  std::vector<uint32_t> crcs;  // CRC32C of each block of [base, end)
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.chunk_length) && v(s.path) && v(s.block_size) && v(s.base) && v(s.end) && v(s.crcs);
  }
};

// Client -> primary: append pushed data `data_id` (length bytes) at an offset
// the primary picks. kRetryNextChunk when it does not fit (the chunk was padded
// to chunk_size on every replica first); kTooLarge over chunk_size / 4.
struct AppendReq {
  GFS_MSG(kAppend);
  uint64_t handle = 0;
  uint64_t version = 0;
  uint64_t chunk_size = 0;
  uint64_t length = 0;
  uint64_t data_id = 0;
  std::vector<int32_t> secondaries;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.handle) && v(s.version) && v(s.chunk_size) && v(s.length) && v(s.data_id) &&
           v(s.secondaries, 64);
  }
};

struct AppendReply {
  uint64_t offset = 0;  // within the chunk
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.offset);
  }
};

// Client -> replica: how much of the chunk is committed (every append below
// it completed on every replica). Only the lease-holding primary knows; other
// replicas say so and report their length.
struct CommittedReq {
  GFS_MSG(kCommitted);
  uint64_t handle = 0;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.handle);
  }
};

struct CommittedReply {
  bool primary = false;
  uint64_t committed = 0;
  uint64_t length = 0;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.primary) && v(s.committed) && v(s.length);
  }
};

struct SyncReq {
  GFS_MSG(kSync);
  uint64_t handle = 0;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.handle);
  }
};

// Counters a rank reports (GetStats reply): name -> value.
struct StatsReply {
  std::vector<std::string> names;
  std::vector<uint64_t> values;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.names, 4096) && v(s.values, 4096);
  }
};

// ---- master group: shadow masters, elections, failover ----

// One op-log record as the master logged it (a MetaOp encoding).
struct LogRecord {
  std::string op;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.op, 3 * kMaxPath);
  }
};

// Where a chunk's replicas are, as the master knows it (soft state shipped to
// shadows so they can answer lookups).
struct LocationUpdate {
  uint64_t handle = 0;
  std::vector<int32_t> replicas;  // empty: forget the chunk
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.handle) && v(s.replicas, 64);
  }
};

// Master -> shadow: the records first_seq, first_seq+1, ... (possibly none:
// then it is a keep-alive), or, when `snapshot` is non-empty, a whole
// checkpoint replacing the shadow's state (first_seq - 1 is its sequence).
// The shadow makes them durable before it answers.
struct LogBatchReq {
  GFS_MSG(kLogBatch);
  uint64_t first_seq = 0;
  std::vector<LogRecord> records;
  std::string snapshot;
  bool in_sync = false;  // the shadow is in the synchronous set
  std::vector<LocationUpdate> locations;
  std::vector<int32_t> live_servers;  // chunkserver ranks the master sees alive
  uint64_t store_id = 0;              // recorded by a shadow that has none yet
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.first_seq) && v(s.records, 1u << 20) && v(s.snapshot, kMaxBlob) && v(s.in_sync) &&
           v(s.locations) && v(s.live_servers, 65536) && v(s.store_id);
  }
};

struct LogBatchReply {
  uint64_t last_seq = 0;  // the shadow's last durable record
  bool need_snapshot = false;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.last_seq) && v(s.need_snapshot);
  }
};

// Shadow -> master group: elect me master of `epoch` (the header's epoch is
// the candidate's current one). Granted only to a candidate whose log is at
// least as advanced as the voter's.
struct VoteReq {
  GFS_MSG(kVote);
  uint64_t epoch = 0;
  uint64_t log_epoch = 0;
  uint64_t last_seq = 0;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.epoch) && v(s.log_epoch) && v(s.last_seq);
  }
};

struct VoteReply {
  bool granted = false;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.granted);
  }
};

// New master -> every rank: rank `master` leads epoch `epoch` from now on;
// chunkservers register with it again.
struct NewMasterReq {
  GFS_MSG(kNewMaster);
  uint64_t epoch = 0;
  int32_t master = -1;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.epoch) && v(s.master);
  }
};

struct WhoIsMasterReq {
  GFS_MSG(kWhoIsMaster);
  template <class V>
  bool Visit(V&) const {
    return true;
  }
};

struct WhoIsMasterReply {
  uint64_t epoch = 0;
  int32_t master = -1;  // -1: an election is under way
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.epoch) && v(s.master);
  }
};

#undef GFS_MSG

// ---- the protocol table, as types ----

// The reply of a one-way message (push-data, push-ack): there is none.
struct OneWay {};

// ProtocolOf<Req>: what the protocol table (wire.h) says of request body Req:
// its type, its name, and the body of its successful reply. Only bodies in
// the table have one, so sending anything else does not compile.
template <typename Req>
struct ProtocolOf;

#define GFS_PROTOCOL_TRAIT_ROW(name, number, text, Req, Rep) \
  template <>                                                \
  struct ProtocolOf<Req> {                                   \
    static constexpr MsgType kType = MsgType::name;          \
    static constexpr const char* kName = text;               \
    using Reply = Rep;                                       \
  };                                                         \
  static_assert(Req::kType == MsgType::name, #Req " is tagged with another type");
GFS_PROTOCOL_TABLE(GFS_PROTOCOL_TRAIT_ROW)
#undef GFS_PROTOCOL_TRAIT_ROW

// True when Rep is the reply the table gives request Req.
template <typename Req, typename Rep>
inline constexpr bool kRepliesWith = std::is_same_v<typename ProtocolOf<Req>::Reply, Rep>;

}  // namespace gfs
