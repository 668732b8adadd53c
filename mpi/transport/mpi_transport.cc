#include "mpi/transport/mpi_transport.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <thread>

#include "common/clock.h"
#include "mpi/transport/buffer_pool.h"

namespace gfs {
namespace {
constexpr int kTag = 7;
// Messages above this size may go by rendezvous: the sender's MPI_Isend
// completes only after the receiver has taken the data, so the receiver rings
// the sender. (Open MPI's shared-memory eager limit is 4 KiB; smaller
// messages complete at the sender at once.)
constexpr int kRingSenderAbove = 2048;
// Tails smaller than this are copied into the head (one message).
constexpr size_t kMinTail = 64 * 1024;
// How long a receiver waits for a tail whose head has come.
constexpr uint64_t kTailWaitUs = 2000000;

long Futex(std::atomic<uint32_t>* word, int op, uint32_t val, const timespec* timeout) {
  return syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), op, val, timeout, nullptr, 0);
}
}  // namespace

// One per node-local rank, a cache line each. Lives in shared memory: only
// lock-free 32-bit atomics, which are address-free.
// Open MPI, on an oversubscribed node, calls sched_yield() in every MPI call
// that finds nothing to do (mpi_yield_when_idle). The transport never blocks
// in MPI -- an idle rank sleeps on its doorbell -- so that yield only gives
// the CPU away at each poll, for a whole time slice when the machine is busy
// (2 cores shared by a dozen ranks and more). It is switched off around the
// transport's own MPI calls and restored for the application's. Open MPI
// only: the setter is looked up by name, and elsewhere this does nothing.
class NoYield {
 public:
  NoYield() {
    if (Setter() != nullptr) prev_ = Setter()(false);
  }
  ~NoYield() {
    if (Setter() != nullptr) Setter()(prev_);
  }
  NoYield(const NoYield&) = delete;
  NoYield& operator=(const NoYield&) = delete;

 private:
  using SetFn = bool (*)(bool);
  static SetFn Setter() {
    static SetFn fn =
        reinterpret_cast<SetFn>(dlsym(RTLD_DEFAULT, "opal_progress_set_yield_when_idle"));
    return fn;
  }
  bool prev_ = false;
};

struct MpiTransport::Bell {
  std::atomic<uint32_t> seq;       // bumped by every ring (the futex word)
  std::atomic<uint32_t> sleeping;  // 1 while the owner may be in FUTEX_WAIT
  std::atomic<int32_t> pid;        // the owner's process id (PeerGone)
  char pad[52];
};
static_assert(std::atomic<uint32_t>::is_always_lock_free);

Status CheckMpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return Status::OK();
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  return Status::Unavailable(std::string(what) + ": " +
                             std::string(text, static_cast<size_t>(len)));
}

MpiCollective::MpiCollective(MPI_Comm comm) : comm_(comm) {
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
}

Status MpiCollective::AllGather(const void* mine, size_t n, void* all) {
  if (n > static_cast<size_t>(INT_MAX)) return Status::InvalidArgument("MPI_Allgather too large");
  const int count = static_cast<int>(n);
  return CheckMpi(MPI_Allgather(mine, count, MPI_BYTE, all, count, MPI_BYTE, comm_),
                  "MPI_Allgather");
}

Status MpiCollective::Gather(int root, const void* mine, size_t n, void* all) {
  if (n > static_cast<size_t>(INT_MAX)) return Status::InvalidArgument("MPI_Gather too large");
  const int count = static_cast<int>(n);
  return CheckMpi(MPI_Gather(mine, count, MPI_BYTE, all, count, MPI_BYTE, root, comm_),
                  "MPI_Gather");
}

Status MpiCollective::Broadcast(int root, void* data, size_t n) {
  // MPI counts are int: pieces of at most INT_MAX bytes (every member knows n).
  auto* p = static_cast<uint8_t*>(data);
  do {
    const int count = static_cast<int>(std::min(n, static_cast<size_t>(INT_MAX)));
    GFS_RETURN_IF_ERROR(CheckMpi(MPI_Bcast(p, count, MPI_BYTE, root, comm_), "MPI_Bcast"));
    p += count;
    n -= static_cast<size_t>(count);
  } while (n > 0);
  return Status::OK();
}

