// MpiTransport::SendWithTail under real MPI, two ranks.
//
// 1. A push slice sent with its 1 MiB of bytes as the message's tail (read
//    from the sender's memory in place) arrives as one message, byte-exact.
// 2. A sender that stalls between a head and its tail (longer than the
//    receiver waits) loses that message, and its late tail is dropped, not
//    taken for a message: the next message from it arrives intact.
//
// 3. (mode `dead`, under mpirun --enable-recovery) A sender that dies with a
//    large message and a head without its tail on their way: the receiver
//    gives both up as soon as it sees the process gone, instead of holding
//    the rank for the send timeout (10 s here) or the tail wait (2 s).
//
// Usage: mpirun -np 2 transport_tails RESULT_FILE [dead]
// Writes OK or FAIL <why> to RESULT_FILE; exit status 0 only for OK.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "mpi/protocol/messages.h"
#include "mpi/protocol/rpc.h"
#include "mpi/transport/buffer_pool.h"
#include "mpi/transport/mpi_transport.h"

namespace {

using gfs::Buffer;
using gfs::PushDataMsg;

constexpr size_t kTail = 1 << 20;

std::shared_ptr<gfs::Bytes> Head(uint64_t data_id, uint32_t tail_len) {
  PushDataMsg p;
  p.origin = 0;
  p.data_id = data_id;
  p.total = tail_len;
  p.chain = {1};
  gfs::Header h;
  h.type = static_cast<uint16_t>(PushDataMsg::kType);
  auto out = gfs::TakeBuffer(0, 256);
  gfs::EncodeMessageInto(out, h, p);
  gfs::AnnounceTail(out.get(), tail_len);
  return out;
}

void Drain(gfs::MpiTransport* t) {
  while (t->PendingSends() > 0) {
    if (!t->Progress()) std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

}  // namespace

// Mode `dead`: rank 0 sends a 1 MiB message and a head whose tail never
// comes, then dies; rank 1 polls after it is gone. No MPI_Finalize (a peer
// is dead): the verdict is in the result file.
int DeadSender(const char* result) {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  std::vector<uint8_t> tail(kTail, 0x5a);
  gfs::MpiTransport t(MPI_COMM_WORLD, 10000000);
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) {
    PushDataMsg big;
    big.origin = 0;
    big.data_id = 7;
    big.total = kTail;
    big.chain = {1};
    big.bytes = gfs::BlobView{tail.data(), kTail};
    gfs::Header h;
    h.type = static_cast<uint16_t>(PushDataMsg::kType);
    // This rank dies right after: the receiver's verdict is what counts.
    (void)t.Send(1, gfs::EncodeMessage(h, big));
    auto head = Head(8, kTail);
    (*head)[5] |= 0x01;
    (void)t.Send(1, head);
    for (int i = 0; i < 20; ++i) {
      t.Progress();
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::fflush(nullptr);
    _exit(0);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // rank 0 is gone
  std::string why;
  double longest = 0;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < until) {
    gfs::Incoming in;
    const auto t0 = std::chrono::steady_clock::now();
    const bool got = t.Poll(&in);
    const double took =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    longest = std::max(longest, took);
    if (got) why = "a message of a dead sender was delivered";
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (why.empty() && t.receives_given_up() == 0) why = "nothing of the dead sender's was seen";
  if (why.empty() && longest > 1.0) {
    why = "one poll took " + std::to_string(longest) + " s with the sender gone";
  }
  if (FILE* f = std::fopen(result, "w")) {
    std::fprintf(f, "%s\n", why.empty() ? "OK" : ("FAIL " + why).c_str());
    std::fclose(f);
  }
  std::fprintf(stderr, "transport_tails dead: given up %llu, longest poll %.3f s\n",
               static_cast<unsigned long long>(t.receives_given_up()), longest);
  std::fflush(nullptr);
  _exit(why.empty() ? 0 : 1);
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  if (argc >= 3 && std::string(argv[2]) == "dead") return DeadSender(argv[1]);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  std::string why;
  if (argc < 2 || size != 2) why = "usage: mpirun -np 2 transport_tails RESULT_FILE";
  std::vector<uint8_t> tail(kTail);
  for (size_t i = 0; i < kTail; ++i) tail[i] = static_cast<uint8_t>(i * 131 + 7);
  if (why.empty()) {
    gfs::MpiTransport t(MPI_COMM_WORLD, 10000000);
    if (rank == 0) {
      // 1: the real thing.
      if (!t.SendWithTail(1, Head(1, kTail), tail.data(), kTail).ok()) why = "send 1";
      Drain(&t);
      // 2: the same head, marked by hand (flags bit 0x01), then a stall,
      // then its tail and a normal message.
      auto head = Head(2, kTail);
      (*head)[5] |= 0x01;
      if (!t.Send(1, head).ok()) why = "send 2";
      Drain(&t);
      std::this_thread::sleep_for(std::chrono::seconds(3));
      auto late = gfs::TakeBuffer(kTail);
      std::memcpy(late->data(), tail.data(), kTail);
      if (!t.Send(1, late).ok()) why = "send 2 (late tail)";
      PushDataMsg small;
      small.origin = 0;
      small.data_id = 3;
      small.total = 5;
      small.chain = {1};
      small.bytes = gfs::BlobView{tail.data(), 5};
      gfs::Header h;
      h.type = static_cast<uint16_t>(PushDataMsg::kType);
      if (!t.Send(1, gfs::EncodeMessage(h, small)).ok()) why = "send 3";
      Drain(&t);
    } else {
      std::vector<uint64_t> got;
      const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      while (why.empty() && std::chrono::steady_clock::now() < until &&
             (got.empty() || got.back() != 3)) {
        gfs::Incoming in;
        if (!t.Poll(&in)) {
          std::this_thread::sleep_for(std::chrono::microseconds(200));
          continue;
        }
        gfs::Message m;
        PushDataMsg p;
        if (!gfs::ParseMessage(std::move(in), &m).ok() || !m.Decode(&p).ok()) {
          why = "a message that does not parse was delivered";
          break;
        }
        got.push_back(p.data_id);
        const size_t want = p.data_id == 1 ? kTail : 5;
        if (p.data_id == 2) {
          why = "the stalled head was delivered";
        } else if (p.bytes.size != want || std::memcmp(p.bytes.data, tail.data(), want) != 0) {
          why = "message " + std::to_string(p.data_id) + " arrived with wrong bytes";
        }
      }
      if (why.empty() && (got.size() != 2 || got[0] != 1 || got[1] != 3)) {
        why = "expected messages 1 and 3, got " + std::to_string(got.size());
      }
    }
  }
  int bad = why.empty() ? 0 : 1, any = 0;
  MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (rank == 1 && argc >= 2) {
    if (FILE* f = std::fopen(argv[1], "w")) {
      std::fprintf(f, "%s\n", why.empty() && any == 0 ? "OK" : ("FAIL " + why).c_str());
      std::fclose(f);
    }
  }
  if (!why.empty()) std::fprintf(stderr, "transport_tails: rank %d: %s\n", rank, why.c_str());
  MPI_Finalize();
  return any == 0 ? 0 : 1;
}
