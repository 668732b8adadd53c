// The data path's plumbing below the roles: the buffer pool and the server
// event loop's handling of queued sends.
#include <gtest/gtest.h>

#include <vector>

#include "mpi/buffer_pool.h"
#include "mpi/messages.h"
#include "mpi/rpc.h"

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
