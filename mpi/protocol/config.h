// Job-wide settings shared by every role. Filled from the command line
// (jobs/options.h) or by a user's program before gfs::Init; see doc/options.md.
#pragma once

#include <cstdint>
#include <string>

namespace gfs {

struct JobConfig {
  std::string data_dir = "./gfs-data";
  uint32_t replication = 0;           // 0: min(3, chunkservers)
  uint64_t chunk_size = 64ull << 20;  // default for new files
  uint32_t lease_seconds = 60;
  uint32_t heartbeat_ms = 1000;
  int shadows = 0;
  int chunkservers = -1;                // -1: derived from the job size
  int clients = -1;                     // -1: derived from the job size
  uint32_t request_timeout_ms = 30000;  // deadline of one request
  uint32_t slice_size = 1u << 20;       // data push slice
  // How a client pushes a mutation's data (write step 2). kChain: to the
  // nearest replica only, which forwards it down the chain (the design).
  // kStar: to every replica itself, each push with an empty forwarding list;
  // only for measuring the chain against (bench/chain.sh): the client's link
  // then carries every byte R times.
  enum class PushMode : uint8_t { kChain, kStar };
  PushMode push_mode = PushMode::kChain;
  uint32_t write_op_size = 8u << 20;  // bytes per write mutation
  uint32_t write_window = 4;          // write mutations in flight per client
  uint32_t append_window = 16;        // record appends in flight (RecordAppendMany)
  uint32_t read_size = 4u << 20;      // bytes per read request
  uint32_t read_window = 4;           // read requests in flight
  uint64_t read_ahead = 16ull << 20;  // sequential read-ahead per file; 0: off
  // Read a replica on the client's host from its data file (read-only,
  // every block verified). Only chunkservers ever write chunk files.
  bool short_circuit_reads = true;
  uint64_t push_buffer_limit = 1ull << 30;  // pushed bytes a chunkserver holds
  uint64_t capacity = 0;                    // 0: the file system's free space
  uint64_t writeback_bytes = 0;             // chunkserver: start disk writes per this much; 0 off
  uint32_t scrub_mb_per_s = 32;             // background checksum scrubbing; 0: off
  uint32_t rpc_log_mb = 16;                 // storage ranks' rpc.log (+ .1) in MiB; 0: off
  uint64_t log_roll_bytes = 64ull << 20;    // master: new op-log file + checkpoint past this
  uint32_t keep_checkpoints = 2;            // master: checkpoints kept (and the logs they need)
  std::string stats_dir;                    // when set, each rank writes counters there
  // `HOST RACK` lines (common/topology.h), read by the master for placement
  // and by clients for replica distance; "": every host a rack of its own.
  std::string topology_file;
  // Master: rebalancing starts when a live chunkserver's bytes of chunks
  // differ from the mean by more than this fraction of the mean (0: off),
  // and moves at most rebalance_moves replicas per second, one at a time
  // per chunkserver.
  double rebalance_threshold = 0.10;
  uint32_t rebalance_moves = 4;
  bool progress = false;
  // Master: how long `gfs rm` keeps entries in the trash before the
  // namespace scan deletes them; 0: no trash (rm deletes at once).
  uint64_t trash_retention_s = 86400;
  // `gfs format`: every role discards what its directory holds (metadata,
  // chunks) at start, and the master makes a new store.
  bool format = false;
};

// Which rank does what. Rank 0 is the master, then the shadows, then the
// chunkservers, then the clients.
struct RoleLayout {
  int world = 0;
  int shadows = 0;
  int chunkservers = 0;
  int clients = 0;
  int first_shadow() const { return 1; }
  int first_chunkserver() const { return 1 + shadows; }
  int first_client() const { return 1 + shadows + chunkservers; }
  bool is_master(int r) const { return r == 0; }
  bool is_shadow(int r) const { return r >= 1 && r < first_chunkserver(); }
  bool is_chunkserver(int r) const { return r >= first_chunkserver() && r < first_client(); }
  bool is_client(int r) const { return r >= first_client(); }
};

}  // namespace gfs
