// ChunkStore: a chunkserver's local storage of chunks (no MPI in here).
//
// Each chunk lives under `<dir>/chunks/` as up to three files named by its
// handle in 16 lowercase hex digits (see doc/disk-format-chunk.md):
//   <handle>.meta  version record, written atomically (always present)
//   <handle>.chunk  the chunk's bytes; its size is the chunk length (created on
//                  the first write, never preallocated)
//   <handle>.crc   header + one CRC32C per 64 KiB block (created with .chunk)
//
// Integrity: every block read is verified against its CRC32C before a byte of
// it is returned; a partially overwritten block is verified before it is
// rewritten. A mismatch is Status Corruption naming the chunk and block.
//
// Durability: Create, SetVersion and Delete are durable when they return.
// Write and Truncate are not: call Sync (or SyncAll). After a crash, an
// unsynced region may hold old or new bytes, or read back as Corruption, but
// never as wrong bytes with a good checksum.
//
// Thread-safety: not thread-safe. The caller serialises all calls (the const
// accessors may run concurrently with each other, not with a mutator).
// The destructor closes files without syncing them.
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

  // dir: this chunkserver's own directory (exists or is created by Open).
  // env is not owned and must outlive the store. At most `max_open_chunks`
  // chunks keep open files and loaded checksum arrays (LRU).
  ChunkStore(Env* env, std::string dir, size_t max_open_chunks = kDefaultOpenChunks);
  ~ChunkStore();
  ChunkStore(const ChunkStore&) = delete;
  ChunkStore& operator=(const ChunkStore&) = delete;

  // Creates <dir>/chunks if needed, takes <dir>/chunks/LOCK (Busy if another
  // store holds it), scans the directory, loads every chunk's meta (handle,
  // version, length = data file size), removes leftover temp files and data/crc
  // files without a meta file. A data file that runs past what its checksums
  // cover (bytes written but never checksummed when the server stopped) is cut
  // back to the covered prefix (tail_bytes_cut), and its version set one back
  // (durably): it may be shorter than other replicas. A chunk whose meta file is
  // corrupt does not fail Open: it is reported by BadChunks(). Call once,
  // before anything else.
  Status Open();

  std::vector<ChunkMeta> List() const;  // sorted by handle
  bool Has(uint64_t handle) const;
  Result<ChunkMeta> Meta(uint64_t handle) const;  // NotFound if absent
  uint64_t UsedBytes() const;                     // sum of chunk lengths
  size_t NumChunks() const;
  const std::vector<BadChunk>& BadChunks() const { return bad_; }
  // Bytes Open cut from the ends of data files because no checksum covered
  // them (written when the server stopped; never acknowledged durable).
  uint64_t tail_bytes_cut() const { return tail_bytes_cut_; }

  // Creates an empty chunk at `version` (durable before return; no data file
  // yet). AlreadyExists if present (also if it is a bad chunk: Delete it first).
  Status Create(uint64_t handle, uint64_t version);

  // Records a new version durably (fsync'd before return). NotFound if absent.
  Status SetVersion(uint64_t handle, uint64_t version);

  // Writes the gathered bytes at `offset`, extending the chunk if needed (a gap
  // past the current length reads back as zeros). Maintains one CRC32C per
  // block; a partially overwritten first/last block is verified first
  // (mismatch: Corruption, nothing written). Cost: one pwrite of the data (one
  // per slice for large slices), CRC over the new bytes, one pwrite of the
  // changed CRC entries, and reads only of partially overwritten edge blocks
  // (an append into a partial last block extends its CRC without reading).
  // On failure the length is unchanged and each old block the write touched
  // holds its old bytes or (inside [offset, offset+n)) the new ones, consistent
  // with its checksum; a block that is neither (a write torn inside it, or old
  // bytes that were already corrupt) keeps its old checksum and reads as
  // Corruption. If even that cannot be restored the chunk is poisoned
  // (every later call on it but Meta/SetVersion/Delete returns the error; a
  // failed Sync does the same).
  // Not synced: see Sync. An empty write is a no-op (does not extend).
  Status Write(uint64_t handle, uint64_t offset, const std::vector<ConstSlice>& data);
  Status Write(uint64_t handle, uint64_t offset, const uint8_t* data, size_t n);

  // Reads up to n bytes at offset into out (resized to the bytes read; short
  // only at the chunk's length, empty at or past it). Verifies the CRC of every
  // block touched; a mismatch returns Corruption (naming handle and block) and
  // leaves *out empty.
  Status Read(uint64_t handle, uint64_t offset, size_t n, std::vector<uint8_t>* out);
  // The same checks as Read, into memory the caller provides: `reserve(span)`
  // is called once with the size of the whole 64 KiB blocks covering the range
  // and returns where to put them; on success the requested bytes are at
  // that pointer + *skip, *len of them (0 at or past the chunk's end, in which
  // case reserve may not be called).
  Status ReadVerified(uint64_t handle, uint64_t offset, size_t n,
                      const std::function<uint8_t*(size_t)>& reserve, size_t* skip, size_t* len);

  // The stored checksums of the blocks covering [offset, offset + n), clipped
  // to the chunk's length, for a reader that reads the data file itself and
  // verifies it (short-circuit reads): *base is the first block's offset,
  // *end min(the last block's end, length); all zero at or past the end.
  // Corruption when a checksum is missing (as Read would report).
  Status BlockChecksums(uint64_t handle, uint64_t offset, size_t n, uint64_t* base, uint64_t* end,
                        std::vector<uint32_t>* crcs);

  // Verifies every block of the chunk (scrubbing / fsck --verify).
  Status Verify(uint64_t handle);

  // Sets the chunk length. Shrinking recomputes the CRC of the new last block
  // (verifying that block first); growing appends zeros. Not synced.
  Status Truncate(uint64_t handle, uint64_t length);

  // Short-circuit writes: a writer on this host writes [offset, offset + n)
  // of the chunk's data file itself, between Begin and End (or Abort); see
  // doc/architecture.md#short-circuit-writes. Begin creates the chunk's files
  // if needed, verifies the old blocks the range covers only in part
  // (Corruption: refused, as Write refuses) and records the range; until End
  // or Abort every Write, Truncate, read and Verify of the chunk returns kBusy
  // (Sync does not: it syncs what is there). One at a time per chunk.
  // `window_end` > offset + n asks for a held grant: the writer may go on
  // sequentially past the range, up to there. It is given (`*granted_end`
  // set to it) only when the range reaches the chunk's length, so nothing
  // past the range holds old bytes; otherwise `*granted_end` = offset + n.
  Status BeginExternalWrite(uint64_t handle, uint64_t offset, uint64_t n, uint64_t window_end = 0,
                            uint64_t* granted_end = nullptr);
  // The writer wrote every byte. `crcs` are its CRC32C of them from each block
  // boundary at or after the offset to the next boundary or the range's end,
  // in order; each is taken for a block holding only the writer's bytes.
  // Blocks with any other byte (old bytes, the zeros of a gap) are read back
  // and checksummed here. The chunk grows to the range's end if shorter. A
  // wrong number of checksums or a data file shorter than the range: the
  // write is aborted (as below) and the error returned.
  Status EndExternalWrite(uint64_t handle, const std::vector<uint32_t>& crcs);
  // The same for a held grant: the writer wrote [offset, end), with end
  // between offset + n and the granted end (else InvalidArgument, aborted).
  Status EndExternalWrite(uint64_t handle, uint64_t end, const std::vector<uint32_t>& crcs);
  // The writer gave up or vanished: the range holds old bytes, new ones or a
  // mix (undefined, as after any failed write). Every block it may have
  // changed is checksummed as it is now, the chunk keeps the bytes written
  // past its old length, and it stays readable.
  Status AbortExternalWrite(uint64_t handle);
  bool ExternalWriteOpen(uint64_t handle) const { return external_.count(handle) != 0; }

  // Short-circuit record appends (doc/architecture.md#short-circuit-appends):
  // writers on this host write ranges reserved one after another past the
  // chunk's length into the data file themselves, many at once. The length
  // (what reads, Verify and Meta see) moves up over each range once it and
  // every range before it landed; a block shared by two ranges is checksummed
  // by combining the writers' checksums of their pieces of it. While any
  // range is open, Write, Truncate and BeginExternalWrite return kBusy; reads
  // go on below the length.
  //
  // The end of the last range reserved (the length when none is open).
  uint64_t AppendEnd(uint64_t handle) const;
  // Reserves [AppendEnd, AppendEnd + n) and sets *offset to its start;
  // creates the chunk's files if needed.
  Status ReserveAppend(uint64_t handle, uint64_t n, uint64_t* offset);
  // The writer wrote every byte of the range at `offset`. crcs: the CRC32C
  // of each piece of it between block boundaries, in order (the first from
  // the offset to the next boundary or the range's end). A wrong count:
  // InvalidArgument, and the range is checksummed from the file instead.
  Status LandAppend(uint64_t handle, uint64_t offset, const std::vector<uint32_t>& crcs);
  // The writer gave up or vanished: the range is checksummed as the file
  // holds it, zeros written where the file ends before the range does.
  Status AbortAppend(uint64_t handle, uint64_t offset);
  // Reserves a range for `data`, writes it and lands it (a record pushed
  // through the chunkserver while writers append to the chunk).
  Status WriteAppend(uint64_t handle, const std::vector<ConstSlice>& data, uint64_t* offset);
  // Reserves [AppendEnd, end) as zeros and lands it: padding a full chunk.
  Status PadAppend(uint64_t handle, uint64_t end);
  // A range is reserved and not yet under the length.
  bool AppendsOpen(uint64_t handle) const { return appends_.count(handle) != 0; }
  // The end of the last range landed (the length when none waits for
  // earlier ones): what a sync must wait to see under the length.
  uint64_t LandedEnd(uint64_t handle) const;

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
  // and a failure makes it unusable, as in Sync.
  // A job names its files rather than holding them open: the files are
  // opened when it runs and closed after (an fsync syncs the file, whichever
  // descriptor it comes through). Jobs queue by the thousand when many
  // clients fsync many-chunk files at once, and descriptors held by queued
  // jobs ran a chunkserver out of them.
  struct SyncJob {
    uint64_t handle = 0;
    uint64_t gen = 0;  // State::gen when prepared
    std::string data_path, crc_path;
    std::string dir;  // non-empty: fsync this directory too
    Env* env = nullptr;
    std::vector<Writeback> writebacks;  // started first (other chunks' too)
    // Set by Run when the data or checksum file could not be opened: nothing
    // was synced, and no page was lost either (the chunk stays dirty, usable).
    bool open_failed = false;
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
    Status poisoned;             // non-ok: chunk unusable
  };
  struct OpenChunk {
    uint64_t handle = 0;
    // Shared with a sync running in another thread (SyncJob).
    std::shared_ptr<RandomRWFile> data;
    std::shared_ptr<RandomRWFile> crc;
    std::vector<uint32_t> crcs;  // one per block of the current length
    size_t crcs_valid = 0;       // entries [0, crcs_valid) were read/written
    // Bytes written whose device writes were not started yet lie in
    // [wb_lo, wb_hi) (empty: wb_lo >= wb_hi).
    uint64_t wb_lo = UINT64_MAX, wb_hi = 0;
  };
  using LruList = std::list<OpenChunk>;

  Result<State*> Lookup(uint64_t handle);
  // The whole blocks around [offset, offset + n) clipped to the length: the
  // open chunk (null when the range is empty), its length, the bytes wanted, blocks
  // [first, last] and their byte range [rs, re).
  struct Span {
    OpenChunk* oc = nullptr;
    uint64_t length = 0;  // the chunk's
    uint64_t want = 0;
    size_t first = 0, last = 0;
    uint64_t rs = 0, re = 0;
  };
  Status Locate(uint64_t handle, uint64_t offset, size_t n, Span* sp);
  // Returns the open files and checksums of a chunk, opening/loading them (and
  // creating the files if `create`). Moves it to the LRU front.
  Result<OpenChunk*> Acquire(uint64_t handle, State* st, bool create);
  void Evict(uint64_t handle);
  bool StartWriteback(OpenChunk* oc);  // false: nothing was pending
  Status LoadCrcs(OpenChunk* oc, uint64_t length, bool create);
  Status WriteCrcEntries(OpenChunk* oc, size_t first, const std::vector<uint32_t>& v);
  // Reads block `i` (its bytes below `length`) into buf and verifies it.
  Status ReadVerifiedBlock(OpenChunk* oc, uint64_t length, size_t i, std::vector<uint8_t>* buf);
  Status CheckBlock(const OpenChunk& oc, size_t i, const uint8_t* p, size_t n) const;
  Status WriteMeta(uint64_t handle, uint64_t version);
  Status WriteImpl(uint64_t handle, uint64_t offset, const std::vector<ConstSlice>& data,
                   uint64_t n, uint64_t new_length);
  void Restore(State* st, OpenChunk* oc, uint64_t off, uint64_t end,
               const std::vector<ConstSlice>& data, const Status& cause);
  std::string ChunksDir() const { return dir_ + "/chunks"; }
  // Open: cuts a chunk's data file back to what its checksums cover.
  Status CutUncheckedTail(uint64_t handle, uint64_t* length, uint64_t* version);
  // kBusy while a short-circuit write of the chunk is in progress.
  Status NotExternal(uint64_t handle) const;
  struct External {
    uint64_t off = 0, end = 0;  // the range asked for
    uint64_t limit = 0;         // the granted end (>= end): what an abort may find written
  };
  // Ends a short-circuit write: the writer's checksums (null: aborted).
  Status FinishExternal(uint64_t handle, External e, const std::vector<uint32_t>* crcs);
  // Stores checksums ncrc for blocks first.. of a chunk growing (or not)
  // to new_len, its bytes changed in [lo, hi); poisons the chunk on failure.
  Status SetBlocks(uint64_t handle, State* st, OpenChunk* oc, size_t first,
                   const std::vector<uint32_t>& ncrc, uint64_t lo, uint64_t hi, uint64_t new_len);
  Status Poison(uint64_t handle, State* st, const char* after, const Status& s);
  struct AppendRange {
    uint64_t end = 0;
    bool landed = false;
    std::vector<uint32_t> crcs;  // landed: its pieces' checksums
  };
  struct Appends {
    uint64_t reserved = 0;                   // end of the last range
    std::map<uint64_t, AppendRange> ranges;  // by offset: open, or landed above the length
  };
  // kBusy while a short-circuit append range of the chunk is open.
  Status NoAppends(uint64_t handle) const;
  Status FindRange(uint64_t handle, uint64_t offset, AppendRange** r);
  // Moves the length over the landed ranges that start at it.
  Status Fold(uint64_t handle);

  Env* const env_;
  const std::string dir_;
  const size_t max_open_;
  uint64_t writeback_bytes_ = 0;
  uint64_t writebacks_early_ = 0, writebacks_batched_ = 0;
  std::unique_ptr<FileLock> lock_;
  std::map<uint64_t, State> chunks_;
  std::vector<BadChunk> bad_;
  uint64_t used_bytes_ = 0;
  uint64_t tail_bytes_cut_ = 0;
  LruList lru_;  // front = most recently used
  std::unordered_map<uint64_t, LruList::iterator> open_;
  std::vector<uint8_t> scratch_;           // edge blocks, coalesced gathers
  std::map<uint64_t, External> external_;  // short-circuit writes in progress
  std::map<uint64_t, Appends> appends_;    // short-circuit appends in progress
};

}  // namespace gfs
