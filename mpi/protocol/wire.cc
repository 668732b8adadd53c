#include "mpi/protocol/wire.h"

#include <cstdio>

namespace gfs {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "wire format assumes a little-endian host");

const char* MsgTypeName(uint16_t type) {
#define GFS_PROTOCOL_NAME_ROW(name, number, text, Req, Rep) \
  case MsgType::name:                                       \
    return text;
  switch (static_cast<MsgType>(type & ~kReplyBit)) { GFS_PROTOCOL_TABLE(GFS_PROTOCOL_NAME_ROW) }
#undef GFS_PROTOCOL_NAME_ROW
  return "unknown";
}

Status DecodeHeader(const uint8_t* data, size_t n, Header* h) {
  if (n < kHeaderSize)
    return Status::Protocol("message of " + std::to_string(n) +
                            " bytes is shorter than the header");
  Reader r(data, kHeaderSize);
  DecodeVisitor dv(&r);
  if (!h->Visit(dv)) return Status::Protocol("malformed message header");
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
