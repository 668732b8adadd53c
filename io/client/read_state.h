// What the client keeps between reads: read-ahead per file, the last
// short-circuit answer per file, and the counters that spread reads over
// replicas. Private to io/client (read.cc, read_ahead.cc, short_circuit.cc).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "common/env.h"
#include "mpi/protocol/rpc.h"

namespace gfs {

// Sequential read-ahead. After two reads in a row that each start where the
// last ended, the client keeps `read_ahead` bytes past the reader's position
// requested (read_size each), so the chunkservers' disk reads and the
// transfers overlap the application's work. Any write, append, truncate or
// close through this client, a jump, or an error drops it.
struct AheadSeg {
  uint64_t off = 0;  // file offset
  uint32_t len = 0;
  uint64_t id = 0;      // rpc id of the read request
  uint32_t index = 0;   // chunk
  int32_t target = -1;  // replica asked
  uint64_t started_us = 0;
  bool have = false;  // the reply is in `reply`
  Message reply;
};

struct ReadStream {
  uint64_t next = 0;          // where the last read ended
  uint32_t streak = 0;        // sequential reads in a row
  uint64_t used = 0;          // ReadState::stream_clock at the last read
  std::deque<AheadSeg> segs;  // ascending and contiguous
  // Bytes kept requested past the reader (0: JobConfig::read_ahead). Halved,
  // down to one read_size, each time a segment had to be dropped as too old
  // (Client::kAheadMaxAgeUs): over a link slower than read_ahead per
  // kAheadMaxAgeUs, the far end of the window is always too old by the time
  // the reader gets there, and each drop throws away every reply in flight.
  uint64_t window = 0;
};

// Short-circuit reads (JobConfig::short_circuit_reads). A chunk with a
// replica on this client's host is read from that replica's data file: the
// chunkserver checks the version and sends the checksums of the blocks
// (kReadLocal), this client reads the bytes itself and verifies every block.
// Anything that fails (no access, a short file, a mismatch, e.g. a block
// overwritten since) falls back to kRead, where the chunkserver verifies and
// reports corruption. One answer covers the rest of the chunk (up to
// Client::kLocalWindow) and serves the reads that follow for
// Client::kAheadMaxAgeUs, like read-ahead; chunks read this way are not read
// ahead.
struct LocalView {
  uint32_t index = 0;  // chunk of the file
  std::unique_ptr<RandomRWFile> file;
  uint32_t block_size = 0;
  uint64_t base = 0, end = 0;  // chunk offsets the checksums cover
  std::vector<uint32_t> crcs;  // one per block of [base, end)
  uint64_t fetched_us = 0;
};

struct ReadState {
  std::map<uint64_t, ReadStream> streams;  // file id -> read-ahead
  uint64_t stream_clock = 0;
  std::map<uint64_t, LocalView> local;  // file id -> last short-circuit answer
  std::set<int32_t> no_local;           // chunkservers whose files this client cannot open
  std::vector<uint8_t> edge;            // partial blocks of short-circuit reads
  uint64_t read_rr = 0;                 // spreads reads over equally near replicas
  bool narrowing = false;               // inside ReadAround: report, do not split again
};

}  // namespace gfs
