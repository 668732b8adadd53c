#include "io/record_io.h"

#include <algorithm>
#include <memory>

#include "mpi/transport/buffer_pool.h"

namespace gfs {

RecordWriter::RecordWriter(Client* c, File* f) : c_(c), f_(f), producer_(NewProducerId()) {}

Result<uint64_t> RecordWriter::Append(const void* payload, size_t n) {
  if (n > max_payload()) {
    return Status(Code::kTooLarge, "a record payload of " + std::to_string(n) +
                                       " bytes is over the largest allowed, " +
                                       std::to_string(max_payload()) + " bytes (a frame of " +
                                       std::to_string(kFrameHeaderSize) +
                                       " header bytes plus the payload may be at most a "
                                       "quarter of the chunk size)");
  }
  frame_.clear();
  EncodeFrame(producer_, seq_, payload, n, &frame_);
  auto off = c_->RecordAppend(f_, frame_.data(), frame_.size());
  if (off.ok()) ++seq_;
  return off;
}

Status RecordWriter::AppendMany(const std::vector<Client::Span>& payloads,
                                std::vector<uint64_t>* offsets) {
  // Frames are self-delimiting, so consecutive frames are packed into append
  // units of up to kPackLimit (and at most 1/16 of a chunk, which bounds the
  // padding a full chunk leaves behind; a single larger frame still goes
  // alone, up to the quarter-chunk limit): one record
  // append moves many small records, each still framed on its own.
  const uint64_t pack_limit = std::min<uint64_t>(f_->chunk_size / 16, kPackLimit);
  // The units come from the buffer pool and go back to it on return, so
  // their pages stay warm for the next call or writer (fresh memory faults
  // on every page; see mpi/transport/buffer_pool.h).
  std::vector<std::shared_ptr<Bytes>> frames;
  std::vector<std::pair<size_t, size_t>> where;  // record -> (unit, offset in unit)
  where.reserve(payloads.size());
  for (size_t i = 0; i < payloads.size(); ++i) {
    if (payloads[i].size > max_payload()) {
      return Status(Code::kTooLarge, "a record payload of " + std::to_string(payloads[i].size) +
                                         " bytes is over the largest allowed, " +
                                         std::to_string(max_payload()) + " bytes");
    }
    const uint64_t fs = FrameSize(payloads[i].size);
    if (frames.empty() || frames.back()->size() + fs > pack_limit) {
      frames.push_back(TakeBuffer(0, static_cast<size_t>(std::max<uint64_t>(pack_limit, fs))));
    }
    Bytes& unit = *frames.back();
    where.emplace_back(frames.size() - 1, unit.size());
    EncodeFrame(producer_, seq_ + i, payloads[i].data, payloads[i].size, &unit);
  }
  std::vector<Client::Span> units;
  units.reserve(frames.size());
  for (const auto& u : frames) units.push_back({u->data(), u->size()});
  std::vector<uint64_t> unit_offsets;
  GFS_RETURN_IF_ERROR(c_->RecordAppendMany(f_, units, &unit_offsets));
  offsets->resize(payloads.size());
  for (size_t i = 0; i < payloads.size(); ++i) {
    (*offsets)[i] = unit_offsets[where[i].first] + where[i].second;
  }
  seq_ += payloads.size();
  return Status::OK();
}

Result<uint64_t> ReadRecordsOnce(Client* c, File* f, RecordReader* reader, const RecordFn& fn,
                                 bool finish) {
  auto committed = c->CommittedLength(f);
  if (!committed.ok()) return committed.status();
  constexpr size_t kPiece = 16u << 20;
  std::unique_ptr<uint8_t[]> buf;
  while (reader->offset() < *committed) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(kPiece, *committed - reader->offset()));
    if (!buf) buf.reset(new uint8_t[kPiece]);
    auto got = c->Read(f, reader->offset(), buf.get(), n);
    if (!got.ok()) return got.status();
    if (*got == 0) break;
    reader->Feed(buf.get(), *got, fn);
  }
  if (finish) reader->Finish(fn);
  return *committed;
}

}  // namespace gfs
