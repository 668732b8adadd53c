// The servers' RPC layer: what a master or chunkserver needs to call other
// ranks and to keep requests for later, without a map per kind of request.
//
//  - PendingCalls: outgoing calls, each with a continuation and a deadline;
//    a reply runs its continuation, the deadline runs it with kTimeout.
//    FanOut sends one request to several ranks and runs one continuation
//    once an all-of or quorum rule is met, or every call has ended.
//  - Timers: one-shot and periodic work.
//  - HeldRequests: requests kept until something happens (a repair ends, an
//    append's turn comes), each with the deadline its sender gave it; a
//    request whose deadline passes is answered kTimeout, never served late.
//  - EventLoop: the server loop, one step at a time (tests drive servers
//    with Step()) or until done (Run(), sleeping when idle, never spinning).
//    It routes replies to the server's PendingCalls and fires its deadlines
//    and timers with every tick.
//
// Every piece reads time from an Env, so a test can move the clock. None is
// thread-safe: each belongs to the one thread that runs its server.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "common/env.h"
#include "mpi/protocol/rpc.h"

namespace gfs {

// How an outgoing call ended: the reply (whose status() may carry the
// peer's error), kTimeout at the deadline, or the error of the send.
using CallDone = std::function<void(Result<Message>)>;

// When a fan-in is complete: once `need` replies were OK (All() needs every
// one), or once every call has ended, whichever comes first.
struct FanRule {
  size_t need = 0;  // 0: every destination
  static FanRule All() { return FanRule{}; }
  static FanRule Quorum(size_t k) { return FanRule{k}; }
};

struct FanResult {
  std::vector<int> dests;
  // One per destination, in the order of `dests`. A call still open when
  // the fan-in completed holds kTimeout ("no answer before the fan-in
  // ended") and its reply, if it comes, is dropped.
  std::vector<Result<Message>> results;
  size_t ok = 0;     // replies with an OK status
  bool met = false;  // the rule was met
};
using FanDone = std::function<void(const FanResult&)>;

class PendingCalls {
 public:
  PendingCalls(Transport* t, Env* env);
  PendingCalls(const PendingCalls&) = delete;
  PendingCalls& operator=(const PendingCalls&) = delete;

  // The master epoch stamped on every request sent from now on.
  void set_epoch(uint64_t e) { epoch_ = e; }

  // Sends `req` to `dest` with a deadline of `timeout_ms` and returns the
  // call's id. `done` runs exactly once: from OnReply, or from Expire (at
  // the deadline, or right away when the send failed); never from Call.
  template <typename Req>
  uint64_t Call(int dest, const Req& req, uint32_t timeout_ms, CallDone done) {
    const uint64_t id = NextId();
    Status sent = SendRequest(t_, dest, req, id, timeout_ms, epoch_);
    Track(id, timeout_ms, std::move(done), std::move(sent));
    return id;
  }

  // One request per destination; `done` runs once, as FanRule says.
  template <typename Req>
  void FanOut(const std::vector<int>& dests, const Req& req, uint32_t timeout_ms, FanRule rule,
              FanDone done) {
    FanOutEach(
        dests, [&req](int) -> const Req& { return req; }, timeout_ms, rule, std::move(done));
  }
  // The same with a body per destination: make_req(dest) returns it.
  template <typename MakeReq>
  void FanOutEach(const std::vector<int>& dests, MakeReq make_req, uint32_t timeout_ms,
                  FanRule rule, FanDone done) {
    auto fan = StartFan(dests, rule, std::move(done));
    for (size_t i = 0; i < dests.size(); ++i) {
      const uint64_t id =
          Call(dests[i], make_req(dests[i]), timeout_ms,
               [this, fan, i](Result<Message> r) { FanAnswer(fan, i, std::move(r)); });
      fan->ids.push_back(id);
    }
    if (dests.empty()) FinishFan(fan);
  }

  // Runs the continuation of the call `m` answers. False when `m` answers
  // no open call of this table (late, cancelled, or someone else's).
  bool OnReply(Message& m);
  // Ends every call whose deadline has passed (kTimeout) or whose send
  // failed (its error).
  void Expire();
  // Forgets a call: its continuation never runs, its reply is dropped.
  void Cancel(uint64_t id);
  bool open(uint64_t id) const { return calls_.count(id) != 0; }
  size_t size() const { return calls_.size(); }

  // Ids of this table never meet the ids a server gives its own requests.
  static constexpr uint64_t kIdBase = uint64_t{1} << 62;

 private:
  struct Entry {
    uint64_t deadline_us = 0;
    CallDone done;
    Status failed;  // the send's error; deadline_us is then 0
  };
  struct Fan {
    FanResult result;
    size_t need = 0;
    size_t ended = 0;
    bool finished = false;
    FanDone done;
    std::vector<uint64_t> ids;
  };

