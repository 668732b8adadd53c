// The servers' RPC layer over the in-process transport, with a clock the
// test moves: continuations run once, deadlines end calls and held requests,
// fan-ins complete by their rule, timers fire on time, and the event loop
// routes replies to the server's table.
#include "mpi/protocol/server_rpc.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <vector>

#include "mpi/transport/inproc_transport.h"

namespace gfs {
namespace {

class ManualClock : public EnvWrapper {
 public:
  ManualClock() : EnvWrapper(Env::Posix()) {}
  uint64_t NowMicros() override { return now_; }
  void Advance(uint64_t us) { now_ += us; }

 private:
  uint64_t now_ = 1000000;
};

// Takes every request waiting at `t` (the peer's side of a call).
std::vector<Message> Requests(Transport* t) {
  std::vector<Message> out;
  Incoming in;
  while (t->Poll(&in)) {
    Message m;
    EXPECT_TRUE(ParseMessage(std::move(in), &m).ok());
    out.push_back(std::move(m));
  }
  return out;
}

// Delivers every reply waiting at `t` to `calls`; returns how many matched.
int Deliver(Transport* t, PendingCalls* calls) {
  int matched = 0;
  Incoming in;
  while (t->Poll(&in)) {
    Message m;
    EXPECT_TRUE(ParseMessage(std::move(in), &m).ok());
    if (calls->OnReply(m)) ++matched;
  }
  return matched;
}

MkdirReq Body(const std::string& path) {
  MkdirReq r;
  r.path = path;
  return r;
}

TEST(PendingCalls, AReplyRunsItsContinuationOnceAndLateRepliesAreDropped) {
  InProcFabric fabric(2);
  ManualClock clock;
  PendingCalls calls(fabric.endpoint(0), &clock);
  calls.set_epoch(7);
  int runs = 0;
  std::string got;
  const uint64_t id = calls.Call(1, Body("/a"), 1000, [&](Result<Message> r) {
    ++runs;
    ASSERT_TRUE(r.ok());
    MkdirReq back;
    ASSERT_TRUE(r->Decode(&back).ok());
    got = back.path;
  });
  EXPECT_GE(id, PendingCalls::kIdBase);
  EXPECT_EQ(runs, 0);  // never from Call itself
  auto reqs = Requests(fabric.endpoint(1));
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].h.id, id);
  EXPECT_EQ(reqs[0].h.epoch, 7u);
  EXPECT_EQ(reqs[0].h.deadline_ms, 1000u);
  // Answered twice: the second reply matches nothing.
  ASSERT_TRUE(SendReply(fabric.endpoint(1), reqs[0], Body("/a-back")).ok());
  ASSERT_TRUE(SendReply(fabric.endpoint(1), reqs[0], Body("/again")).ok());
  EXPECT_EQ(Deliver(fabric.endpoint(0), &calls), 1);
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(got, "/a-back");
  EXPECT_EQ(calls.size(), 0u);
  clock.Advance(5000000);
  calls.Expire();
  EXPECT_EQ(runs, 1);
}

TEST(PendingCalls, ThePeersErrorReachesTheContinuation) {
  InProcFabric fabric(2);
  ManualClock clock;
  PendingCalls calls(fabric.endpoint(0), &clock);
  Status seen;
  calls.Call(1, Body("/x"), 1000, [&](Result<Message> r) {
    ASSERT_TRUE(r.ok());
    seen = r->status();
  });
  auto reqs = Requests(fabric.endpoint(1));
  ASSERT_EQ(reqs.size(), 1u);
  ASSERT_TRUE(SendErrorReply(fabric.endpoint(1), reqs[0], Status::NotFound("no such")).ok());
  EXPECT_EQ(Deliver(fabric.endpoint(0), &calls), 1);
  EXPECT_EQ(seen.code(), Code::kNotFound);
  EXPECT_EQ(seen.message(), "no such");
}

