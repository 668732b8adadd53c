// Checkpoints: the whole MetaState at one op-log sequence number, in a compact
// binary form that loads fast (layout in doc/disk-format-master.md).
//
//   header (80 bytes: magic, version, seq, epoch, counts, id counters, CRC)
//   body   (one record per directory and file, breadth first; no full paths:
//           each names its parent directory by ordinal; varint integers;
//           a file's chunks as (handle, version) pairs in index order)
//   footer (24 bytes: magic, body length, body CRC, footer CRC)
//
// A checkpoint that is truncated, has a flipped bit, or is otherwise not
// exactly what the writer produced is rejected with kCorruption before any of
// it is trusted; the decoder also bounds-checks every count and field, so even
// a checkpoint with valid CRCs but hostile content gives kCorruption, never a
// crash or an allocation larger than the input warrants.
//
// Thread safety: the functions are reentrant; the MetaState passed in must not
// change during a call.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "common/env.h"
#include "common/status.h"
#include "master/meta_state.h"

namespace gfs {

inline constexpr uint32_t kCheckpointFormatVersion = 1;
inline constexpr size_t kCheckpointHeaderSize = 80;
inline constexpr size_t kCheckpointFooterSize = 24;

struct CheckpointInfo {
  uint32_t format_version = 0;
  uint64_t seq = 0;    // the last op-log record the checkpoint includes
  uint64_t epoch = 0;  // the master epoch when it was written
  uint64_t dirs = 0;   // directories, not counting the root
  uint64_t files = 0;
  uint64_t chunks = 0;
  uint64_t next_file_id = 0;
  uint64_t next_handle = 0;
  uint64_t bytes = 0;  // whole checkpoint
};

// Streams the checkpoint of `state` to `sink` in pieces of about 1 MiB. A
// non-OK status from the sink stops the encoding and is returned.
// *bytes_out (may be null) gets the total size.
Status EncodeCheckpoint(const MetaState& state, uint64_t seq, uint64_t epoch,
                        const std::function<Status(const void* data, size_t n)>& sink,
                        uint64_t* bytes_out = nullptr);
std::string EncodeCheckpointToString(const MetaState& state, uint64_t seq, uint64_t epoch);

// Checks framing and both CRCs and fills *info (without decoding the body).
Status ReadCheckpointInfo(std::string_view bytes, CheckpointInfo* info);

// Validates and loads a checkpoint into *state, which must be freshly
// constructed (kInvalidArgument otherwise). On kCorruption *state holds part
// of the checkpoint: discard it. info may be null.
Status DecodeCheckpoint(std::string_view bytes, MetaState* state, CheckpointInfo* info);

// Writes a checkpoint file durably: `path`.tmp is written, fsynced, renamed to
// `path`, and the directory is fsynced, so `path` is either absent or
// complete. `hook` (may be null; tests) is called with "written" (before the
// fsync), "synced" (before the rename) and "renamed" (before the directory
// fsync); a non-OK status from it stops the write there, leaving the files as
// a crash at that point would.
Status WriteCheckpointFile(Env* env, const std::string& path, const MetaState& state, uint64_t seq,
                           uint64_t epoch, const std::function<Status(const std::string&)>& hook,
                           uint64_t* bytes_out = nullptr);

// For tests and tools: recomputes the header, body and footer checksums of a
// (deliberately altered) checkpoint so that the decoder's own checks, not the
// CRCs, are what reject it. Does nothing to a buffer too short to frame.
void ResealCheckpoint(std::string* bytes);

}  // namespace gfs
