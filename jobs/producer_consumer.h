// The producer-consumer job: P producer ranks record-append M records each to
// one file while the other client ranks tail it up to its committed length,
// validating as they go; at the end every (producer, sequence) must have
// arrived exactly once after de-duplication. End of stream is signalled over
// MPI, not written as a record.
#pragma once

#include <cstdint>
#include <string>

#include "jobs/gfs.h"

namespace gfs::jobs {

struct ProducerConsumerOptions {
  std::string file;
  int producers = 1;
  uint64_t records = 1000;  // per producer
  uint64_t min_size = 64;
  uint64_t max_size = 64 * 1024;
  uint64_t seed = 1;
  uint64_t sync_every = 0;  // producers fsync after every this many records (0: at close only)
  bool json = false;
};

// Runs on every client rank of the session (collective over app_comm).
// Returns the job's exit status (0: every record arrived once and intact),
// the same on every client; the first consumer prints the summary.
int RunProducerConsumer(Session* s, const ProducerConsumerOptions& o);

// The payload size and bytes of record `seq` of producer `index`: a pure
// function of (seed, index, seq), so consumers can check every byte.
uint64_t RecordSize(const ProducerConsumerOptions& o, uint64_t index, uint64_t seq);
void FillRecord(const ProducerConsumerOptions& o, uint64_t index, uint64_t seq, uint8_t* out,
                size_t n);

}  // namespace gfs::jobs
