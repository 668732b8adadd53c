// The client's channel to the master group: every metadata request goes to
// the master through it. When the master is silent or says it no longer
// leads, the channel asks the master group who leads now and sends the
// request there; read-only requests (stat, list, lookup) are also offered to
// a shadow master, and the first answer wins. A master announcing itself
// (kNewMaster) redirects the channel at once.
#pragma once

#include <cstdint>
#include <functional>

#include "mpi/protocol/config.h"
#include "mpi/protocol/messages.h"
#include "mpi/protocol/rpc.h"
#include "mpi/protocol/stats.h"

namespace gfs {

class MasterChannel {
 public:
  // idle: what the client does while it waits (pump its messages or sleep).
  MasterChannel(RpcClient* rpc, const JobConfig& cfg, RoleStats* stats, int master_rank,
                std::function<void()> idle);

  // Sends a request with start(dest, timeout_ms) to the master (and, when
  // read_only, maybe to a shadow) and waits for the first answer that is not
  // "not the master", failing over as above, until timeout_ms has passed.
  // A silent master is not asked again (it may still apply the request):
  // only a different master gets it, so a slow master does not see the same
  // mutation twice.
  Result<Message> Request(const std::function<Result<uint64_t>(int, uint32_t)>& start,
                          bool read_only, uint32_t timeout_ms);
  // A kNewMaster announcement: a newer epoch's master takes over.
  void Announced(const NewMasterReq& r);

 private:
  // Asks every master-group rank who the master is; true when it changed.
  bool FindMaster(uint32_t timeout_ms);

  RpcClient* rpc_;
  const JobConfig& cfg_;
  RoleStats* stats_;
  int master_;
  uint64_t epoch_ = 0;
  int next_shadow_ = 0;  // round-robin over shadows for read-only requests
  std::function<void()> idle_;
};

}  // namespace gfs
