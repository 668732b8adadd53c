#include "io/h5/packet_table.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <utility>

#include "common/coding.h"

namespace gfs::h5 {
namespace {

static_assert(std::endian::native == std::endian::little, "table records are little-endian");

constexpr size_t kReadBlock = 4u << 20;    // bytes per read while scanning
constexpr size_t kFirstBlock = 64u << 10;  // Open's first read (the header is at the start)
constexpr size_t kHeaderFixed = 4 + 4 + 8 + 4;

Status Closed() { return Status::InvalidArgument("packet table is closed"); }

// Largest payload Append puts in one record of a file with this chunk size.
uint64_t RecordPayloadLimit(uint64_t chunk_size) {
  return std::min<uint64_t>(kMaxRecordPayload, MaxRecordPayload(chunk_size));
}

}  // namespace

PacketTable::PacketTable(PacketTable&& o) noexcept { *this = std::move(o); }

PacketTable& PacketTable::operator=(PacketTable&& o) noexcept {
  if (this == &o) return *this;
  if (type_ >= 0) {
    H5E_BEGIN_TRY { H5Tclose(type_); }
    H5E_END_TRY;
  }
  client_ = std::exchange(o.client_, nullptr);
  file_ = std::move(o.file_);
  type_ = std::exchange(o.type_, H5I_INVALID_HID);
  packet_size_ = o.packet_size_;
  per_record_ = o.per_record_;
  producer_ = o.producer_;
  next_seq_ = o.next_seq_;
  frame_ = std::move(o.frame_);
  reader_ = std::move(o.reader_);
  index_ = std::move(o.index_);
  total_packets_ = o.total_packets_;
  type_error_ = std::move(o.type_error_);
  pending_ = std::move(o.pending_);
  stats_ = o.stats_;
  return *this;
}

PacketTable::~PacketTable() {
  if (type_ >= 0) {
    H5E_BEGIN_TRY { H5Tclose(type_); }
    H5E_END_TRY;
  }
}

Result<PacketTable> PacketTable::Create(Client* client, const std::string& path, hid_t packet_type,
                                        const CreateOptions& opts) {
  if (client == nullptr) return Status::InvalidArgument("packet table: no client");
  size_t psize = 0;
  size_t enc_len = 0;
  H5E_BEGIN_TRY {
    psize = H5Tget_size(packet_type);
    if (psize > 0 && H5Tencode(packet_type, nullptr, &enc_len) < 0) enc_len = 0;
  }
  H5E_END_TRY;
  if (psize == 0 || enc_len == 0) {
    return Status::InvalidArgument("packet table " + path + ": not a valid HDF5 datatype");
  }
  std::vector<uint8_t> payload(kHeaderFixed + enc_len);
  StoreU32(payload.data(), kHeaderMagic);
  StoreU32(payload.data() + 4, kTableFormatVersion);
  StoreU64(payload.data() + 8, psize);
  StoreU32(payload.data() + 16, static_cast<uint32_t>(enc_len));
  if (H5Tencode(packet_type, payload.data() + kHeaderFixed, &enc_len) < 0) {
    return Status::InvalidArgument("packet table " + path + ": H5Tencode failed");
  }

  CreateOptions o = opts;
  if (!o.exclusive) o.truncate = true;  // never a second header in an old table
  auto f = client->Create(path, o);
  if (!f.ok()) return f.status();
  const uint64_t limit = RecordPayloadLimit(f->chunk_size);
  if (limit < kDataPrefix + psize) {
    return Status(Code::kTooLarge,
                  "packet table " + path + ": a packet of " + std::to_string(psize) +
                      " bytes does not fit in a record (at most " +
                      std::to_string(limit > kDataPrefix ? limit - kDataPrefix : 0) +
                      " bytes with chunk size " + std::to_string(f->chunk_size) + ")");
  }
  if (payload.size() > MaxRecordPayload(f->chunk_size)) {
    return Status(Code::kTooLarge, "packet table " + path + ": the encoded type (" +
                                       std::to_string(payload.size()) +
                                       " bytes) does not fit in a record");
  }

  PacketTable t;
  t.client_ = client;
  t.file_ = std::move(*f);
  t.type_ = H5Tcopy(packet_type);
  if (t.type_ < 0) return Status::Internal("packet table: H5Tcopy failed");
  t.packet_size_ = psize;
  t.per_record_ = static_cast<size_t>((limit - kDataPrefix) / psize);
  t.producer_ = NewProducerId();
  t.frame_.resize(kFrameHeaderSize + payload.size());
  std::memcpy(t.frame_.data() + kFrameHeaderSize, payload.data(), payload.size());
  EncodeFrameHeader(t.producer_, t.next_seq_++, payload.data(), payload.size(), t.frame_.data());
  auto off = client->RecordAppend(&t.file_, t.frame_.data(), t.frame_.size());
  if (!off.ok()) {
    return Status(off.status().code(),
                  "packet table " + path + ": appending the header: " + off.status().message());
  }
  return t;
}

Result<PacketTable> PacketTable::Open(Client* client, const std::string& path) {
  if (client == nullptr) return Status::InvalidArgument("packet table: no client");
  auto f = client->Open(path);
  if (!f.ok()) return f.status();
  PacketTable t;
  t.client_ = client;
  t.file_ = std::move(*f);
  t.producer_ = NewProducerId();
  GFS_RETURN_IF_ERROR(t.Refresh(/*header_only=*/true));
  if (t.type_ < 0) {
    if (t.reader_->offset() == 0) {
      return Status::Unavailable("packet table " + path + " has no header yet (being created?)");
    }
    return Status::Corruption(path + " is not a packet table (no header record in its " +
                              std::to_string(t.reader_->offset()) + " committed bytes)");
  }
  return t;
}

Status PacketTable::SetType(const uint8_t* p, size_t n) {
  if (n < kHeaderFixed) return Status::Corruption(path() + ": short packet-table header");
  const uint32_t version = LoadU32(p + 4);
  const uint64_t psize = LoadU64(p + 8);
  const uint32_t len = LoadU32(p + 16);
  if (version != kTableFormatVersion) {
    return Status::Corruption(path() + ": packet-table format version " + std::to_string(version) +
                              " is not supported (this build reads version " +
                              std::to_string(kTableFormatVersion) + ")");
  }
  if (kHeaderFixed + static_cast<size_t>(len) > n || psize == 0) {
    return Status::Corruption(path() + ": bad packet-table header");
  }
  hid_t t = H5I_INVALID_HID;
  H5E_BEGIN_TRY { t = H5Tdecode(p + kHeaderFixed); }
  H5E_END_TRY;
  if (t < 0) return Status::Corruption(path() + ": the packet type cannot be decoded (H5Tdecode)");
  if (H5Tget_size(t) != psize) {
    H5Tclose(t);
    return Status::Corruption(path() + ": packet type size does not match the header");
  }
  const uint64_t limit = RecordPayloadLimit(file_.chunk_size);
  if (limit < kDataPrefix + psize) {
    H5Tclose(t);
    return Status(Code::kTooLarge, path() + ": packets are larger than this file's record limit");
  }
  type_ = t;
  packet_size_ = static_cast<size_t>(psize);
  per_record_ = static_cast<size_t>((limit - kDataPrefix) / psize);
  return Status::OK();
}

void PacketTable::OnRecord(const RecordView& r) {
  if (r.size < 8) {
    stats_.bad_records++;
    return;
  }
  const uint32_t magic = LoadU32(r.data);
  if (magic == kHeaderMagic) {
    if (type_ >= 0 || !type_error_.ok()) return;  // a later header: ignored
    type_error_ = SetType(r.data, r.size);
    if (!type_error_.ok()) return;
    for (const Pending& p : pending_) {
      if (p.count > 0 && p.payload == kDataPrefix + uint64_t{p.count} * packet_size_) {
        index_.push_back({p.data_offset, total_packets_, p.count});
        total_packets_ += p.count;
        stats_.records++;
        stats_.packets += p.count;
      } else {
        stats_.bad_records++;
      }
    }
    pending_.clear();
    return;
  }
  if (magic != kDataMagic) {
    stats_.bad_records++;
    return;
  }
  const uint32_t count = LoadU32(r.data + 4);
  const uint64_t data_offset = r.offset + kFrameHeaderSize + kDataPrefix;
  if (type_ < 0) {
    pending_.push_back({data_offset, count, r.size});
    return;
  }
  if (count == 0 || r.size != kDataPrefix + uint64_t{count} * packet_size_) {
    stats_.bad_records++;
    return;
  }
  index_.push_back({data_offset, total_packets_, count});
  total_packets_ += count;
  stats_.records++;
  stats_.packets += count;
}

Status PacketTable::Refresh(bool header_only) {
  if (client_ == nullptr) return Closed();
  auto committed = client_->CommittedLength(&file_);
  if (!committed.ok()) return committed.status();
  if (!reader_) reader_ = std::make_unique<RecordReader>(MaxRecordPayload(file_.chunk_size), 0);
  Bytes buf;
  uint64_t off = reader_->offset();
  size_t block = header_only ? kFirstBlock : kReadBlock;
  while (off < *committed) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(block, *committed - off));
    buf.resize(want);
    auto got = client_->Read(&file_, off, buf.data(), want);
    if (!got.ok()) return got.status();
    if (*got == 0) break;
    reader_->Feed(buf.data(), *got, [this](const RecordView& r) { OnRecord(r); });
    off += *got;
    if (!type_error_.ok()) return type_error_;
    if (header_only && type_ >= 0) break;
    block = kReadBlock;
  }
  stats_.duplicates = reader_->duplicates();
  stats_.skipped_bytes = reader_->skipped_bytes();
  return type_error_;
}