TEST(PendingCalls, TheDeadlineEndsACallWithTimeoutAndNotBefore) {
  InProcFabric fabric(2);
  ManualClock clock;
  PendingCalls calls(fabric.endpoint(0), &clock);
  std::vector<Code> ended;
  auto note = [&](Result<Message> r) { ended.push_back(r.status().code()); };
  calls.Call(1, Body("/slow"), 100, note);
  calls.Call(1, Body("/slower"), 300, note);
  clock.Advance(99000);
  calls.Expire();
  EXPECT_TRUE(ended.empty());
  clock.Advance(1000);
  calls.Expire();
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0], Code::kTimeout);
  EXPECT_EQ(calls.size(), 1u);
  // The reply to the expired call comes late: nobody takes it.
  auto reqs = Requests(fabric.endpoint(1));
  ASSERT_EQ(reqs.size(), 2u);
  ASSERT_TRUE(SendReply(fabric.endpoint(1), reqs[0], Empty{}).ok());
  EXPECT_EQ(Deliver(fabric.endpoint(0), &calls), 0);
  clock.Advance(200000);
  calls.Expire();
  ASSERT_EQ(ended.size(), 2u);
  EXPECT_EQ(calls.size(), 0u);
}

TEST(PendingCalls, AFailedSendEndsAtTheNextExpireNotInsideCall) {
  InProcFabric fabric(2);
  ManualClock clock;
  PendingCalls calls(fabric.endpoint(0), &clock);
  int runs = 0;
  Status why;
  // Rank 5 does not exist in a fabric of 2: the send fails.
  calls.Call(5, Body("/nowhere"), 1000, [&](Result<Message> r) {
    ++runs;
    why = r.status();
  });
  EXPECT_EQ(runs, 0);
  calls.Expire();
  EXPECT_EQ(runs, 1);
  EXPECT_FALSE(why.ok());
  EXPECT_NE(why.code(), Code::kTimeout);
}

TEST(PendingCalls, ACancelledCallNeverRuns) {
  InProcFabric fabric(2);
  ManualClock clock;
  PendingCalls calls(fabric.endpoint(0), &clock);
  int runs = 0;
  const uint64_t id = calls.Call(1, Body("/c"), 10, [&](Result<Message>) { ++runs; });
  EXPECT_TRUE(calls.open(id));
  calls.Cancel(id);
  EXPECT_FALSE(calls.open(id));
  auto reqs = Requests(fabric.endpoint(1));
  ASSERT_TRUE(SendReply(fabric.endpoint(1), reqs[0], Empty{}).ok());
  EXPECT_EQ(Deliver(fabric.endpoint(0), &calls), 0);
  clock.Advance(1000000);
  calls.Expire();
  EXPECT_EQ(runs, 0);
}

TEST(PendingCalls, AQuorumFanInCompletesAtTheKthOkAndDropsTheRest) {
  InProcFabric fabric(4);
  ManualClock clock;
  PendingCalls calls(fabric.endpoint(0), &clock);
  int runs = 0;
  FanResult seen;
  calls.FanOut({1, 2, 3}, Body("/vote"), 1000, FanRule::Quorum(2), [&](const FanResult& f) {
    ++runs;
    seen = f;
  });
  EXPECT_EQ(calls.size(), 3u);
  // Rank 2 refuses, rank 3 agrees: one OK, not yet a quorum.
  auto r2 = Requests(fabric.endpoint(2));
  auto r3 = Requests(fabric.endpoint(3));
  ASSERT_TRUE(SendErrorReply(fabric.endpoint(2), r2[0], Status::Unavailable("no")).ok());
  ASSERT_TRUE(SendReply(fabric.endpoint(3), r3[0], Empty{}).ok());
  Deliver(fabric.endpoint(0), &calls);
  EXPECT_EQ(runs, 0);
  auto r1 = Requests(fabric.endpoint(1));
  ASSERT_TRUE(SendReply(fabric.endpoint(1), r1[0], Empty{}).ok());
  Deliver(fabric.endpoint(0), &calls);
  ASSERT_EQ(runs, 1);
  EXPECT_TRUE(seen.met);
  EXPECT_EQ(seen.ok, 2u);
  ASSERT_EQ(seen.results.size(), 3u);
  EXPECT_TRUE(seen.results[0].ok());
  EXPECT_EQ(seen.results[1]->status().code(), Code::kUnavailable);
  EXPECT_EQ(calls.size(), 0u);
}

