// The wire format: a fixed envelope header followed by a typed body.
// Layout and every message are documented in doc/wire-format.md; keep both in
// step. Bodies are described once, by a Visit() member that the encoder and the
// bounds-checked decoder both walk, so the two can never disagree.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "common/coding.h"
#include "common/status.h"
#include "mpi/transport/frame.h"

// A body lists its fields once, in a static Fields(self, visitor); the two
// Visit members walk them on a mutable body (the decoder fills it) or a const
// one (the encoder reads it). Bodies without fields define a const Visit.
#define GFS_VISIT_FIELDS     \
  template <class V>         \
  bool Visit(V& v) {         \
    return Fields(*this, v); \
  }                          \
  template <class V>         \
  bool Visit(V& v) const {   \
    return Fields(*this, v); \
  }                          \
  static_assert(true, "fields follow")

namespace gfs {

inline constexpr uint32_t kWireMagic = 0x57534647;  // "GFSW" little-endian
inline constexpr uint8_t kWireVersion = 4;
inline constexpr size_t kHeaderSize = 36;
inline constexpr size_t kMaxPath = 4096;
inline constexpr size_t kMaxBlob = 256u << 20;
inline constexpr uint32_t kMaxList = 1u << 22;

// The protocol table: one row per message, with its number (never renumber
// or reuse one; append), its name (in logs, errors and doc/wire-format.md),
// the body of its request and the body of its successful reply (OneWay: no
// reply). A reply has the request's type with kReplyBit set; a failed reply
// carries ErrorBody. The enum below, MsgTypeName and ProtocolOf<Req> (the
// reply type a call must expect, messages.h) are all made from this table.
//
// Retired with wire version 4, never to be reused: 49 (write-local), 54
// (write-local-done), 55 (recall-grant), 56 (append-local), 57
// (append-local-done). Clients wrote chunk files themselves through them;
// only chunkservers write chunk files now.
#define GFS_PROTOCOL_TABLE(X)                                                               \
  /* client -> master */                                                                    \
  X(kMkdir, 1, "mkdir", MkdirReq, Empty)                                                    \
  X(kCreate, 2, "create", CreateReq, StatReply)                                             \
  X(kDelete, 3, "delete", DeleteReq, Empty)                                                 \
  X(kRename, 4, "rename", RenameReq, Empty)                                                 \
  X(kList, 5, "list", ListReq, ListReply)                                                   \
  X(kStat, 6, "stat", StatReq, StatReply)                                                   \
  X(kLookup, 7, "lookup", LookupReq, LookupReply)                                           \
  X(kLease, 8, "lease", LeaseReq, LeaseReply)                                               \
  X(kSetLength, 9, "set-length", SetLengthReq, SetLengthReply)                              \
  X(kClientDone, 10, "client-done", ClientDoneReq, Empty)                                   \
  X(kGetStats, 11, "get-stats", GetStatsReq, StatsReply)                                    \
  X(kReport, 12, "report", ReportReq, ReportReply)                                          \
  X(kFsck, 13, "fsck", FsckReq, FsckReply)                                                  \
  X(kClientsGone, 14, "clients-gone", ClientsGoneReq, ClientsGoneReply)                     \
  /* chunkserver -> master */                                                               \
  X(kRegister, 20, "register", RegisterReq, RegisterReply)                                  \
  X(kHeartbeat, 21, "heartbeat", HeartbeatReq, HeartbeatReply)                              \
  /* master -> chunkserver */                                                               \
  X(kPrepareChunk, 30, "prepare-chunk", PrepareChunkReq, Empty)                             \
  X(kShutdown, 31, "shutdown", ShutdownReq, Empty)                                          \
  X(kVerify, 32, "verify", VerifyReq, VerifyReply)                                          \
  /* chunkserver -> master */                                                               \
  X(kCorrupt, 33, "corrupt", CorruptReq, Empty)                                             \
  /* master -> chunkserver */                                                               \
  X(kClone, 34, "clone", CloneReq, Empty)                                                   \
  /* client -> chunkserver, chunkserver -> chunkserver */                                   \
  X(kPushData, 40, "push-data", PushDataMsg, OneWay)                                        \
  X(kPushAck, 41, "push-ack", PushAckMsg, OneWay)                                           \
  X(kWrite, 42, "write", WriteReq, Empty)                                                   \
  X(kApply, 43, "apply", ApplyReq, Empty)                                                   \
  X(kRead, 44, "read", ReadReq, ReadReply)                                                  \
  X(kSync, 45, "sync", SyncReq, Empty)                                                      \
  X(kAppend, 46, "append", AppendReq, AppendReply)                                          \
  X(kCommitted, 47, "committed", CommittedReq, CommittedReply)                              \
  X(kReadLocal, 48, "read-local", ReadLocalReq, ReadLocalReply)                             \
  /* master group (master <-> shadow masters) */                                            \
  X(kLogBatch, 50, "log-batch", LogBatchReq, LogBatchReply)                                 \
  X(kVote, 51, "vote", VoteReq, VoteReply)                                                  \
  /* new master -> everyone; anyone -> a master-group rank */                               \
  X(kNewMaster, 52, "new-master", NewMasterReq, Empty)                                      \
  X(kWhoIsMaster, 53, "who-is-master", WhoIsMasterReq, WhoIsMasterReply)                    \
  /* master -> chunkserver: mend a damaged replica from its peers */                        \
  X(kRepair, 58, "repair", RepairReq, RepairReply)                                          \
  /* client -> master: replication of existing files, and its progress */                   \
  X(kSetReplication, 59, "set-replication", SetReplicationReq, SetReplicationReply)         \
  X(kReplicationState, 60, "replication-state", ReplicationStateReq, ReplicationStateReply) \
  /* client -> master: trash, undelete, expunge */                                          \
  X(kRemove, 61, "remove", RemoveReq, RemoveReply)                                          \
  X(kUndelete, 62, "undelete", UndeleteReq, UndeleteReply)                                  \
  X(kExpunge, 63, "expunge", ExpungeReq, ExpungeReply)                                      \
  /* master -> chunkserver: delete these, then name every chunk held */                     \
  X(kHeldChunks, 64, "held-chunks", HeldChunksReq, HeldChunksReply)                         \
  /* snapshots: master -> chunkserver, client -> master */                                  \
  X(kCopyChunk, 65, "copy-chunk", CopyChunkReq, Empty)                                      \
  X(kSnapshot, 66, "snapshot", SnapshotReq, Empty)                                          \
  X(kRevokeLease, 67, "revoke-lease", RevokeLeaseReq, Empty)

#define GFS_PROTOCOL_ENUM_ROW(name, number, text, Req, Rep) name = number,
enum class MsgType : uint16_t { GFS_PROTOCOL_TABLE(GFS_PROTOCOL_ENUM_ROW) };
#undef GFS_PROTOCOL_ENUM_ROW
inline constexpr uint16_t kReplyBit = 0x8000;
const char* MsgTypeName(uint16_t type);

struct Header {
  uint32_t magic = kWireMagic;
  uint8_t version = kWireVersion;
  uint8_t flags = 0;
  uint16_t type = 0;
  uint64_t id = 0;           // request id; a reply echoes it
  uint64_t epoch = 0;        // master epoch (failover)
  uint32_t deadline_ms = 0;  // time left for the request when sent; 0 = none
  uint16_t status = 0;       // Code, in replies
  uint16_t reserved = 0;
  uint32_t body_size = 0;

