// gfs::Init and gfs::Finalize (jobs/gfs.h): the job's MPI set-up around the
// role split of jobs/roles.h, which sees only Transport and Collective.
#include <algorithm>
#include <memory>
#include <vector>

#include "jobs/gfs.h"
#include "jobs/roles.h"
#include "mpi/transport/mpi_transport.h"

namespace gfs {

const char* RoleName(Role r) {
  switch (r) {
    case Role::kMaster:
      return "master";
    case Role::kShadow:
      return "shadow";
    case Role::kChunkserver:
      return "chunkserver";
    case Role::kClient:
      return "client";
  }
  return "?";
}

Session::Session() = default;
Session::~Session() {
  // Resources that need MPI are released by Finalize (before MPI_Finalize).
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) {
    client_.reset();
    transport_.reset();
    if (app_comm_ != MPI_COMM_NULL) MPI_Comm_free(&app_comm_);
  } else {
    client_.release();
    transport_.release();
  }
}

Result<RoleLayout> ComputeLayout(int world, const JobConfig& cfg) {
  RoleLayout l;
  l.world = world;
  l.shadows = cfg.shadows;
  if (cfg.shadows < 0) return Status::InvalidArgument("--shadows must be >= 0");
  l.chunkservers = cfg.chunkservers >= 0 ? cfg.chunkservers : world - 2 - cfg.shadows;
  if (l.chunkservers < 1) {
    return Status::InvalidArgument("the job has " + std::to_string(world) +
                                   " ranks; it needs at least 3 (master, chunkserver, client)");
  }
  l.clients = cfg.clients >= 0 ? cfg.clients : world - 1 - l.shadows - l.chunkservers;
  if (l.clients < 1) {
    return Status::InvalidArgument("the job has " + std::to_string(world) + " ranks; " +
                                   std::to_string(1 + l.shadows + l.chunkservers) +
                                   " are storage ranks and at least 1 client is needed");
  }
  if (1 + l.shadows + l.chunkservers + l.clients != world) {
    return Status::InvalidArgument(
        "the job has " + std::to_string(world) + " ranks but the layout needs " +
        std::to_string(1 + l.shadows + l.chunkservers + l.clients) + " (1 master + " +
        std::to_string(l.shadows) + " shadows + " + std::to_string(l.chunkservers) +
        " chunkservers + " + std::to_string(l.clients) + " clients)");
  }
  uint32_t repl =
      cfg.replication ? cfg.replication : static_cast<uint32_t>(std::min(3, l.chunkservers));
  if (static_cast<int>(repl) > l.chunkservers) {
    return Status::InvalidArgument("--replication " + std::to_string(repl) + " needs at least " +
                                   std::to_string(repl) + " chunkservers (the job has " +
                                   std::to_string(l.chunkservers) + ")");
  }
  return l;
}

namespace {

std::string HostName() {
  char name[MPI_MAX_PROCESSOR_NAME] = {0};
  int len = 0;
  MPI_Get_processor_name(name, &len);
  return std::string(name, static_cast<size_t>(len));
}

}  // namespace

Status Init(MPI_Comm world, const JobConfig& cfg_in, Session* s) {
  JobConfig cfg = cfg_in;
  int rank = 0, size = 0;
  MPI_Comm_rank(world, &rank);
  MPI_Comm_size(world, &size);
  MPI_Comm_set_errhandler(world, MPI_ERRORS_RETURN);
  s->world_rank_ = rank;
  auto layout = ComputeLayout(size, cfg);
  if (!layout.ok()) return layout.status();
  s->layout_ = *layout;
  const RoleLayout& l = s->layout_;
  if (cfg.replication == 0) cfg.replication = static_cast<uint32_t>(std::min(3, l.chunkservers));
  s->cfg_ = cfg;
  s->role_ = RoleOf(l, rank);

  // Collective set-up, in the same order on every rank.
  GFS_RETURN_IF_ERROR(
      CheckMpi(MPI_Comm_split(world, s->is_client() ? 0 : MPI_UNDEFINED, rank, &s->app_comm_),
               "MPI_Comm_split"));
  s->transport_ =
      std::make_unique<MpiTransport>(world, static_cast<uint64_t>(cfg.request_timeout_ms) * 2000);
  GFS_RETURN_IF_ERROR(s->transport_->init_status());
  const bool in_group = s->role_ == Role::kMaster || s->role_ == Role::kShadow;
  MPI_Comm group_comm = MPI_COMM_NULL;
  GFS_RETURN_IF_ERROR(CheckMpi(
      MPI_Comm_split(world, in_group ? 0 : MPI_UNDEFINED, rank, &group_comm), "MPI_Comm_split"));

  // The role split itself knows no MPI: collectives go through these.
  MpiCollective world_collective(world);
  std::unique_ptr<MpiCollective> group_collective;
  if (in_group) group_collective = std::make_unique<MpiCollective>(group_comm);
  RankContext ctx;
  ctx.rank = rank;
  ctx.transport = s->transport_.get();
  ctx.world = &world_collective;
  ctx.group = group_collective.get();
  ctx.host_name = HostName();
  ctx.env = Env::Posix();
  StartedRank started;
  Status st = StartRank(ctx, cfg, l, &started);
  group_collective.reset();
  if (group_comm != MPI_COMM_NULL) MPI_Comm_free(&group_comm);
  if (!st.ok()) return st;
  if (s->role_ != Role::kClient) return ServeRank(ctx, cfg, l, &started);
  s->client_index_ = rank - l.first_client();
  s->client_ = std::move(started.client);
  return Status::OK();
}

Status Finalize(Session* s, int status) {
  if (s->finalized_) return Status::OK();
  s->finalized_ = true;
  Status st;
  if (s->client_) {
    st = s->client_->Finish(status);
    WriteStats(s->cfg_, s->world_rank_, Role::kClient, s->client_->stats(), *s->transport_);
  }
  s->client_.reset();
  s->transport_.reset();
  if (s->app_comm_ != MPI_COMM_NULL) MPI_Comm_free(&s->app_comm_);
  return st;
}

}  // namespace gfs
