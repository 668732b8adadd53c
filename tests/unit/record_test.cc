// Self-validating record frames (io/record.h): encoding round trips, and the
// streaming de-duplicating reader given padding, garbage, truncated frames,
// repeats and arbitrary Feed splits.
#include "io/record.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/crc32c.h"

namespace gfs {
namespace {

using Buf = std::vector<uint8_t>;

struct Rec {
  uint64_t producer, seq, offset;
  Buf data;
  bool operator==(const Rec& o) const {
    return producer == o.producer && seq == o.seq && data == o.data;
  }
};

Buf Payload(size_t n, uint32_t seed) {
  Buf b(n);
  std::mt19937 rng(seed);
  for (auto& c : b) c = static_cast<uint8_t>(rng());
  return b;
}

void Append(Buf* out, const Buf& more) {
  const size_t at = out->size();
  out->resize(at + more.size());
  if (!more.empty()) std::memcpy(out->data() + at, more.data(), more.size());
}

void AppendFrame(Buf* out, uint64_t producer, uint64_t seq, const Buf& payload) {
  EncodeFrame(producer, seq, payload.data(), payload.size(), out);
}

RecordFn Collect(std::vector<Rec>* out) {
  return [out](const RecordView& v) {
    out->push_back(Rec{v.producer, v.seq, v.offset, Buf(v.data, v.data + v.size)});
  };
}

// Feeds all of `file` in one piece and finishes.
std::vector<Rec> ReadAll(const Buf& file, uint64_t max_payload, RecordReader* r = nullptr) {
  RecordReader local(max_payload);
  if (!r) r = &local;
  std::vector<Rec> got;
  r->Feed(file.data(), file.size(), Collect(&got));
  r->Finish(Collect(&got));
  return got;
}

constexpr uint64_t kMax = 1 << 20;

TEST(RecordFrame, HeaderLayoutIsAsDocumented) {
  Buf payload = {'a', 'b', 'c'};
  Buf f;
  AppendFrame(&f, 0x1122334455667788ULL, 0x0102030405060708ULL, payload);
  ASSERT_EQ(f.size(), kFrameHeaderSize + 3);
  EXPECT_EQ(std::string(f.begin(), f.begin() + 4), "GFSR");
  uint32_t len, dcrc, hcrc;
  uint64_t prod, seq;
  std::memcpy(&len, &f[4], 4);
  std::memcpy(&prod, &f[8], 8);
  std::memcpy(&seq, &f[16], 8);
  std::memcpy(&dcrc, &f[24], 4);
  std::memcpy(&hcrc, &f[28], 4);
  EXPECT_EQ(len, 3u);
  EXPECT_EQ(prod, 0x1122334455667788ULL);
  EXPECT_EQ(seq, 0x0102030405060708ULL);
  EXPECT_EQ(dcrc, crc32c::Value("abc", 3));
  EXPECT_EQ(hcrc, crc32c::Value(f.data(), 28));
  EXPECT_EQ(f[4], 3);  // little-endian
  EXPECT_EQ(f[8], 0x88);
  EXPECT_EQ(std::string(f.begin() + 32, f.end()), "abc");
  FrameHeader h;
  ASSERT_TRUE(DecodeFrameHeader(f.data(), &h));
  EXPECT_EQ(h.length, 3u);
  EXPECT_EQ(h.producer, 0x1122334455667788ULL);
  EXPECT_EQ(h.seq, 0x0102030405060708ULL);
  f[9] ^= 1;
  EXPECT_FALSE(DecodeFrameHeader(f.data(), &h));
}

TEST(RecordFrame, KnownAnswer) {
  // The example in doc/record-format.md.
  const Buf want = {0x47, 0x46, 0x53, 0x52, 0x03, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00,
                    0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                    0xb7, 0x3f, 0x4b, 0x36, 0x4e, 0xf9, 0xbc, 0xea, 0x61, 0x62, 0x63};
  Buf f;
  EncodeFrame(7, 1, "abc", 3, &f);
  EXPECT_EQ(f, want);
}

TEST(RecordFrame, MaxRecordPayload) {
  EXPECT_EQ(MaxRecordPayload(64 << 20), (16u << 20) - 32);
  EXPECT_EQ(MaxRecordPayload(4 << 20), (1u << 20) - 32);
  EXPECT_EQ(FrameSize(MaxRecordPayload(64 << 10)), (64u << 10) / 4);
  EXPECT_EQ(MaxRecordPayload(64), 0u);
}

TEST(RecordFrame, BytesOverloadMatchesVector) {
  Buf p = Payload(100, 1);
  Buf v;
  Bytes b;
  EncodeFrame(7, 9, p.data(), p.size(), &v);
  EncodeFrame(7, 9, p.data(), p.size(), &b);
  ASSERT_EQ(v.size(), b.size());
  EXPECT_TRUE(std::equal(v.begin(), v.end(), b.begin()));
  uint8_t h[kFrameHeaderSize];
  EncodeFrameHeader(7, 9, p.data(), p.size(), h);
  EXPECT_EQ(0, std::memcmp(h, v.data(), kFrameHeaderSize));
}

TEST(RecordFrame, RoundTripSizes) {
  std::vector<size_t> sizes = {0, 1, 2, 3, 4, 31, 32, 33, 100, 4095, 4096, 65536, 1000000};
  Buf file;
  std::vector<Rec> want;
  for (size_t i = 0; i < sizes.size(); ++i) {
    Rec r{42, i, file.size(), Payload(sizes[i], static_cast<uint32_t>(i))};
    AppendFrame(&file, r.producer, r.seq, r.data);
    want.push_back(r);
  }
  std::vector<Rec> got;
  size_t c = ScanFrames(file.data(), file.size(), 1000, Collect(&got), kMax);
  EXPECT_EQ(c, file.size());
  ASSERT_EQ(got, want);
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].offset, 1000 + want[i].offset);

