// ChunkStore: a chunkserver's local storage of chunks (no MPI in here). The
// chunkserver is the only writer of these files; clients may read a data file
// (short-circuit reads) but never write one.
//
// Each chunk lives under `<dir>/chunks/` as up to three files named by its
// handle in 16 lowercase hex digits (see doc/disk-format-chunk.md, format 2):
//   <handle>.meta   version record, written atomically (always present)
//   <handle>.chunk  the chunk's bytes (created on the first write, never
//                   preallocated)
//   <handle>.crc    header (recorded length, mutation intent) + one CRC32C per
//                   64 KiB block (created with .chunk)
// and `<dir>/chunks/FORMAT` names the format of the directory.
//
// Integrity: every block read is verified against its CRC32C before a byte of
// it is returned; a partially overwritten block is verified before it is
// rewritten. A mismatch is Status Corruption naming the chunk and block. A
// replica with damaged blocks (a mismatch, a missing checksum, a data file
// shorter than the recorded length) keeps serving its good blocks; Scan lists
// the damaged ones and RepairBlocks rewrites them with good bytes from a peer.
// Nothing here ever shortens a data file below its recorded length, lowers a
// version, or turns missing bytes into zeros.
//
// Crashes: each mutation first records in the checksum header which blocks
// it changes and the length it sets (the intent), then writes the data, then
// the checksums, then the new length with the intent cleared. Open finishes
// an interrupted one: the length becomes what the data file holds between
// the old and the new length, and the intended blocks are checksummed as the
// file holds them (old bytes, new bytes or a mix). So a kill during a
// mutation costs at most that mutation's range.
//
// Durability: Create, SetVersion and Delete are durable when they return.
// Write, Truncate and RepairBlocks are not: call Sync (or SyncAll), which
// syncs through the descriptors that wrote. A chunk written since its last
// sync is never closed unsynced: the open-file cache syncs it before letting
// it go, so no writeback error can be reported to a descriptor nobody asks.
//
// Thread-safety: not thread-safe. The caller serialises all calls (the const
// accessors may run concurrently with each other, not with a mutator); a
// SyncJob runs in any thread. The destructor closes files without syncing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/env.h"
#include "common/status.h"

namespace gfs {

struct ChunkMeta {
  uint64_t handle = 0;
  uint64_t version = 0;
  uint64_t length = 0;
};

struct ConstSlice {  // gather list element
  const uint8_t* data;
  size_t size;
};

// Bytes [offset, offset + length) of a chunk.
struct Range {
  uint64_t offset = 0;
  uint64_t length = 0;
  bool operator==(const Range& o) const { return offset == o.offset && length == o.length; }
};

// A chunk found by Open whose meta file is unreadable (torn, bad CRC, unknown
// format). It is not in List(); Delete(handle) removes its files.
struct BadChunk {
  uint64_t handle = 0;
  Status status;  // Corruption naming the file
};

class ChunkStore {
 public:
  static constexpr uint32_t kBlockSize = 64 * 1024;  // CRC32C granularity
  // Largest chunk length accepted (writes/truncates past it: InvalidArgument).
  static constexpr uint64_t kMaxLength = uint64_t{4} << 30;
  static constexpr size_t kDefaultOpenChunks = 64;
  // The directory format this build writes (and reads); format 1 is upgraded.
  static constexpr uint32_t kFormat = 2;

  // dir: this chunkserver's own directory (exists or is created by Open).
  // env is not owned and must outlive the store. At most `max_open_chunks`
  // chunks keep open files and loaded checksum arrays (LRU).
  ChunkStore(Env* env, std::string dir, size_t max_open_chunks = kDefaultOpenChunks);
  ~ChunkStore();
  ChunkStore(const ChunkStore&) = delete;
  ChunkStore& operator=(const ChunkStore&) = delete;

  // Creates <dir>/chunks if needed, takes <dir>/chunks/LOCK (Busy if another
  // store holds it), checks the directory's format (a format-1 directory is
  // upgraded: upgraded_from() says so; an unknown one is refused with an
  // error naming both formats), scans the directory, loads every chunk's
  // version and recorded length, finishes mutations a crash interrupted (see
  // above), removes leftover temp files and data/crc files without a meta
  // file. Damage found on the way (an unreadable checksum header, a data file
  // shorter than the recorded length, checksums missing) does not fail Open
  // and cuts nothing: the chunk is listed with it (StartupDamage). A chunk
  // whose meta file is corrupt is reported by BadChunks(). Call once, first.
  Status Open();
  // 0, or the format this directory had before Open upgraded it.
  uint32_t upgraded_from() const { return upgraded_from_; }
  // Chunks whose interrupted mutation Open finished, and the unacknowledged
  // bytes past a recorded length it found (and dropped) on the way.
  uint64_t intents_finished() const { return intents_finished_; }
  uint64_t unrecorded_tail_bytes() const { return unrecorded_tail_bytes_; }