Status PacketTable::Append(size_t n, const void* packets) {
  if (client_ == nullptr) return Closed();
  if (type_ < 0) return Status::Internal("packet table has no type");
  const auto* p = static_cast<const uint8_t*>(packets);
  while (n > 0) {
    const size_t k = std::min(n, per_record_);
    const size_t bytes = k * packet_size_;
    const size_t payload = kDataPrefix + bytes;
    frame_.resize(kFrameHeaderSize + payload);
    uint8_t* pl = frame_.data() + kFrameHeaderSize;
    StoreU32(pl, kDataMagic);
    StoreU32(pl + 4, static_cast<uint32_t>(k));
    std::memcpy(pl + kDataPrefix, p, bytes);
    EncodeFrameHeader(producer_, next_seq_++, pl, payload, frame_.data());
    auto off = client_->RecordAppend(&file_, frame_.data(), frame_.size());
    if (!off.ok()) {
      return Status(off.status().code(),
                    "packet table " + path() + ": append: " + off.status().message());
    }
    p += bytes;
    n -= k;
  }
  return Status::OK();
}

Result<uint64_t> PacketTable::NumPackets() {
  GFS_RETURN_IF_ERROR(Refresh(false));
  return total_packets_;
}

Result<size_t> PacketTable::ReadPackets(uint64_t start, size_t n, void* out) {
  if (client_ == nullptr) return Closed();
  if (n == 0) return static_cast<size_t>(0);
  if (start + n > total_packets_) GFS_RETURN_IF_ERROR(Refresh(false));
  if (start >= total_packets_) return static_cast<size_t>(0);
  n = static_cast<size_t>(std::min<uint64_t>(n, total_packets_ - start));
  auto* o = static_cast<uint8_t*>(out);
  // The record holding packet `start`.
  size_t i =
      static_cast<size_t>(std::upper_bound(index_.begin(), index_.end(), start,
                                           [](uint64_t v, const Entry& e) { return v < e.first; }) -
                          index_.begin() - 1);
  uint64_t next = start;  // next packet number to copy
  size_t done = 0;
  Bytes buf;
  while (done < n) {
    // A run of records whose bytes span at most kReadBlock (at least one).
    const uint64_t begin = index_[i].data_offset + (next - index_[i].first) * packet_size_;
    size_t j = i;
    uint64_t left = n - done;
    uint64_t end = begin;
    for (;;) {
      const Entry& e = index_[j];
      const uint64_t skip = j == i ? next - e.first : 0;
      const uint64_t take = std::min<uint64_t>(e.count - skip, left);
      end = e.data_offset + (skip + take) * packet_size_;
      left -= take;
      if (left == 0 || j + 1 >= index_.size()) break;
      const Entry& nx = index_[j + 1];
      const uint64_t nx_end = nx.data_offset + std::min<uint64_t>(nx.count, left) * packet_size_;
      if (nx_end - begin > kReadBlock) break;
      ++j;
    }
    buf.resize(static_cast<size_t>(end - begin));
    size_t got = 0;
    while (got < buf.size()) {
      auto r = client_->Read(&file_, begin + got, buf.data() + got, buf.size() - got);
      if (!r.ok()) return r.status();
      if (*r == 0) return Status::IOError(path() + ": the table is shorter than its index");
      got += *r;
    }
    for (size_t k = i; k <= j; ++k) {
      const Entry& e = index_[k];
      const uint64_t skip = k == i ? next - e.first : 0;
      const uint64_t take = std::min<uint64_t>(e.count - skip, n - done);
      const uint64_t at = e.data_offset + skip * packet_size_ - begin;
      std::memcpy(o + done * packet_size_, buf.data() + at, take * packet_size_);
      done += take;
      next += take;
    }
    i = j + 1;
  }
  return n;
}