  RecordReader r(kMax);
  got = ReadAll(file, kMax, &r);
  EXPECT_EQ(got, want);
  EXPECT_EQ(r.records(), sizes.size());
  uint64_t total = 0;
  for (size_t s : sizes) total += s;
  EXPECT_EQ(r.bytes(), total);
  EXPECT_EQ(r.skipped_bytes(), 0u);
  EXPECT_EQ(r.duplicates(), 0u);
  EXPECT_EQ(r.offset(), file.size());
}

TEST(RecordFrame, ProducerIdsAreRandomAndNonZero) {
  std::set<uint64_t> ids;
  for (int i = 0; i < 1000; ++i) {
    uint64_t id = NewProducerId();
    EXPECT_NE(id, 0u);
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 1000u);
}

TEST(RecordReader, SkipsZeroPadding) {
  Buf file;
  Append(&file, Buf(100, 0));
  AppendFrame(&file, 1, 0, Payload(50, 1));
  Append(&file, Buf(777, 0));
  AppendFrame(&file, 1, 1, Payload(60, 2));
  Append(&file, Buf(3, 0));
  RecordReader r(kMax);
  auto got = ReadAll(file, kMax, &r);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].offset, 100u);
  EXPECT_EQ(got[1].offset, 100u + 82 + 777);
  EXPECT_EQ(got[1].data, Payload(60, 2));
  EXPECT_EQ(r.padding_bytes(), 880u);
  EXPECT_EQ(r.skipped_bytes(), 880u);
}

TEST(RecordReader, SkipsGarbageAndCorruptPayload) {
  Buf file;
  Append(&file, Payload(333, 9));  // garbage
  AppendFrame(&file, 1, 0, Payload(50, 1));
  const size_t bad_at = file.size();
  AppendFrame(&file, 1, 1, Payload(70, 2));
  Append(&file, Payload(20, 10));  // garbage
  AppendFrame(&file, 1, 2, Payload(80, 3));
  file[bad_at + kFrameHeaderSize + 35] ^= 0x40;  // corrupt record 1's payload
  RecordReader r(kMax);
  auto got = ReadAll(file, kMax, &r);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].seq, 0u);
  EXPECT_EQ(got[0].data, Payload(50, 1));
  EXPECT_EQ(got[1].seq, 2u);
  EXPECT_EQ(got[1].data, Payload(80, 3));
  EXPECT_EQ(r.skipped_bytes(), 333u + 32 + 70 + 20);
  EXPECT_FALSE(r.Seen(1, 1));
  EXPECT_TRUE(r.Seen(1, 2));
}