  std::vector<ChunkMeta> List() const;  // sorted by handle
  bool Has(uint64_t handle) const;
  Result<ChunkMeta> Meta(uint64_t handle) const;  // NotFound if absent
  uint64_t UsedBytes() const;                     // sum of chunk lengths
  size_t NumChunks() const;
  const std::vector<BadChunk>& BadChunks() const { return bad_; }
  // Damage Open found without reading data: blocks without a checksum or past
  // the data file's end, or the whole chunk when its checksum header is
  // unreadable. Cleared by RepairBlocks (or a rewrite) of those blocks.
  std::vector<Range> StartupDamage(uint64_t handle) const;

  // Creates an empty chunk at `version` (durable before return; no data file
  // yet). AlreadyExists if present (also if it is a bad chunk: Delete it first).
  Status Create(uint64_t handle, uint64_t version);

  // Records a new version durably (fsync'd before return). NotFound if absent.
  // Versions only go up: a lower one is InvalidArgument.
  Status SetVersion(uint64_t handle, uint64_t version);

  // Writes the gathered bytes at `offset`, extending the chunk if needed (a gap
  // past the current length reads back as zeros). Maintains one CRC32C per
  // block; a partially overwritten first/last block is verified first
  // (mismatch: Corruption, nothing written). Cost: one pwrite of the data (one
  // per slice for large slices), CRC over the new bytes, one pwrite of the
  // changed CRC entries, two of the checksum header, and reads only of
  // partially overwritten edge blocks (an append into a partial last block
  // extends its CRC without reading). On failure the length is unchanged and
  // each old block the write touched holds its old bytes or (inside [offset,
  // offset+n)) the new ones, consistent with its checksum; a block that is
  // neither (a write torn inside it, or old bytes that were already corrupt)
  // keeps its old checksum and reads as Corruption. If even that cannot be
  // restored the chunk is poisoned (every later call on it but Meta,
  // SetVersion, Delete and RepairBlocks returns the error; a failed Sync does
  // the same). Not synced: see Sync. An empty write is a no-op.
  // `piece_crcs`, when given, holds the CRC32C of each kBlockSize piece of
  // the data counted from its first byte (the last one may be shorter),
  // taken by the caller as the bytes arrived: a block whose new bytes are
  // exactly one such piece takes its checksum from there instead of another
  // pass over the bytes. Every other block is checksummed from the bytes.
  Status Write(uint64_t handle, uint64_t offset, const std::vector<ConstSlice>& data,
               const std::vector<uint32_t>* piece_crcs = nullptr);
  Status Write(uint64_t handle, uint64_t offset, const uint8_t* data, size_t n);

  // Reads up to n bytes at offset into out (resized to the bytes read; short
  // only at the chunk's length, empty at or past it). Verifies the CRC of every
  // block touched; a mismatch returns Corruption (naming handle and block; the
  // block's range in *bad when given) and leaves *out empty.
  Status Read(uint64_t handle, uint64_t offset, size_t n, std::vector<uint8_t>* out,
              Range* bad = nullptr);
  // The same checks as Read, into memory the caller provides: `reserve(span)`
  // is called once with the size of the whole 64 KiB blocks covering the range
  // and returns where to put them; on success the requested bytes are at
  // that pointer + *skip, *len of them (0 at or past the chunk's end, in which
  // case reserve may not be called).
  Status ReadVerified(uint64_t handle, uint64_t offset, size_t n,
                      const std::function<uint8_t*(size_t)>& reserve, size_t* skip, size_t* len,
                      Range* bad = nullptr);

  // The stored checksums of the blocks covering [offset, offset + n), clipped
  // to the chunk's length, for a reader that reads the data file itself and
  // verifies it (short-circuit reads): *base is the first block's offset,
  // *end min(the last block's end, length); all zero at or past the end.
  // Corruption when a checksum is missing (as Read would report).
  Status BlockChecksums(uint64_t handle, uint64_t offset, size_t n, uint64_t* base, uint64_t* end,
                        std::vector<uint32_t>* crcs);