MpiTransport::MpiTransport(MPI_Comm comm, uint64_t send_timeout_us)
    : send_timeout_us_(send_timeout_us) {
  init_ = CheckMpi(MPI_Comm_dup(comm, &comm_), "MPI_Comm_dup");
  if (!init_.ok()) return;
  init_ = CheckMpi(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  if (!init_.ok()) return;
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  SetUpBells();
}

void MpiTransport::SetUpBells() {
  // Collective over comm_ (as the constructor is). Any failure leaves the
  // bells off on every rank of the node; nothing else depends on them.
  MPI_Comm node = MPI_COMM_NULL;
  if (MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node) !=
      MPI_SUCCESS) {
    return;
  }
  int nrank = 0, nsize = 0;
  MPI_Comm_rank(node, &nrank);
  MPI_Comm_size(node, &nsize);
  std::vector<int> members(static_cast<size_t>(nsize));
  MPI_Allgather(&rank_, 1, MPI_INT, members.data(), 1, MPI_INT, node);
  const size_t bytes = sizeof(Bell) * static_cast<size_t>(nsize);
  char name[64] = {};
  int fd = -1;
  if (nrank == 0) {
    std::snprintf(name, sizeof name, "/gfs-bells-%d-%llx", static_cast<int>(getpid()),
                  static_cast<unsigned long long>(MonoMicros()));
    fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd >= 0 && ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
      close(fd);
      shm_unlink(name);
      fd = -1;
    }
    if (fd < 0) name[0] = '\0';
  }
  MPI_Bcast(name, sizeof name, MPI_CHAR, 0, node);
  if (nrank != 0 && name[0] != '\0') fd = shm_open(name, O_RDWR, 0);
  void* p = MAP_FAILED;
  if (fd >= 0) {
    p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
  }
  if (p != MAP_FAILED) {
    static_cast<Bell*>(p)[nrank].pid.store(static_cast<int32_t>(getpid()),
                                           std::memory_order_relaxed);
  }
  // Everyone has it mapped (or failed) before the name goes away.
  int ok = p != MAP_FAILED ? 1 : 0, all = 0;
  MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, node);
  if (nrank == 0 && name[0] != '\0') shm_unlink(name);
  MPI_Comm_free(&node);
  if (all == 0) {
    if (p != MAP_FAILED) munmap(p, bytes);
    return;
  }
  bells_ = static_cast<Bell*>(p);  // zero-filled by ftruncate: counters at 0
  bells_bytes_ = bytes;
  bell_of_.assign(static_cast<size_t>(size_), -1);
  for (int i = 0; i < nsize; ++i)
    bell_of_[static_cast<size_t>(members[static_cast<size_t>(i)])] = i;
}

bool MpiTransport::PeerGone(int src) const {
  if (bells_ == nullptr || src < 0 || src >= size_) return false;
  const int i = bell_of_[static_cast<size_t>(src)];
  if (i < 0) return false;  // another node: only timeouts tell
  const int32_t pid = bells_[i].pid.load(std::memory_order_relaxed);
  return pid > 0 && kill(pid, 0) != 0 && errno == ESRCH;
}

void MpiTransport::Ring(int dest) {
  if (bells_ == nullptr || dest == rank_) return;
  const int i = bell_of_[static_cast<size_t>(dest)];
  if (i < 0) return;
  Bell& b = bells_[i];
  // Pairs with WaitForWork: either the owner sees the new count before it
  // sleeps, or we see it sleeping and wake it.
  b.seq.fetch_add(1, std::memory_order_seq_cst);
  if (b.sleeping.load(std::memory_order_seq_cst) != 0) Futex(&b.seq, FUTEX_WAKE, INT_MAX, nullptr);
}

