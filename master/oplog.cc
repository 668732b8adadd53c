#include "master/oplog.h"

#include <cstring>

#include "common/coding.h"
#include "common/crc32c.h"

namespace gfs {

namespace {

constexpr char kMagic[8] = {'G', 'F', 'S', 'O', 'P', 'L', 'O', 'G'};
// Buffered bytes beyond which Append spills to the file (without syncing).
constexpr size_t kSpillBytes = 256 * 1024;

// leveldb-style CRC masking: a CRC stored next to data it covers is rotated
// and offset so that CRCs of CRC-bearing data are not degenerate.
constexpr uint32_t kMaskDelta = 0xa282ead8u;
uint32_t Mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + kMaskDelta; }

enum class RecState { kOk, kTruncated, kBad };

struct RecView {
  uint32_t len = 0;
  uint64_t seq = 0;
  const uint8_t* payload = nullptr;
};

// Examines the record starting at data[pos] (file size n).
RecState ParseRecord(const uint8_t* data, size_t n, size_t pos, RecView* rec) {
  if (n - pos < kOpLogRecordHeaderSize) return RecState::kTruncated;
  const uint8_t* p = data + pos;
  rec->len = LoadU32(p + 4);
  rec->seq = LoadU64(p + 8);
  if (rec->len > kOpLogMaxPayload) return RecState::kBad;
  if (n - pos - kOpLogRecordHeaderSize < rec->len) return RecState::kTruncated;
  uint32_t crc = crc32c::Value(p + 4, 12 + size_t{rec->len});
  if (Mask(crc) != LoadU32(p)) return RecState::kBad;
  rec->payload = p + kOpLogRecordHeaderSize;
  return RecState::kOk;
}

std::string Off(uint64_t v) { return std::to_string(v); }

}  // namespace

std::string OpLog::EncodeHeader(uint64_t start_seq, uint64_t epoch, uint32_t version) {
  std::vector<uint8_t> b;
  Writer w(&b);
  w.Raw(kMagic, sizeof kMagic);
  w.U32(version);
  w.U32(static_cast<uint32_t>(kOpLogHeaderSize));
  w.U64(start_seq);
  w.U64(epoch);
  w.U32(0);  // reserved
  w.U32(Mask(crc32c::Value(b.data(), b.size())));
  return std::string(b.begin(), b.end());
}

Status OpLog::Replay(Env* env, const std::string& path,
                     const std::function<Status(uint64_t seq, const MetaOp& op)>& fn,
                     ReplayInfo* info) {
  ReplayInfo local;
  ReplayInfo& ri = info ? *info : local;
  ri = ReplayInfo();
  std::string file;
  GFS_RETURN_IF_ERROR(env->ReadFile(path, &file));
  const auto* data = reinterpret_cast<const uint8_t*>(file.data());
  const size_t n = file.size();
  ri.file_bytes = n;

  // Header.
  if (n < kOpLogHeaderSize) {
    return Status::Corruption(path + ": oplog header truncated (" + Off(n) + " of " +
                              Off(kOpLogHeaderSize) + " bytes)");
  }
  if (std::memcmp(data, kMagic, sizeof kMagic) != 0) {
    return Status::Corruption(path + ": not an oplog (bad magic)");
  }
  uint32_t version = LoadU32(data + 8);
  ri.format_version = version;
  if (version != kOpLogFormatVersion) {
    return Status::Corruption(path + ": unsupported oplog format version " +
                              std::to_string(version) + " (this build reads version " +
                              std::to_string(kOpLogFormatVersion) + ")");
  }
  if (LoadU32(data + 12) != kOpLogHeaderSize) {
    return Status::Corruption(path + ": oplog header size " + std::to_string(LoadU32(data + 12)) +
                              " != " + Off(kOpLogHeaderSize));
  }
  if (Mask(crc32c::Value(data, 36)) != LoadU32(data + 36)) {
    return Status::Corruption(path + ": oplog header checksum mismatch");
  }
  ri.start_seq = LoadU64(data + 16);
  ri.epoch = LoadU64(data + 24);
  if (ri.start_seq == 0) return Status::Corruption(path + ": oplog start_seq is 0");
  ri.last_seq = ri.start_seq - 1;

  size_t pos = kOpLogHeaderSize;
  while (pos < n) {
    RecView rec;
    RecState st = ParseRecord(data, n, pos, &rec);
    if (st == RecState::kOk) {
      if (rec.seq != ri.last_seq + 1) {
        return Status::Corruption(path + ": sequence gap at offset " + Off(pos) + ": expected " +
                                  Off(ri.last_seq + 1) + ", found " + Off(rec.seq));
      }
      Result<MetaOp> op = MetaOp::Decode(rec.payload, rec.len);
      if (!op.ok()) {
        return Status::Corruption(path + ": record seq " + Off(rec.seq) + " at offset " + Off(pos) +
                                  ": " + op.status().message());
      }
      if (fn) GFS_RETURN_IF_ERROR(fn(rec.seq, *op));
      pos += kOpLogRecordHeaderSize + rec.len;
      ri.last_seq = rec.seq;
      ++ri.records;
      continue;
    }
    // A bad or incomplete record. It is a torn tail only if nothing valid
    // follows: look for any later offset holding a record with a good CRC
    // and a sequence number that could belong after the last good one.
    const uint64_t max_plausible = ri.last_seq + 1 + (n - pos) / kOpLogRecordHeaderSize;
    for (size_t q = pos + 1; q + kOpLogRecordHeaderSize <= n; ++q) {
      uint64_t seq = LoadU64(data + q + 8);
      if (seq <= ri.last_seq || seq > max_plausible) continue;
      RecView later;
      if (ParseRecord(data, n, q, &later) == RecState::kOk) {
        return Status::Corruption(
            path + ": " + (st == RecState::kBad ? "corrupt" : "incomplete") + " record at offset " +
            Off(pos) + " (after seq " + Off(ri.last_seq) + ") is followed by a valid record (seq " +
            Off(later.seq) + " at offset " + Off(q) + "); refusing to skip it");
      }
    }
    ri.warning = path + ": dropped torn tail of " + Off(n - pos) + " bytes at offset " + Off(pos) +
                 " (" + (st == RecState::kBad ? "checksum/length mismatch" : "truncated record") +
                 ") after seq " + Off(ri.last_seq);
    break;
  }
  ri.valid_bytes = pos;
  return Status::OK();
}

