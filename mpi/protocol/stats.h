// Per-rank counters written as JSON at the end of a job when --stats-dir is
// given (tests read them to prove the chain, the pipelining and that the
// master stays off the data path). Format in doc/wire-format.md#stats.
#pragma once

#include <array>
#include <bitset>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "mpi/transport/transport.h"

namespace gfs {

struct PushTimeline {
  int origin = -1;
  uint64_t data_id = 0;
  uint64_t first_us = 0, last_us = 0, bytes = 0;
};

// Every counter a rank keeps, with its name in the stats file (and in the
// get-stats reply). A counter appears there once it has been touched, even
// if it stayed 0, as before counters were numbered.
#define GFS_COUNTER_TABLE(X)                                     \
  X(kAnsweredByShadow, "answered_by_shadow")                     \
  X(kAppendBatches, "append_batches")                            \
  X(kAppendNextChunk, "append_next_chunk")                       \
  X(kAppendPads, "append_pads")                                  \
  X(kAppendPushReused, "append_push_reused")                     \
  X(kAppendRetries, "append_retries")                            \
  X(kAppendsPrimary, "appends_primary")                          \
  X(kBytesRead, "bytes_read")                                    \
  X(kBytesReadAhead, "bytes_read_ahead")                         \
  X(kBytesReadLocal, "bytes_read_local")                         \
  X(kBytesWritten, "bytes_written")                              \
  X(kChunksCopiedLocal, "chunks_copied_local")                   \
  X(kChunksCreated, "chunks_created")                            \
  X(kChunksDeleted, "chunks_deleted")                            \
  X(kChunksPastEndDropped, "chunks_past_end_dropped")            \
  X(kChunksRecreated, "chunks_recreated")                        \
  X(kChunkserversRefused, "chunkservers_refused")                \
  X(kClientsGone, "clients_gone")                                \
  X(kClockGaps, "clock_gaps")                                    \
  X(kCloneBytes, "clone_bytes")                                  \
  X(kCopiesOnWrite, "copies_on_write")                           \
  X(kCopyLocalBytes, "copy_local_bytes")                         \
  X(kClonesDone, "clones_done")                                  \
  X(kClonesFailed, "clones_failed")                              \
  X(kClonesOrdered, "clones_ordered")                            \
  X(kClonesStarted, "clones_started")                            \
  X(kCorruptFound, "corrupt_found")                              \
  X(kDamagedReplicasReported, "damaged_replicas_reported")       \
  X(kDeposed, "deposed")                                         \
  X(kElectionsLost, "elections_lost")                            \
  X(kElectionsStarted, "elections_started")                      \
  X(kEvictionsSynced, "evictions_synced")                        \
  X(kFileBytesReceived, "file_bytes_received")                   \
  X(kFsyncRetries, "fsync_retries")                              \
  X(kIntentsFinishedAtOpen, "intents_finished_at_open")          \
  X(kLengthsRecovered, "lengths_recovered")                      \
  X(kLocalReadFallbacks, "local_read_fallbacks")                 \
  X(kLocalReadRefusedPaths, "local_read_refused_paths")          \
  X(kLocalReadUnreachable, "local_read_unreachable")             \
  X(kLocalReads, "local_reads")                                  \
  X(kLogSyncs, "log_syncs")                                      \
  X(kLeasesRevoked, "leases_revoked")                            \
  X(kLookups, "lookups")                                         \
  X(kMasterFailovers, "master_failovers")                        \
  X(kMutations, "mutations")                                     \
  X(kMutationsPrimary, "mutations_primary")                      \
  X(kMutationsSecondary, "mutations_secondary")                  \
  X(kNewMasters, "new_masters")                                  \
  X(kNoSpace, "no_space")                                        \
  X(kOrphanReplicas, "orphan_replicas")                          \
  X(kPadBytes, "pad_bytes")                                      \
  X(kPushBytesForwarded, "push_bytes_forwarded")                 \
  X(kPushBytesSent, "push_bytes_sent")                           \
  X(kPushSlicesRecv, "push_slices_recv")                         \
  X(kPushesKeptForRetry, "pushes_kept_for_retry")                \
  X(kReadAheadExpired, "read_ahead_expired")                     \
  X(kReadAheadFailed, "read_ahead_failed")                       \
  X(kReadErrors, "read_errors")                                  \
  X(kReadRetries, "read_retries")                                \
  X(kReadShortReplies, "read_short_replies")                     \
  X(kReadsAssembledFromBlocks, "reads_assembled_from_blocks")    \
  X(kRecordsAppended, "records_appended")                        \
  X(kRebalanceMoves, "rebalance_moves")                          \
  X(kRebalanceMovesFailed, "rebalance_moves_failed")             \
  X(kRecordsReplicated, "records_replicated")                    \
  X(kRefusedWrongStore, "refused_wrong_store")                   \
  X(kRepairBlocksUnavailable, "repair_blocks_unavailable")       \
  X(kRepairBytes, "repair_bytes")                                \
  X(kRepairReadsFailed, "repair_reads_failed")                   \
  X(kRepairsDone, "repairs_done")                                \
  X(kRepairsFailed, "repairs_failed")                            \
  X(kRepairsPartial, "repairs_partial")                          \
  X(kRepairsStarted, "repairs_started")                          \
  X(kRepairsTimedOut, "repairs_timed_out")                       \
  X(kReplayedSeq, "replayed_seq")                                \
  X(kReplicasAvoided, "replicas_avoided")                        \
  X(kReplicasPartlyRepaired, "replicas_partly_repaired")         \
  X(kReplicasRepaired, "replicas_repaired")                      \
  X(kReplicasTrimmed, "replicas_trimmed")                        \
  X(kReplicasVerified, "replicas_verified")                      \
  X(kScrubBytes, "scrub_bytes")                                  \
  X(kScrubCorrupt, "scrub_corrupt")                              \
  X(kScrubPasses, "scrub_passes")                                \
  X(kShadowsDropped, "shadows_dropped")                          \
  X(kShadowsRejoined, "shadows_rejoined")                        \
  X(kShortReplicasDropped, "short_replicas_dropped")             \
  X(kSnapshotsInstalled, "snapshots_installed")                  \
  X(kSnapshotsSent, "snapshots_sent")                            \
  X(kSnapshotsTaken, "snapshots_taken")                          \
  X(kStaleEpochRefused, "stale_epoch_refused")                   \
  X(kStaleReplicas, "stale_replicas")                            \
  X(kStoresCreated, "stores_created")                            \
  X(kSyncsInThread, "syncs_in_thread")                           \
  X(kTakeovers, "takeovers")                                     \
  X(kUnrecordedTailBytesAtOpen, "unrecorded_tail_bytes_at_open") \
  X(kVerifyRuns, "verify_runs")                                  \
  X(kVersionsRecovered, "versions_recovered")                    \
  X(kWriteRetries, "write_retries")                              \
  X(kWritebacksBatched, "writebacks_batched")                    \
  X(kWritebacksEarly, "writebacks_early")                        \
  X(kWritesWithoutPushAck, "writes_without_push_ack")

#define GFS_COUNTER_ENUM_ROW(name, text) name,
enum class Counter : uint16_t { GFS_COUNTER_TABLE(GFS_COUNTER_ENUM_ROW) kNumCounters };
#undef GFS_COUNTER_ENUM_ROW
inline constexpr size_t kNumCounters = static_cast<size_t>(Counter::kNumCounters);
const char* CounterName(Counter c);

// A rank's counters: an array indexed by Counter on the hot path, plus a
// count per request type ("req_<message name>": the master's load by kind).
class Counters {
 public:
  uint64_t& operator[](Counter c) {
    const size_t i = static_cast<size_t>(c);
    touched_.set(i);
    return v_[i];
  }
  uint64_t get(Counter c) const { return v_[static_cast<size_t>(c)]; }
  // By stats-file name (tests and diagnostics): 0 for one never touched.
  uint64_t get(const std::string& name) const;
  // The count of requests of message type `type` (the reply bit ignored).
  uint64_t& requests(uint16_t type) { return requests_[type & 0x7fff]; }
  // Every touched counter and request count by its stats-file name.
  std::map<std::string, uint64_t> Named() const;

 private:
  std::array<uint64_t, kNumCounters> v_{};
  std::bitset<kNumCounters> touched_;
  std::map<uint16_t, uint64_t> requests_;
};

struct RoleStats {
  Counters counters;
  std::map<int, uint64_t> push_bytes_from;
  std::vector<PushTimeline> push_timeline;  // first pushes only (bounded)
};

Status WriteStatsJson(const std::string& dir, int rank, const std::string& role,
                      const RoleStats& stats, const Transport& t);

}  // namespace gfs
