// The mutation calls of the façade: writes, record appends and truncations
// cut into ops, each op one chunk's mutation, run by the MutationEngine
// (io/client/mutation_engine.h).
#include <algorithm>

#include "io/client.h"
#include "io/client/lease_cache.h"
#include "io/client/mutation_engine.h"

namespace gfs {

Status Client::Write(File* f, uint64_t offset, const void* data, size_t n,
                     const ProgressFn& progress) {
  TailGuard tails{this};  // `data` is sent in place: wait for it before returning
  ForgetStream(f->id);    // bytes read ahead may be overwritten now
  // Cut the range into mutations (never across a chunk boundary) and keep up
  // to write_window of them in flight: while one is being applied, the next
  // one's data is already flowing down its chain.
  const auto* p = static_cast<const uint8_t*>(data);
  std::vector<Mutation> ops;
  for (size_t done = 0; done < n;) {
    uint64_t pos = offset + done;
    Mutation op;
    op.kind = Mutation::Kind::kWrite;
    op.index = static_cast<uint32_t>(pos / f->chunk_size);
    op.chunk_off = pos % f->chunk_size;
    op.len = std::min<uint64_t>({n - done, f->chunk_size - op.chunk_off, cfg_.write_op_size});
    op.data = p + done;
    ops.push_back(op);
    done += op.len;
  }
  MutationEngine engine(this, f, RetryPolicy::ForMutations(cfg_), cfg_.write_window, 0);
  engine.set_progress(progress);
  GFS_RETURN_IF_ERROR(engine.Run(&ops));
  if (n > 0) NoteEnd(f, offset + n);
  return Status::OK();
}

Result<uint64_t> Client::RecordAppend(File* f, const void* data, size_t n) {
  std::vector<uint64_t> offsets;
  GFS_RETURN_IF_ERROR(RecordAppendMany(f, {Span{data, n}}, &offsets));
  return offsets[0];
}

Status Client::RecordAppendMany(File* f, const std::vector<Span>& records,
                                std::vector<uint64_t>* offsets) {
  TailGuard tails{this};  // the records are sent in place
  ForgetStream(f->id);
  const uint64_t limit = f->chunk_size / 4;
  for (const Span& r : records) {
    if (r.size > limit) {
      return Status(Code::kTooLarge, "a record of " + std::to_string(r.size) +
                                         " bytes is over the limit of " + std::to_string(limit) +
                                         " bytes (a quarter of the chunk size)");
    }
  }
  offsets->assign(records.size(), 0);
  std::vector<Mutation> ops(records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    ops[i].kind = Mutation::Kind::kAppend;
    ops[i].data = static_cast<const uint8_t*>(records[i].data);
    ops[i].len = records[i].size;
  }
  // Bytes in flight are capped at 1/16 of a chunk as well: everything in
  // flight when a chunk fills bounces to the next one (an extra round trip
  // each, and a wait for the new chunk), and with many producers a window of
  // records per producer would keep several chunks' worth in flight.
  const uint64_t byte_cap = std::max<uint64_t>(f->chunk_size / 16, 1);
  MutationEngine engine(this, f, RetryPolicy::ForMutations(cfg_), cfg_.append_window, byte_cap);
  GFS_RETURN_IF_ERROR(engine.Run(&ops));
  for (size_t i = 0; i < ops.size(); ++i) (*offsets)[i] = ops[i].file_offset;
  return Status::OK();
}

Status Client::Truncate(File* f, uint64_t length) {
  ForgetStream(f->id);
  unreported_.erase(f->id);  // the truncation sets the length
  SetLengthReq req;
  req.path = f->path;
  req.file_id = f->id;
  req.length = length;
  req.grow_only = false;
  SetLengthReply rep;
  GFS_RETURN_IF_ERROR(MasterCall(req, &rep));
  f->length = rep.length;
  cache_->DropLocations(f->id);
  if (length % f->chunk_size == 0 || rep.last.handle == 0) return Status::OK();
  // The master freed the chunks past the new end; the last one is cut on
  // its replicas, ordered by its primary like any mutation.
  std::vector<Mutation> ops(1);
  ops[0].kind = Mutation::Kind::kTruncate;
  ops[0].index = rep.last.index;
  ops[0].chunk_off = length % f->chunk_size;
  MutationEngine engine(this, f, RetryPolicy::ForTruncate(), 1, 0);
  return engine.Run(&ops);
}

}  // namespace gfs
