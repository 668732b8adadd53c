// The client ranks of the job, as the master follows them: the job ends once
// every client has said it is done, or has been taken as gone. A client rank
// whose process ended (a SIGKILL, a crash, its host lost) never says it is
// done; without this, the master would wait for it for ever and the job
// would hang instead of ending.
//
// Who can tell that a process ended: only a rank on the same machine (a
// process id means nothing elsewhere). The master checks the clients on its
// own machine; each chunkserver checks the clients on its machine and names
// the ended ones in its heartbeats. A client whose machine has no live
// storage rank left (the machine was lost, or never had one) is taken as
// gone once it has been silent for kPresumeLostAfter heartbeat-death
// intervals after the last checker there went silent: it is "presumed lost
// with its host", and if it speaks again before the job ends it is a client
// again.
#include <algorithm>

#include "common/log.h"
#include "master/master_server.h"

namespace gfs {

namespace {
constexpr uint64_t kPresumeLostAfter = 2;
}  // namespace

void MasterServer::set_hosts(std::vector<HostId> hosts) { hosts_ = std::move(hosts); }

bool MasterServer::IsClientRank(int rank) const {
  return std::find(client_ranks_.begin(), client_ranks_.end(), rank) != client_ranks_.end();
}

void MasterServer::NoteClient(int rank, uint64_t now) {
  if (!IsClientRank(rank)) return;
  client_seen_us_[rank] = now;
  auto it = clients_gone_.find(rank);
  if (it != clients_gone_.end() && it->second.presumed && !shutting_down_) {
    GFS_LOG_WARN("master: client rank %d, presumed lost with its host, is back", rank);
    clients_gone_.erase(it);
  }
}

void MasterServer::ClientGone(int rank, bool presumed, const std::string& why) {
  if (clients_done_.count(rank) != 0 || clients_gone_.count(rank) != 0) return;
  clients_gone_[rank] = GoneClient{presumed};
  stats_.counters[Counter::kClientsGone]++;
  const std::string host =
      static_cast<size_t>(rank) < hosts_.size() ? hosts_[static_cast<size_t>(rank)].name : "?";
  GFS_LOG_WARN("master: client rank %d on %s is gone (%s): the job no longer waits for it", rank,
               host.c_str(), why.c_str());
  MaybeShutdown();
}

void MasterServer::MaybeShutdown() {
  if (shutting_down_) return;
  size_t ended = clients_done_.size();
  for (const auto& [rank, g] : clients_gone_) {
    if (clients_done_.count(rank) == 0) ++ended;
  }
  if (ended >= client_ranks_.size()) BeginShutdown();
}

void MasterServer::CheckClients(uint64_t now, uint64_t dead_after_us) {
  if (hosts_.empty() || now < next_client_check_us_) return;
  next_client_check_us_ = now + static_cast<uint64_t>(cfg_.heartbeat_ms) * 1000;
  const int self = group_.self;
  const HostId* mine =
      static_cast<size_t>(self) < hosts_.size() ? &hosts_[static_cast<size_t>(self)] : nullptr;
  for (int c : client_ranks_) {
    if (clients_done_.count(c) != 0 || clients_gone_.count(c) != 0) continue;
    if (static_cast<size_t>(c) >= hosts_.size()) continue;
    const HostId& h = hosts_[static_cast<size_t>(c)];
    if (mine != nullptr && SameMachine(*mine, h)) {
      if (ProcessEnded(h.pid, h.start_ticks)) {
        ClientGone(c, false, "its process ended");
      }
      continue;  // the master itself can tell
    }
    // Another machine: is there a live chunkserver there to tell? When
    // there is none, the latest moment one was heard from counts.
    bool checker = false;
    uint64_t checker_seen = 0;
    for (int r : cs_ranks_) {
      if (static_cast<size_t>(r) >= hosts_.size()) continue;
      if (!SameMachine(hosts_[static_cast<size_t>(r)], h)) continue;
      auto it = servers_.find(r);
      if (it == servers_.end()) continue;
      if (it->second.alive) checker = true;
      checker_seen = std::max(checker_seen, it->second.last_seen_us);
    }
    if (checker || checker_seen == 0) continue;  // told by heartbeats / nobody ever could
    auto seen = client_seen_us_.find(c);
    const uint64_t last = std::max(checker_seen, seen == client_seen_us_.end() ? 0 : seen->second);
    if (now > last && now - last > kPresumeLostAfter * dead_after_us) {
      ClientGone(c, true, "every storage rank of its host stopped and it has been silent since");
    }
  }
}

void MasterServer::NoteEndedClients(int reporter, const std::vector<int32_t>& ranks) {
  for (int32_t c : ranks) {
    if (!IsClientRank(c)) continue;
    // Only a chunkserver on the client's machine can know.
    if (static_cast<size_t>(c) < hosts_.size() && static_cast<size_t>(reporter) < hosts_.size() &&
        !SameMachine(hosts_[static_cast<size_t>(c)], hosts_[static_cast<size_t>(reporter)])) {
      continue;
    }
    ClientGone(c, false, "its process ended, says chunkserver rank " + std::to_string(reporter));
  }
}

void MasterServer::OnClientsGone(Message& m) {
  ClientsGoneReply rep;
  for (const auto& [rank, g] : clients_gone_) rep.ranks.push_back(rank);
  DeferReply(m, rep);
}

}  // namespace gfs
