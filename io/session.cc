// Role split and the storage ranks' main loops (the `Init` of io/gfs.h).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "chunk/chunk_server.h"
#include "common/log.h"
#include "io/gfs.h"
#include "master/master_server.h"
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

// This machine's boot id: two hosts with one name are told apart by it.
std::string BootId() {
  std::FILE* f = std::fopen("/proc/sys/kernel/random/boot_id", "r");
  if (f == nullptr) return "";
  char buf[64] = {0};
  const bool ok = std::fgets(buf, sizeof buf, f) != nullptr;
  std::fclose(f);
  if (!ok) return "";
  std::string id(buf);
  while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
  return id;
}

// Where every rank runs (index = rank): host name and boot id.
std::vector<HostId> GatherHosts(MPI_Comm comm) {
  int size = 0;
  MPI_Comm_size(comm, &size);
  constexpr size_t kName = MPI_MAX_PROCESSOR_NAME, kBoot = 64, kSlot = kName + kBoot;
  char mine[kSlot] = {0};
  std::strncpy(mine, HostName().c_str(), kName - 1);
  std::strncpy(mine + kName, BootId().c_str(), kBoot - 1);
  std::vector<char> all(static_cast<size_t>(size) * kSlot);
  MPI_Allgather(mine, kSlot, MPI_CHAR, all.data(), kSlot, MPI_CHAR, comm);
  std::vector<HostId> out;
  for (int i = 0; i < size; ++i) {
    const char* slot = &all[static_cast<size_t>(i) * kSlot];
    out.push_back(HostId{std::string(slot), std::string(slot + kName)});
  }
  return out;
}

void WriteStats(const JobConfig& cfg, int rank, Role role, const RoleStats& st,
                const Transport& t) {
  if (cfg.stats_dir.empty()) return;
  Status s = WriteStatsJson(cfg.stats_dir, rank, RoleName(role), st, t);
  if (!s.ok()) GFS_LOG_WARN("rank %d: writing stats: %s", rank, s.ToString().c_str());
}

// Shadow directories beyond this job's shadows (an earlier job had more):
// a shadow there may have taken over and gone further than the master's
// copy. The master starts from the most advanced of them when it is ahead of
// its own; without shadows it also begins a newer epoch than any of them, so
// a stale directory never wins in a later job.
Status AdoptOutsideCopies(Env* env, const JobConfig& cfg, const RoleLayout& l, MasterServer* m) {
  uint64_t top_epoch = 0;
  bool any = false;
  for (int k = l.shadows + 1;; ++k) {
    const std::string dir = cfg.data_dir + "/shadow-" + std::to_string(k);
    if (!env->FileExists(dir)) break;
    std::unique_ptr<FileLock> lock;
    Status st = env->LockFile(dir + "/LOCK", &lock);
    if (st.code() == Code::kBusy) {
      st = Status(Code::kBusy, "data directory " + cfg.data_dir + " is in use by another job");
    }
    GFS_RETURN_IF_ERROR(st);
    MetaState state;
    MetaJournal j(env, dir);
    uint64_t seq = 0;
    std::string warning;
    GFS_RETURN_IF_ERROR(j.Open(&state, &seq, &warning));
    any = true;
    top_epoch = std::max(top_epoch, j.epoch());
    const uint64_t mine = m->journal()->epoch();
    if (j.epoch() > mine || (j.epoch() == mine && seq > m->journal()->last_seq())) {
      GFS_RETURN_IF_ERROR(m->InstallSnapshot(MetaJournal::EncodeSnapshot(state, seq, j.epoch())));
      GFS_LOG_WARN("master rank 0: copied the metadata from %s (epoch %llu, record %llu)",
                   dir.c_str(), static_cast<unsigned long long>(j.epoch()),
                   static_cast<unsigned long long>(seq));
    }
  }
  if (!any || l.shadows > 0) return Status::OK();  // the group begins the new epoch
  return m->BeginEpoch(std::max(top_epoch, m->journal()->epoch()) + 1);
}

