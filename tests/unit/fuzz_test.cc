// Randomized fuzzing of every decoder that reads bytes from outside the
// process: the message envelope and every message body (requests, replies,
// error replies), MetaOp records, op-log files, record frames and the chunk
// store's .meta/.crc files.
//
// Each target builds valid inputs from random field values, checks the round
// trip, then mutates them (bit flips, byte changes, truncation, extension,
// length fields set huge, splices, garbage) and decodes. A decoder must return
// OK or a clean non-OK Status with a message; it must not crash (the unit
// tests also run under ASan+UBSan), and the bytes it allocates must stay
// within a small multiple of its input (a declared count larger than the
// bytes present is rejected before anything is reserved). Whatever decodes OK
// must re-encode to exactly the input (the encodings are canonical).
//
// Time-bounded: GFS_FUZZ_SECONDS per target family (default 5; e.g. 300 by
// hand). Deterministic: case i of a run uses seed base+i; a failure prints
// GFS_FUZZ_SEED=<case seed> GFS_FUZZ_ITERS=1 to replay just that case. Every
// family prints its executions (std::cout) for the test notes.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <new>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "chunk/chunk_store.h"
#include "common/crc32c.h"
#include "common/env.h"
#include "io/record.h"
#include "master/meta_state.h"
#include "master/oplog.h"
#include "mpi/protocol/messages.h"
#include "mpi/protocol/rpc.h"

// ---- allocation accounting ----------------------------------------------------
//
// The global operator new is replaced for this test binary so that a decode
// can count the bytes it asks for (only while a thread has a counter set; the
// rest of the binary sees plain malloc/free). Every non-aligned form is
// replaced so new and delete always pair through malloc/free, also under ASan.

namespace {
thread_local size_t* t_alloc_bytes = nullptr;

// Out of line, so GCC does not pair the inlined malloc/free with new/delete
// (-Wmismatched-new-delete).
[[gnu::noinline]] void* CountedAlloc(size_t n) noexcept {
  if (t_alloc_bytes != nullptr) *t_alloc_bytes += n;
  return std::malloc(n == 0 ? 1 : n);
}
[[gnu::noinline]] void Release(void* p) noexcept { std::free(p); }
}  // namespace

