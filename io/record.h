// Self-validating record frames and the record reader (doc/record-format.md).
//
// Record append is at-least-once: a file written by record appends may hold
// duplicates of a record, zero padding at chunk ends, and garbage left by
// failed attempts. Every appended record is therefore framed: a fixed 32-byte
// header (magic, payload length, producer id, sequence number, payload CRC32C,
// header CRC32C) followed by the payload. A reader walks the bytes, skips
// anything that is not a checksum-valid frame, and drops repeated
// (producer, sequence) pairs, yielding each record once.
//
// Pure C++: no MPI, no I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/coding.h"

namespace gfs {

// Frame layout (all little-endian):
//   [0,4)   magic       kFrameMagic ("GFSR"); also names the format version (1)
//   [4,8)   length      payload bytes (at most the reader's max payload)
//   [8,16)  producer    writer instance id (NewProducerId; 0 is never issued)
//   [16,24) sequence    per-producer record number, counting from 0
//   [24,28) data_crc    CRC32C of the payload
//   [28,32) header_crc  CRC32C of bytes [0,28) of this header
//   [32,32+length)      payload
inline constexpr size_t kFrameHeaderSize = 32;
// Bytes on disk: 'G' 'F' 'S' 'R'. A future incompatible frame format takes a
// new magic (a v1 reader skips it as garbage).
inline constexpr uint32_t kFrameMagic = 0x52534647;
inline constexpr uint32_t kFrameFormatVersion = 1;

// Largest payload for a file with this chunk size: a whole frame may be at most
// chunk_size / 4 bytes.
inline constexpr uint64_t MaxRecordPayload(uint64_t chunk_size) {
  return chunk_size / 4 > kFrameHeaderSize ? chunk_size / 4 - kFrameHeaderSize : 0;
}
// The largest payload any file can hold (chunk sizes are at most 4 GiB).
inline constexpr uint64_t kMaxRecordPayloadAnyChunk = MaxRecordPayload(uint64_t{4} << 30);
// Bytes a frame with an n-byte payload occupies.
inline constexpr uint64_t FrameSize(uint64_t n) { return kFrameHeaderSize + n; }

// A fresh 64-bit producer id from getrandom(2): never 0, and independent across
// processes and runs (two writers share one with probability ~2^-64).
uint64_t NewProducerId();

// Writes the 32-byte header for (producer, seq, payload[0,n)) into out.
// Requires n <= UINT32_MAX (callers enforce MaxRecordPayload first).
void EncodeFrameHeader(uint64_t producer, uint64_t seq, const void* payload, size_t n,
                       uint8_t out[kFrameHeaderSize]);
// Appends the whole frame (header + payload) to *out.
void EncodeFrame(uint64_t producer, uint64_t seq, const void* payload, size_t n,
                 std::vector<uint8_t>* out);
void EncodeFrame(uint64_t producer, uint64_t seq, const void* payload, size_t n, Bytes* out);

// A decoded header.
struct FrameHeader {
  uint32_t length = 0;
  uint64_t producer = 0;
  uint64_t seq = 0;
  uint32_t data_crc = 0;
};
// Parses and verifies the 32 bytes at p (magic and header CRC; not the
// payload). Returns false if they are not a valid v1 frame header.
bool DecodeFrameHeader(const uint8_t* p, FrameHeader* h);

// One valid record. `data` points into the scanned bytes (or the reader's
// buffer) and is valid only during the callback.
struct RecordView {
  uint64_t producer = 0;
  uint64_t seq = 0;
  uint64_t offset = 0;  // file offset of the frame (its header)
  const uint8_t* data = nullptr;
  uint32_t size = 0;  // payload bytes
};

using RecordFn = std::function<void(const RecordView&)>;

// What a scan skipped (only bytes it consumed are counted).
struct ScanStats {
  uint64_t frames = 0;         // valid frames found (duplicates included)
  uint64_t frame_bytes = 0;    // their header + payload bytes
  uint64_t skipped_bytes = 0;  // bytes that were not part of a valid frame
  uint64_t zero_bytes = 0;     // of those, bytes equal to 0 (padding)
};

// Scans bytes [base_offset, base_offset+n) of a file and calls fn for every
// valid frame, in file order (no de-duplication). Zero padding and garbage are
// skipped by searching for the magic byte by byte and verifying the header CRC,
// the length (<= max_payload), then the payload CRC; a frame that fails any
// check is skipped one byte at a time, so a valid frame starting inside it is
// still found. A frame (or a possible header prefix) cut off by the end of the
// range is not consumed: returns how many leading bytes were consumed
// entirely, so a streaming caller keeps the tail and retries with more bytes.
// With final = true the end of the range is the end of input: a cut-off frame
// is garbage and everything is consumed (returns n).
size_t ScanFrames(const uint8_t* data, size_t n, uint64_t base_offset, const RecordFn& fn,
                  uint64_t max_payload = kMaxRecordPayloadAnyChunk, bool final = false,
                  ScanStats* stats = nullptr);

// Streaming, de-duplicating reader: feed consecutive byte ranges of a file
// (e.g. while tail-following it up to its committed length); yields each
// (producer, seq) once, in file order of first appearance.
//
// Memory: the bytes of at most one unfinished frame (< FrameSize(max_payload))
// are kept between Feed calls, plus one such frame's worth while completing it;
// fed bytes are otherwise scanned in place. De-duplication keeps, per producer,
// the count of sequence numbers seen contiguously from 0 plus the set of those
// seen out of order beyond it.
class RecordReader {
 public:
  // Frames claiming a payload larger than max_payload (use
  // MaxRecordPayload(chunk_size)) are garbage. start_offset: file offset of the
  // first byte that will be fed.
  explicit RecordReader(uint64_t max_payload, uint64_t start_offset = 0);