Status PacketTable::Scan(const std::function<Status(const void* packets, size_t n)>& fn,
                         TableScanStats* stats) {
  if (client_ == nullptr) return Closed();
  auto committed = client_->CommittedLength(&file_);
  if (!committed.ok()) return committed.status();
  RecordReader reader(MaxRecordPayload(file_.chunk_size), 0);
  TableScanStats st;
  Status err;
  auto on_record = [&](const RecordView& r) {
    if (!err.ok()) return;
    if (r.size < 8) {
      st.bad_records++;
      return;
    }
    const uint32_t magic = LoadU32(r.data);
    if (magic == kHeaderMagic) return;
    const uint32_t count = magic == kDataMagic ? LoadU32(r.data + 4) : 0;
    if (count == 0 || r.size != kDataPrefix + uint64_t{count} * packet_size_) {
      st.bad_records++;
      return;
    }
    st.records++;
    st.packets += count;
    err = fn(r.data + kDataPrefix, count);
  };
  Bytes buf;
  uint64_t off = 0;
  while (off < *committed && err.ok()) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(kReadBlock, *committed - off));
    buf.resize(want);
    auto got = client_->Read(&file_, off, buf.data(), want);
    if (!got.ok()) return got.status();
    if (*got == 0) break;
    reader.Feed(buf.data(), *got, on_record);
    off += *got;
  }
  st.duplicates = reader.duplicates();
  st.skipped_bytes = reader.skipped_bytes();
  if (stats != nullptr) *stats = st;
  return err;
}

Status PacketTable::Close() {
  if (client_ == nullptr) return Status::OK();
  Status s = client_->Close(&file_);
  client_ = nullptr;
  if (type_ >= 0) {
    H5E_BEGIN_TRY { H5Tclose(type_); }
    H5E_END_TRY;
    type_ = H5I_INVALID_HID;
  }
  reader_.reset();
  index_.clear();
  index_.shrink_to_fit();
  return s;
}

}  // namespace gfs::h5