  // Checks every block of the chunk and lists the damaged ones (coalesced
  // ranges; empty: the replica is whole). An error only when the chunk cannot
  // be examined at all (absent, or an I/O error other than a short file).
  Status Scan(uint64_t handle, std::vector<Range>* damaged);
  // Scan, as a Status: Corruption naming the first damaged range.
  Status Verify(uint64_t handle);

  // Rewrites whole blocks [offset, offset + n) inside the chunk's length with
  // good bytes from another replica (offset a block boundary; n whole blocks,
  // or up to the length), without reading the old ones, and stores their
  // checksums. A chunk whose checksum file was unreadable, or that a failed
  // sync made unusable, first gets a new checksum file with no checksum in it:
  // every block then reads as damaged until rewritten. Not synced.
  Status RepairBlocks(uint64_t handle, uint64_t offset, const uint8_t* data, size_t n);

  // Sets the chunk length. Shrinking recomputes the CRC of the new last block
  // (verifying that block first); growing appends zeros. Not synced.
  Status Truncate(uint64_t handle, uint64_t length);

  // Early writeback: once a chunk has `bytes` (> 0) written since its device
  // writes were last started, start them for that range (without waiting;
  // Env's StartWriteback). The disk then works while more data arrives, and
  // Sync finds little left to write. 0 (the default): off.
  void set_writeback_bytes(uint64_t bytes) { writeback_bytes_ = bytes; }
  // Starts the device writes of every open chunk's bytes not started yet.
  void StartWritebackAll();
  // The same ranges, taken out (counted as started) for another thread to
  // start (a SyncJob's writebacks).
  struct Writeback {
    std::shared_ptr<RandomRWFile> file;
    uint64_t offset = 0, n = 0;
  };
  std::vector<Writeback> TakeWritebacks();
  // Ranges started by the set_writeback_bytes rule, and by StartWritebackAll.
  uint64_t writebacks_early() const { return writebacks_early_; }
  uint64_t writebacks_batched() const { return writebacks_batched_; }
  // Dirty chunks the open-file cache synced before closing their files, and
  // syncs done at once because too many jobs were out.
  uint64_t evictions_synced() const { return evictions_synced_; }
  uint64_t syncs_inline() const { return syncs_inline_; }

  // fsyncs the chunk's data and checksum files (and the directory if they were
  // created since the last sync). A no-op if nothing was written since.
  Status Sync(uint64_t handle);
  Status SyncAll();

  // Sync from another thread, so that the caller's thread (a chunkserver's
  // event loop) keeps serving while the disk works. PrepareSync returns what
  // to sync (null when nothing was written since the last sync); Run, in any
  // thread, syncs the data file, the checksum file and, if the files are new,
  // the directory; FinishSync, back in the store's thread, records the
  // outcome: the chunk counts as synced only if nothing changed it meanwhile,
  // and a failure makes it unusable, as in Sync. A job holds the very
  // descriptors that wrote the chunk (an error the kernel reports to them is
  // seen). At most 4 x max_open_chunks jobs are out at once (each holds two
  // files); past that PrepareSync syncs the chunk itself and returns null.
  struct SyncJob {
    uint64_t handle = 0;
    uint64_t gen = 0;  // State::gen when prepared
    std::shared_ptr<RandomRWFile> data, crc;
    std::string dir;  // non-empty: fsync this directory too
    Env* env = nullptr;
    std::vector<Writeback> writebacks;  // started first (other chunks' too)
    Status Run();
  };
  Result<std::unique_ptr<SyncJob>> PrepareSync(uint64_t handle);
  Status FinishSync(const SyncJob& job, const Status& result);

  // Removes the chunk's files (meta first), durably. NotFound if absent.
  Status Delete(uint64_t handle);

  // File names, for tools and tests.
  static std::string HandleName(uint64_t handle);  // 16 lowercase hex digits
  std::string MetaPath(uint64_t handle) const;
  std::string DataPath(uint64_t handle) const;
  std::string CrcPath(uint64_t handle) const;

