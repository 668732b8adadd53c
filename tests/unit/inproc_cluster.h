// The in-process cluster the unit tests share: a master, chunkservers and
// clients in one process over the in-process transport, each server run by
// the real event loop (EventLoop::Step) in a thread of its own.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "chunk/chunk_server.h"
#include "io/client.h"
#include "master/master_server.h"
#include "mpi/protocol/server_rpc.h"
#include "mpi/transport/inproc_transport.h"

namespace gfs {

// Runs `server` (rank `rank` of `fabric`) in a thread: EventLoop::Step with
// the idle back-off of EventLoop::Run, until the server is done or Stop().
// While the fabric says the rank is dead, or while paused, the loop does
// nothing (messages queue): a "killed" server stops serving but its thread
// lives on until Stop.
class ServerThread {
 public:
  ServerThread(InProcFabric* fabric, int rank, Server* server, uint64_t tick_us = 2000);
  ~ServerThread() { Stop(); }
  ServerThread(const ServerThread&) = delete;
  ServerThread& operator=(const ServerThread&) = delete;

  // Freezes the loop and returns once it is parked (no step under way), so
  // the caller may use the server's state from its own thread.
  void Pause();
  // Lets the loop run again; returns once it does.
  void Resume();
  // Freezes or thaws the loop without waiting for it.
  void SetPaused(bool on) { paused_ = on; }
  // Ends the loop after its current step and joins the thread.
  void Stop();

 private:
  void Loop();

  InProcFabric* fabric_;
  int rank_;
  Server* server_;
  EventLoop loop_;
  std::atomic<bool> paused_{false}, parked_{false}, stop_{false};
  std::thread thread_;
};

class InProcCluster {
 public:
  // envs[rank]: the Env (disk and clock) of the master (rank 0) and of each
  // chunkserver (ranks 1..k); missing or null: the real one. `tweak` may
  // change the job's settings. As on a cluster, every rank is on a host of
  // its own (so writes take the chain push and reads go through the
  // chunkservers); `one_host` puts them all on one host, where clients read
  // replicas short-circuit unless the tweak turns it off. `client_tweak`
  // changes the clients' settings only; `hosts`, when given, says where every
  // rank runs (names and boot ids) instead.
  explicit InProcCluster(int chunkservers, uint64_t chunk_size = 1 << 20, int clients = 1,
                         std::vector<Env*> envs = {},
                         const std::function<void(JobConfig*)>& tweak = nullptr,
                         bool one_host = false,
                         const std::function<void(JobConfig*)>& client_tweak = nullptr,
                         std::vector<HostId> hosts = {});
  // Finishes the clients (the master answers once all are done), stops the
  // servers and removes the data directory.
  ~InProcCluster();
  InProcCluster(const InProcCluster&) = delete;
  InProcCluster& operator=(const InProcCluster&) = delete;

  Client* client(int i = 0) { return clients_[static_cast<size_t>(i)].get(); }
  // Client i is finished, or stands for a rank that died: the destructor does
  // not finish it.
  void SkipFinish(int i) { finished_[static_cast<size_t>(i)] = true; }
  // Chunkserver i (0-based) stops handling messages (they queue) until
  // Resume, so a test can use its store from this thread.
  void Pause(int i) { loops_[static_cast<size_t>(i + 1)]->Pause(); }
  void Resume(int i) { loops_[static_cast<size_t>(i + 1)]->Resume(); }
  std::string dir() const { return dir_; }
  InProcFabric& fabric() { return fabric_; }
  ChunkServer* server(int i) { return servers_[static_cast<size_t>(i)].get(); }
  const MasterServer& master() { return *master_; }
  int client_rank() const { return k_ + 1; }

 private:
  static HostId HostOf(int rank, bool one_host) {
    return HostId{one_host ? "host" : "host-" + std::to_string(rank), "boot-1"};
  }
  Env* env(int rank) const {
    const auto r = static_cast<size_t>(rank);
    return r < envs_.size() && envs_[r] != nullptr ? envs_[r] : Env::Posix();
  }

  int k_;
  InProcFabric fabric_;
  std::vector<Env*> envs_;
  std::string dir_;
  JobConfig cfg_;
  std::unique_ptr<MasterServer> master_;
  std::vector<std::unique_ptr<FileLock>> locks_;
  std::vector<std::unique_ptr<ChunkServer>> servers_;
  std::vector<std::unique_ptr<Client>> clients_;
  std::vector<bool> finished_;  // by client: not to be finished by the destructor
  std::vector<std::unique_ptr<ServerThread>> loops_;  // by rank: the master, the chunkservers
};

}  // namespace gfs