TEST(PendingCalls, AnAllFanInWithASilentPeerEndsAtTheDeadlineUnmet) {
  InProcFabric fabric(3);
  ManualClock clock;
  PendingCalls calls(fabric.endpoint(0), &clock);
  int runs = 0;
  FanResult seen;
  calls.FanOut({1, 2}, Body("/all"), 200, FanRule::All(), [&](const FanResult& f) {
    ++runs;
    seen = f;
  });
  auto r1 = Requests(fabric.endpoint(1));
  ASSERT_TRUE(SendReply(fabric.endpoint(1), r1[0], Empty{}).ok());
  Deliver(fabric.endpoint(0), &calls);
  EXPECT_EQ(runs, 0);
  clock.Advance(200000);
  calls.Expire();
  ASSERT_EQ(runs, 1);
  EXPECT_FALSE(seen.met);
  EXPECT_EQ(seen.ok, 1u);
  EXPECT_EQ(seen.results[1].status().code(), Code::kTimeout);
}

TEST(PendingCalls, AFanOutToNobodyCompletesAtOnceAndMet) {
  InProcFabric fabric(1);
  ManualClock clock;
  PendingCalls calls(fabric.endpoint(0), &clock);
  int runs = 0;
  calls.FanOut({}, Body("/none"), 200, FanRule::All(), [&](const FanResult& f) {
    ++runs;
    EXPECT_TRUE(f.met);
  });
  EXPECT_EQ(runs, 1);
}

TEST(PendingCalls, EachDestinationCanGetItsOwnBody) {
  InProcFabric fabric(3);
  ManualClock clock;
  PendingCalls calls(fabric.endpoint(0), &clock);
  calls.FanOutEach(
      {1, 2}, [](int dest) { return Body("/for-" + std::to_string(dest)); }, 100, FanRule::All(),
      [](const FanResult&) {});
  for (int r = 1; r <= 2; ++r) {
    auto reqs = Requests(fabric.endpoint(r));
    ASSERT_EQ(reqs.size(), 1u);
    MkdirReq b;
    ASSERT_TRUE(reqs[0].Decode(&b).ok());
    EXPECT_EQ(b.path, "/for-" + std::to_string(r));
  }
}

TEST(Timers, OneShotAndPeriodicFireWhenDueAndCancelStopsThem) {
  ManualClock clock;
  Timers timers(&clock);
  int once = 0, every = 0;
  timers.After(1000, [&] { ++once; });
  const uint64_t periodic = timers.Every(500, [&] { ++every; });
  timers.Fire();
  EXPECT_EQ(once + every, 0);
  clock.Advance(500);
  timers.Fire();
  EXPECT_EQ(every, 1);
  EXPECT_EQ(once, 0);
  clock.Advance(500);
  timers.Fire();
  EXPECT_EQ(every, 2);
  EXPECT_EQ(once, 1);
  clock.Advance(5000);
  timers.Fire();  // a late Fire runs a periodic timer once, not ten times
  EXPECT_EQ(every, 3);
  EXPECT_EQ(once, 1);
  timers.Cancel(periodic);
  clock.Advance(5000);
  timers.Fire();
  EXPECT_EQ(every, 3);
  EXPECT_EQ(timers.size(), 0u);
}

TEST(Timers, ATimerMayCancelItselfOrAddAnother) {
  ManualClock clock;
  Timers timers(&clock);
  int runs = 0, added = 0;
  uint64_t self = 0;
  self = timers.Every(10, [&] {
    ++runs;
    timers.Cancel(self);
    timers.After(0, [&] { ++added; });
  });
  clock.Advance(10);
  timers.Fire();
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(added, 0);  // added while firing: waits for the next Fire
  timers.Fire();
  EXPECT_EQ(added, 1);
  clock.Advance(100);
  timers.Fire();
  EXPECT_EQ(runs, 1);
}

