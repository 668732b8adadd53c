// What a transport carries: a message is a Buffer (shared, immutable bytes),
// and the few bytes of its start that the transport itself reads. The
// protocol's envelope (mpi/protocol/wire.h, doc/wire-format.md) is laid out
// to match and checks it at compile time; the transport knows nothing else of
// what it carries.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "common/coding.h"

namespace gfs {

using Buffer = std::shared_ptr<const Bytes>;

// Every message of at least kFrameHeadSize bytes has a flags byte at
// kFrameFlagsOffset. Bit kFrameTailFollows of it belongs to the transport:
// MpiTransport sets it on the head of a message sent in two parts
// (Transport::SendWithTail) and clears it when it joins them again.
inline constexpr size_t kFrameHeadSize = 36;
inline constexpr size_t kFrameFlagsOffset = 5;
inline constexpr uint8_t kFrameTailFollows = 0x01;

}  // namespace gfs
