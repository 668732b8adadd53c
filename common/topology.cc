#include "common/topology.h"

#include <fstream>
#include <sstream>
#include <vector>

namespace gfs {

Result<Topology> Topology::Parse(const std::string& text, const std::string& what) {
  Topology t;
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    std::istringstream words(line);
    std::vector<std::string> w;
    for (std::string x; words >> x;) w.push_back(x);
    if (w.empty()) continue;
    const std::string where = what + ":" + std::to_string(n);
    if (w.size() != 2) {
      return Status::InvalidArgument(where + ": want one 'HOST RACK' pair per line");
    }
    auto [it, fresh] = t.rack_of_.emplace(w[0], w[1]);
    if (!fresh && it->second != w[1]) {
      return Status::InvalidArgument(where + ": host " + w[0] + " listed in racks " + it->second +
                                     " and " + w[1]);
    }
  }
  return t;
}

Result<Topology> Topology::Load(const std::string& path) {
  std::ifstream f(path);
  if (!f) return Status::IOError("cannot read topology file " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  if (f.bad()) return Status::IOError("cannot read topology file " + path);
  return Parse(ss.str(), path);
}

std::string Topology::RackOf(const std::string& host) const {
  auto it = rack_of_.find(host);
  return it == rack_of_.end() ? host : it->second;
}

}  // namespace gfs