TEST(RecordReader, CorruptHeaderFieldDropsOnlyThatRecord) {
  for (size_t byte = 0; byte < kFrameHeaderSize; ++byte) {
    Buf file;
    AppendFrame(&file, 5, 0, Payload(40, 1));
    const size_t at = file.size();
    AppendFrame(&file, 5, 1, Payload(40, 2));
    AppendFrame(&file, 5, 2, Payload(40, 3));
    file[at + byte] ^= 0x01;
    auto got = ReadAll(file, kMax);
    ASSERT_EQ(got.size(), 2u) << "byte " << byte;
    EXPECT_EQ(got[0].seq, 0u);
    EXPECT_EQ(got[1].seq, 2u);
  }
}

TEST(RecordReader, FrameInsideDamagedFrameIsFound) {
  // A valid header whose payload is damaged is skipped byte by byte, so a
  // valid frame written inside its claimed extent is still found.
  Buf inner;
  AppendFrame(&inner, 3, 7, Payload(30, 4));
  Buf outer_payload(10, 0xAB);
  Append(&outer_payload, inner);
  Append(&outer_payload, Buf(10, 0xCD));
  Buf file;
  AppendFrame(&file, 3, 6, outer_payload);
  file[kFrameHeaderSize + 2] ^= 1;  // break the outer payload CRC
  auto got = ReadAll(file, kMax);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].seq, 7u);
  EXPECT_EQ(got[0].offset, kFrameHeaderSize + 10);
}

TEST(RecordReader, MagicWithBadHeaderCrcIsGarbage) {
  // Garbage that contains the magic followed by a plausible length must fail
  // the header CRC and must not make the reader wait for a huge payload.
  Buf file;
  Buf fake(64, 0x11);
  std::memcpy(fake.data(), "GFSR", 4);
  uint32_t len = 1000;  // < max_payload, more than the bytes that follow
  std::memcpy(fake.data() + 4, &len, 4);
  Append(&file, fake);
  AppendFrame(&file, 2, 0, Payload(10, 1));
  RecordReader r(kMax);
  std::vector<Rec> got;
  r.Feed(file.data(), file.size(), Collect(&got));
  ASSERT_EQ(got.size(), 1u);  // yielded at once, without Finish
  EXPECT_EQ(got[0].offset, 64u);
  EXPECT_EQ(r.skipped_bytes(), 64u);
  EXPECT_EQ(r.buffered(), 0u);
  // Also: a header copied verbatim but with the header CRC field broken.
  Buf f2;
  AppendFrame(&f2, 2, 1, Payload(10, 2));
  f2[29] ^= 0x80;
  EXPECT_TRUE(ReadAll(f2, kMax).empty());
}

TEST(RecordReader, OversizedLengthIsGarbage) {
  // A frame whose (checksum-valid) length exceeds max_payload is refused.
  Buf file;
  AppendFrame(&file, 4, 0, Payload(2000, 1));
  AppendFrame(&file, 4, 1, Payload(1000, 2));
  RecordReader r(1000);
  auto got = ReadAll(file, 1000, &r);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].seq, 1u);
  EXPECT_EQ(r.skipped_bytes(), 2032u);
  // Exactly at the limit is accepted.
  RecordReader r2(2000);
  EXPECT_EQ(ReadAll(file, 2000, &r2).size(), 2u);
  // The reader must not wait for (or buffer) a payload it would refuse: a
  // header claiming 1 GiB is dropped immediately.
  Buf big;
  uint8_t h[kFrameHeaderSize];
  Buf small = Payload(8, 3);
  EncodeFrameHeader(9, 0, small.data(), small.size(), h);
  uint32_t huge = 1u << 30;
  std::memcpy(h + 4, &huge, 4);
  uint32_t hcrc = crc32c::Value(h, 28);
  std::memcpy(h + 28, &hcrc, 4);
  big.assign(h, h + kFrameHeaderSize);
  AppendFrame(&big, 9, 1, small);
  RecordReader r3(1000);
  std::vector<Rec> got3;
  r3.Feed(big.data(), big.size(), Collect(&got3));
  ASSERT_EQ(got3.size(), 1u);
  EXPECT_EQ(got3[0].seq, 1u);
  EXPECT_EQ(r3.buffered(), 0u);
}