OpLog::OpLog(Env* env, std::string path) : env_(env), path_(std::move(path)) {}

OpLog::~OpLog() = default;

Status OpLog::Open(uint64_t* last_seq) {
  if (file_) return Status::InvalidArgument(path_ + ": oplog already open");
  if (!env_->FileExists(path_)) {
    GFS_RETURN_IF_ERROR(env_->WriteFileAtomic(path_, EncodeHeader(1, 0)));
  }
  ReplayInfo info;
  GFS_RETURN_IF_ERROR(Replay(env_, path_, nullptr, &info));
  if (info.valid_bytes < info.file_bytes) {
    std::unique_ptr<RandomRWFile> f;
    GFS_RETURN_IF_ERROR(env_->OpenRandomRW(path_, false, &f));
    GFS_RETURN_IF_ERROR(f->Truncate(info.valid_bytes));
    GFS_RETURN_IF_ERROR(f->Sync());
  }
  GFS_RETURN_IF_ERROR(env_->OpenAppend(path_, &file_));
  warning_ = info.warning;
  last_seq_ = synced_seq_ = info.last_seq;
  epoch_ = info.epoch;
  start_seq_ = info.start_seq;
  bytes_ = info.valid_bytes;
  buf_.clear();
  error_ = Status::OK();
  if (last_seq) *last_seq = last_seq_;
  return Status::OK();
}

Status OpLog::Poison(Status s) {
  error_ = s;
  return s;
}

Status OpLog::AppendRecord(uint64_t seq, const MetaOp& op) {
  if (!error_.ok()) return error_;
  if (!file_) return Status::InvalidArgument(path_ + ": oplog not open");
  const size_t start = buf_.size();
  Writer w(&buf_);
  w.U32(0);  // crc, patched below
  w.U32(0);  // len, patched below
  w.U64(seq);
  op.EncodeTo(&buf_);
  const size_t len = buf_.size() - start - kOpLogRecordHeaderSize;
  if (len > kOpLogMaxPayload) {
    buf_.resize(start);
    return Status::InvalidArgument("oplog: record too large (" + std::to_string(len) + " bytes)");
  }
  w.PatchU32(start + 4, static_cast<uint32_t>(len));
  w.PatchU32(start, Mask(crc32c::Value(buf_.data() + start + 4, 12 + len)));
  last_seq_ = seq;
  bytes_ += kOpLogRecordHeaderSize + len;
  if (buf_.size() >= kSpillBytes) return Flush();
  return Status::OK();
}

Status OpLog::Append(const MetaOp& op, uint64_t* seq) {
  uint64_t s = last_seq_ + 1;
  GFS_RETURN_IF_ERROR(AppendRecord(s, op));
  if (seq) *seq = s;
  return Status::OK();
}

Status OpLog::AppendAt(uint64_t seq, const MetaOp& op) {
  if (seq != last_seq_ + 1) {
    return Status::InvalidArgument("oplog: append at seq " + std::to_string(seq) + ", expected " +
                                   std::to_string(last_seq_ + 1));
  }
  return AppendRecord(seq, op);
}

Status OpLog::Flush() {
  if (buf_.empty()) return Status::OK();
  Status s = file_->Append(buf_.data(), buf_.size());
  buf_.clear();
  if (!s.ok()) return Poison(s);
  return Status::OK();
}

Status OpLog::Sync() {
  if (!error_.ok()) return error_;
  if (!file_) return Status::InvalidArgument(path_ + ": oplog not open");
  if (synced_seq_ == last_seq_) return Status::OK();
  GFS_RETURN_IF_ERROR(Flush());
  Status s = file_->Sync();
  if (!s.ok()) return Poison(s);
  ++sync_count_;
  synced_seq_ = last_seq_;
  return Status::OK();
}

Status OpLog::Close() {
  if (!file_) return Status::OK();
  Status s = Sync();
  Status c = file_->Close();
  file_.reset();
  if (!s.ok()) return s;
  return c;
}

// RecoverMetaState is defined in journal.cc (it shares MetaJournal's recovery).

}  // namespace gfs
