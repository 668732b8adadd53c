#include "io/tool/admin.h"

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <set>
#include <thread>

#include "common/clock.h"
#include "io/tool/commands.h"
#include "io/tool/interrupt.h"
#include "io/tool/listing.h"
#include "io/tool/output.h"

namespace gfs::tool {
namespace {

// Chunkservers as `report`, `df` and `fsck` show them: by their stable
// identity (the directory they serve and its 64-bit id), with the rank of
// this job beside it.
struct Server {
  ServerReport r;
  uint64_t capacity = 0, free = 0;
};

// Each server's capacity: the configured one; else its share of the free
// space of the file system it shares with the other chunkservers of its host
// (the ones on one host serve directories under one data directory), so that
// the free space of one disk is counted once, not once per server.
std::vector<Server> Servers(const ReportReply& rep, const JobConfig& job) {
  std::vector<Server> out;
  std::map<std::string, std::pair<uint64_t, int>> by_host;  // host -> (free, alive servers)
  for (const ServerReport& r : rep.servers) {
    if (!r.alive || job.capacity > 0) continue;
    auto& h = by_host[r.host];
    h.first = std::max(h.first, r.capacity > r.used ? r.capacity - r.used : 0);
    h.second++;
  }
  for (const ServerReport& r : rep.servers) {
    Server s;
    s.r = r;
    if (job.capacity > 0 || !r.alive) {
      s.capacity = r.capacity;
      s.free = r.alive && r.capacity > r.used ? r.capacity - r.used : 0;
    } else {
      const auto& h = by_host[r.host];
      s.free = h.first / static_cast<uint64_t>(h.second);
      s.capacity = r.used + s.free;
    }
    out.push_back(s);
  }
  std::sort(out.begin(), out.end(),
            [](const Server& a, const Server& b) { return a.r.dir_name < b.r.dir_name; });
  return out;
}

struct Totals {
  uint64_t servers = 0, alive = 0, capacity = 0, used = 0, free = 0;
};

Totals Total(const std::vector<Server>& v) {
  Totals t;
  for (const Server& s : v) {
    ++t.servers;
    if (!s.r.alive) continue;
    ++t.alive;
    t.capacity += s.capacity;
    t.used += s.r.used;
    t.free += s.free;
  }
  return t;
}

double Percent(uint64_t part, uint64_t whole) {
  return whole == 0 ? 0.0 : 100.0 * static_cast<double>(part) / static_cast<double>(whole);
}

Json ServerJson(const ServerReport& r, const Topology& topo) {
  return Json{{"id", HexId(r.id)},
              {"dir", r.dir_name},
              {"host", r.host},
              {"rack", topo.RackOf(r.host)},
              {"rank", r.rank}};
}

}  // namespace

Topology JobTopology(const JobConfig& job) {
  if (job.topology_file.empty()) return Topology();
  auto t = Topology::Load(job.topology_file);
  return t.ok() ? std::move(*t) : Topology();
}

int Report(Client* c, const JobConfig& job, const CommandArgs& a, Status* s) {
  auto rep = c->Report();
  *s = rep.status();
  if (!s->ok()) return 1;
  const bool human = a.Flag("human");
  std::vector<Server> servers = Servers(*rep, job);
  Totals t = Total(servers);
  const Topology topo = JobTopology(job);
  if (a.Flag("json")) {
    Json j;
    j["chunkservers"] = Json::array();
    for (const Server& sv : servers) {
      Json x = ServerJson(sv.r, topo);
      x["state"] = sv.r.alive ? "alive" : "dead";
      x["capacity"] = sv.capacity;
      x["used"] = sv.r.used;
      x["free"] = sv.free;
      x["chunks"] = sv.r.chunks;
      j["chunkservers"].push_back(x);
    }
    j["total"] = Json{{"chunkservers", t.servers},
                      {"alive", t.alive},
                      {"capacity", t.capacity},
                      {"used", t.used},
                      {"free", t.free}};
    j["chunks"] = rep->chunks;
    j["under_replicated"] = rep->under_replicated;
    j["missing"] = rep->lost;
    if (a.Flag("rpcs")) j["recent_rpcs"] = rep->recent_rpcs;
    PrintJson(j);
    return 0;
  }
  std::printf("%-16s  %-16s %5s %-14s %-10s %-5s %12s %12s %12s %8s\n", "identity", "dir", "rank",
              "host", "rack", "state", "capacity", "used", "free", "chunks");
  for (const Server& sv : servers) {
    std::printf("%-16s  %-16s %5d %-14s %-10s %-5s %12s %12s %12s %8u\n", HexId(sv.r.id).c_str(),
                Shown(sv.r.dir_name).c_str(), sv.r.rank, Shown(sv.r.host).c_str(),
                Shown(topo.RackOf(sv.r.host)).c_str(), sv.r.alive ? "alive" : "dead",
                Size(sv.capacity, human).c_str(), Size(sv.r.used, human).c_str(),
                Size(sv.free, human).c_str(), sv.r.chunks);
  }
  std::printf("total: %" PRIu64 " chunkservers (%" PRIu64
              " alive), capacity %s, used %s, free %s; chunks %" PRIu64
              ", under-replicated %" PRIu64 ", missing %" PRIu64 "\n",
              t.servers, t.alive, Size(t.capacity, human).c_str(), Size(t.used, human).c_str(),
              Size(t.free, human).c_str(), rep->chunks, rep->under_replicated, rep->lost);
  if (a.Flag("rpcs")) {
    std::printf("recent requests and replies at the master (oldest first):\n");
    for (const std::string& line : rep->recent_rpcs) std::printf("  %s\n", Shown(line).c_str());
  }
  if (auto st = c->ReplicationState("/"); st.ok()) {
    std::printf("rebalancing: %" PRIu64 " moves done, %s\n", st->moves_done,
                st->balanced ? "balanced" : "not balanced");
  }
  return 0;
}

int Setrep(Client* c, const CommandArgs& a, Status* s, std::string* err_path) {
  const auto& p = a.positional;
  auto r = ParseInt("replication", p[0], 1, 64);
  if (!r.ok()) {
    *s = Status::InvalidArgument("replication '" + OneLine(p[0], 60) + "' is not a number 1..64");
    return 1;
  }
  const uint32_t repl = static_cast<uint32_t>(*r);
  for (size_t i = 1; i < p.size(); ++i) {
    *err_path = p[i];
    auto n = c->SetReplication(p[i], repl);
    *s = n.status();
    if (!s->ok()) return 1;
    std::printf("replication %u set for %" PRIu64 " file%s under %s\n", repl, *n,
                *n == 1 ? "" : "s", Shown(p[i]).c_str());
  }
  if (!a.Flag("wait")) return 0;
  // Like HDFS's -w: until every chunk has exactly R complete replicas (the
  // master counts live, current, undamaged ones and no clone under way).
  for (size_t i = 1; i < p.size(); ++i) {
    *err_path = p[i];
    for (;;) {
      if (Interrupted()) {
        *s = InterruptedStatus();
        return 1;
      }
      auto st = c->ReplicationState(p[i]);
      *s = st.status();
      if (!s->ok()) return 1;
      if (st->off_target == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  std::printf("every chunk has %u replicas\n", repl);
  return 0;
}

int Balance(Client* c, const JobConfig& job, const CommandArgs& a, Status* s) {
  uint64_t wait_s = 0;
  if (const std::string* w = a.Value("wait")) {
    auto v = ParseInt("wait", *w, 0, 86400);
    *s = v.status();
    if (!s->ok()) return 1;
    wait_s = static_cast<uint64_t>(*v);
  }
  const uint64_t until = MonoMicros() + wait_s * 1000000;
  Result<ReplicationStateReply> st = Status::OK();
  // Every poll is a sample of the master's state: the most chunks seen with
  // fewer good replicas than their replication, over all of them, tells
  // whether rebalancing ever left a chunk short.
  uint64_t samples = 0, under_max = 0;
  for (;;) {
    st = c->ReplicationState("/");
    *s = st.status();
    if (!s->ok()) return 1;
    ++samples;
    under_max = std::max(under_max, st->under);
    if (st->balanced || MonoMicros() >= until || Interrupted()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::map<int32_t, ServerReport> names;
  if (auto rep = c->Report(); rep.ok()) {
    for (const ServerReport& sv : rep->servers) names[sv.rank] = sv;
  }
  const Topology topo = JobTopology(job);
  double sum = 0;
  for (const ServerBytes& b : st->servers) sum += static_cast<double>(b.chunk_bytes);
  const double mean = st->servers.empty() ? 0 : sum / static_cast<double>(st->servers.size());
  double spread = 0;  // largest distance from the mean, as a fraction of it
  for (const ServerBytes& b : st->servers) {
    if (mean > 0)
      spread = std::max(spread, std::fabs(static_cast<double>(b.chunk_bytes) - mean) / mean);
  }
  if (a.Flag("json")) {
    Json j;
    j["chunkservers"] = Json::array();
    for (const ServerBytes& b : st->servers) {
      ServerReport r = names[b.rank];
      r.rank = b.rank;
      Json x = ServerJson(r, topo);
      x["chunk_bytes"] = b.chunk_bytes;
      j["chunkservers"].push_back(x);
    }
    j["mean_bytes"] = mean;
    j["spread"] = spread;
    j["threshold"] = job.rebalance_threshold;
    j["balanced"] = st->balanced;
    j["moves"] = st->moves_done;
    j["samples"] = samples;
    j["under_replicated_max"] = under_max;
    PrintJson(j);
  } else {
    std::printf("%5s %-14s %-10s %14s\n", "rank", "host", "rack", "chunk bytes");
    for (const ServerBytes& b : st->servers) {
      const std::string host = names[b.rank].host;
      std::printf("%5d %-14s %-10s %14" PRIu64 "\n", b.rank, Shown(host).c_str(),
                  Shown(topo.RackOf(host)).c_str(), b.chunk_bytes);
    }
    std::printf("mean %.0f bytes, largest distance from it %.1f%% (threshold %.1f%%): %s; %" PRIu64
                " moves done\n",
                mean, 100 * spread, 100 * job.rebalance_threshold,
                st->balanced ? "balanced" : "not balanced", st->moves_done);
  }
  return st->balanced ? 0 : 4;
}

int Df(Client* c, const JobConfig& job, const CommandArgs& a, Status* s) {
  auto rep = c->Report();
  *s = rep.status();
  if (!s->ok()) return 1;
  Totals t = Total(Servers(*rep, job));
  const std::string fs = "gfs:" + job.data_dir;
  // What the trash holds (part of Used until the master deletes it).
  Usage trash;
  auto tst = c->Stat(kTrashDir);
  if (tst.ok()) {
    *s = Walk(c, *tst, kTrashDir, &trash);
    if (!s->ok()) return 1;
  }
  if (a.Flag("json")) {
    PrintJson(Json{{"filesystem", fs},
                   {"capacity", t.capacity},
                   {"used", t.used},
                   {"free", t.free},
                   {"use_percent", static_cast<int>(Percent(t.used, t.capacity) + 0.5)},
                   {"chunkservers", t.servers},
                   {"alive", t.alive},
                   {"trash_files", trash.files},
                   {"trash_size", trash.size},
                   {"trash_space", trash.space}});
    return 0;
  }
  const bool human = a.Flag("human");
  std::printf("%-30s %14s %14s %14s %5s\n", "Filesystem", "Size", "Used", "Available", "Use%");
  std::printf("%-30s %14s %14s %14s %4.0f%%\n", Shown(fs).c_str(), Size(t.capacity, human).c_str(),
              Size(t.used, human).c_str(), Size(t.free, human).c_str(),
              Percent(t.used, t.capacity));
  std::printf("trash: %s in %" PRIu64 " files, %s with every replica (part of Used)\n",
              Size(trash.size, human).c_str(), trash.files, Size(trash.space, human).c_str());
  return 0;
}

// fsck exit statuses (doc/options.md).
constexpr int kFsckUnderReplicated = 4;
constexpr int kFsckMissing = 5;

FsckTotals CountFsck(const std::vector<FsckFile>& files) {
  FsckTotals t;
  for (const FsckFile& f : files) {
    ++t.files;
    for (const FsckChunk& ch : f.chunks) {
      ++t.chunks;
      t.corrupt += ch.corrupt.size();
      t.stale += ch.stale;
      for (const ByteRange& r : ch.unreadable) t.unreadable_bytes += r.length;
      // Missing: no replica at all, or bytes no replica holds good (damaged
      // replicas alone, with every block good somewhere, are repairable).
      if ((ch.replicas.empty() && ch.corrupt.empty()) || !ch.unreadable.empty()) {
        ++t.missing;
      } else if (ch.replicas.size() < f.replication) {
        ++t.under;
      } else {
        ++t.healthy;
      }
    }
  }
  return t;
}

namespace {

Json RangesJson(const std::vector<ByteRange>& v, uint64_t base) {
  Json out = Json::array();
  for (const ByteRange& r : v) out.push_back(Json::array({base + r.offset, r.length}));
  return out;
}

// "A..B, C..D" of chunk ranges, at file offset `base`.
std::string RangesText(const std::vector<ByteRange>& v, uint64_t base) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(base + v[i].offset) + ".." +
         std::to_string(base + v[i].offset + v[i].length);
  }
  return s;
}

}  // namespace

int PrintFsck(const FsckReply& rep, const std::map<int32_t, ServerReport>& names,
              const Topology& topo, bool json, bool locations) {
  FsckTotals all = CountFsck(rep.files);
  const char* status = all.missing ? "missing" : all.under ? "under-replicated" : "healthy";
  auto server_json = [&](int32_t rank) {
    auto it = names.find(rank);
    if (it == names.end()) return Json{{"id", nullptr}, {"dir", nullptr}, {"rank", rank}};
    return ServerJson(it->second, topo);
  };
  // "chunkserver-1 (rank 2)"; with `where`, "chunkserver-1 (rank 2, h1/rack0)".
  auto server_text = [&](const std::vector<int32_t>& ranks, bool where) {
    std::string s = "[";
    for (size_t i = 0; i < ranks.size(); ++i) {
      if (i) s += ", ";
      auto it = names.find(ranks[i]);
      if (it == names.end()) {
        s += "rank " + std::to_string(ranks[i]);
        continue;
      }
      s += Shown(it->second.dir_name) + " (rank " + std::to_string(ranks[i]);
      if (where) s += ", " + Shown(it->second.host) + "/" + Shown(topo.RackOf(it->second.host));
      s += ")";
    }
    return s + "]";
  };
  if (json) {
    Json j;
    j["status"] = status;
    j["files"] = Json::array();
    for (const FsckFile& f : rep.files) {
      FsckTotals t = CountFsck({f});
      Json jf{{"path", f.path},
              {"size", f.length},
              {"replication", f.replication},
              {"chunks", t.chunks},
              {"healthy", t.healthy},
              {"under_replicated", t.under},
              {"missing", t.missing},
              {"corrupt_replicas", t.corrupt},
              {"stale_replicas", t.stale},
              {"unreadable_bytes", t.unreadable_bytes}};
      jf["chunk_list"] = Json::array();
      for (const FsckChunk& ch : f.chunks) {
        const uint64_t base = uint64_t{ch.index} * f.chunk_size;
        Json jc{{"index", ch.index},
                {"handle", HexId(ch.handle)},
                {"version", ch.version},
                {"stale", ch.stale}};
        jc["replicas"] = Json::array();
        for (int32_t r : ch.replicas) jc["replicas"].push_back(server_json(r));
        jc["corrupt"] = Json::array();
        for (int32_t r : ch.corrupt) jc["corrupt"].push_back(server_json(r));
        jc["damaged"] = Json::array();
        for (const ReplicaDamage& d : ch.damaged) {
          Json jd = server_json(d.rank);
          jd["ranges"] = RangesJson(d.ranges, base);
          jc["damaged"].push_back(jd);
        }
        jc["unreadable"] = RangesJson(ch.unreadable, base);
        jf["chunk_list"].push_back(jc);
      }
      j["files"].push_back(jf);
    }
    j["total"] = Json{{"files", all.files},          {"chunks", all.chunks},
                      {"healthy", all.healthy},      {"under_replicated", all.under},
                      {"missing", all.missing},      {"corrupt_replicas", all.corrupt},
                      {"stale_replicas", all.stale}, {"unreadable_bytes", all.unreadable_bytes}};
    PrintJson(j);
  } else {
    for (const FsckFile& f : rep.files) {
      FsckTotals t = CountFsck({f});
      std::printf("%s: %" PRIu64 " bytes, %" PRIu64 " chunks, replication %u: %" PRIu64
                  " healthy, %" PRIu64 " under-replicated, %" PRIu64 " missing, %" PRIu64
                  " corrupt replicas, %" PRIu64 " stale replicas\n",
                  Shown(f.path).c_str(), f.length, t.chunks, f.replication, t.healthy, t.under,
                  t.missing, t.corrupt, t.stale);
      for (const FsckChunk& ch : f.chunks) {
        const bool healthy =
            ch.replicas.size() >= f.replication && ch.corrupt.empty() && ch.stale == 0;
        if (healthy && !locations) continue;
        std::printf("  chunk %u (handle %016" PRIx64 ", version %" PRIu64
                    "): %zu of %u replicas %s, corrupt %s, stale %u\n",
                    ch.index, ch.handle, ch.version, ch.replicas.size(), f.replication,
                    server_text(ch.replicas, locations).c_str(),
                    server_text(ch.corrupt, locations).c_str(), ch.stale);
        const uint64_t base = uint64_t{ch.index} * f.chunk_size;
        for (const ReplicaDamage& d : ch.damaged) {
          std::printf("    %s damaged at bytes %s (kept; repaired from a good copy)\n",
                      server_text({d.rank}, locations).c_str(), RangesText(d.ranges, base).c_str());
        }
        if (!ch.unreadable.empty()) {
          std::printf("    unreadable: bytes %s (no replica holds a good copy)\n",
                      RangesText(ch.unreadable, base).c_str());
        }
      }
    }
    std::printf("%" PRIu64 " files, %" PRIu64 " chunks: %" PRIu64 " healthy, %" PRIu64
                " under-replicated, %" PRIu64 " missing; status: %s\n",
                all.files, all.chunks, all.healthy, all.under, all.missing, status);
  }
  return all.missing ? kFsckMissing : all.under ? kFsckUnderReplicated : 0;
}

}  // namespace gfs::tool