// One member of the master group: lock its directory, recover its copy of
// the metadata, then (collectively over group_comm) agree on the most
// advanced copy (highest epoch, then sequence number), hand it to the members
// that are behind, and start a new epoch everywhere when there are shadows.
Status StartMasterGroupMember(Env* env, const JobConfig& cfg, const RoleLayout& l, int rank,
                              Transport* t, MPI_Comm group_comm, std::unique_ptr<FileLock>* lock,
                              std::unique_ptr<MasterServer>* out) {
  const std::string dir =
      l.is_master(rank) ? cfg.data_dir + "/master"
                        : cfg.data_dir + "/shadow-" + std::to_string(rank - l.first_shadow() + 1);
  Status st = env->CreateDirs(dir);
  if (st.ok()) st = env->LockFile(dir + "/LOCK", lock);
  if (st.code() == Code::kBusy) {
    st = Status(Code::kBusy, "data directory " + cfg.data_dir + " is in use by another job");
  }
  if (st.ok()) {
    uint64_t id = 0;
    st = LoadOrCreateIdentity(env, dir, &id);
  }
  if (st.ok()) {
    std::vector<int> cs, clients;
    for (int r = l.first_chunkserver(); r < l.first_client(); ++r) cs.push_back(r);
    for (int r = l.first_client(); r < l.world; ++r) clients.push_back(r);
    MasterGroup group;
    group.self = rank;
    group.members.clear();
    for (int r = 0; r < l.first_chunkserver(); ++r) group.members.push_back(r);
    *out = std::make_unique<MasterServer>(t, env, cfg, dir, cs, clients, group);
    std::string warning;
    st = (*out)->Start(&warning);
    if (!warning.empty()) {
      GFS_LOG_WARN("%s rank %d: warning: %s", l.is_master(rank) ? "master" : "shadow", rank,
                   warning.c_str());
    }
  }
  if (st.ok() && l.is_master(rank)) st = AdoptOutsideCopies(env, cfg, l, out->get());
  if (l.shadows == 0) return st;

  // Every member takes part in the exchange, failed or not.
  constexpr int kN = 4;  // ok, epoch, last sequence, store id
  uint64_t mine[kN] = {st.ok() ? 1u : 0u, 0, 0, 0};
  if (st.ok()) {
    mine[1] = (*out)->journal()->epoch();
    mine[2] = (*out)->journal()->last_seq();
    mine[3] = (*out)->store_id();
  }
  int gsize = 0, grank = 0;
  MPI_Comm_size(group_comm, &gsize);
  MPI_Comm_rank(group_comm, &grank);
  std::vector<uint64_t> all(static_cast<size_t>(gsize) * kN);
  MPI_Allgather(mine, kN, MPI_UINT64_T, all.data(), kN, MPI_UINT64_T, group_comm);
  int best = -1;
  bool all_ok = true, equal = true;
  uint64_t store = 0;
  bool stores_differ = false;
  for (int i = 0; i < gsize; ++i) {
    const uint64_t* v = &all[static_cast<size_t>(i) * kN];
    if (v[0] == 0) all_ok = false;
    if (v[3] != 0 && store != 0 && v[3] != store) stores_differ = true;
    if (v[3] != 0 && store == 0) store = v[3];
    if (best < 0) {
      best = i;
      continue;
    }
    const uint64_t* b = &all[static_cast<size_t>(best) * kN];
    if (v[1] != b[1] || v[2] != b[2]) equal = false;
    if (v[1] > b[1] || (v[1] == b[1] && v[2] > b[2])) best = i;
  }
  if (!all_ok)
    return st.ok() ? Status::Unavailable("another master-group rank failed to start") : st;
  if (stores_differ) {
    return Status(Code::kWrongStore, "the master and shadow directories under " + cfg.data_dir +
                                         " belong to different stores; refusing to start");
  }
  // A member without a store id (a new shadow directory) takes the group's.
  if (store != 0) GFS_RETURN_IF_ERROR((*out)->AdoptStore(store));
  const uint64_t* b = &all[static_cast<size_t>(best) * kN];
  if (!equal) {
    // The most advanced copy goes to everyone that differs.
    std::string snap;
    if (grank == best) snap = MetaJournal::EncodeSnapshot((*out)->meta(), b[2], b[1]);
    uint64_t size = snap.size();
    MPI_Bcast(&size, 1, MPI_UINT64_T, best, group_comm);
    snap.resize(size);
    MPI_Bcast(snap.data(), static_cast<int>(size), MPI_CHAR, best, group_comm);
    if (mine[1] != b[1] || mine[2] != b[2]) {
      st = (*out)->InstallSnapshot(snap);
      if (st.ok()) {
        std::fprintf(
            stderr, "gfs: %s rank %d: copied the metadata from rank %d (epoch %llu, record %llu)\n",
            l.is_master(rank) ? "master" : "shadow", rank, best,
            static_cast<unsigned long long>(b[1]), static_cast<unsigned long long>(b[2]));
      }
    }
  }
  // A new epoch per job: orders from any earlier master are refused.
  if (st.ok()) st = (*out)->BeginEpoch(b[1] + 1);
  return st;
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
  if (l.is_master(rank))
    s->role_ = Role::kMaster;
  else if (l.is_shadow(rank))
    s->role_ = Role::kShadow;
  else if (l.is_chunkserver(rank))
    s->role_ = Role::kChunkserver;
  else
    s->role_ = Role::kClient;

  // Collective set-up, in the same order on every rank.
  GFS_RETURN_IF_ERROR(
      CheckMpi(MPI_Comm_split(world, s->is_client() ? 0 : MPI_UNDEFINED, rank, &s->app_comm_),
               "MPI_Comm_split"));
  std::vector<HostId> hosts = GatherHosts(world);
  s->transport_ =
      std::make_unique<MpiTransport>(world, static_cast<uint64_t>(cfg.request_timeout_ms) * 2000);
  GFS_RETURN_IF_ERROR(s->transport_->init_status());

  // The master group (master + shadows) claims its directories, recovers,
  // and makes every copy of the metadata equal to the most advanced one
  // before anything else runs; if any member fails (e.g. another job holds
  // the data directory) the whole job stops here, on every rank, with the
  // same message.
  Env* env = Env::Posix();
  const bool in_group = s->role_ == Role::kMaster || s->role_ == Role::kShadow;
  MPI_Comm group_comm = MPI_COMM_NULL;
  GFS_RETURN_IF_ERROR(CheckMpi(
      MPI_Comm_split(world, in_group ? 0 : MPI_UNDEFINED, rank, &group_comm), "MPI_Comm_split"));
  std::unique_ptr<FileLock> master_lock;
  std::unique_ptr<MasterServer> master;
  char err[512] = {0};
  if (in_group) {
    Status st = StartMasterGroupMember(env, cfg, l, rank, s->transport_.get(), group_comm,
                                       &master_lock, &master);
    if (!st.ok()) {
      std::snprintf(err, sizeof err, "%c%s", static_cast<char>(st.code()), st.message().c_str());
    }
    // The first member's error (in rank order) is the one everybody sees.
    int gsize = 0;
    MPI_Comm_size(group_comm, &gsize);
    std::vector<char> all(static_cast<size_t>(gsize) * sizeof err);
    MPI_Gather(err, sizeof err, MPI_CHAR, all.data(), sizeof err, MPI_CHAR, 0, group_comm);
    if (rank == 0) {
      for (int i = 0; i < gsize; ++i) {
        const char* e = &all[static_cast<size_t>(i) * sizeof err];
        if (e[0] != 0) {
          std::memcpy(err, e, sizeof err);
          break;
        }
      }
    }
    MPI_Comm_free(&group_comm);
  }
  MPI_Bcast(err, sizeof err, MPI_CHAR, 0, world);
  if (err[0] != 0) return Status(static_cast<Code>(err[0]), std::string(err + 1));

  if (in_group) {
    GFS_LOG_INFO("%s rank %d: serving %s: %zu files, %zu directories, %zu chunks, op log at %llu",
                 l.is_master(rank) ? "master" : "shadow", rank, master->journal()->dir().c_str(),
                 master->meta().NumFiles(), master->meta().NumDirs(), master->meta().NumChunks(),
                 static_cast<unsigned long long>(master->journal()->last_seq()));
    Status st = RunServer(s->transport_.get(), master.get());
    GFS_LOG_DEBUG("%s rank %d: done: %s", l.is_master(rank) ? "master" : "shadow", rank,
                  st.ToString().c_str());
    WriteStats(cfg, rank, s->role_, master->stats(), *s->transport_);
    return st;
  }
  if (s->role_ == Role::kChunkserver) {
    std::string dir;
    uint64_t id = 0;
    std::unique_ptr<FileLock> lock;
    Status st =
        ClaimChunkserverDir(env, cfg.data_dir, rank - l.first_chunkserver(), &dir, &id, &lock);
    if (!st.ok()) {
      GFS_LOG_ERROR("chunkserver rank %d: %s", rank, st.ToString().c_str());
      return st;
    }
    ChunkServer cs(s->transport_.get(), env, cfg, 0, dir, id,
                   hosts[static_cast<size_t>(rank)].name);
    st = cs.Start();
    if (!st.ok()) {
      GFS_LOG_ERROR("chunkserver rank %d: %s", rank, st.ToString().c_str());
      return st;
    }
    GFS_LOG_INFO("chunkserver rank %d: serving %s (id %016llx)", rank, dir.c_str(),
                 static_cast<unsigned long long>(id));
    st = RunServer(s->transport_.get(), &cs);
    GFS_LOG_DEBUG("chunkserver rank %d: done: %s", rank, st.ToString().c_str());
    WriteStats(cfg, rank, s->role_, cs.stats(), *s->transport_);
    return st;
  }
  s->client_index_ = rank - l.first_client();
  s->client_ = std::make_unique<Client>(s->transport_.get(), cfg, 0, std::move(hosts));
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
