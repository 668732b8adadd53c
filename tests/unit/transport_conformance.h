// The Transport contract (mpi/transport/transport.h), checked the same way
// over every implementation: the in-process fabric runs these checks in two
// threads (transport_test.cc), MpiTransport in two ranks under mpirun
// (tests/programs/transport_conformance.cc). Each check is called by rank 0
// and rank 1 at once, each with its own endpoint, and returns "" when the
// contract held on that side, or what went wrong. Every wait has a deadline,
// so a broken transport fails the check instead of hanging it.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "mpi/transport/frame.h"
#include "mpi/transport/transport.h"

namespace gfs {
namespace conformance {

// A message the transport accepts: a frame head (flags byte clear), then a
// sequence number and `n` bytes of a pattern that depends on both.
inline Buffer Frame(uint32_t seq, size_t n) {
  auto b = std::make_shared<Bytes>(kFrameHeadSize + 4 + n);
  std::memset(b->data(), 0, kFrameHeadSize);  // Bytes leaves new bytes as they were
  std::memcpy(b->data() + kFrameHeadSize, &seq, 4);
  for (size_t i = 0; i < n; ++i) {
    (*b)[kFrameHeadSize + 4 + i] = static_cast<uint8_t>((i * 31 + seq * 7) & 0xff);
  }
  return b;
}

// "" when `m` is Frame(seq, n) exactly.
inline std::string CheckFrame(const Bytes& m, uint32_t seq, size_t n) {
  if (m.size() != kFrameHeadSize + 4 + n) {
    return "message " + std::to_string(seq) + " has " + std::to_string(m.size()) + " bytes, not " +
           std::to_string(kFrameHeadSize + 4 + n);
  }
  if (m[kFrameFlagsOffset] != 0) return "the flags byte of a received message is not clear";
  uint32_t got = 0;
  std::memcpy(&got, m.data() + kFrameHeadSize, 4);
  if (got != seq) return "expected message " + std::to_string(seq) + ", got " + std::to_string(got);
  for (size_t i = 0; i < n; ++i) {
    if (m[kFrameHeadSize + 4 + i] != static_cast<uint8_t>((i * 31 + seq * 7) & 0xff)) {
      return "message " + std::to_string(seq) + " differs at byte " + std::to_string(i);
    }
  }
  return "";
}

// Waits (polling, driving sends, sleeping briefly) for the next message.
inline std::string Receive(Transport* t, Incoming* in, double seconds = 20) {
  const auto until = std::chrono::steady_clock::now() +
                     std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
  while (!t->Poll(in)) {
    t->Progress();
    if (std::chrono::steady_clock::now() > until) return "no message within the deadline";
    t->WaitForWork(200);
  }
  return "";
}

// Drives sends until none is pending.
inline std::string Drain(Transport* t, double seconds = 20) {
  const auto until = std::chrono::steady_clock::now() +
                     std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
  while (t->PendingSends() > 0 || t->TailSendsPending() > 0) {
    if (!t->Progress()) t->WaitForWork(200);
    if (std::chrono::steady_clock::now() > until) return "sends still pending after the deadline";
  }
  return "";
}

inline size_t SizeOf(uint32_t seq) {
  // 0 bytes to 64 KiB, with a few large ones.
  return seq % 50 == 0 ? (1u << 20) + seq : (seq * 977u) % (64u << 10);
}

// Rank 0 sends 400 messages of many sizes; rank 1 receives them in order,
// byte-exact. Then the counters of both sides agree with what was sent.
inline std::string FifoAndCounters(Transport* t) {
  constexpr uint32_t kCount = 400;
  uint64_t bytes = 0;
  for (uint32_t s = 0; s < kCount; ++s) bytes += kFrameHeadSize + 4 + SizeOf(s);
  if (t->rank() == 0) {
    for (uint32_t s = 0; s < kCount; ++s) {
      Status st = t->Send(1, Frame(s, SizeOf(s)));
      if (!st.ok()) return "send failed: " + st.ToString();
      t->Progress();
    }
    std::string e = Drain(t);
    if (!e.empty()) return e;
    const auto& c = t->counters();
    auto it = c.find(1);
    if (it == c.end() || it->second.msgs_sent != kCount || it->second.bytes_sent != bytes) {
      return "sender's counters do not show " + std::to_string(kCount) + " messages of " +
             std::to_string(bytes) + " bytes";
    }
    return "";
  }
  for (uint32_t s = 0; s < kCount; ++s) {
    Incoming in;
    std::string e = Receive(t, &in);
    if (!e.empty()) return e + " (waiting for message " + std::to_string(s) + ")";
    if (in.source != 0) return "a message came from rank " + std::to_string(in.source);
    e = CheckFrame(*in.data, s, SizeOf(s));
    if (!e.empty()) return e;
  }
  const auto& c = t->counters();
  auto it = c.find(0);
  if (it == c.end() || it->second.msgs_recv != kCount || it->second.bytes_recv != bytes) {
    return "receiver's counters do not show " + std::to_string(kCount) + " messages of " +
           std::to_string(bytes) + " bytes";
  }
  return "";
}

// A message sent as a head plus a tail from the caller's memory arrives as
// one message, byte-exact, in order with the plain messages around it.
inline std::string TailsJoin(Transport* t) {
  constexpr size_t kTail = 3u << 20;
  if (t->rank() == 0) {
    Buffer whole = Frame(7, kTail);
    // The head is the frame head and the sequence number; the tail the rest.
    auto head = std::make_shared<Bytes>(whole->begin(), whole->begin() + kFrameHeadSize + 4);
    if (!t->Send(1, Frame(6, 10)).ok()) return "send failed";
    Status st = t->SendWithTail(1, head, whole->data() + kFrameHeadSize + 4, kTail);
    if (!st.ok()) return "send with tail failed: " + st.ToString();
    if (!t->Send(1, Frame(8, 10)).ok()) return "send failed";
    return Drain(t);  // `whole` lives until the tail has gone
  }
  for (uint32_t s : {6u, 7u, 8u}) {
    Incoming in;
    std::string e = Receive(t, &in);
    if (!e.empty()) return e;
    e = CheckFrame(*in.data, s, s == 7 ? kTail : 10);
    if (!e.empty()) return e;
  }
  return "";
}

// Both ranks send to each other at once, 300 round trips each way.
inline std::string BothWaysAtOnce(Transport* t) {
  const int peer = 1 - t->rank();
  constexpr uint32_t kRounds = 300;
  for (uint32_t s = 0; s < kRounds; ++s) {
    if (!t->Send(peer, Frame(s, 100 + s)).ok()) return "send failed";
    Incoming in;
    std::string e = Receive(t, &in);
    if (!e.empty()) return e;
    e = CheckFrame(*in.data, s, 100 + s);
    if (!e.empty()) return e;
  }
  return Drain(t);
}

// Poll on nothing returns at once; WaitForWork returns within its bound.
inline std::string IdleCallsReturn(Transport* t) {
  if (t->rank() < 0 || t->rank() >= t->size() || t->size() < 2) {
    return "rank " + std::to_string(t->rank()) + " of " + std::to_string(t->size());
  }
  const auto t0 = std::chrono::steady_clock::now();
  Incoming in;
  for (int i = 0; i < 100; ++i) {
    if (t->Poll(&in)) return "a message arrived that nobody sent";
  }
  t->WaitForWork(20000);
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (took > 1.0) return "100 polls and a 20 ms wait took " + std::to_string(took) + " s";
  if (!t->Send(t->size() + 5, Frame(0, 1)).ok()) return "";  // a bad rank is refused
  return "a send to rank " + std::to_string(t->size() + 5) + " was accepted";
}

struct Check {
  const char* name;
  std::function<std::string(Transport*)> run;
};

inline const std::vector<Check>& AllChecks() {
  static const std::vector<Check> kChecks = {
      {"fifo-and-counters", FifoAndCounters},
      {"tails-join", TailsJoin},
      {"both-ways-at-once", BothWaysAtOnce},
      {"idle-calls-return", IdleCallsReturn},
  };
  return kChecks;
}

}  // namespace conformance
}  // namespace gfs
