// The chunkserver's directory on disk: choosing and locking one, its
// IDENTITY and the STORE it belongs to.
#include <cinttypes>
#include <cstdio>

#include "chunk/chunk_server.h"
#include "common/random.h"

namespace gfs {

Status LoadOrCreateIdentity(Env* env, const std::string& dir, uint64_t* id) {
  std::string path = dir + "/IDENTITY";
  std::string text;
  if (env->FileExists(path)) {
    GFS_RETURN_IF_ERROR(env->ReadFile(path, &text));
    if (std::sscanf(text.c_str(), "%" SCNx64, id) != 1 || *id == 0) {
      return Status::Corruption(path + ": not a valid identity");
    }
    return Status::OK();
  }
  *id = RandomIdentity();
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016" PRIx64 "\n", *id);
  return env->WriteFileAtomic(path, buf);
}

Status LoadStoreId(Env* env, const std::string& dir, uint64_t* id) {
  *id = 0;
  const std::string path = dir + "/STORE";
  if (!env->FileExists(path)) return Status::OK();
  std::string text;
  GFS_RETURN_IF_ERROR(env->ReadFile(path, &text));
  if (std::sscanf(text.c_str(), "%" SCNx64, id) != 1 || *id == 0) {
    return Status::Corruption(path + ": not a valid store identity");
  }
  return Status::OK();
}

Status SaveStoreId(Env* env, const std::string& dir, uint64_t id) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016" PRIx64 "\n", id);
  return env->WriteFileAtomic(dir + "/STORE", buf);
}

Status ClaimChunkserverDir(Env* env, const std::string& data_dir, int preferred, std::string* dir,
                           uint64_t* server_id, std::unique_ptr<FileLock>* lock) {
  for (int n = preferred; n < preferred + 4096; ++n) {
    std::string d = data_dir + "/chunkserver-" + std::to_string(n);
    GFS_RETURN_IF_ERROR(env->CreateDirs(d));
    Status s = env->LockFile(d + "/LOCK", lock);
    if (s.code() == Code::kBusy) continue;
    GFS_RETURN_IF_ERROR(s);
    GFS_RETURN_IF_ERROR(LoadOrCreateIdentity(env, d, server_id));
    *dir = d;
    return Status::OK();
  }
  return Status::Unavailable(data_dir + ": no free chunkserver directory");
}

}  // namespace gfs
