// Request/reply plumbing shared by every role: typed send helpers, the event
// loop that servers run (sleeping when idle, never spinning), and the
// blocking-call helper used by clients, with a deadline on every request.
#pragma once

#include <unistd.h>

#include <functional>
#include <map>
#include <string>

#include "common/clock.h"
#include "common/env.h"
#include "mpi/protocol/messages.h"
#include "mpi/transport/transport.h"

namespace gfs {

// A received message with its envelope decoded.
struct Message {
  int source = -1;
  Header h;
  Buffer buf;

  MsgType type() const { return static_cast<MsgType>(h.type & ~kReplyBit); }
  bool is_reply() const { return h.is_reply(); }
  Status status() const;  // for replies: the Status the peer sent
  template <typename Body>
  Status Decode(Body* b) const {
    return DecodeBody(buf->data(), buf->size(), b);
  }
};

// Parses an Incoming into a Message (envelope only).
Status ParseMessage(Incoming in, Message* m);

// Sends a request of Body's type. Returns its id via *id.
template <typename Body>
Status SendRequest(Transport* t, int dest, const Body& body, uint64_t id, uint32_t deadline_ms,
                   uint64_t epoch = 0) {
  Header h;
  h.type = static_cast<uint16_t>(ProtocolOf<Body>::kType);
  h.id = id;
  h.epoch = epoch;
  h.deadline_ms = deadline_ms;
  return t->Send(dest, EncodeMessage(h, body));
}

template <typename Body>
Buffer EncodeReply(const Message& req, const Body& body, uint64_t epoch = 0) {
  Header h;
  h.type = static_cast<uint16_t>(req.h.type | kReplyBit);
  h.id = req.h.id;
  h.epoch = epoch;
  return EncodeMessage(h, body);
}

template <typename Body>
Status SendReply(Transport* t, const Message& req, const Body& body, uint64_t epoch = 0) {
  return t->Send(req.source, EncodeReply(req, body, epoch));
}

Buffer EncodeErrorReply(const Message& req, const Status& s, uint64_t epoch = 0);

// For sends whose loss the receiver's deadline already covers (replies,
// orders, acks, forwarded slices): the transport refuses a send only for a
// bad rank or a broken MPI, so the error is logged (naming `what`) and the
// caller goes on; the peer times out as if the message were lost.
void LogIfSendFailed(const Status& s, const char* what);
Status SendErrorReply(Transport* t, const Message& req, const Status& s, uint64_t epoch = 0);

// Sleeps with exponential back-off while a loop finds nothing to do, so idle
// ranks cost almost no CPU (a storage rank idles at well under 1% of a core).
// Also notices when the launching process is gone (mpirun killed), so an
// orphaned rank does not live on holding files and locks.
// With a transport that wakes on messages (MpiTransport's doorbells), the
// sleep ends as soon as a peer on the node sends. It paces real sleeping, so
// it reads the monotonic clock itself rather than an Env's (which a test may
// move): no deadline depends on it.
class Idler {
 public:
  explicit Idler(Transport* t = nullptr);
  void Busy() {
    sleep_us_ = 0;
    spins_ = 0;
    idle_since_us_ = 0;
  }
  void Idle();
  bool orphaned();

 private:
  uint32_t spins_ = 0;
  uint32_t sleep_us_ = 0;
  uint64_t idle_since_us_ = 0;
  Transport* t_;
  pid_t parent_;
  uint64_t next_parent_check_us_ = 0;
};

class PendingCalls;
class Timers;

// A server role: the event loop (EventLoop, server_rpc.h) calls Handle for
// every message that is not a reply to one of the server's calls(), Tick
// about every millisecond of idle time and at least every `tick_us` when
// busy (after ending the calls past their deadline and firing the timers),
// and AfterBatch once per drained batch of messages (group commit point).
class Server {
 public:
  virtual ~Server() = default;
  virtual void Handle(Message& m) = 0;
  virtual void Tick(uint64_t now_us) = 0;
  virtual void AfterBatch() {}
  virtual bool done() const = 0;
  // The server's outgoing calls and timers, if it keeps them in the RPC
  // layer's tables: the loop routes replies and fires deadlines for it.
  virtual PendingCalls* calls() { return nullptr; }
  virtual Timers* timers() { return nullptr; }
};

// Runs `server` on `t` until server->done(): EventLoop::Run. Returns a
// non-ok Status when the rank was orphaned.
Status RunServer(Transport* t, Server* server, uint64_t tick_us = 5000);

// Client-side blocking calls with deadlines. Replies that arrive for other
// requests (or late) are kept in a stash until asked for, or dropped when
// nobody waits for them any more.
class RpcClient {
 public:
  // Deadlines are read from `env`'s clock (Env::Posix() when null).
  explicit RpcClient(Transport* t, Env* env = nullptr)
      : t_(t), env_(env != nullptr ? env : Env::Posix()), idler_(t) {}
  Transport* transport() const { return t_; }
  Env* env() const { return env_; }
  void set_env(Env* env) { env_ = env; }
  uint64_t NewId() { return ++next_id_; }
  // The master epoch stamped on every request sent from now on.
  void set_epoch(uint64_t e) { epoch_ = e; }

  // Sends a request and remembers that a reply is expected.
  template <typename Body>
  Result<uint64_t> Start(int dest, const Body& body, uint32_t timeout_ms) {
    uint64_t id = NewId();
    Status s = SendRequest(t_, dest, body, id, timeout_ms, epoch_);
    if (!s.ok()) return s;
    waiting_[id] = env_->NowMicros() + static_cast<uint64_t>(timeout_ms) * 1000;
    return id;
  }
  // Waits for the reply to `id` until its deadline; kTimeout after that.
  Result<Message> Wait(uint64_t id);
  // Waits for whichever awaited reply comes first (any id in `ids`).
  Result<Message> WaitAny(const std::vector<uint64_t>& ids, uint64_t* which);
  // Non-blocking: true when the reply to `id` is here (in *out) or its
  // deadline has passed (*out = kTimeout); false while still waiting.
  // REQUIRES: PumpOnce() is called by the caller's loop.
  bool TryTake(uint64_t id, Result<Message>* out);
  // Forgets a request (its reply, if it comes, is dropped).
  void Forget(uint64_t id) {
    waiting_.erase(id);
    stash_.erase(id);
  }

  template <typename Req, typename Rep>
  Status Call(int dest, const Req& req, Rep* rep, uint32_t timeout_ms) {
    static_assert(kRepliesWith<Req, Rep>, "the protocol table gives this request another reply");
    auto id = Start(dest, req, timeout_ms);
    if (!id.ok()) return id.status();
    auto m = Wait(*id);
    if (!m.ok()) return m.status();
    if (!m->status().ok()) return m->status();
    return m->Decode(rep);
  }

  // Messages that are not replies (e.g. PushAck) go here.
  void set_unsolicited(std::function<void(Message&)> fn) { unsolicited_ = std::move(fn); }
  // Pumps incoming messages once; returns true if any arrived.
  bool PumpOnce();
  Idler& idler() { return idler_; }

 private:
  Transport* t_;
  Env* env_;
  uint64_t next_id_ = 0;
  uint64_t epoch_ = 0;
  std::map<uint64_t, uint64_t> waiting_;  // id -> deadline (us)
  std::map<uint64_t, Message> stash_;
  std::function<void(Message&)> unsolicited_;
  Idler idler_;
};

}  // namespace gfs
