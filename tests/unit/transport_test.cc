// The data path's plumbing below the roles: the buffer pool and the server
// event loop's handling of queued sends.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "mpi/protocol/messages.h"
#include "mpi/protocol/rpc.h"
#include "mpi/transport/buffer_pool.h"
#include "mpi/transport/inproc_transport.h"
#include "tests/unit/transport_conformance.h"

namespace gfs {
namespace {

// A pool full of one size (a job's write slices) must still keep a buffer of
// the size in use now (its read replies) warm: the buffers idle longest go.
TEST(BufferPool, FullPoolKeepsTheBufferComingBack) {
  BufferPool& pool = BufferPool::Get();
  constexpr size_t kSlice = 1u << 20, kReply = 4u << 20;
  {
    // More idle slices than the pool keeps (their pages are never touched).
    std::vector<std::shared_ptr<Bytes>> slices;
    for (size_t i = 0; i < BufferPool::kMaxIdleBytes / kSlice + 8; ++i) {
      slices.push_back(pool.Take(kSlice));
    }
  }
  EXPECT_LE(pool.idle_bytes(), BufferPool::kMaxIdleBytes);
  const uint8_t* first = nullptr;
  {
    auto reply = pool.Take(kReply);
    first = reply->data();
  }
  EXPECT_LE(pool.idle_bytes(), BufferPool::kMaxIdleBytes);
  const uint64_t reused = pool.reused();
  auto again = pool.Take(kReply);
  EXPECT_EQ(pool.reused(), reused + 1);
  EXPECT_EQ(again->data(), first);
}

// A message sent as a head plus a tail (Transport::SendWithTail) is, once
// joined, byte for byte the message encoded whole; the in-process transport
// delivers it so.
TEST(SendWithTail, HeadPlusTailIsTheWholeMessage) {
  std::vector<uint8_t> data(100000);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7 + 3);
  PushDataMsg p;
  p.origin = 4;
  p.data_id = 99;
  p.total = data.size();
  p.offset = 0;
  p.chain = {1, 2, 3};
  Header h;
  h.type = static_cast<uint16_t>(PushDataMsg::kType);
  h.deadline_ms = 1234;
  p.bytes = BlobView{data.data(), static_cast<uint32_t>(data.size())};
  Buffer whole = EncodeMessage(h, p);
  p.bytes = BlobView{nullptr, 0};
  auto head = TakeBuffer(0, 256);
  EncodeMessageInto(head, h, p);
  AnnounceTail(head.get(), static_cast<uint32_t>(data.size()));
  Bytes joined(head->begin(), head->end());
  joined.insert(joined.end(), data.begin(), data.end());
  EXPECT_TRUE(std::equal(joined.begin(), joined.end(), whole->begin(), whole->end()));

  InProcFabric fabric(2);
  ASSERT_TRUE(fabric.endpoint(0)->SendWithTail(1, head, data.data(), data.size()).ok());
  Incoming in;
  ASSERT_TRUE(fabric.endpoint(1)->Poll(&in));
  EXPECT_TRUE(std::equal(in.data->begin(), in.data->end(), whole->begin(), whole->end()));
  Message m;
  ASSERT_TRUE(ParseMessage(std::move(in), &m).ok());
  PushDataMsg back;
  ASSERT_TRUE(m.Decode(&back).ok());
  EXPECT_EQ(back.data_id, 99u);
  ASSERT_EQ(back.bytes.size, data.size());
  EXPECT_EQ(std::memcmp(back.bytes.data, data.data(), data.size()), 0);
}

// Delivers `n` messages, one per Poll, back to back, and counts how many had
// been handled each time the loop completed sends.
class BusyTransport : public Transport {
 public:
  explicit BusyTransport(int n) : left_(n), total_(n) {}
  int rank() const override { return 0; }
  int size() const override { return 2; }
  Status Send(int, Buffer) override { return Status::OK(); }
  bool Poll(Incoming* in) override {
    if (left_ == 0) return false;
    --left_;
    Header h;
    h.type = static_cast<uint16_t>(MsgType::kGetStats);
    in->source = 1;
    in->data = EncodeMessage(h, Empty{});
    return true;
  }
  bool Progress() override {
    progress_at_.push_back(handled);
    return false;
  }
  // A send is queued while messages come (none after: no drain wait).
  size_t PendingSends() const override { return handled < total_ ? 1 : 0; }
  uint64_t PendingBytesTo(int) const override { return 4u << 20; }
  const std::map<int, PeerCounters>& counters() const override { return counters_; }

  int handled = 0;
  std::vector<int> progress_at_;

 private:
  int left_, total_;
  std::map<int, PeerCounters> counters_;
};

class CountingServer : public Server {
 public:
  explicit CountingServer(BusyTransport* t, int until) : t_(t), until_(until) {}
  void Handle(Message&) override { t_->handled++; }
  void Tick(uint64_t) override {}
  bool done() const override { return t_->handled >= until_; }

 private:
  BusyTransport* t_;
  int until_;
};

// A server that always finds another request waiting still completes its
// queued sends as it goes (their buffers go back to the pool), not once per
// batch of up to 256 messages.
TEST(RunServer, CompletesSendsWithinABusyBatch) {
  BusyTransport t(100);
  CountingServer s(&t, 100);
  ASSERT_TRUE(RunServer(&t, &s).ok());
  ASSERT_EQ(t.handled, 100);
  ASSERT_FALSE(t.progress_at_.empty());
  // A pass after the first message, and one after (nearly) every other.
  EXPECT_EQ(t.progress_at_.front(), 1);
  EXPECT_GE(t.progress_at_.size(), 99u);
}

}  // namespace
}  // namespace gfs

namespace gfs {
namespace {

// The Transport contract over the in-process fabric: each check runs in two
// threads, one per rank (the MPI transport runs the same checks in two ranks,
// tests/mpi/test_transport_conformance.sh).
class TransportConformance : public ::testing::TestWithParam<size_t> {};

TEST_P(TransportConformance, HoldsOverTheInProcessFabric) {
  const auto& check = conformance::AllChecks()[GetParam()];
  InProcFabric fabric(2);
  std::string theirs;
  std::thread peer([&] { theirs = check.run(fabric.endpoint(1)); });
  const std::string mine = check.run(fabric.endpoint(0));
  peer.join();
  EXPECT_EQ(mine, "") << check.name << " on rank 0";
  EXPECT_EQ(theirs, "") << check.name << " on rank 1";
}

INSTANTIATE_TEST_SUITE_P(AllChecks, TransportConformance,
                         ::testing::Range<size_t>(0, conformance::AllChecks().size()),
                         [](const ::testing::TestParamInfo<size_t>& i) {
                           std::string n = conformance::AllChecks()[i.param].name;
                           for (char& c : n) {
                             if (c == '-') c = '_';
                           }
                           return n;
                         });

}  // namespace
}  // namespace gfs
