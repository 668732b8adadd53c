#include "master/placement.h"

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <tuple>

namespace gfs {

namespace {

double UseRatio(const ServerLoad& s) {
  if (s.capacity_bytes == 0) return 1.0;
  return static_cast<double>(s.used_bytes) / static_cast<double>(s.capacity_bytes);
}

}  // namespace

std::vector<int> DefaultPlacement::ChooseNew(const std::vector<ServerLoad>& servers, int replicas,
                                             const std::vector<int>& exclude, uint64_t seed) {
  std::vector<int> out;
  if (replicas <= 0) return out;

  const std::set<int> excluded(exclude.begin(), exclude.end());
  std::set<std::string> racks_used, hosts_used;
  double sum = 0;
  int live = 0;
  for (const ServerLoad& s : servers) {
    if (!s.alive) continue;
    sum += UseRatio(s);
    ++live;
    if (excluded.count(s.id)) {
      racks_used.insert(s.rack);
      hosts_used.insert(s.host);
    }
  }
  const double avg = live > 0 ? sum / live : 0.0;

  struct Cand {
    const ServerLoad* s;
    uint64_t rnd;
  };
  std::mt19937_64 rng(seed);
  std::vector<Cand> cands;
  std::set<int> seen;
  for (const ServerLoad& s : servers) {
    uint64_t r = rng();  // drawn for every server so the stream is stable
    if (!s.alive || excluded.count(s.id) || !seen.insert(s.id).second) continue;
    if (s.capacity_bytes < s.used_bytes || s.capacity_bytes - s.used_bytes < opt_.min_free_bytes) {
      continue;
    }
    cands.push_back({&s, r});
  }

  // Scores a candidate given the racks/hosts already used; lower is better.
  auto key = [&](const Cand& c) {
    const ServerLoad& s = *c.s;
    bool over = s.recent_creations >= opt_.recent_creation_limit;
    bool rack_used = racks_used.count(s.rack) > 0;
    bool host_used = hosts_used.count(s.host) > 0;
    double u = UseRatio(s);
    bool above = u > avg + 1e-9;
    int bucket = static_cast<int>(u * 10.0);
    // Failure domains first: a busy server on a host of its own is a better
    // pick than an idle one next to a replica already chosen.
    return std::make_tuple(rack_used, host_used, over, above, bucket, c.rnd);
  };

  while (static_cast<int>(out.size()) < replicas && !cands.empty()) {
    auto best = std::min_element(cands.begin(), cands.end(),
                                 [&](const Cand& a, const Cand& b) { return key(a) < key(b); });
    out.push_back(best->s->id);
    racks_used.insert(best->s->rack);
    hosts_used.insert(best->s->host);
    cands.erase(best);
  }
  return out;
}

std::vector<int> ChooseExtraReplicas(const std::vector<ServerLoad>& replicas, int n) {
  std::vector<ServerLoad> left = replicas;
  std::vector<int> out;
  auto count_racks = [](const std::vector<ServerLoad>& v) {
    std::set<std::string> r;
    for (const ServerLoad& s : v) r.insert(s.rack);
    return static_cast<int>(r.size());
  };
  // Two racks stay when the chunk spans two and keeps two replicas or more.
  const int keep_racks =
      std::max(1, std::min({2, count_racks(replicas), static_cast<int>(replicas.size()) - n}));
  while (static_cast<int>(out.size()) < n && !left.empty()) {
    std::map<std::string, int> per_host, per_rack;
    for (const ServerLoad& s : left) {
      per_host[s.host]++;
      per_rack[s.rack]++;
    }
    // Lower is a better replica to remove.
    auto key = [&](const ServerLoad& s) {
      return std::make_tuple(per_host[s.host] > 1 ? 0 : 1, -per_rack[s.rack], ~s.used_bytes, s.id);
    };
    int best = -1;
    for (size_t i = 0; i < left.size(); ++i) {
      std::vector<ServerLoad> rest = left;
      rest.erase(rest.begin() + static_cast<std::ptrdiff_t>(i));
      if (count_racks(rest) < keep_racks) continue;
      if (best < 0 || key(left[i]) < key(left[static_cast<size_t>(best)])) {
        best = static_cast<int>(i);
      }
    }
    if (best < 0) break;
    out.push_back(left[static_cast<size_t>(best)].id);
    left.erase(left.begin() + best);
  }
  return out;
}

bool SpreadOk(const std::vector<ServerLoad>& replicas, int live_racks, int live_hosts) {
  std::set<std::string> racks, hosts;
  for (const ServerLoad& s : replicas) {
    racks.insert(s.rack);
    hosts.insert(s.host);
  }
  const int size = static_cast<int>(replicas.size());
  return static_cast<int>(hosts.size()) >= std::min(size, live_hosts) &&
         static_cast<int>(racks.size()) >= std::min({2, size, live_racks});
}

}  // namespace gfs
