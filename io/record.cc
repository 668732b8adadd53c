#include "io/record.h"

#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <random>

#include "common/coding.h"
#include "common/crc32c.h"

namespace gfs {

namespace {

static_assert(kFrameHeaderSize == 32);
static_assert(kMaxRecordPayloadAnyChunk < (uint64_t{1} << 32));

constexpr uint8_t kMagicBytes[4] = {'G', 'F', 'S', 'R'};
constexpr size_t kHeaderCrcCovered = 28;

template <typename V>
void AppendFrame(uint64_t producer, uint64_t seq, const void* payload, size_t n, V* out) {
  const size_t at = out->size();
  out->resize(at + kFrameHeaderSize + n);
  uint8_t* p = out->data() + at;
  EncodeFrameHeader(producer, seq, payload, n, p);
  if (n > 0) std::memcpy(p + kFrameHeaderSize, payload, n);
}

uint64_t FallbackRandom() {
  std::random_device rd;
  uint64_t v = (uint64_t{rd()} << 32) ^ rd();
  v ^= static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  v ^= static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count()) << 17;
  v ^= static_cast<uint64_t>(getpid()) << 40;
  // splitmix64 finaliser.
  v += 0x9e3779b97f4a7c15ULL;
  v = (v ^ (v >> 30)) * 0xbf58476d1ce4e5b9ULL;
  v = (v ^ (v >> 27)) * 0x94d049bb133111ebULL;
  return v ^ (v >> 31);
}

}  // namespace

uint64_t NewProducerId() {
  for (;;) {
    uint64_t v = 0;
    ssize_t got = getrandom(&v, sizeof(v), 0);
    if (got < 0 && errno == EINTR) continue;
    if (got != static_cast<ssize_t>(sizeof(v))) v = FallbackRandom();
    if (v != 0) return v;
  }
}

void EncodeFrameHeader(uint64_t producer, uint64_t seq, const void* payload, size_t n,
                       uint8_t out[kFrameHeaderSize]) {
  if (n > UINT32_MAX) std::abort();  // callers enforce MaxRecordPayload
  const uint32_t magic = kFrameMagic;
  const uint32_t len = static_cast<uint32_t>(n);
  const uint32_t data_crc = crc32c::Value(payload, n);
  std::memcpy(out + 0, &magic, 4);
  std::memcpy(out + 4, &len, 4);
  std::memcpy(out + 8, &producer, 8);
  std::memcpy(out + 16, &seq, 8);
  std::memcpy(out + 24, &data_crc, 4);
  const uint32_t header_crc = crc32c::Value(out, kHeaderCrcCovered);
  std::memcpy(out + 28, &header_crc, 4);
}

void EncodeFrame(uint64_t producer, uint64_t seq, const void* payload, size_t n,
                 std::vector<uint8_t>* out) {
  AppendFrame(producer, seq, payload, n, out);
}

void EncodeFrame(uint64_t producer, uint64_t seq, const void* payload, size_t n, Bytes* out) {
  AppendFrame(producer, seq, payload, n, out);
}

bool DecodeFrameHeader(const uint8_t* p, FrameHeader* h) {
  if (LoadU32(p) != kFrameMagic) return false;
  if (crc32c::Value(p, kHeaderCrcCovered) != LoadU32(p + 28)) return false;
  h->length = LoadU32(p + 4);
  h->producer = LoadU64(p + 8);
  h->seq = LoadU64(p + 16);
  h->data_crc = LoadU32(p + 24);
  return true;
}

