#include "mpi/protocol/stats.h"

#include <fstream>
#include <sstream>

#include "common/env.h"
#include "mpi/protocol/wire.h"

namespace gfs {

const char* CounterName(Counter c) {
#define GFS_COUNTER_NAME_ROW(name, text) \
  case Counter::name:                    \
    return text;
  switch (c) {
    GFS_COUNTER_TABLE(GFS_COUNTER_NAME_ROW)
    case Counter::kNumCounters:
      break;
  }
#undef GFS_COUNTER_NAME_ROW
  return "unknown";
}

uint64_t Counters::get(const std::string& name) const {
  const auto all = Named();
  auto it = all.find(name);
  return it == all.end() ? 0 : it->second;
}

std::map<std::string, uint64_t> Counters::Named() const {
  std::map<std::string, uint64_t> out;
  for (size_t i = 0; i < kNumCounters; ++i) {
    if (touched_.test(i)) out[CounterName(static_cast<Counter>(i))] = v_[i];
  }
  for (const auto& [type, n] : requests_) out[std::string("req_") + MsgTypeName(type)] = n;
  return out;
}

Status WriteStatsJson(const std::string& dir, int rank, const std::string& role,
                      const RoleStats& stats, const Transport& t) {
  std::ostringstream o;
  o << "{\"rank\":" << rank << ",\"role\":\"" << role << "\",\"counters\":{";
  bool first = true;
  for (const auto& [k, v] : stats.counters.Named()) {
    o << (first ? "" : ",") << "\"" << k << "\":" << v;
    first = false;
  }
  o << "},\"peers\":{";
  first = true;
  for (const auto& [peer, c] : t.counters()) {
    o << (first ? "" : ",") << "\"" << peer << "\":{\"msgs_sent\":" << c.msgs_sent
      << ",\"bytes_sent\":" << c.bytes_sent << ",\"msgs_recv\":" << c.msgs_recv
      << ",\"bytes_recv\":" << c.bytes_recv << "}";
    first = false;
  }
  o << "},\"push_bytes_from\":{";
  first = true;
  for (const auto& [peer, b] : stats.push_bytes_from) {
    o << (first ? "" : ",") << "\"" << peer << "\":" << b;
    first = false;
  }
  o << "},\"push_timeline\":[";
  first = true;
  for (const auto& p : stats.push_timeline) {
    o << (first ? "" : ",") << "{\"origin\":" << p.origin << ",\"data_id\":" << p.data_id
      << ",\"first_us\":" << p.first_us << ",\"last_us\":" << p.last_us << ",\"bytes\":" << p.bytes
      << "}";
    first = false;
  }
  o << "]}\n";
  Env* env = Env::Posix();
  GFS_RETURN_IF_ERROR(env->CreateDirs(dir));
  return env->WriteFileAtomic(dir + "/rank-" + std::to_string(rank) + ".json", o.str());
}

}  // namespace gfs
