#include "mpi/protocol/rpc_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "common/log.h"
#include "common/status.h"
#include "mpi/protocol/wire.h"

namespace gfs {
namespace {

// Lines queued beyond this are dropped (and counted) rather than let a slow
// disk hold the rank's memory: the log is a diagnostic, not a record.
constexpr size_t kMaxQueued = 8u << 20;

// "2026-12-06T18:30:01.123Z": wall time to the millisecond, UTC.
void FormatTime(char* out, size_t n) {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  tm t{};
  gmtime_r(&ts.tv_sec, &t);
  const size_t k = std::strftime(out, n, "%Y-%m-%dT%H:%M:%S", &t);
  std::snprintf(out + k, n - k, ".%03dZ", static_cast<int>(ts.tv_nsec / 1000000));
}

}  // namespace

RpcLog::RpcLog(std::string dir, uint64_t max_bytes, size_t recent)
    : dir_(std::move(dir)), max_bytes_(max_bytes), recent_cap_(recent) {
  if (max_bytes_ > 0) writer_ = std::thread([this] { WriterLoop(); });
}

RpcLog::~RpcLog() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  if (writer_.joinable()) writer_.join();
  if (fd_ >= 0) close(fd_);
}

void RpcLog::Note(bool out, int peer, const uint8_t* msg, size_t bytes) {
  Header h;
  char line[256];
  char when[48];
  FormatTime(when, sizeof when);
  if (!DecodeHeader(msg, bytes, &h).ok()) {
    std::snprintf(line, sizeof line, "%s %s %s %d: %zu bytes, not a message\n", when,
                  out ? "out" : "in ", out ? "to" : "from", peer, bytes);
  } else {
    const bool reply = h.is_reply();
    const uint16_t type = static_cast<uint16_t>(h.type & ~kReplyBit);
    int k = std::snprintf(line, sizeof line,
                          "%s %s %s %s %s %d id=%" PRIu64 " epoch=%" PRIu64 " bytes=%zu", when,
                          out ? "out" : "in ", reply ? "reply" : "req  ", MsgTypeName(type),
                          out ? "to" : "from", peer, h.id, h.epoch, bytes);
    if (k > 0 && static_cast<size_t>(k) < sizeof line) {
      if (reply) {
        k += std::snprintf(line + k, sizeof line - static_cast<size_t>(k), " status=%s",
                           CodeName(static_cast<Code>(h.status)));
      } else if (h.deadline_ms != 0) {
        k += std::snprintf(line + k, sizeof line - static_cast<size_t>(k), " deadline_ms=%u",
                           h.deadline_ms);
      }
    }
    if (k < 0 || static_cast<size_t>(k) >= sizeof line - 1) k = sizeof line - 2;
    line[k] = '\n';
    line[k + 1] = 0;
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    recent_.emplace_back(line);
    if (recent_.back().back() == '\n') recent_.back().pop_back();
    if (recent_.size() > recent_cap_) recent_.pop_front();
    if (max_bytes_ == 0) return;
    if (queued_.size() > kMaxQueued) {
      ++dropped_;
      return;
    }
    const bool was_empty = queued_.empty();
    queued_ += line;
    if (!was_empty) return;  // the writer has been told already
  }
  cv_.notify_one();
}

std::vector<std::string> RpcLog::Recent() const {
  std::lock_guard<std::mutex> l(mu_);
  return std::vector<std::string>(recent_.begin(), recent_.end());
}

uint64_t RpcLog::dropped() const {
  std::lock_guard<std::mutex> l(mu_);
  return dropped_;
}

void RpcLog::WriterLoop() {
  std::string batch;
  for (;;) {
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return stop_ || !queued_.empty(); });
      if (queued_.empty() && stop_) return;
      batch.swap(queued_);
    }
    Append(batch);
    batch.clear();
  }
}

void RpcLog::Append(const std::string& text) {
  const std::string path = dir_ + "/rpc.log";
  const uint64_t roll_at = std::max<uint64_t>(max_bytes_ / 2, 1);
  size_t done = 0;
  while (done < text.size()) {
    if (fd_ >= 0 && file_bytes_ >= roll_at) {
      close(fd_);
      fd_ = -1;
      if (rename(path.c_str(), (path + ".1").c_str()) != 0) {
        GFS_LOG_WARN("rpc log: rolling %s: %s", path.c_str(), std::strerror(errno));
      }
    }
    if (fd_ < 0) {
      fd_ = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (fd_ < 0) return;  // no directory (yet): these lines are only in memory
      const off_t end = lseek(fd_, 0, SEEK_END);
      file_bytes_ = end > 0 ? static_cast<uint64_t>(end) : 0;
      if (file_bytes_ >= roll_at) continue;  // an earlier job filled it: roll first
    }
    // Up to the roll point, then on to the end of that line.
    size_t end =
        done + static_cast<size_t>(std::min<uint64_t>(roll_at - file_bytes_, text.size() - done));
    const size_t nl = text.find('\n', end == 0 ? 0 : end - 1);
    end = nl == std::string::npos ? text.size() : nl + 1;
    while (done < end) {
      const ssize_t n = write(fd_, text.data() + done, end - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      done += static_cast<size_t>(n);
      file_bytes_ += static_cast<uint64_t>(n);
    }
  }
}

Status LoggedTransport::Send(int dest, Buffer data) {
  if (data) log_->Note(true, dest, data->data(), data->size());
  return inner_->Send(dest, std::move(data));
}

Status LoggedTransport::SendWithTail(int dest, Buffer head, const uint8_t* tail, size_t n) {
  // The envelope is in the head; the size noted is the whole message's.
  if (head) log_->Note(true, dest, head->data(), head->size() + n);
  return inner_->SendWithTail(dest, std::move(head), tail, n);
}

bool LoggedTransport::Poll(Incoming* in) {
  if (!inner_->Poll(in)) return false;
  if (in->data) log_->Note(false, in->source, in->data->data(), in->data->size());
  return true;
}

}  // namespace gfs
