// Records over the client library: a writer that frames payloads
// (io/record.h) and record-appends them, and a reader that walks a file up to
// its committed length and yields each record once.
#pragma once

#include <cstdint>
#include <functional>

#include "io/client.h"
#include "io/record.h"

namespace gfs {

// One producer instance: a fresh producer id, sequence numbers from 0.
// REQUIRES: the Client and File outlive the writer.
class RecordWriter {
 public:
  RecordWriter(Client* c, File* f);
  uint64_t producer() const { return producer_; }
  uint64_t next_seq() const { return seq_; }
  // Largest payload this file takes (a frame is at most a quarter chunk).
  uint64_t max_payload() const { return MaxRecordPayload(f_->chunk_size); }
  // Frames and appends one payload; returns the file offset of its frame.
  // kTooLarge (naming the largest payload allowed) when it cannot fit.
  Result<uint64_t> Append(const void* payload, size_t n);
  // Frames several payloads (consecutive sequence numbers in the order given)
  // and appends them packed into units of up to kPackLimit bytes (at most 1/16
  // of a chunk), several units in flight. (*offsets)[i] is the file offset
  // of payload i's frame.
  static constexpr uint64_t kPackLimit = 1u << 20;
  Status AppendMany(const std::vector<Client::Span>& payloads, std::vector<uint64_t>* offsets);

 private:
  Client* c_;
  File* f_;
  uint64_t producer_;
  uint64_t seq_ = 0;
  Bytes frame_;
};

struct ReadRecordsStats {
  uint64_t records = 0, bytes = 0, duplicates = 0, padding_bytes = 0, skipped_bytes = 0;
};

// Reads f from `reader`'s offset up to its committed length, feeding the
// reader (which de-duplicates); with `finish`, the end of what was read is the
// end of input. Returns the committed length reached.
Result<uint64_t> ReadRecordsOnce(Client* c, File* f, RecordReader* reader, const RecordFn& fn,
                                 bool finish);

}  // namespace gfs