  bool is_reply() const { return (type & kReplyBit) != 0; }
  // The envelope is encoded like a body, at fixed widths (kHeaderSize bytes).
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.magic) && v(s.version) && v(s.flags) && v(s.type) && v(s.id) && v(s.epoch) &&
           v(s.deadline_ms) && v(s.status) && v(s.reserved) && v(s.body_size);
  }
};
// The transport reads the envelope's flags byte (mpi/transport/frame.h); the
// encoder below writes magic, version, then flags.
static_assert(kHeaderSize == kFrameHeadSize, "the envelope is the transport's frame head");
static_assert(sizeof(Header::magic) + sizeof(Header::version) == kFrameFlagsOffset,
              "flags is the byte the transport marks");

// --- visitors -------------------------------------------------------------

// A view of bytes inside a received buffer (decode) or of caller memory
// (encode). Valid only while the buffer it points into lives.
struct BlobView {
  const uint8_t* data = nullptr;
  uint32_t size = 0;
};

class EncodeVisitor {
 public:
  explicit EncodeVisitor(BytesWriter* w) : w_(w) {}
  bool operator()(const uint8_t& v) {
    w_->U8(v);
    return true;
  }
  bool operator()(const uint16_t& v) {
    w_->U16(v);
    return true;
  }
  bool operator()(const uint32_t& v) {
    w_->U32(v);
    return true;
  }
  bool operator()(const uint64_t& v) {
    w_->U64(v);
    return true;
  }
  bool operator()(const int32_t& v) {
    w_->U32(static_cast<uint32_t>(v));
    return true;
  }
  bool operator()(const int64_t& v) {
    w_->I64(v);
    return true;
  }
  bool operator()(const bool& v) {
    w_->Bool(v);
    return true;
  }
  bool operator()(const std::string& s, size_t = kMaxPath) {
    w_->Str(s);
    return true;
  }
  bool operator()(const BlobView& b, size_t = kMaxBlob) {
    w_->U32(b.size);
    w_->Raw(b.data, b.size);
    return true;
  }
  template <typename T>
  bool operator()(const std::vector<T>& v, uint32_t = kMaxList) {
    w_->U32(static_cast<uint32_t>(v.size()));
    for (const T& e : v) {
      if constexpr (std::is_class_v<T> && !std::is_same_v<T, std::string>) {
        e.Visit(*this);
      } else {
        (*this)(e);
      }
    }
    return true;
  }

 private:
  BytesWriter* w_;
};

