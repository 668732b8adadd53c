#include "mpi/protocol/wire.h"

#include <cstdio>

namespace gfs {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "wire format assumes a little-endian host");

const char* MsgTypeName(uint16_t type) {
  switch (static_cast<MsgType>(type & ~kReplyBit)) {
    case MsgType::kMkdir:
      return "mkdir";
    case MsgType::kCreate:
      return "create";
    case MsgType::kDelete:
      return "delete";
    case MsgType::kRename:
      return "rename";
    case MsgType::kList:
      return "list";
    case MsgType::kStat:
      return "stat";
    case MsgType::kLookup:
      return "lookup";
    case MsgType::kLease:
      return "lease";
    case MsgType::kSetLength:
      return "set-length";
    case MsgType::kClientDone:
      return "client-done";
    case MsgType::kGetStats:
      return "get-stats";
    case MsgType::kReport:
      return "report";
    case MsgType::kFsck:
      return "fsck";
    case MsgType::kVerify:
      return "verify";
    case MsgType::kCorrupt:
      return "corrupt";
    case MsgType::kClone:
      return "clone";
    case MsgType::kRegister:
      return "register";
    case MsgType::kHeartbeat:
      return "heartbeat";
    case MsgType::kPrepareChunk:
      return "prepare-chunk";
    case MsgType::kShutdown:
      return "shutdown";
    case MsgType::kPushData:
      return "push-data";
    case MsgType::kPushAck:
      return "push-ack";
    case MsgType::kWrite:
      return "write";
    case MsgType::kApply:
      return "apply";
    case MsgType::kRead:
      return "read";
    case MsgType::kReadLocal:
      return "read_local";
    case MsgType::kRepair:
      return "repair";
    case MsgType::kSync:
      return "sync";
    case MsgType::kAppend:
      return "append";
    case MsgType::kCommitted:
      return "committed";
    case MsgType::kLogBatch:
      return "log-batch";
    case MsgType::kVote:
      return "vote";
    case MsgType::kNewMaster:
      return "new-master";
    case MsgType::kWhoIsMaster:
      return "who-is-master";
  }
  return "unknown";
}

Status DecodeHeader(const uint8_t* data, size_t n, Header* h) {
  if (n < kHeaderSize)
    return Status::Protocol("message of " + std::to_string(n) +
                            " bytes is shorter than the header");
  Reader r(data, n);
  r.U32(&h->magic);
  r.U8(&h->version);
  r.U8(&h->flags);
  r.U16(&h->type);
  r.U64(&h->id);
  r.U64(&h->epoch);
  r.U32(&h->deadline_ms);
  r.U16(&h->status);
  r.U16(&h->reserved);
  r.U32(&h->body_size);
  if (h->magic != kWireMagic) return Status::Protocol("bad message magic");
  if (h->version != kWireVersion) {
    return Status::Protocol("unsupported wire format version " + std::to_string(h->version) +
                            " (this build speaks version " + std::to_string(kWireVersion) + ")");
  }
  if (static_cast<size_t>(h->body_size) != n - kHeaderSize) {
    return Status::Protocol("message body size mismatch");
  }
  return Status::OK();
}

}  // namespace gfs
