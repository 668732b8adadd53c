// The cluster's topology: which rack each host is in, read from a file of
// `HOST RACK` lines (the format `jobs/netns-cluster up --racks K` writes and
// `gfs --topology FILE` reads). Placement spreads a chunk's replicas over
// racks, and clients prefer nearer replicas (same host, then same rack).
#pragma once

#include <map>
#include <string>

#include "common/status.h"

namespace gfs {

class Topology {
 public:
  Topology() = default;

  // Parses the text of a topology file: one `HOST RACK` pair per line
  // (whitespace separated), `#` starts a comment, blank lines are ignored.
  // A host listed twice with two racks, or a line with one word or more than
  // two, is kInvalidArgument naming the line. `what` names the source in
  // messages (the file's path).
  static Result<Topology> Parse(const std::string& text, const std::string& what);
  // Reads and parses a file; kIOError when it cannot be read.
  static Result<Topology> Load(const std::string& path);

  // The rack of `host`: the listed one, else the host's own name (a host
  // not in the file is a rack of its own, so by default every host is one
  // failure domain); "" for an unknown host ("").
  std::string RackOf(const std::string& host) const;
  size_t hosts() const { return rack_of_.size(); }

 private:
  std::map<std::string, std::string> rack_of_;
};

}  // namespace gfs
