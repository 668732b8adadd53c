// The client's one mutation engine: writes, record appends and truncations
// all run here (GFS §3.1's steps from the client's side):
//   1. the lease: which replica is primary (a record append first asks the
//      master which chunk appends go to),
//   2. the data pushed along the chain of replicas, nearest first, in slices
//      (a truncation carries no data and skips this),
//   3. the request to the primary, which orders and applies the mutation on
//      every replica and answers,
//   4. on a retryable failure, the same op again from step 1 under the
//      caller's RetryPolicy (the lease is looked up anew).
// Several ops are kept in flight (a window) so that one op's data flows down
// its chain while another is being applied.
#pragma once

#include <cstdint>
#include <vector>

#include "io/client.h"
#include "io/client/lease_cache.h"
#include "io/client/retry_policy.h"

namespace gfs {

// One mutation of one chunk.
struct Mutation {
  enum class Kind { kWrite, kAppend, kTruncate };
  Kind kind = Kind::kWrite;
  uint32_t index = 0;      // chunk of the file (an append: where its lease puts it)
  uint64_t chunk_off = 0;  // a write: where in the chunk; a truncation: the chunk's new length
  const uint8_t* data = nullptr;
  size_t len = 0;
  // A record append's result: the file offset where the record begins.
  uint64_t file_offset = 0;

  // The engine's state of the op.
  enum class State { kNew, kPushing, kOrdering, kDone };
  State state = State::kNew;
  Retry retry;
  uint64_t data_id = 0;      // the pushed data, as the chunkservers name it
  uint64_t req_id = 0;       // the request to the primary
  uint64_t deadline_us = 0;  // of the push's acknowledgement
  uint64_t bytes = 0;        // counted in the bytes in flight while in flight
  int hops = 0;              // chunks an append bounced off (full)
  // After an append bounced to the next chunk: the replicas (sorted) that
  // still hold the pushed data under data_id. Empty: push again.
  std::vector<int32_t> pushed_to;
  // Push-acks that mean the data is on every replica: 1 for a chain (its
  // last chunkserver), one per replica for a star push.
  uint32_t acks_needed = 1;
  ChunkLease lease;
};

class MutationEngine {
 public:
  // window: ops in flight at most; byte_cap: their bytes at most (0: no cap;
  // one op is always let through).
  MutationEngine(Client* c, File* f, const RetryPolicy& policy, size_t window, uint64_t byte_cap);

  // Called with the bytes written so far as write ops complete.
  void set_progress(const ProgressFn& progress) { progress_ = progress; }

  // Runs every op to completion; the first error that is not retried (or
  // whose retries ran out) ends the run and is returned.
  Status Run(std::vector<Mutation>* ops);

 private:
  // Steps 1-2 of an op whose turn has come.
  Status Start(Mutation& op);
  // What arrived for an op in flight (a push-ack, the primary's answer).
  Status Poll(Mutation& op, uint64_t now);
  // Step 3: the request to the primary.
  Status Order(Mutation& op);
  // A failed try: again later if the error and the policy allow, else the
  // error.
  Status Fail(Mutation& op, const Status& s);
  void Complete(Mutation& op);
  // The op no longer counts as in flight.
  void Landed(Mutation& op);
  // Sends op's data to its replicas, ordered by distance from this client
  // (slices, a few in flight per receiver). In chain mode the nearest gets
  // every slice with the rest of the chain as its forwarding list; in star
  // mode (JobConfig::push_mode) each replica gets every slice with an empty
  // list. The push-acks arrive later through Client::OnUnsolicited.
  Status PushSend(Mutation& op);
  // True once op's push-acks have all arrived, or one refusal has (consumed;
  // *s the status).
  bool TakePushAck(const Mutation& op, Status* s);
  static std::vector<int32_t> Secondaries(const ChunkLease& lease);

  Client* c_;
  File* f_;
  RetryPolicy policy_;
  size_t window_;
  uint64_t byte_cap_;
  ProgressFn progress_;
  uint64_t timeout_us_;
  size_t inflight_ = 0, completed_ = 0;
  uint64_t inflight_bytes_ = 0;
  uint64_t bytes_done_ = 0;  // of completed write ops
};

}  // namespace gfs