TEST(RecordReader, TruncatedFrameWaitsForMoreBytes) {
  Buf file;
  AppendFrame(&file, 1, 0, Payload(100, 1));
  AppendFrame(&file, 1, 1, Payload(100, 2));
  const size_t cut = file.size() - 40;
  RecordReader r(kMax);
  std::vector<Rec> got;
  r.Feed(file.data(), cut, Collect(&got));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(r.consumed_offset(), 132u);
  EXPECT_EQ(r.buffered(), cut - 132);
  EXPECT_EQ(r.offset(), cut);
  r.Feed(file.data() + cut, file.size() - cut, Collect(&got));
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].data, Payload(100, 2));
  EXPECT_EQ(got[1].offset, 132u);
  EXPECT_EQ(r.buffered(), 0u);
  r.Finish(Collect(&got));
  EXPECT_EQ(got.size(), 2u);
  EXPECT_EQ(r.skipped_bytes(), 0u);

  // Never completed: dropped at Finish and counted as skipped.
  RecordReader r2(kMax);
  std::vector<Rec> got2;
  r2.Feed(file.data(), cut, Collect(&got2));
  r2.Finish(Collect(&got2));
  EXPECT_EQ(got2.size(), 1u);
  EXPECT_EQ(r2.skipped_bytes(), cut - 132);
  EXPECT_EQ(r2.buffered(), 0u);

  // ScanFrames reports the cut-off frame as not consumed.
  std::vector<Rec> got3;
  EXPECT_EQ(ScanFrames(file.data(), cut, 0, Collect(&got3), kMax), 132u);
  EXPECT_EQ(ScanFrames(file.data(), cut, 0, Collect(&got3), kMax, /*final=*/true), cut);
  // A tail that could be the start of a header is kept too.
  for (size_t k = 1; k < kFrameHeaderSize; ++k)
    EXPECT_EQ(ScanFrames(file.data(), 132 + k, 0, nullptr, kMax), 132u) << k;
}

TEST(RecordReader, ValidFrameInsideUnfinishedFrameFoundAtFinish) {
  // The tail starts with a valid header whose payload never arrives, but a
  // complete frame lies within it: Finish rescans and finds it.
  Buf file;
  Buf p = Payload(500, 1);
  uint8_t h[kFrameHeaderSize];
  EncodeFrameHeader(8, 0, p.data(), p.size(), h);
  file.assign(h, h + kFrameHeaderSize);
  AppendFrame(&file, 8, 1, Payload(20, 2));
  RecordReader r(kMax);
  std::vector<Rec> got;
  r.Feed(file.data(), file.size(), Collect(&got));
  EXPECT_TRUE(got.empty());
  r.Finish(Collect(&got));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].seq, 1u);
  EXPECT_EQ(got[0].offset, 32u);
  EXPECT_EQ(r.skipped_bytes(), 32u);
}

TEST(RecordReader, DuplicatesYieldedOnce) {
  Buf file;
  Buf a = Payload(10, 1), b = Payload(20, 2);
  AppendFrame(&file, 1, 0, a);
  AppendFrame(&file, 1, 0, a);
  AppendFrame(&file, 1, 1, b);
  AppendFrame(&file, 2, 0, a);  // same seq, other producer: distinct
  AppendFrame(&file, 1, 1, b);
  AppendFrame(&file, 1, 0, a);
  RecordReader r(kMax);
  auto got = ReadAll(file, kMax, &r);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].producer, 1u);
  EXPECT_EQ(got[1].seq, 1u);
  EXPECT_EQ(got[2].producer, 2u);
  EXPECT_EQ(r.records(), 3u);
  EXPECT_EQ(r.duplicates(), 3u);
  EXPECT_EQ(r.bytes(), 40u);
  EXPECT_EQ(r.skipped_bytes(), 0u);
  EXPECT_EQ(r.producers(), 2u);
}

