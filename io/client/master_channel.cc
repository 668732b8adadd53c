#include "io/client/master_channel.h"

#include <algorithm>

#include "io/client.h"

namespace gfs {

MasterChannel::MasterChannel(RpcClient* rpc, const JobConfig& cfg, RoleStats* stats,
                             int master_rank, std::function<void()> idle)
    : rpc_(rpc), cfg_(cfg), stats_(stats), master_(master_rank), idle_(std::move(idle)) {}

void MasterChannel::Announced(const NewMasterReq& r) {
  if (r.epoch > epoch_ && r.master >= 0) {
    master_ = r.master;
    epoch_ = r.epoch;
    rpc_->set_epoch(r.epoch);
    stats_->counters["new_masters"]++;
  }
}

Result<Message> Client::MasterRequest(const std::function<Result<uint64_t>(int, uint32_t)>& start,
                                      bool read_only, uint32_t timeout_ms) {
  return master_channel_->Request(start, read_only, timeout_ms);
}

bool MasterChannel::FindMaster(uint32_t timeout_ms) {
  // The master in question is not asked: the others know whether it leads.
  std::vector<uint64_t> ids;
  for (int r = 0; r <= cfg_.shadows; ++r) {
    if (r == master_) continue;
    auto id = rpc_->Start(r, WhoIsMasterReq{}, timeout_ms);
    if (id.ok()) ids.push_back(*id);
  }
  uint64_t best_epoch = epoch_;
  int best = -1;
  while (!ids.empty()) {
    uint64_t which = 0;
    auto m = rpc_->WaitAny(ids, &which);
    ids.erase(std::remove(ids.begin(), ids.end(), which), ids.end());
    if (!m.ok()) {
      if (m.status().code() == Code::kTimeout) break;  // the rest are silent too
      continue;
    }
    WhoIsMasterReply rep;
    if (!m->status().ok() || !m->Decode(&rep).ok() || rep.master < 0) continue;
    if (rep.epoch > best_epoch || (rep.epoch == best_epoch && best < 0)) {
      best_epoch = rep.epoch;
      best = rep.master;
    }
  }
  for (uint64_t id : ids) rpc_->Forget(id);
  if (best < 0 || (best == master_ && best_epoch == epoch_)) return false;
  const bool changed = best != master_;
  master_ = best;
  epoch_ = best_epoch;
  rpc_->set_epoch(best_epoch);
  if (changed) stats_->counters["master_failovers"]++;
  return changed;
}

Result<Message> MasterChannel::Request(const std::function<Result<uint64_t>(int, uint32_t)>& start,
                                       bool read_only, uint32_t timeout_ms) {
  if (cfg_.shadows <= 0) {
    auto id = start(master_, timeout_ms);
    if (!id.ok()) return id.status();
    return rpc_->Wait(*id);
  }
  // Fail-over. A silent master is not asked again (the request may still be
  // applied there); only a different master gets it, so a slow master does
  // not see the same mutation twice.
  const uint64_t deadline = MonoMicros() + static_cast<uint64_t>(timeout_ms) * 1000;
  const uint32_t probe_ms = std::max<uint32_t>(2 * cfg_.heartbeat_ms, 500);
  std::vector<std::pair<uint64_t, int>> live;  // (request id, rank)
  auto send = [&](int dest) {
    auto id = start(dest, timeout_ms);
    if (id.ok()) live.push_back({*id, dest});
  };
  send(master_);
  int target = master_;  // where the request went (shadows aside)
  uint64_t next_probe = MonoMicros() + probe_ms * 1000ull;
  bool tried_shadow = false;
  Status last = Status::Timeout("the master did not answer in time");
  for (;;) {
    for (size_t i = 0; i < live.size();) {
      Result<Message> out = Status::OK();
      if (!rpc_->TryTake(live[i].first, &out)) {
        ++i;
        continue;
      }
      const int from = live[i].second;
      live.erase(live.begin() + static_cast<long>(i));
      if (out.ok() && out->status().code() != Code::kNotMaster) {
        for (auto& [id, r] : live) rpc_->Forget(id);
        if (from != master_) stats_->counters["answered_by_shadow"]++;
        return out;
      }
      if (!out.ok()) {
        last = out.status();
      } else {
        last = out->status();
        next_probe = 0;  // "not the master": find the one that is, now
      }
    }
    const uint64_t now = MonoMicros();
    if (now >= deadline) break;
    if (now >= next_probe) {
      if (read_only && !tried_shadow && cfg_.shadows > 0) {
        // First offer a read to a shadow; ask who leads only if that does
        // not settle it either.
        tried_shadow = true;
        int shadow = 1 + (next_shadow_++ % cfg_.shadows);
        if (shadow == master_) shadow = 1 + (next_shadow_++ % cfg_.shadows);
        if (shadow != master_) send(shadow);
        next_probe = MonoMicros() + probe_ms * 1000ull;
        continue;
      }
      FindMaster(probe_ms);
      if (live.empty()) target = -1;  // refused ("not the master"): ask again
      next_probe = MonoMicros() + probe_ms * 1000ull;
    }
    // The master changed (announced, or found by asking): the request goes
    // to the new one; the old one is not waited for any more.
    if (master_ != target) {
      for (auto it = live.begin(); it != live.end();) {
        if (it->second == target) {
          rpc_->Forget(it->first);
          it = live.erase(it);
        } else {
          ++it;
        }
      }
      send(master_);
      target = master_;
      continue;
    }
    idle_();
  }
  for (auto& [id, r] : live) rpc_->Forget(id);
  return last;
}

}  // namespace gfs
