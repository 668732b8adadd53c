#include "mpi/transport/inproc_transport.h"

#include <cstring>

namespace gfs {

class InProcEndpoint : public Transport {
 public:
  InProcEndpoint(InProcFabric* f, int rank) : f_(f), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return f_->size(); }
  Status Send(int dest, Buffer data) override {
    if (dest < 0 || dest >= f_->size()) return Status::InvalidArgument("bad rank");
    auto& c = counters_[dest];
    c.msgs_sent++;
    c.bytes_sent += data->size();
    // Lost, like a message to or from a dead peer.
    if (f_->dead(dest) || f_->dead(rank_) || f_->cut(rank_, dest)) return Status::OK();
    auto& box = *f_->boxes_[static_cast<size_t>(dest)];
    std::lock_guard<std::mutex> l(box.mu);
    box.q.push_back(Incoming{rank_, std::move(data)});
    return Status::OK();
  }
  bool Poll(Incoming* in) override {
    auto& box = *f_->boxes_[static_cast<size_t>(rank_)];
    std::lock_guard<std::mutex> l(box.mu);
    if (box.q.empty() || box.dead) return false;
    *in = std::move(box.q.front());
    box.q.pop_front();
    auto& c = counters_[in->source];
    c.msgs_recv++;
    c.bytes_recv += in->data->size();
    return true;
  }
  bool Progress() override { return false; }
  size_t PendingSends() const override { return 0; }
  uint64_t PendingBytesTo(int) const override { return 0; }
  const std::map<int, PeerCounters>& counters() const override { return counters_; }
  bool PeerGone(int rank) const override { return f_->dead(rank); }

 private:
  InProcFabric* f_;
  int rank_;
  std::map<int, PeerCounters> counters_;
};

InProcFabric::InProcFabric(int size)
    : cut_(new std::atomic<bool>[static_cast<size_t>(size) * static_cast<size_t>(size)]) {
  for (int i = 0; i < size * size; ++i) cut_[static_cast<size_t>(i)] = false;
  for (int i = 0; i < size; ++i) {
    boxes_.push_back(std::make_unique<Box>());
    endpoints_.push_back(std::make_unique<InProcEndpoint>(this, i));
  }
}

Transport* InProcFabric::endpoint(int rank) { return endpoints_[static_cast<size_t>(rank)].get(); }

void InProcFabric::Kill(int rank) {
  auto& box = *boxes_[static_cast<size_t>(rank)];
  std::lock_guard<std::mutex> l(box.mu);
  box.dead = true;
  box.q.clear();
}

bool InProcFabric::dead(int rank) const { return boxes_[static_cast<size_t>(rank)]->dead; }

void InProcFabric::Cut(int from, int to, bool cut) {
  cut_[static_cast<size_t>(from * size() + to)] = cut;
}

bool InProcFabric::cut(int from, int to) const {
  return cut_[static_cast<size_t>(from * size() + to)];
}

class InProcMember : public Collective {
 public:
  InProcMember(InProcGroup* g, int rank) : g_(g), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return g_->size(); }
  Status AllGather(const void* mine, size_t n, void* all) override {
    auto got = g_->Exchange(rank_, std::string(static_cast<const char*>(mine), n));
    auto* out = static_cast<char*>(all);
    for (const std::string& s : got) {
      if (s.size() != n) return Status::InvalidArgument("members gave different sizes");
      std::memcpy(out, s.data(), n);
      out += n;
    }
    return Status::OK();
  }
  Status Gather(int root, const void* mine, size_t n, void* all) override {
    if (rank_ == root) return AllGather(mine, n, all);
    g_->Exchange(rank_, std::string(static_cast<const char*>(mine), n));
    return Status::OK();
  }
  Status Broadcast(int root, void* data, size_t n) override {
    std::string mine;
    if (rank_ == root) mine.assign(static_cast<const char*>(data), n);
    auto got = g_->Exchange(rank_, std::move(mine));
    const std::string& theirs = got[static_cast<size_t>(root)];
    if (theirs.size() != n) return Status::InvalidArgument("broadcast of a different size");
    if (rank_ != root) std::memcpy(data, theirs.data(), n);
    return Status::OK();
  }

 private:
  InProcGroup* g_;
  int rank_;
};

InProcGroup::InProcGroup(int size) : given_(static_cast<size_t>(size)) {
  for (int i = 0; i < size; ++i) members_.push_back(std::make_unique<InProcMember>(this, i));
}

Collective* InProcGroup::member(int i) { return members_[static_cast<size_t>(i)].get(); }

std::vector<std::string> InProcGroup::Exchange(int i, std::string mine) {
  std::unique_lock<std::mutex> l(mu_);
  // A member cannot give twice in one round: it waits in the round it gave
  // in until every member has given, and the last one to give ends it.
  const uint64_t round = round_;
  given_[static_cast<size_t>(i)] = std::move(mine);
  if (++arrived_ == size()) {
    result_ = given_;
    arrived_ = 0;
    ++round_;
    cv_.notify_all();
  } else {
    cv_.wait(l, [&] { return round_ != round; });
  }
  // result_ is still this round's: the next round cannot end before this
  // member gives in it.
  return result_;
}

}  // namespace gfs
