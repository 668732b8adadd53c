#include "mpi/protocol/rpc.h"

#include <thread>

#include "common/log.h"

namespace gfs {

Status Message::status() const {
  if (h.status == 0) return Status::OK();
  ErrorBody e;
  (void)Decode(&e);  // best effort: a malformed message still yields the code
  return Status(static_cast<Code>(h.status), e.message);
}

Status ParseMessage(Incoming in, Message* m) {
  m->source = in.source;
  m->buf = std::move(in.data);
  return DecodeHeader(m->buf->data(), m->buf->size(), &m->h);
}

Buffer EncodeErrorReply(const Message& req, const Status& s, uint64_t epoch) {
  Header h;
  h.type = static_cast<uint16_t>(req.h.type | kReplyBit);
  h.id = req.h.id;
  h.epoch = epoch;
  h.status = static_cast<uint16_t>(s.ok() ? Code::kInternal : s.code());
  ErrorBody e{s.message().substr(0, 1024)};
  return EncodeMessage(h, e);
}

void LogIfSendFailed(const Status& s, const char* what) {
  if (!s.ok()) GFS_LOG_WARN("could not send %s: %s", what, s.ToString().c_str());
}

Status SendErrorReply(Transport* t, const Message& req, const Status& s, uint64_t epoch) {
  return t->Send(req.source, EncodeErrorReply(req, s, epoch));
}

Idler::Idler(Transport* t) : t_(t), parent_(getppid()) {}

void Idler::Idle() {
  // Without wake-ups, a few polls back to back catch replies that are already
  // on their way (with them, the wait ends when the reply comes, and yielding
  // would only take the CPU from the rank that has work: 2 cores, 12 ranks).
  // Then sleep with doubling intervals up to 1 ms, and up to 5 ms once the
  // rank has been idle for a while (a storage rank waiting for work).
  const bool wakes = t_ != nullptr && t_->WakesOnMessage();
  if (spins_ == 0) idle_since_us_ = MonoMicros();
  if (!wakes && spins_ < 16) {
    ++spins_;
    std::this_thread::yield();
    return;
  }
  ++spins_;
  const uint32_t cap = MonoMicros() - idle_since_us_ > 200000 ? 5000 : 1000;
  sleep_us_ = sleep_us_ == 0 ? 20 : std::min<uint32_t>(sleep_us_ * 2, cap);
  if (t_ != nullptr) {
    t_->WaitForWork(sleep_us_);
  } else {
    std::this_thread::sleep_for(std::chrono::microseconds(sleep_us_));
  }
}

bool Idler::orphaned() {
  uint64_t now = MonoMicros();
  if (now < next_parent_check_us_) return false;
  next_parent_check_us_ = now + 500000;
  return getppid() != parent_;
}

bool RpcClient::PumpOnce() {
  bool any = false;
  Incoming in;
  while (t_->Poll(&in)) {
    any = true;
    Message m;
    if (!ParseMessage(std::move(in), &m).ok()) continue;
    if (m.is_reply()) {
      if (waiting_.count(m.h.id)) stash_[m.h.id] = std::move(m);
      continue;
    }
    if (unsolicited_) unsolicited_(m);
  }
  if (t_->Progress()) any = true;
  return any;
}

bool RpcClient::TryTake(uint64_t id, Result<Message>* out) {
  auto it = stash_.find(id);
  if (it != stash_.end()) {
    *out = std::move(it->second);
    stash_.erase(it);
    waiting_.erase(id);
    return true;
  }
  auto w = waiting_.find(id);
  if (w == waiting_.end() || env_->NowMicros() >= w->second) {
    waiting_.erase(id);
    *out = Status::Timeout("no reply within the request deadline");
    return true;
  }
  return false;
}

Result<Message> RpcClient::Wait(uint64_t id) {
  uint64_t which = 0;
  return WaitAny({id}, &which);
}

Result<Message> RpcClient::WaitAny(const std::vector<uint64_t>& ids, uint64_t* which) {
  for (;;) {
    for (uint64_t id : ids) {
      auto it = stash_.find(id);
      if (it != stash_.end()) {
        Message m = std::move(it->second);
        stash_.erase(it);
        waiting_.erase(id);
        *which = id;
        return m;
      }
    }
    uint64_t now = env_->NowMicros();
    for (uint64_t id : ids) {
      auto it = waiting_.find(id);
      if (it == waiting_.end() || now >= it->second) {
        waiting_.erase(id);
        *which = id;
        return Status::Timeout("no reply within the request deadline");
      }
    }
    if (PumpOnce()) {
      idler_.Busy();
    } else {
      if (idler_.orphaned()) return Status::Unavailable("the launching process is gone");
      idler_.Idle();
    }
  }
}

}  // namespace gfs