void MpiTransport::WaitForWork(uint64_t max_us) {
  if (bells_ == nullptr || !loopback_.empty()) {
    if (loopback_.empty()) std::this_thread::sleep_for(std::chrono::microseconds(max_us));
    return;
  }
  Bell& b = bells_[bell_of_[static_cast<size_t>(rank_)]];
  b.sleeping.store(1, std::memory_order_seq_cst);
  // `bell_seen_` was read before the last Poll that found nothing, so every
  // ring since is for something that Poll may have missed: then the count
  // has moved and the wait returns at once. (No probe here: each MPI call
  // is a progress pass.)
  timespec ts;
  ts.tv_sec = static_cast<time_t>(max_us / 1000000);
  ts.tv_nsec = static_cast<long>(max_us % 1000000) * 1000;
  Futex(&b.seq, FUTEX_WAIT, bell_seen_, &ts);
  b.sleeping.store(0, std::memory_order_relaxed);
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
  if (bells_ != nullptr) munmap(bells_, bells_bytes_);
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
  const uint8_t* p = data->data();
  const size_t n = data->size();
  GFS_RETURN_IF_ERROR(Isend(dest, p, n, std::move(data)));
  Ring(dest);
  return Status::OK();
}

Status MpiTransport::Isend(int dest, const uint8_t* p, size_t n, Buffer keep) {
  PendingSend ps{MPI_REQUEST_NULL, std::move(keep), dest, MonoMicros(), n};
  Status s = CheckMpi(MPI_Isend(p, static_cast<int>(n), MPI_BYTE, dest, kTag, comm_, &ps.req),
                      "MPI_Isend");
  if (!s.ok()) return s;
  pending_bytes_[dest] += n;
  if (ps.data == nullptr) ++tails_pending_;
  pending_.push_back(std::move(ps));
  return Status::OK();
}

Status MpiTransport::SendWithTail(int dest, Buffer head, const uint8_t* tail, size_t n) {
  if (n < kMinTail || dest == rank_ || head->size() < kFrameHeadSize ||
      head->size() + n > static_cast<size_t>(INT_MAX)) {
    return Transport::SendWithTail(dest, std::move(head), tail, n);
  }
  if (dest < 0 || dest >= size_) {
    return Status::InvalidArgument("send to rank " + std::to_string(dest));
  }
  auto& c = counters_[dest];
  c.msgs_sent++;
  c.bytes_sent += head->size() + n;
  auto marked = TakeBuffer(head->size());  // a few dozen bytes
  std::memcpy(marked->data(), head->data(), head->size());
  (*marked)[kFrameFlagsOffset] |= kFrameTailFollows;
  const uint8_t* p = marked->data();
  const size_t hn = marked->size();
  GFS_RETURN_IF_ERROR(Isend(dest, p, hn, std::move(marked)));
  // The tail goes right after, on the same tag: MPI keeps the two in order.
  GFS_RETURN_IF_ERROR(Isend(dest, tail, n, nullptr));
  Ring(dest);
  return Status::OK();
}

