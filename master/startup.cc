// MasterServer start-up: the metadata directory's VERSION file (layout and
// store identity), replaying the op log, a new epoch, installing a snapshot
// from a more advanced member of the master group.
#include <algorithm>
#include <cstdio>

#include "common/log.h"
#include "common/random.h"
#include "master/master_server.h"

namespace gfs {

namespace {

constexpr char kVersionFile[] = "/VERSION";

// <dir>/VERSION: "gfs master layout N\nstore HEX\n". *exists false when absent.
Status LoadMasterVersion(Env* env, const std::string& dir, bool* exists, uint32_t* layout,
                         uint64_t* store) {
  *exists = false;
  *layout = 0;
  *store = 0;
  const std::string path = dir + kVersionFile;
  if (!env->FileExists(path)) return Status::OK();
  std::string text;
  GFS_RETURN_IF_ERROR(env->ReadFile(path, &text));
  unsigned l = 0;
  unsigned long long id = 0;
  if (std::sscanf(text.c_str(), "gfs master layout %u\nstore %llx", &l, &id) != 2) {
    return Status::Corruption(path + ": not a master VERSION file");
  }
  *exists = true;
  *layout = l;
  *store = id;
  return Status::OK();
}

Status SaveMasterVersion(Env* env, const std::string& dir, uint64_t store) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "gfs master layout %u\nstore %016llx\n", MasterServer::kLayout,
                static_cast<unsigned long long>(store));
  return env->WriteFileAtomic(dir + kVersionFile, buf);
}

}  // namespace

Status MasterServer::AdoptStore(uint64_t id) {
  if (id == 0 || (id == store_id_ && !fresh_)) return Status::OK();
  GFS_RETURN_IF_ERROR(SaveMasterVersion(env_, dir_, id));
  store_id_ = id;
  fresh_ = false;
  return Status::OK();
}

void MasterServer::CreateStore() {
  Status s = SaveMasterVersion(env_, dir_, store_id_);
  if (!s.ok()) {
    refusal_ = Status(s.code(), "making a new store: " + s.ToString());
    return;
  }
  fresh_ = false;
  stats_.counters["stores_created"]++;
}

Status MasterServer::Start(std::string* warning) {
  GFS_RETURN_IF_ERROR(env_->CreateDirs(dir_));
  if (cfg_.format) {
    // gfs format: the metadata this directory holds is discarded.
    std::vector<std::string> names;
    GFS_RETURN_IF_ERROR(env_->GetChildren(dir_, &names));
    for (const std::string& n : names) {
      if (n == "LOCK" || n == "IDENTITY") continue;
      GFS_RETURN_IF_ERROR(env_->RemoveFile(dir_ + "/" + n));
    }
    GFS_RETURN_IF_ERROR(env_->SyncDir(dir_));
  }
  bool has_version = false;
  uint32_t layout = 0;
  GFS_RETURN_IF_ERROR(LoadMasterVersion(env_, dir_, &has_version, &layout, &store_id_));
  if (has_version && layout != kLayout) {
    return Status::Unavailable(dir_ + " holds master metadata of layout " + std::to_string(layout) +
                               "; this build reads layout " + std::to_string(kLayout) +
                               " (and upgrades layout 1)");
  }
  uint64_t last_seq = 0;
  JournalOptions jo;
  jo.roll_bytes = cfg_.log_roll_bytes;
  jo.keep_checkpoints = static_cast<int>(cfg_.keep_checkpoints);
  log_ = std::make_unique<MetaJournal>(env_, dir_, jo);
  GFS_RETURN_IF_ERROR(log_->Open(meta_.get(), &last_seq, warning));
  if (!has_version && last_seq > 0 && group_.self == group_.members.front()) {
    // Layout 1 had no VERSION file and no store identity: the metadata is
    // kept as it is, and the store gets its identity now.
    const uint64_t id = RandomIdentity();
    GFS_RETURN_IF_ERROR(SaveMasterVersion(env_, dir_, id));
    store_id_ = id;
    upgraded_ = true;
    GFS_LOG_WARN("master: %s: metadata upgraded from layout 1 to layout %u (store %016llx)",
                 dir_.c_str(), kLayout, static_cast<unsigned long long>(id));
  }
  if (!has_version && store_id_ == 0 && last_seq == 0) {
    fresh_ = true;  // no metadata at all: a new store, once the chunkservers agree
    store_id_ = RandomIdentity();
  }
  SetEpoch(log_->epoch());
  start_us_ = Now();
  last_heard_us_ = start_us_;
  for (auto& [r, p] : peers_) p.acked = p.sent = last_seq;
  unshipped_first_ = last_seq + 1;
  stats_.counters["replayed_seq"] = last_seq;
  stats_.counters["file_bytes_received"] = 0;
  stats_.counters["lookups"] = 0;
  return Status::OK();
}

Status MasterServer::BeginEpoch(uint64_t epoch) {
  GFS_RETURN_IF_ERROR(log_->StartEpoch(epoch));
  SetEpoch(epoch);
  return Status::OK();
}

Status MasterServer::InstallSnapshot(const std::string& bytes) {
  auto fresh = std::make_unique<MetaState>();
  uint64_t seq = 0;
  GFS_RETURN_IF_ERROR(log_->InstallSnapshot(bytes, fresh.get(), &seq));
  meta_ = std::move(fresh);
  for (auto& [r, p] : peers_) p.acked = p.sent = seq;
  unshipped_first_ = seq + 1;
  stats_.counters["replayed_seq"] = seq;
  if (fresh_ && seq > 0) CreateStore();  // metadata of a store that had no identity yet
  return refusal_;
}

}  // namespace gfs