void* operator new(size_t n) {
  void* p = CountedAlloc(n);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
void* operator new[](size_t n) {
  void* p = CountedAlloc(n);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
void* operator new(size_t n, const std::nothrow_t&) noexcept { return CountedAlloc(n); }
void* operator new[](size_t n, const std::nothrow_t&) noexcept { return CountedAlloc(n); }
void operator delete(void* p) noexcept { Release(p); }
void operator delete[](void* p) noexcept { Release(p); }
void operator delete(void* p, size_t) noexcept { Release(p); }
void operator delete[](void* p, size_t) noexcept { Release(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { Release(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { Release(p); }

namespace gfs {
namespace {

// Counts the bytes allocated on this thread while it lives.
class AllocScope {
 public:
  explicit AllocScope(size_t* counter) : prev_(t_alloc_bytes) {
    *counter = 0;
    t_alloc_bytes = counter;
  }
  ~AllocScope() { t_alloc_bytes = prev_; }

 private:
  size_t* prev_;
};

// Decoders may allocate a small multiple of their input: vectors of structs
// are wider in memory than on the wire (at most ~8x, a std::string per 4-byte
// empty string), plus error messages.
size_t AllocBound(size_t input) { return 16 * input + 8192; }

// ---- the loop: time budget, seeds, execution counts ---------------------------

uint64_t EnvU64(const char* name, uint64_t dflt) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return dflt;
  return std::strtoull(v, nullptr, 0);
}

using Rng = std::mt19937_64;

// Runs case(seed, rng) until the time budget is spent; each case returns an
// empty string or what went wrong.
void RunFuzz(const char* family, const std::function<std::string(Rng&)>& one_case) {
  const double seconds = static_cast<double>(EnvU64("GFS_FUZZ_SECONDS", 5));
  const uint64_t max_iters = EnvU64("GFS_FUZZ_ITERS", UINT64_MAX);
  const uint64_t base = EnvU64("GFS_FUZZ_SEED", std::random_device{}() * 0x100000001ull);
  std::cout << "[fuzz] " << family << ": base seed " << base << std::endl;
  const auto start = std::chrono::steady_clock::now();
  const auto limit = start + std::chrono::duration<double>(seconds);
  uint64_t iters = 0;
  for (; iters < max_iters; ++iters) {
    if ((iters & 15) == 0 && std::chrono::steady_clock::now() >= limit) break;
    const uint64_t seed = base + iters;
    Rng rng(seed);
    const std::string err = one_case(rng);
    if (!err.empty()) {
      ADD_FAILURE() << family << " case " << iters << ": " << err
                    << "\n  replay: GFS_FUZZ_SEED=" << seed
                    << " GFS_FUZZ_ITERS=1 gfs_unit_tests --gtest_filter='" << family << "'";
      return;
    }
  }
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "[fuzz] " << family << ": " << iters << " executions in " << took << " s"
            << std::endl;
  EXPECT_GT(iters, 0u);
}

// Builds a message without `"literal" + std::string` (GCC 12 -Wrestrict).
template <typename... A>
std::string Cat(const A&... a) {
  std::ostringstream o;
  (o << ... << a);
  return o.str();
}

#define FUZZ_CHECK(cond, ...)                                            \
  do {                                                                   \
    if (!(cond)) return Cat("check failed: " #cond " -- ", __VA_ARGS__); \
  } while (0)

uint64_t Rand(Rng& r, uint64_t n) { return n == 0 ? 0 : r() % n; }
bool Coin(Rng& r, uint32_t one_in) { return Rand(r, one_in) == 0; }

// Integers biased to edge values.
uint64_t RandU64(Rng& r) {
  switch (Rand(r, 8)) {
    case 0:
      return 0;
    case 1:
      return UINT64_MAX - Rand(r, 3);
    case 2:
      return uint64_t{1} << Rand(r, 64);
    case 3:
      return Rand(r, 256);
    case 4:
      return (uint64_t{1} << Rand(r, 64)) - 1;
    default:
      return r();
  }
}

template <typename T>
T RandInt(Rng& r) {
  return static_cast<T>(RandU64(r));
}

std::string RandString(Rng& r, size_t max) {
  size_t n;
  switch (Rand(r, 10)) {
    case 0:
      n = 0;
      break;
    case 1:
      n = max;  // the longest the field allows
      break;
    default:
      n = Rand(r, std::min<size_t>(max, 40) + 1);
  }
  std::string s(n, '\0');
  const bool printable = Coin(r, 2);
  for (char& c : s) c = printable ? static_cast<char>('a' + Rand(r, 26)) : static_cast<char>(r());
  if (printable && n > 0) s[0] = '/';
  return s;
}

std::vector<uint8_t> RandBytes(Rng& r, size_t n) {
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(r());
  return v;
}

// memcmp that allows empty (possibly null) ranges.
bool Same(const uint8_t* a, const uint8_t* b, size_t n) {
  return n == 0 || std::memcmp(a, b, n) == 0;
}

// ---- message bodies -------------------------------------------------------------

// Fills every field of a body with random values within its limits. Blob bytes
// live in *blobs.
class RandomizeVisitor {
 public:
  RandomizeVisitor(Rng* r, std::vector<std::vector<uint8_t>>* blobs, int depth = 0)
      : r_(r), blobs_(blobs), depth_(depth) {}
  bool operator()(bool& v) {
    v = Coin(*r_, 2);
    return true;
  }
  template <typename T>
  requires std::is_integral_v<T>
  bool operator()(T& v) {
    v = RandInt<T>(*r_);
    return true;
  }
  bool operator()(std::string& s, size_t max = kMaxPath) {
    // Up to the field's limit, but not the 256 MiB of a snapshot field.
    const size_t cap = std::min<size_t>(max, 16384);
    s = RandString(*r_, Coin(*r_, 50) ? cap : std::min<size_t>(cap, 64));
    return true;
  }
  bool operator()(BlobView& b, size_t max = kMaxBlob) {
    blobs_->push_back(RandBytes(*r_, Rand(*r_, std::min<size_t>(max, 300) + 1)));
    b.data = blobs_->back().data();
    b.size = static_cast<uint32_t>(blobs_->back().size());
    return true;
  }
  template <typename T>
  bool operator()(std::vector<T>& v, uint32_t max = kMaxList) {
    const uint32_t cap = depth_ > 1 ? 2 : 6;
    v.resize(Rand(*r_, std::min(max, cap) + 1));
    for (T& e : v) {
      if constexpr (std::is_class_v<T> && !std::is_same_v<T, std::string>) {
        RandomizeVisitor inner(r_, blobs_, depth_ + 1);
        e.Visit(inner);
      } else {
        (*this)(e);
      }
    }
    return true;
  }

 private:
  Rng* r_;
  std::vector<std::vector<uint8_t>>* blobs_;
  int depth_;
};

// Encodes a body the way EncodeVisitor does, recording the offset of every
// u32 length prefix (strings, blobs, vector counts) so the mutator can aim at
// them. The test checks the bytes equal the library's encoding.
class LengthMapVisitor {
 public:
  explicit LengthMapVisitor(Bytes* out) : w_(out) {}
  bool operator()(const bool& v) {
    w_.Bool(v);
    return true;
  }
  template <typename T>
  requires std::is_integral_v<T>
  bool operator()(const T& v) {
    T copy = v;
    w_.Raw(&copy, sizeof copy);
    return true;
  }
  bool operator()(const std::string& s, size_t = 0) {
    lens.push_back(w_.size());
    w_.Str(s);
    return true;
  }
  bool operator()(const BlobView& b, size_t = 0) {
    lens.push_back(w_.size());
    w_.U32(b.size);
    w_.Raw(b.data, b.size);
    return true;
  }
  template <typename T>
  bool operator()(const std::vector<T>& v, uint32_t = 0) {
    lens.push_back(w_.size());
    w_.U32(static_cast<uint32_t>(v.size()));
    for (const T& e : v) {
      if constexpr (std::is_class_v<T> && !std::is_same_v<T, std::string>) {
        const_cast<T&>(e).Visit(*this);
      } else {
        (*this)(e);
      }
    }
    return true;
  }
  std::vector<size_t> lens;

 private:
  BytesWriter w_;
};

// One body type's operations, instantiated per type.
struct BodyOps {
  const char* name;
  // A random valid message of this body; *lens gets the body's length-field
  // offsets (relative to the message start). Empty string on success.
  std::string (*make)(Rng&, const Header&, Bytes* msg, std::vector<size_t>* lens);
  // Decodes msg as this body and checks the decoder's contract.
  std::string (*check)(const uint8_t* p, size_t n);
};

template <typename T>
std::string ReencodeBody(const T& body, Bytes* out) {
  Header h;
  Buffer b = EncodeMessage(h, body);
  out->assign(b->begin() + kHeaderSize, b->end());
  return "";
}

template <typename T>
std::string MakeBody(Rng& r, const Header& h, Bytes* msg, std::vector<size_t>* lens) {
  std::vector<std::vector<uint8_t>> blobs;
  T body{};
  RandomizeVisitor rv(&r, &blobs);
  body.Visit(rv);
  Buffer enc = EncodeMessage(h, body);
  msg->assign(enc->begin(), enc->end());
  // The length map must describe the library's own bytes.
  Bytes mine;
  LengthMapVisitor lv(&mine);
  body.Visit(lv);
  FUZZ_CHECK(mine.size() == msg->size() - kHeaderSize &&
                 Same(mine.data(), msg->data() + kHeaderSize, mine.size()),
             "test encoder disagrees with EncodeVisitor");
  lens->clear();
  for (size_t off : lv.lens) lens->push_back(off + kHeaderSize);
  // Round trip: decoding the valid message gives back the same body.
  T back{};
  Status s = DecodeBody(msg->data(), msg->size(), &back);
  FUZZ_CHECK(s.ok(), "valid body does not decode: ", s.ToString());
  Bytes again;
  ReencodeBody(back, &again);
  FUZZ_CHECK(again.size() == mine.size() && Same(again.data(), mine.data(), mine.size()),
             "round trip changed the body");
  return "";
}

template <typename T>
std::string CheckBody(const uint8_t* p, size_t n) {
  T out{};
  size_t alloc = 0;
  Status s;
  {
    AllocScope scope(&alloc);
    s = DecodeBody(p, n, &out);
  }
  FUZZ_CHECK(alloc <= AllocBound(n), "decoding ", n, " bytes allocated ", alloc, " bytes");
  if (!s.ok()) {
    FUZZ_CHECK(s.code() == Code::kProtocol && !s.message().empty(),
               "unclean rejection: ", s.ToString());
    return "";
  }
  Bytes again;
  ReencodeBody(out, &again);
  FUZZ_CHECK(n >= kHeaderSize && again.size() == n - kHeaderSize &&
                 Same(again.data(), p + kHeaderSize, again.size()),
             "accepted body does not re-encode to its input");
  return "";
}

template <typename T>
BodyOps Ops(const char* name) {
  return BodyOps{name, &MakeBody<T>, &CheckBody<T>};
}

#define GFS_BODY(T) Ops<T>(#T)

// Every body type on the wire.
const std::vector<BodyOps>& AllBodies() {
  static const std::vector<BodyOps> kBodies = {
      GFS_BODY(Empty),
      GFS_BODY(ErrorBody),
      GFS_BODY(MkdirReq),
      GFS_BODY(CreateReq),
      GFS_BODY(DeleteReq),
      GFS_BODY(RenameReq),
      GFS_BODY(ListReq),
      GFS_BODY(StatReq),
      GFS_BODY(ListReply),
      GFS_BODY(StatReply),
      GFS_BODY(LookupReq),
      GFS_BODY(LookupReply),
      GFS_BODY(LeaseReq),
      GFS_BODY(LeaseReply),
      GFS_BODY(SetLengthReq),
      GFS_BODY(SetLengthReply),
      GFS_BODY(ClientDoneReq),
      GFS_BODY(GetStatsReq),
      GFS_BODY(ReportReq),
      GFS_BODY(ReportReply),
      GFS_BODY(FsckReq),
      GFS_BODY(FsckReply),
      GFS_BODY(VerifyReq),
      GFS_BODY(VerifyReply),
      GFS_BODY(CorruptReq),
      GFS_BODY(CloneReq),
      GFS_BODY(RegisterReq),
      GFS_BODY(RegisterReply),
      GFS_BODY(HeartbeatReq),
      GFS_BODY(HeartbeatReply),
      GFS_BODY(PrepareChunkReq),
      GFS_BODY(ShutdownReq),
      GFS_BODY(PushDataMsg),
      GFS_BODY(PushAckMsg),
      GFS_BODY(WriteReq),
      GFS_BODY(ApplyReq),
      GFS_BODY(ReadReq),
      GFS_BODY(ReadReply),
      GFS_BODY(ReadLocalReq),
      GFS_BODY(ReadLocalReply),
      GFS_BODY(AppendReq),
      GFS_BODY(AppendReply),
      GFS_BODY(CommittedReq),
      GFS_BODY(CommittedReply),
      GFS_BODY(SyncReq),
      GFS_BODY(StatsReply),
      GFS_BODY(LogBatchReq),
      GFS_BODY(LogBatchReply),
      GFS_BODY(VoteReq),
      GFS_BODY(VoteReply),
      GFS_BODY(NewMasterReq),
      GFS_BODY(WhoIsMasterReq),
      GFS_BODY(WhoIsMasterReply),
      GFS_BODY(RepairReq),
      GFS_BODY(RepairReply),
      GFS_BODY(ClientsGoneReq),
      GFS_BODY(ClientsGoneReply),
      GFS_BODY(CopyChunkReq),
      GFS_BODY(SnapshotReq),
      GFS_BODY(RevokeLeaseReq),
      GFS_BODY(RemoveReq),
      GFS_BODY(RemoveReply),
      GFS_BODY(UndeleteReq),
      GFS_BODY(UndeleteReply),
      GFS_BODY(ExpungeReq),
      GFS_BODY(ExpungeReply),
      GFS_BODY(HeldChunksReq),
      GFS_BODY(HeldChunksReply),
      GFS_BODY(SetReplicationReq),
      GFS_BODY(SetReplicationReply),
      GFS_BODY(ReplicationStateReq),
      GFS_BODY(ReplicationStateReply),
  };
  return kBodies;
}

size_t BodyIndex(const char* name) {
  const auto& b = AllBodies();
  for (size_t i = 0; i < b.size(); ++i) {
    if (std::strcmp(b[i].name, name) == 0) return i;
  }
  std::abort();
}

// Which body each message type carries as a request and as a successful reply
// (one-way messages have no reply). Every failed reply carries ErrorBody.
struct TypeEntry {
  MsgType type;
  const char* request;
  const char* reply;  // nullptr: one-way
};
const std::vector<TypeEntry>& AllTypes() {
  // Straight from the protocol table, so a new message is fuzzed as soon as
  // it is listed there.
#define GFS_FUZZ_TYPE_ROW(name, number, text, Req, Rep) \
  {MsgType::name, #Req, std::is_same_v<Rep, OneWay> ? nullptr : #Rep},
  static const std::vector<TypeEntry> kTypes = {GFS_PROTOCOL_TABLE(GFS_FUZZ_TYPE_ROW)};
#undef GFS_FUZZ_TYPE_ROW
  return kTypes;
}

// ---- the mutator ----------------------------------------------------------------

uint32_t InterestingU32(Rng& r, uint32_t near) {
  switch (Rand(r, 12)) {
    case 0:
      return 0xffffffffu;
    case 1:
      return 0x80000000u;
    case 2:
      return 0x7fffffffu;
    case 3:
      return kMaxList;
    case 4:
      return kMaxList + 1;
    case 5:
      return static_cast<uint32_t>(kMaxBlob) + 1;
    case 6:
      return near + 1;
    case 7:
      return near - 1;
    case 8:
      return near * 2 + 1;
    case 9:
      return 0;
    default:
      return static_cast<uint32_t>(RandU64(r));
  }
}

template <typename V>
uint8_t* Ptr(V* b) {
  return reinterpret_cast<uint8_t*>(b->data());
}

// Applies 1..4 random mutations. `lens` are offsets of u32 length fields in
// the original bytes; `donor` supplies bytes for splices.
template <typename V>
void Mutate(Rng& r, V* b, const std::vector<size_t>& lens, const V& donor) {
  const int rounds = 1 + static_cast<int>(Rand(r, 4));
  for (int k = 0; k < rounds; ++k) {
    const size_t n = b->size();
    switch (Rand(r, 11)) {
      case 0:  // bit flip
        if (n > 0) (*b)[Rand(r, n)] ^= static_cast<typename V::value_type>(1u << Rand(r, 8));
        break;
      case 1: {  // byte set
        static const uint8_t kVals[] = {0, 1, 0x7f, 0x80, 0xff, 0xfe};
        if (n > 0) {
          (*b)[Rand(r, n)] = static_cast<typename V::value_type>(
              Coin(r, 2) ? kVals[Rand(r, sizeof kVals)] : static_cast<uint8_t>(r()));
        }
        break;
      }
      case 2:  // truncate
        b->resize(Rand(r, n + 1));
        break;
      case 3: {  // extend
        const size_t add = 1 + Rand(r, Coin(r, 4) ? 4096 : 64);
        for (size_t i = 0; i < add; ++i) {
          b->push_back(static_cast<typename V::value_type>(Coin(r, 2) ? 0 : r()));
        }
        break;
      }
      case 4: {  // insert bytes
        const size_t at = Rand(r, n + 1), add = 1 + Rand(r, 16);
        V ins;
        ins.resize(add);
        for (auto& x : ins) x = static_cast<char>(r());
        b->insert(b->begin() + static_cast<ptrdiff_t>(at), ins.begin(), ins.end());
        break;
      }
      case 5: {  // erase a range
        if (n == 0) break;
        const size_t at = Rand(r, n), len = 1 + Rand(r, std::min<size_t>(n - at, 32));
        b->erase(b->begin() + static_cast<ptrdiff_t>(at),
                 b->begin() + static_cast<ptrdiff_t>(at + len));
        break;
      }
      case 6:
      case 7: {  // a length field set to something hostile
        if (lens.empty()) break;
        const size_t at = lens[Rand(r, lens.size())];
        if (at + 4 > n) break;
        // Sometimes exactly the bytes left after the field.
        const uint32_t v = Coin(r, 4) ? static_cast<uint32_t>(n - at - 4)
                                      : InterestingU32(r, LoadU32(Ptr(b) + at));
        StoreU32(Ptr(b) + at, v);
        break;
      }
      case 8: {  // a word anywhere set to something hostile
        if (n < 8) break;
        const size_t at = Rand(r, n - 7);
        if (Coin(r, 2)) {
          StoreU32(Ptr(b) + at, InterestingU32(r, LoadU32(Ptr(b) + at)));
        } else {
          StoreU64(Ptr(b) + at, RandU64(r));
        }
        break;
      }
      case 9: {  // splice bytes of another valid input
        if (donor.empty() || n == 0) break;
        const size_t from = Rand(r, donor.size()), at = Rand(r, n);
        const size_t len = 1 + Rand(r, std::min(donor.size() - from, n - at));
        std::memcpy(Ptr(b) + at, donor.data() + from, len);
        break;
      }
      default: {  // duplicate a range
        if (n == 0) break;
        const size_t at = Rand(r, n), len = 1 + Rand(r, std::min<size_t>(n - at, 64));
        V dup(b->begin() + static_cast<ptrdiff_t>(at),
              b->begin() + static_cast<ptrdiff_t>(at + len));
        b->insert(b->begin() + static_cast<ptrdiff_t>(at + len), dup.begin(), dup.end());
        break;
      }
    }
  }
}

// ---- the envelope ----------------------------------------------------------------

std::string CheckHeader(const uint8_t* p, size_t n, Header* h) {
  Status s;
  size_t alloc = 0;
  {
    AllocScope scope(&alloc);
    s = DecodeHeader(p, n, h);
  }
  FUZZ_CHECK(alloc <= 8192, "header decode allocated ", alloc);
  if (!s.ok()) {
    FUZZ_CHECK(s.code() == Code::kProtocol && !s.message().empty(),
               "unclean header rejection: ", s.ToString());
    return "";
  }
  FUZZ_CHECK(n >= kHeaderSize && h->magic == kWireMagic && h->version == kWireVersion &&
                 h->body_size == n - kHeaderSize,
             "accepted a header it should refuse");
  Buffer re = EncodeMessage(*h, Empty{});
  FUZZ_CHECK(std::memcmp(re->data(), p, kHeaderSize - 4) == 0,
             "accepted header does not re-encode to its input");
  (void)MsgTypeName(h->type);  // any value has a name ("unknown")
  return "";
}

TEST(FuzzWire, EveryMessageTypeHasAFuzzEntry) {
  // A type added to MsgType without an entry in AllTypes() fails here.
  std::vector<bool> listed(65536, false);
  for (const TypeEntry& e : AllTypes()) {
    listed[static_cast<uint16_t>(e.type)] = true;
    BodyIndex(e.request);
    if (e.reply) BodyIndex(e.reply);
  }
  for (uint32_t t = 0; t < kReplyBit; ++t) {
    if (std::strcmp(MsgTypeName(static_cast<uint16_t>(t)), "unknown") != 0) {
      EXPECT_TRUE(listed[t]) << "message type " << t << " ("
                             << MsgTypeName(static_cast<uint16_t>(t)) << ") has no fuzz entry";
    }
  }
}

// An FsckReply body of 64 KiB: a u32 file count, then zeros (each zero
// FsckFile takes 20 bytes: empty path, replication, length, empty chunk list).
Bytes FsckReplyWithCount(uint32_t count) {
  Header h;
  Buffer m = EncodeMessage(h, Empty{});
  Bytes msg(m->begin(), m->end());
  msg.resize(kHeaderSize + 65536, 0);
  StoreU32(msg.data() + kHeaderSize, count);
  StoreU32(msg.data() + kHeaderSize - 4, 65536);
  return msg;
}

TEST(FuzzWire, HostileCountIsRejectedBeforeReserving) {
  // A count of one element per byte left used to pass the check and size the
  // vector at count * sizeof(FsckFile) (72x the message) before failing.
  for (uint32_t count : {65532u, kMaxList}) {
    Bytes msg = FsckReplyWithCount(count);
    FsckReply out;
    size_t alloc = 0;
    Status s;
    {
      AllocScope scope(&alloc);
      s = DecodeBody(msg.data(), msg.size(), &out);
    }
    EXPECT_EQ(s.code(), Code::kProtocol) << count;
    EXPECT_LT(alloc, 4096u) << count;
  }
  // As many as the bytes can hold decode, within the allocation bound.
  Bytes msg = FsckReplyWithCount(65532 / 28);
  msg.resize(kHeaderSize + 4 + 65532 / 28 * 28);
  FsckReply out;
  size_t alloc = 0;
  Status s;
  {
    AllocScope scope(&alloc);
    s = DecodeBody(msg.data(), msg.size(), &out);
  }
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(out.files.size(), 65532u / 28);
  EXPECT_LE(alloc, AllocBound(msg.size()));
  // The smallest encoding of each element is what a count is checked against.
  EXPECT_EQ(MinWireSize<FsckFile>(), 4u + 4 + 8 + 8 + 4);
  EXPECT_EQ(MinWireSize<ServerReport>(), 4u + 8 + 4 + 4 + 1 + 8 + 8 + 4);
  EXPECT_EQ(MinWireSize<std::string>(), 4u);
  EXPECT_EQ(MinWireSize<uint64_t>(), 8u);
}

TEST(FuzzWire, MessagesOfEveryType) {
  const auto& types = AllTypes();
  const auto& bodies = AllBodies();
  std::vector<uint64_t> per_type(types.size(), 0);
  RunFuzz("FuzzWire.MessagesOfEveryType", [&](Rng& r) -> std::string {
    const size_t ti = Rand(r, types.size());
    const TypeEntry& te = types[ti];
    ++per_type[ti];
    Header h;
    h.type = static_cast<uint16_t>(te.type);
    h.id = RandU64(r);
    h.epoch = RandU64(r);
    h.deadline_ms = RandInt<uint32_t>(r);
    const BodyOps* body = &bodies[BodyIndex(te.request)];
    const int dir = te.reply ? static_cast<int>(Rand(r, 3)) : 0;  // request, reply, error
    if (dir > 0) {
      h.type |= kReplyBit;
      h.epoch = RandU64(r);
      if (dir == 1) {
        body = &bodies[BodyIndex(te.reply)];
      } else {
        body = &bodies[BodyIndex("ErrorBody")];
        h.status = static_cast<uint16_t>(1 + Rand(r, 40));
      }
    }
    Bytes msg;
    std::vector<size_t> lens;
    std::string err = body->make(r, h, &msg, &lens);
    if (!err.empty()) return Cat(body->name, ": ", err);
    Header got;
    err = CheckHeader(msg.data(), msg.size(), &got);
    if (!err.empty()) return err;
    FUZZ_CHECK(got.type == h.type && got.id == h.id && got.status == h.status, "header round trip");

    // A donor for splices: another type's valid message.
    Bytes donor;
    std::vector<size_t> donor_lens;
    const BodyOps& other = bodies[Rand(r, bodies.size())];
    err = other.make(r, h, &donor, &donor_lens);
    if (!err.empty()) return Cat(other.name, ": ", err);

    for (int m = 0; m < 8; ++m) {
      Bytes mut = msg;
      if (Coin(r, 20)) {
        mut.resize(Rand(r, 512));  // pure garbage
        for (auto& x : mut) x = static_cast<uint8_t>(r());
      } else {
        Mutate(r, &mut, lens, donor);
      }
      // Most cases keep the envelope valid so the body decoder is reached.
      if (mut.size() >= kHeaderSize && !Coin(r, 4)) {
        StoreU32(mut.data(), kWireMagic);
        mut[4] = kWireVersion;
        StoreU32(mut.data() + kHeaderSize - 4, static_cast<uint32_t>(mut.size() - kHeaderSize));
      }
      err = CheckHeader(mut.data(), mut.size(), &got);
      if (!err.empty()) return err;
      // Decode as the body it was and as some other body (type confusion).
      err = body->check(mut.data(), mut.size());
      if (!err.empty()) return Cat(body->name, ": ", err);
      const BodyOps& wrong = bodies[Rand(r, bodies.size())];
      err = wrong.check(mut.data(), mut.size());
      if (!err.empty()) return Cat(wrong.name, " (as wrong type): ", err);
      // A reply's status and error text, as a client reads them.
      if (DecodeHeader(mut.data(), mut.size(), &got).ok()) {
        Message msg_view;
        msg_view.h = got;
        msg_view.buf = std::make_shared<Bytes>(mut);
        Status st = msg_view.status();
        FUZZ_CHECK(st.ok() == (got.status == 0), "reply status");
        FUZZ_CHECK(!st.ToString().empty(), "empty status text");
      }
    }
    return "";
  });
  for (size_t i = 0; i < types.size(); ++i) {
    EXPECT_GT(per_type[i], 0u) << MsgTypeName(static_cast<uint16_t>(types[i].type));
  }
}

// ---- MetaOp ----------------------------------------------------------------------

MetaOp RandomOp(Rng& r) {
  MetaOp op;
  // Every type there is (9 and 11..13 are reserved, not yet defined).
  static const OpType kTypes[] = {OpType::kMkdir,     OpType::kCreate,   OpType::kDelete,
                                  OpType::kRename,    OpType::kAddChunk, OpType::kSetVersion,
                                  OpType::kSetLength, OpType::kReplace,  OpType::kMove};
  op.type = kTypes[Rand(r, sizeof(kTypes) / sizeof(kTypes[0]))];
  const size_t plen = Coin(r, 30) ? kMaxPathLen : 48;
  op.path = RandString(r, plen);
  op.path2 = RandString(r, plen);
  op.id = RandU64(r);
  op.handle = RandU64(r);
  op.version = RandU64(r);
  op.length = RandU64(r);
  op.chunk_size = RandU64(r);
  op.replication = RandInt<uint32_t>(r);
  op.index = RandInt<uint32_t>(r);
  op.time_ms = RandInt<int64_t>(r);
  op.flag = Coin(r, 2);
  // Only the fields of its type are encoded; clear the rest so == compares.
  std::vector<uint8_t> enc;
  op.EncodeTo(&enc);
  return *MetaOp::Decode(enc.data(), enc.size());
}

std::string CheckMetaOp(const std::vector<uint8_t>& in) {
  Result<MetaOp> op = Status::OK();
  size_t alloc = 0;
  {
    AllocScope scope(&alloc);
    op = MetaOp::Decode(in.data(), in.size());
  }
  FUZZ_CHECK(alloc <= AllocBound(in.size()), "MetaOp decode allocated ", alloc);
  if (!op.ok()) {
    FUZZ_CHECK(op.status().code() == Code::kCorruption && !op.status().message().empty(),
               "unclean rejection: ", op.status().ToString());
    return "";
  }
  std::vector<uint8_t> again;
  op->EncodeTo(&again);
  FUZZ_CHECK(again == in, "accepted op does not re-encode to its input: ", op->ToString());
  (void)op->ToString();
  // Check/Apply must judge any decodable op without crashing.
  MetaState st;
  Status c = st.Check(*op);
  Status a = st.Apply(*op);
  FUZZ_CHECK(c.ok() == a.ok(), "Check says ", c.ToString(), " but Apply says ", a.ToString());
  return "";
}

TEST(FuzzMetaOp, DecodeMutatedRecords) {
  RunFuzz("FuzzMetaOp.DecodeMutatedRecords", [](Rng& r) -> std::string {
    const MetaOp op = RandomOp(r);
    std::vector<uint8_t> enc;
    op.EncodeTo(&enc);
    Result<MetaOp> back = MetaOp::Decode(enc.data(), enc.size());
    FUZZ_CHECK(back.ok() && *back == op, "round trip of ", op.ToString());
    // Length fields: the u32 after the 2-byte prefix, and the second path's.
    std::vector<size_t> lens;
    const bool two_paths =
        op.type == OpType::kRename || op.type == OpType::kReplace || op.type == OpType::kMove;
    if (op.type == OpType::kMkdir || op.type == OpType::kDelete || op.type == OpType::kCreate ||
        two_paths) {
      lens.push_back(2);
    }
    if (two_paths) lens.push_back(2 + 4 + op.path.size());
    std::vector<uint8_t> donor;
    RandomOp(r).EncodeTo(&donor);
    for (int m = 0; m < 8; ++m) {
      std::vector<uint8_t> mut = enc;
      Mutate(r, &mut, lens, donor);
      std::string err = CheckMetaOp(mut);
      if (!err.empty()) return err;
    }
    return "";
  });
}

// ---- op-log files ----------------------------------------------------------------

// Serves one file from memory (Replay reads the whole file through ReadFile).
class MemFileEnv : public EnvWrapper {
 public:
  MemFileEnv() : EnvWrapper(Env::Posix()) {}
  Status ReadFile(const std::string&, std::string* out) override {
    *out = content;
    return Status::OK();
  }
  std::string content;
};

// The op-log record CRC mask (doc/disk-format-master.md), so the fuzzer can
// re-seal mutated records and reach the payload decoder behind the CRC.
uint32_t MaskCrc(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

// Recomputes the CRC of every record whose length field fits in the file.
void ResealRecords(std::string* f) {
  size_t pos = kOpLogHeaderSize;
  while (pos + kOpLogRecordHeaderSize <= f->size()) {
    auto* p = reinterpret_cast<uint8_t*>(f->data()) + pos;
    const uint32_t len = LoadU32(p + 4);
    if (len > f->size() - pos - kOpLogRecordHeaderSize) break;
    StoreU32(p, MaskCrc(crc32c::Value(p + 4, 12 + size_t{len})));
    pos += kOpLogRecordHeaderSize + len;
  }
}

struct LogCase {
  std::string bytes;
  std::vector<MetaOp> ops;  // seq start_seq + i
  std::vector<size_t> lens;
};

TEST(FuzzOpLog, ReplayMutatedLogs) {
  // A few real logs written by OpLog itself, then mutated in memory.
  char tmpl[] = "/tmp/gfs_fuzz_oplog.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  std::vector<LogCase> logs;
  Rng setup(EnvU64("GFS_FUZZ_SEED", 1));
  for (int k = 0; k < 8; ++k) {
    const std::string path = Cat(dir, "/log", k);
    LogCase lc;
    OpLog log(Env::Posix(), path);
    uint64_t last = 0;
    ASSERT_TRUE(log.Open(&last).ok());
    const int n = static_cast<int>(Rand(setup, 12));
    for (int i = 0; i < n; ++i) {
      MetaOp op = RandomOp(setup);
      if (op.path.size() > 200) op.path.resize(200);  // keep logs small
      if (op.path2.size() > 200) op.path2.resize(200);
      ASSERT_TRUE(log.Append(op, nullptr).ok());
      lc.ops.push_back(op);
    }
    ASSERT_TRUE(log.Close().ok());
    ASSERT_TRUE(Env::Posix()->ReadFile(path, &lc.bytes).ok());
    for (size_t pos = kOpLogHeaderSize; pos + kOpLogRecordHeaderSize <= lc.bytes.size();) {
      lc.lens.push_back(pos + 4);
      pos += kOpLogRecordHeaderSize +
             LoadU32(reinterpret_cast<const uint8_t*>(lc.bytes.data()) + pos + 4);
    }
    logs.push_back(std::move(lc));
  }
  std::filesystem::remove_all(dir);

  MemFileEnv env;
  RunFuzz("FuzzOpLog.ReplayMutatedLogs", [&](Rng& r) -> std::string {
    const LogCase& lc = logs[Rand(r, logs.size())];
    // The unmutated log replays every op.
    env.content = lc.bytes;
    std::vector<MetaOp> seen;
    auto collect = [&](uint64_t, const MetaOp& op) {
      seen.push_back(op);
      return Status::OK();
    };
    ReplayInfo info;
    Status s = OpLog::Replay(&env, "mem", collect, &info);
    FUZZ_CHECK(s.ok() && seen == lc.ops && info.warning.empty(), "clean log: ", s.ToString());

    // Splices come from another log only when CRCs are forged anyway: a
    // record spliced in whole from another log is valid and may replay.
    const bool resealed = Coin(r, 2);
    std::string mut = lc.bytes;
    Mutate(r, &mut, lc.lens, resealed ? logs[Rand(r, logs.size())].bytes : lc.bytes);
    if (resealed) ResealRecords(&mut);
    env.content = mut;
    seen.clear();
    size_t alloc = 0;
    {
      AllocScope scope(&alloc);
      s = OpLog::Replay(&env, "mem", collect, &info);
    }
    FUZZ_CHECK(alloc <= AllocBound(mut.size()) + 2 * mut.size(), "replay allocated ", alloc);
    if (!s.ok()) {
      FUZZ_CHECK(s.code() == Code::kCorruption && !s.message().empty(),
                 "unclean rejection: ", s.ToString());
      return "";
    }
    FUZZ_CHECK(info.valid_bytes <= info.file_bytes && info.records == seen.size() &&
                   info.last_seq + 1 == info.start_seq + info.records,
               "inconsistent ReplayInfo");
    FUZZ_CHECK(info.warning.empty() == (info.valid_bytes == info.file_bytes),
               "torn tail without warning (or warning without one)");
    if (!resealed) {
      // Without forged CRCs, what replays is a prefix of what was logged.
      FUZZ_CHECK(
          seen.size() <= lc.ops.size() && std::equal(seen.begin(), seen.end(), lc.ops.begin()),
          "replayed ops that were never logged");
    }
    // Recovery applies them: a record that does not apply is Corruption.
    MetaState st;
    for (const MetaOp& op : seen) {
      if (!st.Apply(op).ok()) break;
    }
    return "";
  });
}

// ---- record frames ---------------------------------------------------------------

struct Rec {
  uint64_t producer, seq, offset;
  std::vector<uint8_t> data;
  bool operator==(const Rec&) const = default;
};

TEST(FuzzRecord, ScanAndStreamingReaderAgree) {
  RunFuzz("FuzzRecord.ScanAndStreamingReaderAgree", [](Rng& r) -> std::string {
    const uint64_t max_payload = Coin(r, 2) ? 16 + Rand(r, 200) : 4096;
    // Frames, duplicates, zero padding, garbage, cut-off frames.
    std::vector<uint8_t> file, donor;
    std::vector<size_t> lens;
    const int parts = 1 + static_cast<int>(Rand(r, 12));
    for (int i = 0; i < parts; ++i) {
      switch (Rand(r, 5)) {
        case 0:
          file.resize(file.size() + Rand(r, 100), 0);
          break;
        case 1: {
          auto g = RandBytes(r, Rand(r, 60));
          file.insert(file.end(), g.begin(), g.end());
          break;
        }
        default: {
          const auto payload = RandBytes(r, Rand(r, max_payload + 1));
          lens.push_back(file.size() + 4);
          std::vector<uint8_t> frame;
          EncodeFrame(1 + Rand(r, 3), Rand(r, 6), payload.data(), payload.size(), &frame);
          if (Coin(r, 6)) frame.resize(Rand(r, frame.size()));  // cut off
          file.insert(file.end(), frame.begin(), frame.end());
        }
      }
    }
    donor = file;
    Mutate(r, &file, lens, donor);

    // One scan of everything (no de-duplication).
    std::vector<Rec> all;
    ScanStats stats;
    const size_t c = ScanFrames(
        file.data(), file.size(), 0,
        [&](const RecordView& v) {
          all.push_back({v.producer, v.seq, v.offset, {v.data, v.data + v.size}});
        },
        max_payload, /*final=*/true, &stats);
    FUZZ_CHECK(c == file.size(), "final scan did not consume everything");
    FUZZ_CHECK(stats.frame_bytes + stats.skipped_bytes == file.size(), "byte accounting");
    uint64_t prev_end = 0;
    for (const Rec& rec : all) {
      FUZZ_CHECK(rec.offset >= prev_end, "overlapping frames");
      FUZZ_CHECK(rec.data.size() <= max_payload, "oversized record");
      std::vector<uint8_t> frame;
      EncodeFrame(rec.producer, rec.seq, rec.data.data(), rec.data.size(), &frame);
      FUZZ_CHECK(std::memcmp(frame.data(), file.data() + rec.offset, frame.size()) == 0,
                 "a yielded frame is not the bytes at its offset");
      prev_end = rec.offset + frame.size();
    }

    // The streaming reader, fed in random pieces, yields each (producer, seq)
    // once, in order of first appearance, and buffers at most one frame.
    std::vector<Rec> want;
    std::set<std::pair<uint64_t, uint64_t>> seen;
    for (const Rec& rec : all) {
      if (seen.insert({rec.producer, rec.seq}).second) want.push_back(rec);
    }
    RecordReader reader(max_payload);
    std::vector<Rec> got;
    auto on = [&](const RecordView& v) {
      got.push_back({v.producer, v.seq, v.offset, {v.data, v.data + v.size}});
    };
    size_t pos = 0;
    size_t alloc = 0;
    {
      AllocScope scope(&alloc);
      while (pos < file.size()) {
        const size_t piece = Coin(r, 3) ? 1 + Rand(r, 8) : 1 + Rand(r, file.size());
        const size_t k = std::min(piece, file.size() - pos);
        reader.Feed(file.data() + pos, k, on);
        pos += k;
        FUZZ_CHECK(reader.buffered() <= FrameSize(max_payload), "reader buffers ",
                   reader.buffered(), " bytes");
      }
      reader.Finish(on);
    }
    FUZZ_CHECK(reader.buffered() == 0, "buffer after Finish");
    FUZZ_CHECK(got == want, "streaming reader (", got.size(), " records) differs from one scan (",
               want.size(), ")");
    FUZZ_CHECK(reader.records() == want.size() && reader.duplicates() == all.size() - want.size(),
               "reader counters");
    FUZZ_CHECK(alloc <= AllocBound(file.size()) + 64 * FrameSize(max_payload), "reader allocated ",
               alloc);
    return "";
  });
}

// ---- chunk store .meta / .crc ----------------------------------------------------

std::string ReadRaw(const std::string& path) {
  std::string s;
  EXPECT_TRUE(Env::Posix()->ReadFile(path, &s).ok());
  return s;
}

void WriteRaw(const std::string& path, const std::string& s) {
  FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  if (!s.empty()) {
    ASSERT_EQ(std::fwrite(s.data(), 1, s.size(), f), s.size());
  }
  ASSERT_EQ(std::fclose(f), 0);
}

TEST(FuzzChunkStore, MutatedMetaAndChecksumFiles) {
  constexpr uint64_t kBS = ChunkStore::kBlockSize;
  constexpr uint64_t kHandle = 0x1234;
  char tmpl[] = "/tmp/gfs_fuzz_chunks.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  Rng setup(7);
  const std::vector<uint8_t> data = RandBytes(setup, 3 * kBS + 1000);
  std::string meta0, crc0, chunk0;
  {
    ChunkStore store(Env::Posix(), dir);
    ASSERT_TRUE(store.Open().ok());
    ASSERT_TRUE(store.Create(kHandle, 77).ok());
    ASSERT_TRUE(store.Write(kHandle, 0, data.data(), data.size()).ok());
    ASSERT_TRUE(store.Sync(kHandle).ok());
    meta0 = ReadRaw(store.MetaPath(kHandle));
    crc0 = ReadRaw(store.CrcPath(kHandle));
    chunk0 = ReadRaw(store.DataPath(kHandle));
  }
  const std::string cdir = dir + "/chunks/" + ChunkStore::HandleName(kHandle);
  const std::vector<size_t> no_lens;

  RunFuzz("FuzzChunkStore.MutatedMetaAndChecksumFiles", [&](Rng& r) -> std::string {
    // Mutate one of the three files, then open, read, maybe write, read.
    std::string meta = meta0, crc = crc0, chunk = chunk0;
    const int target = static_cast<int>(Rand(r, 3));
    if (target == 0) {
      Mutate(r, &meta, no_lens, crc0);
    } else if (target == 1) {
      Mutate(r, &crc, no_lens, meta0);
    } else {
      // Media corruption: flip bytes of the data file, size unchanged.
      for (uint64_t k = 1 + Rand(r, 3); k > 0; --k) {
        chunk[Rand(r, chunk.size())] ^= static_cast<char>(1 + Rand(r, 255));
      }
    }
    WriteRaw(cdir + ".meta", meta);
    WriteRaw(cdir + ".crc", crc);
    WriteRaw(cdir + ".chunk", chunk);

    ChunkStore store(Env::Posix(), dir);
    size_t alloc = 0;
    Status s;
    {
      AllocScope scope(&alloc);
      s = store.Open();
    }
    FUZZ_CHECK(s.ok(), "Open failed: ", s.ToString());
    FUZZ_CHECK(alloc <= AllocBound(meta.size() + crc.size()) + 65536, "Open allocated ", alloc);
    if (!store.Has(kHandle)) {
      FUZZ_CHECK(store.BadChunks().size() == 1 &&
                     store.BadChunks()[0].status.code() == Code::kCorruption && target == 0,
                 "chunk vanished without being reported bad");
      return "";
    }
    // (A chunk cut at Open goes one version back: see below.)
    FUZZ_CHECK(store.Meta(kHandle)->version == 77 || store.Meta(kHandle)->version == 76,
               "a mutated meta file gave another version");
    // A checksum file cut short looks like a crash before the checksums of
    // the last bytes were stored: Open cuts the data back to what it covers.
    const uint64_t len = store.Meta(kHandle)->length;
    FUZZ_CHECK(len == data.size() || (target == 1 && crc.size() < crc0.size() && len < data.size()),
               "length changed to ", len);
    FUZZ_CHECK((len < data.size()) == (store.Meta(kHandle)->version == 76),
               "a cut chunk keeps its version, or an uncut one lost it");

    // What the chunk should hold: the original bytes (those kept), plus a
    // random write.
    std::vector<uint8_t> want(data.begin(), data.begin() + static_cast<ptrdiff_t>(len));
    std::vector<uint8_t> out;
    s = store.Read(kHandle, 0, 1 << 20, &out);
    FUZZ_CHECK(!s.ok() || out == want, "read returned wrong bytes with a good checksum");
    FUZZ_CHECK(s.ok() || s.code() == Code::kCorruption, "unclean read error: ", s.ToString());
    if (Coin(r, 2)) {
      const uint64_t off = Rand(r, data.size() + 100);
      const std::vector<uint8_t> w = RandBytes(r, 1 + Rand(r, Coin(r, 2) ? 200 : 2 * kBS));
      s = store.Write(kHandle, off, w.data(), w.size());
      FUZZ_CHECK(s.ok() || s.code() == Code::kCorruption, "unclean write error: ", s.ToString());
      if (s.ok()) {
        if (want.size() < off + w.size()) want.resize(off + w.size(), 0);
        std::memcpy(want.data() + off, w.data(), w.size());
      }
      // A refused write changes nothing; an accepted one never launders a
      // corrupt block into one that verifies with wrong bytes.
      s = store.Read(kHandle, 0, 1 << 20, &out);
      FUZZ_CHECK(s.ok() || s.code() == Code::kCorruption, "unclean read error: ", s.ToString());
      if (s.ok()) FUZZ_CHECK(out == want, "read after write returned wrong bytes");
      // Block by block too: every block that verifies holds the right bytes.
      for (uint64_t b = 0; b * kBS < want.size(); ++b) {
        s = store.Read(kHandle, b * kBS, kBS, &out);
        if (!s.ok()) continue;
        const size_t len = static_cast<size_t>(std::min<uint64_t>(kBS, want.size() - b * kBS));
        FUZZ_CHECK(out.size() == len && Same(out.data(), want.data() + b * kBS, len), "block ", b,
                   " verifies with wrong bytes");
      }
    }
    s = store.Verify(kHandle);
    FUZZ_CHECK(s.ok() || s.code() == Code::kCorruption, "unclean verify error: ", s.ToString());
    return "";
  });
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace gfs
