// The role split over any transport: what gfs::Init (jobs/session.cc) runs on
// every rank once MPI is set up, and what unit tests run in threads over the
// in-process transport (tests/unit/roles_test.cc, shadow_test.cc). It sees
// only Transport and Collective, never MPI.
//
// A rank first starts (StartRank, collective over the job), then a storage
// rank serves until the job ends (ServeRank); a client rank gets its Client.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/env.h"
#include "common/status.h"
#include "io/client.h"
#include "jobs/gfs.h"
#include "mpi/protocol/config.h"
#include "mpi/protocol/rpc_log.h"
#include "mpi/transport/collective.h"
#include "mpi/transport/transport.h"

namespace gfs {

class MasterServer;

// The role of `rank` in a job laid out as `l`.
Role RoleOf(const RoleLayout& l, int rank);

// What one rank of a job works with, whatever carries its messages.
struct RankContext {
  int rank = -1;                   // in the job (the transport's rank)
  Transport* transport = nullptr;  // this rank's
  Collective* world = nullptr;     // every rank of the job, in rank order
  Collective* group = nullptr;     // the master group (master + shadows); null elsewhere
  std::string host_name;           // where this rank runs
  Env* env = nullptr;
};

// A rank that has started and not served yet. Owns what its role holds.
struct StartedRank {
  StartedRank();
  ~StartedRank();
  StartedRank(const StartedRank&) = delete;
  StartedRank& operator=(const StartedRank&) = delete;

  Role role = Role::kClient;
  std::vector<HostId> hosts;       // where every rank runs (index = rank)
  std::unique_ptr<FileLock> lock;  // master group: its directory's lock
  // Storage ranks: the RPC log in the role's directory, and the transport
  // that notes every message in it (the servers use this one).
  std::unique_ptr<RpcLog> rpc_log;
  std::unique_ptr<LoggedTransport> logged;
  std::unique_ptr<MasterServer> master;  // master and shadows
  std::unique_ptr<Client> client;        // clients
};

// Collective over ctx.world (and ctx.group on master-group ranks): gathers
// where every rank runs, starts the master group (StartMasterGroupMember)
// and returns the first master-group error, in rank order, on every rank, so
// the whole job stops with the same message. Client ranks get their Client.
// `cfg.replication` must be set (not 0).
Status StartRank(const RankContext& ctx, const JobConfig& cfg, const RoleLayout& l,
                 StartedRank* out);

// Serves a started storage rank until the job ends, then writes its stats
// (cfg.stats_dir). A chunkserver claims its directory and starts here; its
// errors are its own (logged, and returned on that rank only). Nothing to do
// on a client rank.
Status ServeRank(const RankContext& ctx, const JobConfig& cfg, const RoleLayout& l, StartedRank* r);

// Where every rank runs (index = rank): each rank's `host_name` and its
// machine's boot id. Collective over `world`.
Result<std::vector<HostId>> GatherHosts(Collective* world, const std::string& host_name);

// One member of the master group: locks its directory, recovers its copy of
// the metadata, then (collectively over `group`, when the job has shadows)
// agrees with the others on the most advanced copy (highest epoch, then
// sequence number), hands it to the members that are behind, and starts a new
// epoch everywhere. Every member takes part in the exchange, failed or not.
Status StartMasterGroupMember(Env* env, const JobConfig& cfg, const RoleLayout& l, int rank,
                              Transport* t, Collective* group, std::unique_ptr<FileLock>* lock,
                              std::unique_ptr<MasterServer>* out);

// Writes a rank's counters to cfg.stats_dir (when set); a failure is a
// warning. Format: doc/wire-format.md#per-rank-statistics---stats-dir-dir.
void WriteStats(const JobConfig& cfg, int rank, Role role, const RoleStats& st, const Transport& t);

}  // namespace gfs