 private:
  struct State {
    uint64_t version = 0;
    uint64_t length = 0;
    bool dirty = false;          // written since last Sync
    uint64_t gen = 0;            // bumped by every change of the bytes or length
    bool need_dir_sync = false;  // files created since last Sync
    Status poisoned;             // non-ok: chunk unusable (until repaired whole)
    Status broken;               // checksum file unusable at Open (why): rebuilt by repair
    std::vector<Range> startup_damage;
  };
  struct OpenChunk {
    uint64_t handle = 0;
    // Shared with a sync running in another thread (SyncJob).
    std::shared_ptr<RandomRWFile> data;
    std::shared_ptr<RandomRWFile> crc;
    std::vector<uint32_t> crcs;  // one per block of the current length
    std::vector<uint8_t> valid;  // per block: its checksum is stored
    // Bytes written whose device writes were not started yet lie in
    // [wb_lo, wb_hi) (empty: wb_lo >= wb_hi).
    uint64_t wb_lo = UINT64_MAX, wb_hi = 0;
  };
  using LruList = std::list<OpenChunk>;

  Result<State*> Lookup(uint64_t handle);
  struct Span {
    OpenChunk* oc = nullptr;
    uint64_t length = 0;  // the chunk's
    uint64_t want = 0;
    size_t first = 0, last = 0;
    uint64_t rs = 0, re = 0;
  };
  Status Locate(uint64_t handle, uint64_t offset, size_t n, Span* sp);
  // Returns the open files and checksums of a chunk, opening/loading them (and
  // creating the files if `create`). Moves it to the LRU front; makes room by
  // closing a clean chunk, or syncing and closing the least recently used.
  Result<OpenChunk*> Acquire(uint64_t handle, State* st, bool create);
  Status MakeRoom();
  void Evict(uint64_t handle);
  bool StartWriteback(OpenChunk* oc);  // false: nothing was pending
  Status LoadCrcs(OpenChunk* oc, const State& st, bool create);
  Status WriteCrcEntries(OpenChunk* oc, size_t first, const std::vector<uint32_t>& v);
  // The checksum header: the recorded length and, for a mutation under way,
  // the blocks [first, last] it changes and the length it sets.
  struct Intent {
    bool set = false;
    uint32_t first = 0, last = 0;
    uint64_t length = 0;
    static Intent Of(size_t first, size_t last, uint64_t length) {
      return Intent{true, static_cast<uint32_t>(first), static_cast<uint32_t>(last), length};
    }
  };
  Status WriteHeader(OpenChunk* oc, uint64_t length, const Intent& intent);
  // Reads block `i` (its bytes below `length`) into buf and verifies it.
  Status ReadVerifiedBlock(OpenChunk* oc, uint64_t length, size_t i, std::vector<uint8_t>* buf);
  Status CheckBlock(const OpenChunk& oc, size_t i, const uint8_t* p, size_t n, Range* bad) const;
  Status WriteMeta(uint64_t handle, uint64_t version);
  Status WriteImpl(uint64_t handle, uint64_t offset, const std::vector<ConstSlice>& data,
                   uint64_t n, uint64_t new_length,
                   const std::vector<uint32_t>* piece_crcs = nullptr);
  void Restore(State* st, OpenChunk* oc, uint64_t off, uint64_t end,
               const std::vector<ConstSlice>& data, const Status& cause);
  std::string ChunksDir() const { return dir_ + "/chunks"; }
  // Open: the directory's FORMAT file (and the upgrade of a format-1 one).
  Status CheckFormat(const std::vector<std::string>& names);
  Status UpgradeCrcFile(uint64_t handle);
  // Open: one chunk's length and damage from its files; finishes an
  // interrupted mutation.
  Status LoadChunk(uint64_t handle, State* st);
  Status Poison(uint64_t handle, State* st, const char* after, const Status& s);
  void ClearDamage(State* st, uint64_t lo, uint64_t hi);

  Env* const env_;
  const std::string dir_;
  const size_t max_open_;
  uint64_t writeback_bytes_ = 0;
  uint64_t writebacks_early_ = 0, writebacks_batched_ = 0, evictions_synced_ = 0;
  size_t jobs_out_ = 0;  // SyncJobs prepared and not finished (each holds two files)
  uint64_t syncs_inline_ = 0;
  uint32_t upgraded_from_ = 0;
  uint64_t intents_finished_ = 0, unrecorded_tail_bytes_ = 0;
  std::unique_ptr<FileLock> lock_;
  std::map<uint64_t, State> chunks_;
  std::vector<BadChunk> bad_;
  uint64_t used_bytes_ = 0;
  LruList lru_;  // front = most recently used
  std::unordered_map<uint64_t, LruList::iterator> open_;
  std::vector<uint8_t> scratch_;  // edge blocks, coalesced gathers
};

}  // namespace gfs