TEST(HeldRequests, ARequestPastItsDeadlineIsAnsweredTimeoutAndNeverReleased) {
  InProcFabric fabric(2);
  ManualClock clock;
  HeldRequests<uint64_t> held(fabric.endpoint(0), &clock);
  // The peer sends two requests with deadlines of 100 and 300 ms.
  ASSERT_TRUE(SendRequest(fabric.endpoint(1), 0, Body("/short"), 11, 100).ok());
  ASSERT_TRUE(SendRequest(fabric.endpoint(1), 0, Body("/long"), 12, 300).ok());
  for (Message& m : Requests(fabric.endpoint(0))) held.Hold(42, std::move(m));
  EXPECT_EQ(held.size(), 2u);
  EXPECT_EQ(held.count(42), 2u);
  clock.Advance(150000);
  held.Expire();
  EXPECT_EQ(held.size(), 1u);
  auto answers = Requests(fabric.endpoint(1));
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_TRUE(answers[0].is_reply());
  EXPECT_EQ(answers[0].h.id, 11u);
  EXPECT_EQ(answers[0].status().code(), Code::kTimeout);
  auto left = held.Release(42);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].h.id, 12u);
  EXPECT_EQ(held.size(), 0u);
  EXPECT_TRUE(held.Release(42).empty());
}

// A server with its own calls: it asks rank 1 once and counts the answer.
class AskingServer : public Server {
 public:
  AskingServer(Transport* t, Env* env) : calls_(t, env) {
    calls_.Call(1, Body("/q"), 1000, [this](Result<Message> r) { answered_ = r.ok(); });
  }
  void Handle(Message&) override { ++handled_; }
  void Tick(uint64_t) override { ++ticks_; }
  bool done() const override { return false; }
  PendingCalls* calls() override { return &calls_; }

  PendingCalls calls_;
  bool answered_ = false;
  int handled_ = 0;
  int ticks_ = 0;
};

TEST(EventLoop, RoutesRepliesToTheServersCallsAndOtherMessagesToHandle) {
  InProcFabric fabric(2);
  ManualClock clock;
  AskingServer s(fabric.endpoint(0), &clock);
  EventLoop loop(fabric.endpoint(0), &s, EventLoop::Options{5000, &clock});
  EXPECT_FALSE(loop.Step());  // nothing yet: an idle step ticks
  EXPECT_EQ(s.ticks_, 1);
  auto reqs = Requests(fabric.endpoint(1));
  ASSERT_EQ(reqs.size(), 1u);
  ASSERT_TRUE(SendReply(fabric.endpoint(1), reqs[0], Empty{}).ok());
  ASSERT_TRUE(SendRequest(fabric.endpoint(1), 0, Body("/other"), 5, 1000).ok());
  EXPECT_TRUE(loop.Step());
  EXPECT_TRUE(s.answered_);
  EXPECT_EQ(s.handled_, 1);  // the request, not the reply
}

TEST(EventLoop, TheLoopEndsTheServersCallsAtTheirDeadline) {
  InProcFabric fabric(2);
  ManualClock clock;
  AskingServer s(fabric.endpoint(0), &clock);
  EventLoop loop(fabric.endpoint(0), &s, EventLoop::Options{5000, &clock});
  loop.Step();
  EXPECT_EQ(s.calls_.size(), 1u);
  clock.Advance(1000000);
  loop.Step();
  EXPECT_EQ(s.calls_.size(), 0u);
  EXPECT_FALSE(s.answered_);
}

TEST(EventLoop, StopEndsRunFromAnotherThread) {
  InProcFabric fabric(2);
  AskingServer s(fabric.endpoint(0), Env::Posix());
  EventLoop loop(fabric.endpoint(0), &s);
  std::atomic<bool> returned{false};
  std::thread runner([&] {
    EXPECT_TRUE(loop.Run().ok());
    returned = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(returned.load());
  loop.Stop();
  runner.join();
  EXPECT_TRUE(returned.load());
  EXPECT_GT(s.ticks_, 0);
}

}  // namespace
}  // namespace gfs
