// The role split over Transport and Collective (jobs/roles.h).
#include "jobs/roles.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "chunk/chunk_server.h"
#include "common/hosts.h"
#include "common/log.h"
#include "master/master_server.h"

namespace gfs {

StartedRank::StartedRank() = default;
StartedRank::~StartedRank() = default;

namespace {

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

}  // namespace

Role RoleOf(const RoleLayout& l, int rank) {
  if (l.is_master(rank)) return Role::kMaster;
  if (l.is_shadow(rank)) return Role::kShadow;
  if (l.is_chunkserver(rank)) return Role::kChunkserver;
  return Role::kClient;
}

Result<std::vector<HostId>> GatherHosts(Collective* world, const std::string& host_name) {
  // Slots as wide as Open MPI's MPI_MAX_PROCESSOR_NAME (256), then the boot
  // id, then the process (pid and start time, 8 bytes each; every rank of a
  // job runs the same build, so the bytes are copied as they are).
  constexpr size_t kName = 256, kBoot = 64, kProc = 16, kSlot = kName + kBoot + kProc;
  char mine[kSlot] = {0};
  std::strncpy(mine, host_name.c_str(), kName - 1);
  std::strncpy(mine + kName, BootId().c_str(), kBoot - 1);
  int64_t pid = 0;
  uint64_t start = 0;
  SelfProcess(&pid, &start);
  std::memcpy(mine + kName + kBoot, &pid, 8);
  std::memcpy(mine + kName + kBoot + 8, &start, 8);
  std::vector<char> all(static_cast<size_t>(world->size()) * kSlot);
  GFS_RETURN_IF_ERROR(world->AllGather(mine, kSlot, all.data()));
  std::vector<HostId> out;
  for (int i = 0; i < world->size(); ++i) {
    const char* slot = &all[static_cast<size_t>(i) * kSlot];
    HostId h{std::string(slot), std::string(slot + kName)};
    std::memcpy(&h.pid, slot + kName + kBoot, 8);
    std::memcpy(&h.start_ticks, slot + kName + kBoot + 8, 8);
    out.push_back(std::move(h));
  }
  return out;
}

void WriteStats(const JobConfig& cfg, int rank, Role role, const RoleStats& st,
                const Transport& t) {
  if (cfg.stats_dir.empty()) return;
  Status s = WriteStatsJson(cfg.stats_dir, rank, RoleName(role), st, t);
  if (!s.ok()) GFS_LOG_WARN("rank %d: writing stats: %s", rank, s.ToString().c_str());
}

Status StartMasterGroupMember(Env* env, const JobConfig& cfg, const RoleLayout& l, int rank,
                              Transport* t, Collective* group, std::unique_ptr<FileLock>* lock,
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
    MasterGroup members;
    members.self = rank;
    members.members.clear();
    for (int r = 0; r < l.first_chunkserver(); ++r) members.members.push_back(r);
    *out = std::make_unique<MasterServer>(t, env, cfg, dir, cs, clients, members);
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
  const int gsize = group->size(), grank = group->rank();
  std::vector<uint64_t> all(static_cast<size_t>(gsize) * kN);
  GFS_RETURN_IF_ERROR(group->AllGather(mine, sizeof mine, all.data()));
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
    GFS_RETURN_IF_ERROR(group->Broadcast(best, &size, sizeof size));
    snap.resize(size);
    GFS_RETURN_IF_ERROR(group->Broadcast(best, snap.data(), size));
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

Status StartRank(const RankContext& ctx, const JobConfig& cfg, const RoleLayout& l,
                 StartedRank* out) {
  const int rank = ctx.rank;
  out->role = RoleOf(l, rank);
  auto hosts = GatherHosts(ctx.world, ctx.host_name);
  if (!hosts.ok()) return hosts.status();
  out->hosts = std::move(*hosts);

  // The master group (master + shadows) claims its directories, recovers,
  // and makes every copy of the metadata equal to the most advanced one
  // before anything else runs; if any member fails (e.g. another job holds
  // the data directory) the whole job stops here, on every rank, with the
  // same message.
  char err[512] = {0};
  if (ctx.group != nullptr) {
    const std::string dir =
        l.is_master(rank) ? cfg.data_dir + "/master"
                          : cfg.data_dir + "/shadow-" + std::to_string(rank - l.first_shadow() + 1);
    out->rpc_log = std::make_unique<RpcLog>(dir, static_cast<uint64_t>(cfg.rpc_log_mb) << 20);
    out->logged = std::make_unique<LoggedTransport>(ctx.transport, out->rpc_log.get());
    Status st = StartMasterGroupMember(ctx.env, cfg, l, rank, out->logged.get(), ctx.group,
                                       &out->lock, &out->master);
    if (!st.ok()) {
      std::snprintf(err, sizeof err, "%c%s", static_cast<char>(st.code()), st.message().c_str());
    }
    // The first member's error (in rank order) is the one everybody sees.
    // A failure of the exchange itself stops the job only when rank 0 (the
    // one that tells everybody) sees it.
    const int gsize = ctx.group->size();
    std::vector<char> all(static_cast<size_t>(gsize) * sizeof err);
    Status gathered = ctx.group->Gather(0, err, sizeof err, all.data());
    if (ctx.group->rank() == 0 && !gathered.ok() && err[0] == 0) {
      std::snprintf(err, sizeof err, "%c%s", static_cast<char>(gathered.code()),
                    gathered.message().c_str());
    } else if (ctx.group->rank() == 0 && gathered.ok()) {
      for (int i = 0; i < gsize; ++i) {
        const char* e = &all[static_cast<size_t>(i) * sizeof err];
        if (e[0] != 0) {
          std::memcpy(err, e, sizeof err);
          break;
        }
      }
    }
  }
  GFS_RETURN_IF_ERROR(ctx.world->Broadcast(0, err, sizeof err));
  if (err[0] != 0) return Status(static_cast<Code>(err[0]), std::string(err + 1));

  if (out->master) {
    out->master->set_hosts(out->hosts);
    out->master->set_rpc_log(out->rpc_log.get());
  }
  if (out->role == Role::kClient) {
    out->client = std::make_unique<Client>(ctx.transport, cfg, 0, out->hosts);
  }
  return Status::OK();
}

Status ServeRank(const RankContext& ctx, const JobConfig& cfg, const RoleLayout& l,
                 StartedRank* r) {
  const int rank = ctx.rank;
  if (r->master) {
    MasterServer* master = r->master.get();
    GFS_LOG_INFO("%s rank %d: serving %s: %zu files, %zu directories, %zu chunks, op log at %llu",
                 l.is_master(rank) ? "master" : "shadow", rank, master->journal()->dir().c_str(),
                 master->meta().NumFiles(), master->meta().NumDirs(), master->meta().NumChunks(),
                 static_cast<unsigned long long>(master->journal()->last_seq()));
    Status st = RunServer(r->logged.get(), master);
    GFS_LOG_DEBUG("%s rank %d: done: %s", l.is_master(rank) ? "master" : "shadow", rank,
                  st.ToString().c_str());
    WriteStats(cfg, rank, r->role, master->stats(), *ctx.transport);
    return st;
  }
  if (r->role != Role::kChunkserver) return Status::OK();
  std::string dir;
  uint64_t id = 0;
  std::unique_ptr<FileLock> lock;
  Status st =
      ClaimChunkserverDir(ctx.env, cfg.data_dir, rank - l.first_chunkserver(), &dir, &id, &lock);
  if (!st.ok()) {
    GFS_LOG_ERROR("chunkserver rank %d: %s", rank, st.ToString().c_str());
    return st;
  }
  r->rpc_log = std::make_unique<RpcLog>(dir, static_cast<uint64_t>(cfg.rpc_log_mb) << 20);
  r->logged = std::make_unique<LoggedTransport>(ctx.transport, r->rpc_log.get());
  ChunkServer cs(r->logged.get(), ctx.env, cfg, 0, dir, id,
                 r->hosts[static_cast<size_t>(rank)].name);
  std::vector<std::pair<int, HostId>> local_clients;
  for (int c = l.first_client(); c < l.world && static_cast<size_t>(c) < r->hosts.size(); ++c) {
    const HostId& h = r->hosts[static_cast<size_t>(c)];
    if (SameMachine(h, r->hosts[static_cast<size_t>(rank)])) local_clients.emplace_back(c, h);
  }
  cs.WatchClients(std::move(local_clients));
  st = cs.Start();
  if (!st.ok()) {
    GFS_LOG_ERROR("chunkserver rank %d: %s", rank, st.ToString().c_str());
    return st;
  }
  GFS_LOG_INFO("chunkserver rank %d: serving %s (id %016llx)", rank, dir.c_str(),
               static_cast<unsigned long long>(id));
  st = RunServer(r->logged.get(), &cs);
  GFS_LOG_DEBUG("chunkserver rank %d: done: %s", rank, st.ToString().c_str());
  WriteStats(cfg, rank, r->role, cs.stats(), *ctx.transport);
  return st;
}

}  // namespace gfs