bool MpiTransport::Progress() {
  if (pending_.empty()) return false;
  NoYield quiet;
  // One MPI_Testsome over every queued send (each MPI call is a progress
  // pass; one per loop is enough). It sets the requests it completes to
  // MPI_REQUEST_NULL in reqs_.
  reqs_.resize(pending_.size());
  for (size_t i = 0; i < pending_.size(); ++i) reqs_[i] = pending_[i].req;
  int outcount = 0;
  done_idx_.resize(pending_.size());
  const int rc = MPI_Testsome(static_cast<int>(reqs_.size()), reqs_.data(), &outcount,
                              done_idx_.data(), MPI_STATUSES_IGNORE);
  bool progressed = false;
  const uint64_t now = MonoMicros();
  for (size_t i = pending_.size(); i-- > 0;) {
    MPI_Request& req = reqs_[i];
    bool finished = req == MPI_REQUEST_NULL, failed = false;
    if (!finished && rc != MPI_SUCCESS) {
      // Some request failed (a dead peer): find out which, one by one.
      int one = 0;
      failed = MPI_Test(&req, &one, MPI_STATUS_IGNORE) != MPI_SUCCESS;
      finished = one != 0 || req == MPI_REQUEST_NULL;
    }
    const bool expired = !finished && now - pending_[i].start_us > send_timeout_us_;
    if (!finished && !failed && !expired) continue;
    if (!finished) {
      if (req != MPI_REQUEST_NULL) {
        MPI_Cancel(&req);
        MPI_Request_free(&req);
      }
      if (pending_[i].data != nullptr) abandoned_.push_back(pending_[i].data);  // MPI may read it
    }
    pending_bytes_[pending_[i].dest] -= pending_[i].bytes;
    if (pending_[i].data == nullptr) --tails_pending_;
    pending_[i] = std::move(pending_.back());
    pending_.pop_back();
    progressed = true;
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
  NoYield quiet;
  // Read before probing: a ring after this is for a message the probe may
  // not see yet (WaitForWork then returns at once).
  if (bells_ != nullptr) {
    bell_seen_ = bells_[bell_of_[static_cast<size_t>(rank_)]].seq.load(std::memory_order_seq_cst);
  }
  int flag = 0;
  MPI_Message msg;
  MPI_Status st;
  // Open MPI's MPI_Improbe matches against what has already arrived and only
  // then runs a progress pass, which may take in the very message we were
  // woken for: so a miss is followed by a second probe.
  for (int attempt = 0; attempt < 2 && flag == 0; ++attempt) {
    if (MPI_Improbe(MPI_ANY_SOURCE, kTag, comm_, &flag, &msg, &st) != MPI_SUCCESS) return false;
  }
  if (flag == 0) return false;
  int count = 0;
  MPI_Get_count(&st, MPI_BYTE, &count);
  const int src = st.MPI_SOURCE;
  auto buf = TakeBuffer(static_cast<size_t>(count));
  if (!ReceiveMatched(&msg, buf->data(), count, buf, src)) return false;
  if (count > kRingSenderAbove) Ring(src);
  auto orphan = orphan_tails_.find(src);
  if (orphan != orphan_tails_.end()) {
    // The tail of a head given up on, late: not a message.
    if (--orphan->second == 0) orphan_tails_.erase(orphan);
    return false;
  }
  if (static_cast<size_t>(count) >= kFrameHeadSize &&
      ((*buf)[kFrameFlagsOffset] & kFrameTailFollows) != 0) {
    // A head: its tail is the sender's next message. Join them.
    flag = 0;
    MPI_Status ts;
    const uint64_t start = MonoMicros();
    unsigned spins = 0;
    while (flag == 0) {
      if (MPI_Improbe(src, kTag, comm_, &flag, &msg, &ts) != MPI_SUCCESS) return false;
      if (flag != 0) break;
      if (MonoMicros() - start > kTailWaitUs || (spins % 256 == 255 && PeerGone(src))) {
        orphan_tails_[src]++;  // the sender stalled or died between the two
        ++receives_given_up_;
        return false;
      }
      if (++spins > 64) std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
    int tail = 0;
    MPI_Get_count(&ts, MPI_BYTE, &tail);
    auto whole = TakeBuffer(static_cast<size_t>(count) + static_cast<size_t>(tail));
    std::memcpy(whole->data(), buf->data(), static_cast<size_t>(count));
    if (!ReceiveMatched(&msg, whole->data() + count, tail, whole, src)) return false;
    if (tail > kRingSenderAbove) Ring(src);
    (*whole)[kFrameFlagsOffset] &= static_cast<uint8_t>(~kFrameTailFollows);
    buf = std::move(whole);
    count += tail;
  }
  in->source = src;
  in->data = std::move(buf);
  auto& c = counters_[in->source];
  c.msgs_recv++;
  c.bytes_recv += static_cast<uint64_t>(count);
  return true;
}

bool MpiTransport::ReceiveMatched(MPI_Message* msg, uint8_t* dst, int count, const Buffer& keep,
                                  int src) {
  MPI_Request req;
  if (MPI_Imrecv(dst, count, MPI_BYTE, msg, &req) != MPI_SUCCESS) return false;
  // The message is matched; it is being delivered. A sender that dies in the
  // middle must not hang us: give up after the send timeout.
  const uint64_t start = MonoMicros();
  int done = 0;
  unsigned spins = 0;
  while (true) {
    if (MPI_Test(&req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) return false;
    if (done) return true;
    // A sender that died leaves the copy undone for good (Open MPI prints
    // "Read -1 ... errno = 3"): a node-local one is seen gone at once,
    // instead of holding this rank for the whole send timeout.
    if (MonoMicros() - start > send_timeout_us_ || (spins % 256 == 255 && PeerGone(src))) {
      MPI_Cancel(&req);
      MPI_Request_free(&req);
      abandoned_.push_back(keep);
      ++receives_given_up_;
      return false;
    }
    if (++spins > 64) std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
}

}  // namespace gfs
