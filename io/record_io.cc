#include "io/record_io.h"

#include <algorithm>
#include <memory>

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