TEST(RecordReader, OutOfOrderSequencesDeduplicated) {
  RecordReader r(kMax);
  std::vector<uint64_t> order = {5, 3, 0, 5, 1, 2, 3, 4, 0, 6, 9, 9, 7, 8, 1};
  Buf file;
  for (uint64_t s : order) AppendFrame(&file, 11, s, Payload(4, static_cast<uint32_t>(s)));
  auto got = ReadAll(file, kMax, &r);
  std::vector<uint64_t> seqs;
  for (auto& g : got) seqs.push_back(g.seq);
  EXPECT_EQ(seqs, (std::vector<uint64_t>{5, 3, 0, 1, 2, 4, 6, 9, 7, 8}));
  EXPECT_EQ(r.duplicates(), 5u);
  for (uint64_t s = 0; s < 10; ++s) EXPECT_TRUE(r.Seen(11, s));
  EXPECT_FALSE(r.Seen(11, 10));
  EXPECT_FALSE(r.Seen(12, 0));
}

TEST(RecordReader, EverySplitPoint) {
  Buf file;
  Append(&file, Buf(5, 0));
  AppendFrame(&file, 1, 0, Payload(7, 1));
  Append(&file, {'G', 'F', 'S', 0x99, 'G'});
  AppendFrame(&file, 2, 0, Payload(0, 2));
  AppendFrame(&file, 1, 1, Payload(40, 3));
  AppendFrame(&file, 1, 0, Payload(7, 1));  // duplicate
  Append(&file, Buf(9, 0));
  AppendFrame(&file, 1, 2, Payload(3, 4));
  const std::vector<Rec> want = ReadAll(file, kMax);
  ASSERT_EQ(want.size(), 4u);
  // One split.
  for (size_t i = 0; i <= file.size(); ++i) {
    RecordReader r(kMax);
    std::vector<Rec> got;
    r.Feed(file.data(), i, Collect(&got));
    r.Feed(file.data() + i, file.size() - i, Collect(&got));
    EXPECT_EQ(r.buffered(), 0u) << i;
    r.Finish(Collect(&got));
    ASSERT_EQ(got, want) << "split at " << i;
    for (size_t k = 0; k < got.size(); ++k) EXPECT_EQ(got[k].offset, want[k].offset);
    EXPECT_EQ(r.duplicates(), 1u);
    EXPECT_EQ(r.padding_bytes(), 14u);
    EXPECT_EQ(r.skipped_bytes(), 19u);
  }
  // Two splits (every pair).
  for (size_t i = 0; i <= file.size(); ++i) {
    for (size_t j = i; j <= file.size(); ++j) {
      RecordReader r(kMax);
      std::vector<Rec> got;
      r.Feed(file.data(), i, Collect(&got));
      r.Feed(file.data() + i, j - i, Collect(&got));
      r.Feed(file.data() + j, file.size() - j, Collect(&got));
      r.Finish(Collect(&got));
      ASSERT_EQ(got, want) << i << "," << j;
    }
  }
  // Byte by byte.
  RecordReader r(kMax);
  std::vector<Rec> got;
  for (size_t i = 0; i < file.size(); ++i) r.Feed(&file[i], 1, Collect(&got));
  r.Finish(Collect(&got));
  EXPECT_EQ(got, want);
  EXPECT_EQ(r.skipped_bytes(), 19u);
}