size_t ScanFrames(const uint8_t* data, size_t n, uint64_t base_offset, const RecordFn& fn,
                  uint64_t max_payload, bool final, ScanStats* stats) {
  ScanStats local;
  ScanStats* st = stats ? stats : &local;
  size_t p = 0;
  // Counts data[from,to) as skipped.
  auto skip = [&](size_t from, size_t to) {
    st->skipped_bytes += to - from;
    st->zero_bytes += static_cast<uint64_t>(std::count(data + from, data + to, uint8_t{0}));
  };
  while (p < n) {
    if (data[p] != kMagicBytes[0]) {
      const void* g = std::memchr(data + p, kMagicBytes[0], n - p);
      const size_t q = g ? static_cast<size_t>(static_cast<const uint8_t*>(g) - data) : n;
      skip(p, q);
      p = q;
      continue;
    }
    const size_t avail = n - p;
    // Not a frame start: skip this one byte and resynchronise.
    bool bad = false;
    if (avail < 4) {
      if (std::memcmp(data + p, kMagicBytes, avail) == 0 && !final) break;  // maybe a prefix
      bad = true;
    } else if (std::memcmp(data + p, kMagicBytes, 4) != 0) {
      bad = true;
    } else if (avail < kFrameHeaderSize) {
      if (!final) break;  // header not complete yet
      bad = true;
    }
    FrameHeader h;
    if (!bad) bad = !DecodeFrameHeader(data + p, &h) || h.length > max_payload;
    if (!bad && avail - kFrameHeaderSize < h.length) {
      if (!final) break;  // payload not complete yet
      bad = true;
    }
    if (!bad) bad = crc32c::Value(data + p + kFrameHeaderSize, h.length) != h.data_crc;
    if (bad) {
      skip(p, p + 1);
      ++p;
      continue;
    }
    RecordView v;
    v.producer = h.producer;
    v.seq = h.seq;
    v.offset = base_offset + p;
    v.data = data + p + kFrameHeaderSize;
    v.size = h.length;
    st->frames++;
    st->frame_bytes += kFrameHeaderSize + h.length;
    if (fn) fn(v);
    p += kFrameHeaderSize + h.length;
  }
  return p;
}

RecordReader::RecordReader(uint64_t max_payload, uint64_t start_offset)
    : max_payload_(std::min(max_payload, kMaxRecordPayloadAnyChunk)), consumed_(start_offset) {}

bool RecordReader::MarkSeen(uint64_t producer, uint64_t seq) {
  ProducerSeen& s = seen_[producer];
  if (seq < s.next) return false;
  if (seq == s.next) {
    ++s.next;
    while (!s.ahead.empty()) {
      auto it = s.ahead.find(s.next);
      if (it == s.ahead.end()) break;
      s.ahead.erase(it);
      ++s.next;
    }
    return true;
  }
  return s.ahead.insert(seq).second;
}

bool RecordReader::Seen(uint64_t producer, uint64_t seq) const {
  auto it = seen_.find(producer);
  if (it == seen_.end()) return false;
  return seq < it->second.next || it->second.ahead.count(seq) > 0;
}

size_t RecordReader::Scan(const uint8_t* data, size_t n, bool final, const RecordFn& fn) {
  auto on_frame = [&](const RecordView& v) {
    if (!MarkSeen(v.producer, v.seq)) {
      ++duplicates_;
      return;
    }
    ++records_;
    bytes_ += v.size;
    if (fn) fn(v);
  };
  const size_t c = ScanFrames(data, n, consumed_, on_frame, max_payload_, final, &stats_);
  consumed_ += c;
  return c;
}

void RecordReader::Feed(const uint8_t* data, size_t n, const RecordFn& fn) {
  // Complete the buffered tail first: append at most one frame's worth of the
  // new bytes (enough to finish any frame starting in the tail) and rescan.
  const size_t window = static_cast<size_t>(FrameSize(max_payload_));
  while (!buf_.empty() && n > 0) {
    const size_t old = buf_.size();
    const size_t take = std::min(n, window);
    buf_.resize(old + take);
    std::memcpy(buf_.data() + old, data, take);
    data += take;
    n -= take;
    const size_t c = Scan(buf_.data(), buf_.size(), false, fn);
    if (c >= old) {
      // The whole old tail is consumed; what is left of buf_ is a copy of the
      // last bytes taken from data: continue from there, in place.
      const size_t back = buf_.size() - c;
      data -= back;
      n += back;
      buf_.clear();
    } else {
      // A frame starting in the old tail is still unfinished (only possible
      // when n ran out): drop the consumed prefix.
      std::memmove(buf_.data(), buf_.data() + c, buf_.size() - c);
      buf_.resize(buf_.size() - c);
    }
  }
  if (n == 0) return;
  // buf_ is empty here: scan the fed bytes in place and keep the unfinished tail.
  const size_t c = Scan(data, n, false, fn);
  if (c < n) {
    buf_.resize(n - c);
    std::memcpy(buf_.data(), data + c, n - c);
  }
}

void RecordReader::Finish(const RecordFn& fn) {
  if (buf_.empty()) return;
  Scan(buf_.data(), buf_.size(), true, fn);
  buf_.clear();
  buf_.shrink_to_fit();
}

}  // namespace gfs
