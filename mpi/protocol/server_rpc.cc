#include "mpi/protocol/server_rpc.h"

#include <chrono>
#include <thread>

namespace gfs {

// ---- PendingCalls ---------------------------------------------------------

PendingCalls::PendingCalls(Transport* t, Env* env) : t_(t), env_(env) {}

void PendingCalls::Track(uint64_t id, uint32_t timeout_ms, CallDone done, Status sent) {
  Entry e;
  e.done = std::move(done);
  if (sent.ok()) {
    e.deadline_us = env_->NowMicros() + uint64_t{timeout_ms} * 1000;
  } else {
    e.failed = std::move(sent);  // ended at the next Expire
  }
  by_deadline_.emplace(e.deadline_us, id);
  calls_.emplace(id, std::move(e));
}

bool PendingCalls::OnReply(Message& m) {
  auto it = calls_.find(m.h.id);
  if (it == calls_.end()) return false;
  CallDone done = std::move(it->second.done);
  by_deadline_.erase({it->second.deadline_us, it->first});
  calls_.erase(it);
  // The entry is gone before the continuation runs: it may start calls.
  done(std::move(m));
  return true;
}

void PendingCalls::Expire() {
  const uint64_t now = env_->NowMicros();
  // Take the ended calls out first: continuations may add or cancel calls.
  std::vector<std::pair<CallDone, Status>> ended;
  while (!by_deadline_.empty() && by_deadline_.begin()->first <= now) {
    const uint64_t id = by_deadline_.begin()->second;
    by_deadline_.erase(by_deadline_.begin());
    auto it = calls_.find(id);
    if (it == calls_.end()) continue;
    Status why = it->second.failed.ok() ? Status::Timeout("no reply within the request deadline")
                                        : std::move(it->second.failed);
    ended.emplace_back(std::move(it->second.done), std::move(why));
    calls_.erase(it);
  }
  for (auto& [done, why] : ended) done(std::move(why));
}

void PendingCalls::Cancel(uint64_t id) {
  auto it = calls_.find(id);
  if (it == calls_.end()) return;
  by_deadline_.erase({it->second.deadline_us, id});
  calls_.erase(it);
}

std::shared_ptr<PendingCalls::Fan> PendingCalls::StartFan(const std::vector<int>& dests,
                                                          FanRule rule, FanDone done) {
  auto fan = std::make_shared<Fan>();
  fan->result.dests = dests;
  fan->result.results.assign(dests.size(), Status::Timeout("no answer before the fan-in ended"));
  fan->need = rule.need == 0 ? dests.size() : rule.need;
  fan->done = std::move(done);
  fan->ids.reserve(dests.size());
  return fan;
}

void PendingCalls::FanAnswer(const std::shared_ptr<Fan>& fan, size_t i, Result<Message> r) {
  if (fan->finished) return;
  ++fan->ended;
  if (r.ok() && r->status().ok()) ++fan->result.ok;
  fan->result.results[i] = std::move(r);
  if (fan->result.ok >= fan->need || fan->ended == fan->result.dests.size()) FinishFan(fan);
}

void PendingCalls::FinishFan(const std::shared_ptr<Fan>& fan) {
  fan->finished = true;
  fan->result.met = fan->result.ok >= fan->need;
  // Calls still open are of no use now: their replies are dropped.
  for (uint64_t id : fan->ids) Cancel(id);
  FanDone done = std::move(fan->done);
  done(fan->result);
}

// ---- Timers ---------------------------------------------------------------

uint64_t Timers::Add(uint64_t due_us, uint64_t period_us, std::function<void()> fn) {
  const uint64_t id = ++next_id_;
  timers_.emplace(id, Timer{due_us, period_us, std::move(fn)});
  by_due_.emplace(due_us, id);
  return id;
}

uint64_t Timers::After(uint64_t delay_us, std::function<void()> fn) {
  return Add(env_->NowMicros() + delay_us, 0, std::move(fn));
}

uint64_t Timers::Every(uint64_t period_us, std::function<void()> fn) {
  if (period_us == 0) period_us = 1;
  return Add(env_->NowMicros() + period_us, period_us, std::move(fn));
}

void Timers::Cancel(uint64_t id) {
  auto it = timers_.find(id);
  if (it == timers_.end()) return;
  by_due_.erase({it->second.due_us, id});
  timers_.erase(it);
}

void Timers::Fire() {
  const uint64_t now = env_->NowMicros();
  std::vector<uint64_t> due;
  for (auto it = by_due_.begin(); it != by_due_.end() && it->first <= now; ++it) {
    due.push_back(it->second);
  }
  for (uint64_t id : due) {
    auto it = timers_.find(id);
    if (it == timers_.end()) continue;  // cancelled by an earlier timer
    by_due_.erase({it->second.due_us, id});
    if (it->second.period_us == 0) {
      std::function<void()> fn = std::move(it->second.fn);
      timers_.erase(it);
      fn();
    } else {
      it->second.due_us = now + it->second.period_us;
      by_due_.emplace(it->second.due_us, id);
      // Copy: the timer may cancel itself while it runs.
      std::function<void()> fn = it->second.fn;
      fn();
    }
  }
}

// ---- EventLoop ------------------------------------------------------------

EventLoop::EventLoop(Transport* t, Server* server, Options o) : t_(t), server_(server), o_(o) {
  if (o_.env == nullptr) o_.env = Env::Posix();
}

bool EventLoop::Step() {
  bool busy = false;
  PendingCalls* calls = server_->calls();
  Incoming in;
  int n = 0;
  while (n < 256 && t_->Poll(&in)) {
    ++n;
    Message m;
    // A message whose envelope does not parse cannot be answered: drop it.
    if (!ParseMessage(std::move(in), &m).ok()) continue;
    if (m.is_reply() && calls != nullptr && calls->OnReply(m)) {
      // answered one of the server's own calls
    } else {
      server_->Handle(m);
    }
    // Complete finished sends as we go, not only after the batch: a busy
    // server (a request always waiting) would otherwise hold every reply
    // buffer until 256 messages later, and take fresh (page-faulting)
    // memory for each new reply meanwhile.
    if (t_->PendingSends() > 0 && t_->Progress()) busy = true;
  }
  if (n > 0) {
    busy = true;
    server_->AfterBatch();
  }
  if (t_->Progress()) busy = true;
  const uint64_t now = o_.env->NowMicros();
  if (!busy || now >= next_tick_) {
    if (calls != nullptr) calls->Expire();
    if (Timers* timers = server_->timers()) timers->Fire();
    server_->Tick(now);
    next_tick_ = now + o_.tick_us;
  }
  return busy;
}

Status EventLoop::Run() {
  Idler idler(t_);
  while (!server_->done() && !stop_) {
    if (Step()) {
      idler.Busy();
    } else {
      if (idler.orphaned()) return Status::Unavailable("the launching process is gone");
      idler.Idle();
    }
  }
  // Let replies and shutdown messages drain.
  const uint64_t until = o_.env->NowMicros() + 1000000;
  while (t_->PendingSends() > 0 && o_.env->NowMicros() < until) {
    if (!t_->Progress()) std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  return Status::OK();
}

Status RunServer(Transport* t, Server* server, uint64_t tick_us) {
  EventLoop loop(t, server, EventLoop::Options{tick_us, nullptr});
  return loop.Run();
}

}  // namespace gfs