TEST(RecordReader, BufferStaysBounded) {
  // Feeding a large stream in big pieces keeps at most one unfinished frame.
  const uint64_t max_payload = 4096;
  Buf file;
  std::mt19937 rng(3);
  for (uint64_t s = 0; s < 2000; ++s) {
    AppendFrame(&file, 1, s, Payload(rng() % (max_payload + 1), static_cast<uint32_t>(s)));
    if (s % 7 == 0) Append(&file, Buf(rng() % 100, 0));
  }
  RecordReader r(max_payload);
  size_t pos = 0, max_buf = 0, count = 0;
  while (pos < file.size()) {
    size_t n = std::min<size_t>(file.size() - pos, 1 + rng() % 50000);
    r.Feed(file.data() + pos, n, [&](const RecordView& v) {
      EXPECT_EQ(v.seq, count);
      ++count;
    });
    pos += n;
    max_buf = std::max(max_buf, r.buffered());
  }
  r.Finish();
  EXPECT_EQ(count, 2000u);
  EXPECT_LT(max_buf, FrameSize(max_payload));
}

TEST(RecordReader, RandomizedManyProducers) {
  for (uint32_t seed = 1; seed <= 5; ++seed) {
    std::mt19937 rng(seed);
    const uint64_t max_payload = 3000;
    struct Item {
      uint64_t producer, seq;
      Buf data;
    };
    std::vector<Item> items;
    uint64_t producers[5];
    for (auto& p : producers) p = NewProducerId();
    for (int i = 0; i < 1000; ++i) {
      uint64_t p = producers[i % 5];
      size_t size = rng() % 4 == 0 ? rng() % 8 : rng() % (max_payload + 1);
      items.push_back({p, static_cast<uint64_t>(i / 5), Payload(size, rng())});
    }
    std::map<std::pair<uint64_t, uint64_t>, Buf> want;
    for (auto& it : items) want[{it.producer, it.seq}] = it.data;
    // Some are appended more than once (a retry lands later in the file).
    const size_t originals = items.size();
    for (size_t i = 0; i < originals; ++i)
      if (rng() % 10 == 0) items.push_back(items[i]);
    std::shuffle(items.begin(), items.end(), rng);
    Buf file;
    const size_t dups = items.size() - originals;
    for (auto& it : items) {
      switch (rng() % 8) {
        case 0:
          Append(&file, Buf(rng() % 300, 0));
          break;
        case 1: {
          Buf g = Payload(rng() % 300, rng());
          if (rng() % 2 && g.size() >= 4) std::memcpy(g.data(), "GFSR", 4);
          Append(&file, g);
          break;
        }
        case 2: {
          // A failed attempt: a damaged copy of this record (its good copy
          // follows, so nothing is lost).
          Buf bad;
          AppendFrame(&bad, it.producer, it.seq, it.data);
          bad[rng() % bad.size()] ^= static_cast<uint8_t>(1 + rng() % 255);
          Append(&file, bad);
          break;
        }
        case 3: {
          // A truncated attempt: its first bytes only.
          Buf bad;
          AppendFrame(&bad, it.producer, it.seq, it.data);
          bad.resize(rng() % bad.size());
          Append(&file, bad);
          break;
        }
        default:
          break;
      }
      AppendFrame(&file, it.producer, it.seq, it.data);
    }
    Append(&file, Buf(1234, 0));  // trailing chunk padding
    RecordReader r(max_payload);
    std::map<std::pair<uint64_t, uint64_t>, Buf> got;
    size_t yielded = 0;
    auto fn = [&](const RecordView& v) {
      ++yielded;
      got[{v.producer, v.seq}] = Buf(v.data, v.data + v.size);
    };
    size_t pos = 0;
    while (pos < file.size()) {
      size_t n = std::min<size_t>(file.size() - pos, rng() % 3 == 0 ? rng() % 40 : rng() % 9000);
      r.Feed(file.data() + pos, n, fn);
      pos += n;
    }
    r.Finish(fn);
    EXPECT_EQ(yielded, want.size()) << "seed " << seed;
    EXPECT_EQ(r.records(), want.size());
    EXPECT_TRUE(got == want) << "seed " << seed;
    EXPECT_EQ(r.duplicates(), dups) << "seed " << seed;
    EXPECT_EQ(r.offset(), file.size());
    EXPECT_GE(r.padding_bytes(), 1234u);
    EXPECT_GT(r.skipped_bytes(), r.padding_bytes());
  }
}

}  // namespace
}  // namespace gfs
