// The façade's own parts: construction, unsolicited messages (push acks,
// master announcements), the topology helpers every part uses (distance
// between ranks), and the idle wait.
#include "io/client.h"

#include <algorithm>
#include <filesystem>

#include "common/log.h"
#include "io/client/lease_cache.h"
#include "io/client/master_channel.h"
#include "io/client/read_state.h"

namespace gfs {

Client::Client(Transport* t, const JobConfig& cfg, int master_rank, std::vector<HostId> hosts)
    : rpc_(t),
      cfg_(cfg),
      master_channel_(std::make_unique<MasterChannel>(&rpc_, cfg_, &stats_, master_rank,
                                                      [this] { PumpOrIdle(); })),
      hosts_(std::move(hosts)),
      cache_(std::make_unique<LeaseCache>()),
      reads_(std::make_unique<ReadState>()) {
  rpc_.set_unsolicited([this](Message& m) { OnUnsolicited(m); });
  std::error_code ec;
  std::filesystem::path abs = std::filesystem::absolute(cfg_.data_dir, ec);
  data_dir_abs_ = ec ? cfg_.data_dir : abs.lexically_normal().string();
  while (data_dir_abs_.size() > 1 && data_dir_abs_.back() == '/') data_dir_abs_.pop_back();
  if (!cfg_.topology_file.empty()) {
    // Racks only order replicas: without the file every host is a rack of
    // its own, which is still correct, only less precise.
    auto topo = Topology::Load(cfg_.topology_file);
    if (topo.ok()) {
      topology_ = std::move(*topo);
    } else {
      GFS_LOG_WARN("client: %s; replicas ordered by host only", topo.status().message().c_str());
    }
  }
}

Client::~Client() = default;

void Client::OnUnsolicited(Message& m) {
  if (m.type() == MsgType::kPushAck) {
    PushAckMsg a;
    auto it = push_acks_.end();
    if (m.Decode(&a).ok()) it = push_acks_.find(a.data_id);
    if (it != push_acks_.end()) {
      it->second.count++;
      if (it->second.status == 0) it->second.status = a.status;
    }
  } else if (m.type() == MsgType::kNewMaster) {
    NewMasterReq r;
    if (m.Decode(&r).ok()) master_channel_->Announced(r);
  }
}

void Client::PumpOrIdle() {
  if (rpc_.PumpOnce()) {
    rpc_.idler().Busy();
  } else {
    rpc_.idler().Idle();
  }
}

Client::TailGuard::~TailGuard() {
  // Each such send completes or is abandoned within the send timeout.
  while (c->rpc_.transport()->TailSendsPending() > 0) c->PumpOrIdle();
}

bool Client::SameHostName(int32_t a, int32_t b) const {
  return a >= 0 && b >= 0 && static_cast<size_t>(a) < hosts_.size() &&
         static_cast<size_t>(b) < hosts_.size() &&
         hosts_[static_cast<size_t>(a)].name == hosts_[static_cast<size_t>(b)].name;
}

int Client::Distance(int32_t a, int32_t b) const {
  if (a < 0 || b < 0 || static_cast<size_t>(a) >= hosts_.size() ||
      static_cast<size_t>(b) >= hosts_.size()) {
    return 2;
  }
  const std::string& ha = hosts_[static_cast<size_t>(a)].name;
  const std::string& hb = hosts_[static_cast<size_t>(b)].name;
  if (ha == hb) return 0;
  return topology_.RackOf(ha) == topology_.RackOf(hb) ? 1 : 2;
}

std::vector<int32_t> Client::OrderByDistance(std::vector<int32_t> ranks, int from) const {
  // Greedy nearest-next: from `from`, take the nearest replica (same host,
  // then same rack, then any; the first of equals); continue from the one
  // taken, so the chain crosses each rack boundary as few times as it can.
  std::vector<int32_t> out;
  int cur = from;
  while (!ranks.empty()) {
    auto it = std::min_element(ranks.begin(), ranks.end(), [&](int32_t x, int32_t y) {
      return Distance(x, cur) < Distance(y, cur);
    });
    out.push_back(*it);
    cur = *it;
    ranks.erase(it);
  }
  return out;
}

}  // namespace gfs
