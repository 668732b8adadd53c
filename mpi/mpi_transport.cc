#include "mpi/mpi_transport.h"

#include <climits>
#include <thread>

#include "mpi/clock.h"

namespace gfs {
namespace {
constexpr int kTag = 7;
}

Status CheckMpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return Status::OK();
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  return Status::Unavailable(std::string(what) + ": " +
                             std::string(text, static_cast<size_t>(len)));
}

MpiTransport::MpiTransport(MPI_Comm comm, uint64_t send_timeout_us)
    : send_timeout_us_(send_timeout_us) {
  init_ = CheckMpi(MPI_Comm_dup(comm, &comm_), "MPI_Comm_dup");
  if (!init_.ok()) return;
  init_ = CheckMpi(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  if (!init_.ok()) return;
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
}

MpiTransport::~MpiTransport() {
  // Give queued sends a short chance to finish (replies to peers that are
  // still alive), then cancel what is left. Buffers die with this object,
  // after MPI_Comm_free.
  uint64_t until = MonoMicros() + 2000000;
  while (!pending_.empty() && MonoMicros() < until) {
    if (!Progress()) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  for (auto& p : pending_) {
    MPI_Cancel(&p.req);
    MPI_Request_free(&p.req);
  }
  if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

Status MpiTransport::Send(int dest, Buffer data) {
  if (dest < 0 || dest >= size_)
    return Status::InvalidArgument("send to rank " + std::to_string(dest));
  if (data->size() > static_cast<size_t>(INT_MAX))
    return Status::InvalidArgument("message over 2 GiB");
  auto& c = counters_[dest];
  c.msgs_sent++;
  c.bytes_sent += data->size();
  if (dest == rank_) {
    loopback_.push_back(Incoming{rank_, std::move(data)});
    return Status::OK();
  }
  PendingSend p{MPI_REQUEST_NULL, std::move(data), dest, MonoMicros()};
  Status s = CheckMpi(MPI_Isend(p.data->data(), static_cast<int>(p.data->size()), MPI_BYTE, dest,
                                kTag, comm_, &p.req),
                      "MPI_Isend");
  if (!s.ok()) return s;
  pending_bytes_[dest] += p.data->size();
  pending_.push_back(std::move(p));
  return Status::OK();
}

bool MpiTransport::Progress() {
  bool progressed = false;
  const uint64_t now = MonoMicros();
  for (size_t i = 0; i < pending_.size();) {
    int done = 0;
    MPI_Status st;
    int rc = MPI_Test(&pending_[i].req, &done, &st);
    bool expired = !done && now - pending_[i].start_us > send_timeout_us_;
    if (rc != MPI_SUCCESS || done || expired) {
      if (!done) {
        MPI_Cancel(&pending_[i].req);
        MPI_Request_free(&pending_[i].req);
        abandoned_.push_back(pending_[i].data);
      }
      pending_bytes_[pending_[i].dest] -= pending_[i].data->size();
      pending_[i] = std::move(pending_.back());
      pending_.pop_back();
      progressed = true;
      continue;
    }
    ++i;
  }
  return progressed;
}

uint64_t MpiTransport::PendingBytesTo(int dest) const {
  auto it = pending_bytes_.find(dest);
  return it == pending_bytes_.end() ? 0 : it->second;
}

bool MpiTransport::Poll(Incoming* in) {
  if (!loopback_.empty()) {
    *in = std::move(loopback_.front());
    loopback_.pop_front();
    auto& c = counters_[rank_];
    c.msgs_recv++;
    c.bytes_recv += in->data->size();
    return true;
  }
  int flag = 0;
  MPI_Message msg;
  MPI_Status st;
  if (MPI_Improbe(MPI_ANY_SOURCE, kTag, comm_, &flag, &msg, &st) != MPI_SUCCESS || !flag) {
    return false;
  }
  int count = 0;
  MPI_Get_count(&st, MPI_BYTE, &count);
  auto buf = std::make_shared<Bytes>(static_cast<size_t>(count));
  MPI_Request req;
  if (MPI_Imrecv(buf->data(), count, MPI_BYTE, &msg, &req) != MPI_SUCCESS) return false;
  // The message is matched; it is being delivered. A sender that dies in the
  // middle must not hang us: give up after the send timeout.
  const uint64_t start = MonoMicros();
  int done = 0;
  unsigned spins = 0;
  while (true) {
    if (MPI_Test(&req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) return false;
    if (done) break;
    if (MonoMicros() - start > send_timeout_us_) {
      MPI_Cancel(&req);
      MPI_Request_free(&req);
      abandoned_.push_back(buf);
      return false;
    }
    if (++spins > 64) std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
  in->source = st.MPI_SOURCE;
  in->data = std::move(buf);
  auto& c = counters_[in->source];
  c.msgs_recv++;
  c.bytes_recv += static_cast<uint64_t>(count);
  return true;
}

}  // namespace gfs