  uint64_t NextId() { return kIdBase + ++next_id_; }
  void Track(uint64_t id, uint32_t timeout_ms, CallDone done, Status sent);
  std::shared_ptr<Fan> StartFan(const std::vector<int>& dests, FanRule rule, FanDone done);
  void FanAnswer(const std::shared_ptr<Fan>& fan, size_t i, Result<Message> r);
  void FinishFan(const std::shared_ptr<Fan>& fan);

  Transport* t_;
  Env* env_;
  uint64_t epoch_ = 0;
  uint64_t next_id_ = 0;
  std::map<uint64_t, Entry> calls_;
  std::set<std::pair<uint64_t, uint64_t>> by_deadline_;  // (deadline, id)
};

class Timers {
 public:
  explicit Timers(Env* env) : env_(env) {}
  // Runs `fn` once, `delay_us` from now. Returns an id for Cancel.
  uint64_t After(uint64_t delay_us, std::function<void()> fn);
  // Runs `fn` every `period_us` (> 0), the first time one period from now.
  uint64_t Every(uint64_t period_us, std::function<void()> fn);
  void Cancel(uint64_t id);
  // Runs every timer that is due (a timer added by one that runs waits for
  // the next Fire).
  void Fire();
  size_t size() const { return timers_.size(); }

 private:
  struct Timer {
    uint64_t due_us = 0;
    uint64_t period_us = 0;
    std::function<void()> fn;
  };
  uint64_t Add(uint64_t due_us, uint64_t period_us, std::function<void()> fn);

  Env* env_;
  uint64_t next_id_ = 0;
  std::map<uint64_t, Timer> timers_;
  std::set<std::pair<uint64_t, uint64_t>> by_due_;  // (due, id)
};

// Requests kept until the server can serve them, grouped by a key (a chunk
// handle, for example).
template <typename Key>
class HeldRequests {
 public:
  HeldRequests(Transport* t, Env* env) : t_(t), env_(env) {}
  void set_epoch(uint64_t e) { epoch_ = e; }

  // Keeps `m` under `key` until Release, or until the deadline its sender
  // gave (deadline_ms, counted from now; 0 means none was given).
  void Hold(const Key& key, Message m) {
    const uint64_t deadline =
        m.h.deadline_ms == 0 ? 0 : env_->NowMicros() + uint64_t{m.h.deadline_ms} * 1000;
    held_[key].push_back(Held{deadline, std::move(m)});
    ++size_;
  }
  // The requests held under `key`, oldest first, for the caller to serve.
  std::vector<Message> Release(const Key& key) {
    std::vector<Message> out;
    auto it = held_.find(key);
    if (it == held_.end()) return out;
    for (Held& h : it->second) out.push_back(std::move(h.m));
    size_ -= it->second.size();
    held_.erase(it);
    return out;
  }
  // Answers every request whose deadline has passed with kTimeout.
  void Expire() {
    const uint64_t now = env_->NowMicros();
    for (auto it = held_.begin(); it != held_.end();) {
      auto& v = it->second;
      for (size_t i = 0; i < v.size();) {
        if (v[i].deadline_us != 0 && now >= v[i].deadline_us) {
          // The sender has given up by now; the answer only says why.
          (void)SendErrorReply(
              t_, v[i].m, Status::Timeout("the request's deadline passed while it waited"), epoch_);
          v.erase(v.begin() + static_cast<std::ptrdiff_t>(i));
          --size_;
        } else {
          ++i;
        }
      }
      it = v.empty() ? held_.erase(it) : std::next(it);
    }
  }
  size_t size() const { return size_; }
  size_t count(const Key& key) const {
    auto it = held_.find(key);
    return it == held_.end() ? 0 : it->second.size();
  }

 private:
  struct Held {
    uint64_t deadline_us;
    Message m;
  };
  Transport* t_;
  Env* env_;
  uint64_t epoch_ = 0;
  size_t size_ = 0;
  std::map<Key, std::vector<Held>> held_;
};

// The server loop. Step() is one round: up to 256 messages (replies to the
// server's PendingCalls go there, the rest to Handle), AfterBatch, and the
// tick when due (deadlines, timers, then Tick). Run() repeats it until the
// server is done or Stop() is called, sleeping while there is nothing to do.
class EventLoop {
 public:
  struct Options {
    uint64_t tick_us = 5000;  // at least this often while busy
    Env* env = nullptr;       // the clock; Env::Posix() when null
  };
  EventLoop(Transport* t, Server* server, Options o);
  EventLoop(Transport* t, Server* server) : EventLoop(t, server, Options{}) {}

  // Returns true when the step did work (a message, a completed send).
  bool Step();
  // Returns a non-ok Status when the rank was orphaned.
  Status Run();
  // Makes Run return after its current step; callable from any thread.
  void Stop() { stop_ = true; }
  bool stopped() const { return stop_; }

 private:
  Transport* t_;
  Server* server_;
  Options o_;
  uint64_t next_tick_ = 0;
  std::atomic<bool> stop_{false};
};

}  // namespace gfs