// The fewest bytes one encoded T can take: fixed fields at their width,
// strings, blobs and vectors at their empty length prefix. The decoder checks
// a declared element count against the bytes left with it, so a hostile count
// is rejected before the vector is sized (allocation stays within a small
// multiple of the message size, not count * sizeof(T)).
class MinSizeVisitor {
 public:
  template <typename T>
  bool operator()(const T&, size_t = 0) {
    if constexpr (std::is_arithmetic_v<T>) {
      n += sizeof(T);
    } else {
      n += 4;  // std::string, BlobView, std::vector: u32 length prefix
    }
    return true;
  }
  size_t n = 0;
};

template <typename T>
size_t MinWireSize() {
  if constexpr (std::is_arithmetic_v<T>) {
    return sizeof(T);
  } else if constexpr (std::is_same_v<T, std::string>) {
    return 4;
  } else {
    static const size_t n = [] {
      T probe{};
      MinSizeVisitor v;
      probe.Visit(v);
      return v.n;
    }();
    return n;
  }
}

class DecodeVisitor {
 public:
  explicit DecodeVisitor(Reader* r) : r_(r) {}
  bool operator()(uint8_t& v) { return r_->U8(&v); }
  bool operator()(uint16_t& v) { return r_->U16(&v); }
  bool operator()(uint32_t& v) { return r_->U32(&v); }
  bool operator()(uint64_t& v) { return r_->U64(&v); }
  bool operator()(int32_t& v) {
    uint32_t u = 0;
    if (!r_->U32(&u)) return false;
    v = static_cast<int32_t>(u);
    return true;
  }
  bool operator()(int64_t& v) { return r_->I64(&v); }
  bool operator()(bool& v) { return r_->Bool(&v); }
  bool operator()(std::string& s, size_t max = kMaxPath) { return r_->Str(&s, max); }
  bool operator()(BlobView& b, size_t max = kMaxBlob) { return r_->Blob(&b.data, &b.size, max); }
  template <typename T>
  bool operator()(std::vector<T>& v, uint32_t max = kMaxList) {
    uint32_t n = 0;
    if (!r_->Count(&n, max, MinWireSize<T>())) return false;
    v.clear();
    v.resize(n);
    for (T& e : v) {
      bool ok;
      if constexpr (std::is_class_v<T> && !std::is_same_v<T, std::string>) {
        ok = e.Visit(*this);
      } else {
        ok = (*this)(e);
      }
      if (!ok) return false;
    }
    return true;
  }

 private:
  Reader* r_;
};

// --- envelope ----------------------------------------------------------------

// Encodes header + body into `out` (emptied first; give it the capacity the
// message needs to avoid reallocation, e.g. a pooled buffer for data slices).
// body_size is filled in.
template <typename Body>
Buffer EncodeMessageInto(std::shared_ptr<Bytes> out, Header h, const Body& body) {
  out->clear();
  BytesWriter w(out.get());
  EncodeVisitor ev(&w);
  h.body_size = 0;  // patched below
  h.Visit(ev);
  body.Visit(ev);
  w.PatchU32(kHeaderSize - 4, static_cast<uint32_t>(out->size() - kHeaderSize));
  return out;
}

// For Transport::SendWithTail: `head` holds a message whose last field is a
// blob encoded empty; makes it announce `n` bytes that follow it (the blob's
// length prefix and the body size grow by n).
inline void AnnounceTail(Bytes* head, uint32_t n) {
  uint32_t blob = 0, body = 0;
  std::memcpy(&blob, head->data() + head->size() - 4, 4);
  std::memcpy(&body, head->data() + kHeaderSize - 4, 4);
  blob += n;
  body += n;
  std::memcpy(head->data() + head->size() - 4, &blob, 4);
  std::memcpy(head->data() + kHeaderSize - 4, &body, 4);
}

// Encodes header + body into a fresh buffer. body_size is filled in.
template <typename Body>
Buffer EncodeMessage(Header h, const Body& body) {
  auto out = std::make_shared<Bytes>();
  out->reserve(kHeaderSize + 64);
  return EncodeMessageInto(std::move(out), h, body);
}

// Parses and validates the envelope. Refuses a wrong magic, an unknown
// version (with a message naming both versions) and a body size that does not
// match the buffer.
Status DecodeHeader(const uint8_t* data, size_t n, Header* h);

// Decodes a body; the whole body must be consumed.
template <typename Body>
Status DecodeBody(const uint8_t* data, size_t n, Body* body) {
  if (n < kHeaderSize) return Status::Protocol("message shorter than its header");
  Reader r(data + kHeaderSize, n - kHeaderSize);
  DecodeVisitor dv(&r);
  if (!body->Visit(dv) || !r.done()) {
    return Status::Protocol("malformed body");
  }
  return Status::OK();
}

// An empty body (requests and replies that carry no fields).
struct Empty {
  template <class V>
  bool Visit(V&) const {
    return true;
  }
};

// The body of a failed reply: the error message.
struct ErrorBody {
  std::string message;
  GFS_VISIT_FIELDS;
  template <class S, class V>
  static bool Fields(S& s, V& v) {
    return v(s.message, 1024);
  }
};

}  // namespace gfs
