// The wire encoding: round trips, and rejection of truncated, oversized and
// wrong-version input.
#include <gtest/gtest.h>

#include <random>

#include "mpi/protocol/messages.h"
#include "mpi/protocol/rpc.h"

namespace gfs {
namespace {

// An envelope around arbitrary body bytes (for malformed-input tests).
std::vector<uint8_t> RawMessage(uint16_t type, const std::vector<uint8_t>& body) {
  std::vector<uint8_t> m(kHeaderSize + body.size());
  Header h;
  uint32_t size = static_cast<uint32_t>(body.size());
  std::memcpy(m.data(), &h.magic, 4);
  m[4] = h.version;
  std::memcpy(m.data() + 6, &type, 2);
  std::memcpy(m.data() + 32, &size, 4);
  if (!body.empty()) std::memcpy(m.data() + kHeaderSize, body.data(), body.size());
  return m;
}

template <typename Body>
Buffer Encode(const Body& b, uint64_t id = 42, uint16_t type = 0) {
  Header h;
  if constexpr (requires { Body::kType; }) {
    h.type = static_cast<uint16_t>(Body::kType);
  } else {
    h.type = type;
  }
  h.id = id;
  h.deadline_ms = 1234;
  return EncodeMessage(h, b);
}

TEST(Wire, HeaderRoundTrip) {
  MkdirReq r{"/a/b", true};
  Buffer b = Encode(r, 77);
  Header h;
  ASSERT_TRUE(DecodeHeader(b->data(), b->size(), &h).ok());
  EXPECT_EQ(h.type, static_cast<uint16_t>(MsgType::kMkdir));
  EXPECT_EQ(h.id, 77u);
  EXPECT_EQ(h.deadline_ms, 1234u);
  EXPECT_EQ(h.body_size, b->size() - kHeaderSize);
  MkdirReq out;
  ASSERT_TRUE(DecodeBody(b->data(), b->size(), &out).ok());
  EXPECT_EQ(out.path, "/a/b");
  EXPECT_TRUE(out.parents);
}

TEST(Wire, NestedVectorsRoundTrip) {
  LookupReply r;
  r.attr.id = 9;
  r.attr.length = 1ull << 40;
  r.attr.chunk_size = 64 << 20;
  for (uint32_t i = 0; i < 50; ++i) {
    ChunkLocation c;
    c.index = i;
    c.handle = 1000 + i;
    c.version = i * 3;
    c.replicas = {1, 2, static_cast<int32_t>(i)};
    r.chunks.push_back(c);
  }
  Buffer b = Encode(r);
  LookupReply out;
  ASSERT_TRUE(DecodeBody(b->data(), b->size(), &out).ok());
  ASSERT_EQ(out.chunks.size(), 50u);
  EXPECT_EQ(out.attr.length, 1ull << 40);
  EXPECT_EQ(out.chunks[49].handle, 1049u);
  EXPECT_EQ(out.chunks[49].replicas[2], 49);
}

TEST(Wire, BlobIsAViewIntoTheBuffer) {
  std::vector<uint8_t> data(100000);
  std::mt19937 rng(1);
  for (auto& x : data) x = static_cast<uint8_t>(rng());
  PushDataMsg p;
  p.origin = 5;
  p.data_id = 8;
  p.total = data.size();
  p.chain = {1, 2, 3};
  p.bytes = BlobView{data.data(), static_cast<uint32_t>(data.size())};
  Buffer b = Encode(p);
  PushDataMsg out;
  ASSERT_TRUE(DecodeBody(b->data(), b->size(), &out).ok());
  ASSERT_EQ(out.bytes.size, data.size());
  EXPECT_GE(out.bytes.data, b->data());
  EXPECT_LE(out.bytes.data + out.bytes.size, b->data() + b->size());
  EXPECT_EQ(0, std::memcmp(out.bytes.data, data.data(), data.size()));
  EXPECT_EQ(out.chain, (std::vector<int32_t>{1, 2, 3}));
}

TEST(Wire, EveryTruncationIsRejected) {
  RegisterReq r;
  r.server_id = 3;
  r.host = "node1";
  r.chunks = {{1, 2, 3, {}}, {4, 5, 6, {{0, 65536}}}};
  Buffer b = Encode(r);
  for (size_t n = 0; n < b->size(); ++n) {
    Header h;
    Status hs = DecodeHeader(b->data(), n, &h);
    EXPECT_FALSE(hs.ok()) << "header accepted at length " << n;
    RegisterReq out;
    if (n >= kHeaderSize) {
      EXPECT_FALSE(DecodeBody(b->data(), n, &out).ok()) << n;
    }
  }
}

TEST(Wire, TrailingBytesAreRejected) {
  Buffer b = Encode(StatReq{});
  auto longer = std::make_shared<Bytes>(*b);
  longer->push_back(0);
  StatReq out;
  EXPECT_FALSE(DecodeBody(longer->data(), longer->size(), &out).ok());
  Header h;
  EXPECT_FALSE(DecodeHeader(longer->data(), longer->size(), &h).ok());  // size mismatch
}

TEST(Wire, WrongVersionIsRefusedWithAClearMessage) {
  Buffer b = Encode(StatReq{});
  std::vector<uint8_t> bad(b->begin(), b->end());
  bad[4] = 9;  // version byte
  Header h;
  Status s = DecodeHeader(bad.data(), bad.size(), &h);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kProtocol);
  EXPECT_NE(s.message().find("version 9"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("version " + std::to_string(kWireVersion)), std::string::npos)
      << s.message();
  bad.assign(b->begin(), b->end());
  bad[0] ^= 0xFF;  // magic
  EXPECT_FALSE(DecodeHeader(bad.data(), bad.size(), &h).ok());
}

TEST(Wire, OversizedCountsAndLengthsAreRejectedWithoutAllocating) {
  // A vector count far larger than the bytes that follow.
  std::vector<uint8_t> body;
  Writer w(&body);
  w.U32(0xFFFFFFF0u);  // entries
  auto msg = std::make_shared<std::vector<uint8_t>>(
      RawMessage(static_cast<uint16_t>(static_cast<uint16_t>(MsgType::kList) | kReplyBit), body));
  ListReply out;
  EXPECT_FALSE(DecodeBody(msg->data(), msg->size(), &out).ok());
  // A string longer than the path limit.
  MkdirReq big{std::string(kMaxPath + 1, 'a'), false};
  Buffer b = Encode(big);
  MkdirReq o2;
  EXPECT_FALSE(DecodeBody(b->data(), b->size(), &o2).ok());
}

// Random bytes, half of them behind a valid envelope: decoding never
// crashes, and whatever a decoder accepts encodes back to the very bytes it
// was given (nothing is read past the body, nothing made up).
template <typename Body>
int AcceptedAndReencoded(const std::vector<uint8_t>& msg) {
  Body b;
  if (!DecodeBody(msg.data(), msg.size(), &b).ok()) return 0;
  Header h;
  Buffer again = EncodeMessage(h, b);
  EXPECT_EQ(std::vector<uint8_t>(again->begin() + kHeaderSize, again->end()),
            std::vector<uint8_t>(msg.begin() + kHeaderSize, msg.end()));
  return 1;
}

TEST(Wire, RandomGarbageNeverCrashes) {
  std::mt19937_64 rng(7);
  int made_valid = 0, envelopes = 0, accepted = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    size_t n = rng() % 200;
    std::vector<uint8_t> junk(n);
    for (auto& x : junk) x = static_cast<uint8_t>(rng());
    if (iter % 2 == 0) {  // make the envelope valid half the time
      junk = RawMessage(static_cast<uint16_t>(rng() % 50), junk);
      ++made_valid;
    }
    Header h;
    if (!DecodeHeader(junk.data(), junk.size(), &h).ok()) continue;
    ++envelopes;
    accepted += AcceptedAndReencoded<LookupReply>(junk);
    accepted += AcceptedAndReencoded<RegisterReq>(junk);
    accepted += AcceptedAndReencoded<PushDataMsg>(junk);
    accepted += AcceptedAndReencoded<WriteReq>(junk);
    accepted += AcceptedAndReencoded<ListReply>(junk);
    accepted += AcceptedAndReencoded<StatsReply>(junk);
    accepted += AcceptedAndReencoded<Empty>(junk);
  }
  // Every envelope made valid parses, and random junk never does.
  EXPECT_GT(made_valid, 9000);
  EXPECT_EQ(envelopes, made_valid);
  // Some bodies are accepted (an empty body is a valid Empty), so the
  // round-trip check above ran.
  EXPECT_GT(accepted, 0);
}

// The envelope is encoded from Header's own field list, to its fixed size,
// and the two places that patch it (body size, tail announcement) agree.
TEST(Wire, TheHeaderIsAMessageOfFixedSize) {
  EXPECT_EQ(MinWireSize<Header>(), kHeaderSize);
  Header h;
  h.type = static_cast<uint16_t>(MsgType::kRead);
  h.id = 0x0102030405060708ull;
  h.epoch = 9;
  h.deadline_ms = 77;
  Buffer b = EncodeMessage(h, Empty{});
  ASSERT_EQ(b->size(), kHeaderSize);
  Header back;
  ASSERT_TRUE(DecodeHeader(b->data(), b->size(), &back).ok());
  EXPECT_EQ(back.id, h.id);
  EXPECT_EQ(back.epoch, 9u);
  EXPECT_EQ(back.deadline_ms, 77u);
  EXPECT_EQ(back.body_size, 0u);
  EXPECT_EQ((*b)[kFrameFlagsOffset], h.flags);
}

// The protocol table gives each request exactly one reply type, and every
// name is in one style (lower case words joined by '-').
TEST(Wire, TheProtocolTableNamesEveryMessageInOneStyle) {
  static_assert(kRepliesWith<CreateReq, StatReply>);
  static_assert(!kRepliesWith<CreateReq, Empty>);
  static_assert(kRepliesWith<PushDataMsg, OneWay>);
  static_assert(ProtocolOf<ReadLocalReq>::kType == MsgType::kReadLocal);
  int rows = 0;
#define GFS_NAME_ROW(name, number, text, Req, Rep)              \
  ++rows;                                                       \
  EXPECT_STREQ(MsgTypeName(number), text);                      \
  EXPECT_STREQ(ProtocolOf<Req>::kName, text);                   \
  for (const char* c = text; *c != 0; ++c) {                    \
    EXPECT_TRUE((*c >= 'a' && *c <= 'z') || *c == '-') << text; \
  }
  GFS_PROTOCOL_TABLE(GFS_NAME_ROW)
#undef GFS_NAME_ROW
  EXPECT_EQ(rows, 44);
  EXPECT_STREQ(MsgTypeName(49), "unknown");  // retired
}

TEST(Wire, ErrorReplyCarriesCodeAndMessage) {
  Message req;
  req.source = 3;
  req.h.type = static_cast<uint16_t>(MsgType::kStat);
  req.h.id = 11;
  Buffer b = EncodeErrorReply(req, Status::NotFound("/x"));
  Message rep;
  ASSERT_TRUE(ParseMessage(Incoming{0, b}, &rep).ok());
  EXPECT_TRUE(rep.is_reply());
  EXPECT_EQ(rep.h.id, 11u);
  EXPECT_EQ(rep.type(), MsgType::kStat);
  EXPECT_EQ(rep.status().code(), Code::kNotFound);
  EXPECT_EQ(rep.status().message(), "/x");
}

}  // namespace
}  // namespace gfs
