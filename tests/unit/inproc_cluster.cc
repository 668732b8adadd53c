#include "tests/unit/inproc_cluster.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>

namespace gfs {

ServerThread::ServerThread(InProcFabric* fabric, int rank, Server* server, uint64_t tick_us)
    : fabric_(fabric),
      rank_(rank),
      server_(server),
      loop_(fabric->endpoint(rank), server, EventLoop::Options{tick_us, nullptr}) {
  thread_ = std::thread([this] { Loop(); });
}

void ServerThread::Loop() {
  Idler idler;
  while (!server_->done() && !stop_) {
    const bool paused = paused_.load();
    parked_ = paused;
    if (paused || fabric_->dead(rank_)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    if (loop_.Step()) {
      idler.Busy();
    } else {
      idler.Idle();
    }
  }
  parked_ = paused_.load();
}

void ServerThread::Pause() {
  paused_ = true;
  while (!parked_.load() && thread_.joinable() && !server_->done() && !stop_) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void ServerThread::Resume() {
  paused_ = false;
  while (parked_.load() && !server_->done() && !stop_) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void ServerThread::Stop() {
  stop_ = true;
  loop_.Stop();
  if (thread_.joinable()) thread_.join();
}

InProcCluster::InProcCluster(int chunkservers, uint64_t chunk_size, int clients,
                             std::vector<Env*> envs, const std::function<void(JobConfig*)>& tweak,
                             bool one_host, const std::function<void(JobConfig*)>& client_tweak,
                             std::vector<HostId> hosts)
    : k_(chunkservers), fabric_(chunkservers + 1 + clients), envs_(std::move(envs)) {
  char tmpl[] = "/tmp/gfs-cluster-XXXXXX";
  dir_ = mkdtemp(tmpl);
  cfg_.data_dir = dir_;
  cfg_.chunk_size = chunk_size;
  cfg_.replication = static_cast<uint32_t>(std::min(3, k_));
  cfg_.request_timeout_ms = 1500;
  cfg_.heartbeat_ms = 50;
  cfg_.slice_size = 64 * 1024;
  cfg_.write_op_size = 256 * 1024;
  cfg_.read_size = 128 * 1024;
  if (tweak) tweak(&cfg_);
  if (cfg_.data_dir != dir_) {  // the tweak names an existing data directory
    std::filesystem::remove_all(dir_);
    dir_ = cfg_.data_dir;
  }
  std::vector<int> cs, client_ranks;
  for (int i = 1; i <= k_; ++i) cs.push_back(i);
  for (int i = 0; i < clients; ++i) client_ranks.push_back(k_ + 1 + i);
  master_ = std::make_unique<MasterServer>(fabric_.endpoint(0), env(0), cfg_, dir_ + "/master", cs,
                                           client_ranks);
  std::string warn;
  EXPECT_TRUE(master_->Start(&warn).ok());
  loops_.push_back(std::make_unique<ServerThread>(&fabric_, 0, master_.get()));
  for (int i = 1; i <= k_; ++i) {
    std::string d;
    uint64_t id = 0;
    locks_.emplace_back();
    EXPECT_TRUE(ClaimChunkserverDir(Env::Posix(), dir_, i - 1, &d, &id, &locks_.back()).ok());
    servers_.push_back(std::make_unique<ChunkServer>(
        fabric_.endpoint(i), env(i), cfg_, 0, d, id,
        hosts.empty() ? HostOf(i, one_host).name : hosts[static_cast<size_t>(i)].name));
    EXPECT_TRUE(servers_.back()->Start().ok());
  }
  for (int i = 1; i <= k_; ++i) {
    loops_.push_back(
        std::make_unique<ServerThread>(&fabric_, i, servers_[static_cast<size_t>(i - 1)].get()));
  }
  if (hosts.empty()) {
    for (int r = 0; r < k_ + 1 + clients; ++r) hosts.push_back(HostOf(r, one_host));
  } else {
    // Given hosts carry processes: the master and each chunkserver watch the
    // client ranks of their machine, as in a job (jobs/roles.cc).
    master_->set_hosts(hosts);
    for (int i = 1; i <= k_; ++i) {
      std::vector<std::pair<int, HostId>> mine;
      for (int c = k_ + 1; c < k_ + 1 + clients; ++c) {
        if (SameMachine(hosts[static_cast<size_t>(c)], hosts[static_cast<size_t>(i)])) {
          mine.emplace_back(c, hosts[static_cast<size_t>(c)]);
        }
      }
      servers_[static_cast<size_t>(i - 1)]->WatchClients(std::move(mine));
    }
  }
  finished_.assign(static_cast<size_t>(clients), false);
  JobConfig ccfg = cfg_;
  if (client_tweak) client_tweak(&ccfg);
  for (int i = 0; i < clients; ++i) {
    clients_.push_back(std::make_unique<Client>(fabric_.endpoint(k_ + 1 + i), ccfg, 0, hosts));
  }
}

InProcCluster::~InProcCluster() {
  // Clients finish concurrently: the master answers only once all are done.
  std::vector<std::thread> done;
  for (size_t i = 0; i < clients_.size(); ++i) {
    if (finished_[i]) continue;
    done.emplace_back([this, i] { EXPECT_TRUE(clients_[i]->Finish(0).ok()); });
  }
  for (auto& t : done) t.join();
  for (auto& l : loops_) l->Stop();
  std::filesystem::remove_all(dir_);
}

}  // namespace gfs