  // Appends bytes that continue the file at offset(); calls fn for each new
  // valid, not-yet-seen record that is now complete.
  void Feed(const uint8_t* data, size_t n, const RecordFn& fn);
  // End of input: the buffered tail can no longer be completed. It is rescanned
  // with its cut-off frame treated as garbage (fn gets any valid record wholly
  // inside it), and the rest is counted as skipped. Feeding may continue after.
  void Finish(const RecordFn& fn = nullptr);

  uint64_t offset() const { return consumed_ + buf_.size(); }  // next byte to feed
  uint64_t consumed_offset() const { return consumed_; }       // first byte still buffered
  size_t buffered() const { return buf_.size(); }
  uint64_t max_payload() const { return max_payload_; }

  uint64_t records() const { return records_; }        // distinct records yielded
  uint64_t bytes() const { return bytes_; }            // their payload bytes
  uint64_t duplicates() const { return duplicates_; }  // valid frames dropped as repeats
  uint64_t skipped_bytes() const { return stats_.skipped_bytes; }  // padding + garbage
  uint64_t padding_bytes() const { return stats_.zero_bytes; }     // zero bytes skipped
  uint64_t producers() const { return seen_.size(); }

  // True if (producer, seq) has been yielded.
  bool Seen(uint64_t producer, uint64_t seq) const;

 private:
  struct ProducerSeen {
    uint64_t next = 0;                   // every seq < next has been seen
    std::unordered_set<uint64_t> ahead;  // seen, > next
  };
  // Records (producer, seq) as seen; false if it already was.
  bool MarkSeen(uint64_t producer, uint64_t seq);
  // Scans data[0,n) at file offset consumed_ (final: no tail kept); returns bytes consumed.
  size_t Scan(const uint8_t* data, size_t n, bool final, const RecordFn& fn);

  uint64_t max_payload_;
  uint64_t consumed_;  // file offset of buf_[0]
  Bytes buf_;          // unconsumed tail (an unfinished frame or header prefix)
  std::unordered_map<uint64_t, ProducerSeen> seen_;
  uint64_t records_ = 0, bytes_ = 0, duplicates_ = 0;
  ScanStats stats_;
};

}  // namespace gfs
