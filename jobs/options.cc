#include "jobs/options.h"

#include <boost/program_options.hpp>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <set>
#include <sstream>

#include "master/oplog.h"
#include "mpi/protocol/wire.h"

namespace po = boost::program_options;

#ifndef GFS_VERSION
#define GFS_VERSION "unknown"
#endif

namespace gfs::tool {

Result<uint64_t> ParseSize(const std::string& option, const std::string& text) {
  auto bad = [&]() {
    return Status::InvalidArgument(
        "--" + option + ": '" + OneLine(text, 64) +
        "' is not a size (use a number with an optional K, M, G or T suffix)");
  };
  if (text.empty() || !std::isdigit(static_cast<unsigned char>(text[0]))) return bad();
  size_t pos = 0;
  unsigned long long v = 0;
  try {
    v = std::stoull(text, &pos);
  } catch (...) {
    return bad();
  }
  std::string suffix = text.substr(pos);
  for (auto& c : suffix) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  uint64_t mult = 1;
  if (suffix == "" || suffix == "B")
    mult = 1;
  else if (suffix == "K" || suffix == "KB" || suffix == "KIB")
    mult = 1ull << 10;
  else if (suffix == "M" || suffix == "MB" || suffix == "MIB")
    mult = 1ull << 20;
  else if (suffix == "G" || suffix == "GB" || suffix == "GIB")
    mult = 1ull << 30;
  else if (suffix == "T" || suffix == "TB" || suffix == "TIB")
    mult = 1ull << 40;
  else
    return bad();
  if (v > (~0ull) / mult) return bad();
  return static_cast<uint64_t>(v) * mult;
}

Result<int64_t> ParseInt(const std::string& option, const std::string& text, int64_t min,
                         int64_t max) {
  size_t i = (!text.empty() && text[0] == '-') ? 1 : 0;
  if (text.size() <= i || text.size() > 19 ||
      text.find_first_not_of("0123456789", i) != std::string::npos) {
    return Status::InvalidArgument("--" + option + ": '" + OneLine(text, 64) +
                                   "' is not a whole number");
  }
  int64_t v = std::stoll(text);
  if (v < min || v > max) {
    return Status::InvalidArgument("--" + option + " must be between " + std::to_string(min) +
                                   " and " + std::to_string(max) + " (got " + text + ")");
  }
  return v;
}

Result<uint64_t> ParseDuration(const std::string& option, const std::string& text) {
  std::string digits = text;
  uint64_t unit = 1;
  if (!digits.empty()) {
    switch (digits.back()) {
      case 's':
        unit = 1;
        break;
      case 'm':
        unit = 60;
        break;
      case 'h':
        unit = 3600;
        break;
      case 'd':
        unit = 86400;
        break;
      default:
        unit = 0;
    }
    if (unit != 0) {
      digits.pop_back();
    } else {
      unit = 1;
    }
  }
  const int64_t max = 3650ll * 86400 / static_cast<int64_t>(unit);
  if (digits.empty() || digits.size() > 12 ||
      digits.find_first_not_of("0123456789") != std::string::npos) {
    return Status::InvalidArgument("--" + option + ": '" + OneLine(text, 64) +
                                   "' is not a duration (seconds, or with s, m, h or d)");
  }
  const int64_t v = std::stoll(digits);
  if (v > max) return Status::InvalidArgument("--" + option + " must be at most 10 years");
  return static_cast<uint64_t>(v) * unit;
}

std::string OneLine(const std::string& s, size_t max) {
  std::string o;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  auto hex = [&](unsigned char c) {
    char b[8];
    std::snprintf(b, sizeof b, "\\x%02x", c);
    o += b;
  };
  for (size_t i = 0; i < n;) {
    if (o.size() >= max) {
      o += "...";
      break;
    }
    unsigned char c = p[i];
    if (c == '\n') {
      o += "\\n";
      ++i;
    } else if (c == '\t') {
      o += "\\t";
      ++i;
    } else if (c < 0x20 || c == 0x7f) {
      hex(c);
      ++i;
    } else if (c < 0x80) {
      o += static_cast<char>(c);
      ++i;
    } else {
      // A UTF-8 sequence is kept whole; any other byte is escaped.
      size_t len = (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
      bool ok = len > 0 && i + len <= n;
      for (size_t k = 1; ok && k < len; ++k) ok = (p[i + k] & 0xc0) == 0x80;
      if (ok) {
        o.append(s, i, len);
        i += len;
      } else {
        hex(c);
        ++i;
      }
    }
  }
  return o;
}

namespace {

// Global option values as text, checked after parsing (so that "-1" or "abc"
// get a clear message instead of a wrapped number).
struct GlobalText {
  std::string chunk_size, slice_size, capacity, log_roll, writeback, push;
  std::string chunkservers, clients, shadows, replication, lease_seconds, heartbeat_ms, timeout_ms,
      scrub, keep_checkpoints, rpc_log_mb, trash_retention, rebalance_threshold, rebalance_moves;
};

po::options_description VisibleGlobals(GlobalText* t, GlobalOptions* g) {
  JobConfig& j = g->job;
  po::options_description d("Global options (anywhere on the line)");
  d.add_options()("help", po::bool_switch(&g->help), "show this help")(
      "version", po::bool_switch(&g->version), "print the version")(
      "verbose,v", po::bool_switch(), "storage ranks log what they do (info and debug)")(
      "quiet,q", po::bool_switch(), "storage ranks log errors only")(
      "data-dir", po::value(&j.data_dir)->value_name("DIR"),
      "directory holding every role's data (default ./gfs-data)")(
      "chunkservers", po::value(&t->chunkservers)->value_name("K"),
      "chunkserver ranks (launcher default 3; rank mode: N - 2 - S)")(
      "clients", po::value(&t->clients)->value_name("C"),
      "client ranks (launcher default 1; rank mode: N - 1 - S - K)")(
      "shadows", po::value(&t->shadows)->value_name("S"), "shadow master ranks (default 0)")(
      "replication", po::value(&t->replication)->value_name("R"),
      "replicas per chunk for new files, 1..K (default min(3, K))")(
      "chunk-size", po::value(&t->chunk_size)->value_name("SIZE"),
      "chunk size for new files: a multiple of 64K, 64K..4G (default 64M)")(
      "lease-seconds", po::value(&t->lease_seconds)->value_name("N"),
      "primary lease length (default 60)")("heartbeat-ms",
                                           po::value(&t->heartbeat_ms)->value_name("N"),
                                           "chunkserver heartbeat interval (default 1000)")(
      "timeout-ms", po::value(&t->timeout_ms)->value_name("N"),
      "deadline of one request (default 30000)")(
      "capacity", po::value(&t->capacity)->value_name("SIZE"),
      "bytes each chunkserver may store, at least one chunk (default: the free space of its "
      "file system)")("scrub-mb-per-s", po::value(&t->scrub)->value_name("N"),
                      "background checksum scrubbing of idle chunks, MiB/s per chunkserver "
                      "(default 32, 0 off)")(
      "rpc-log-mb", po::value(&t->rpc_log_mb)->value_name("N"),
      "each storage rank logs its requests and replies (no file data) to rpc.log in its "
      "directory, rolled to rpc.log.1, both together about N MiB (default 16, 0 off)")(
      "trash-retention", po::value(&t->trash_retention)->value_name("TIME"),
      "master: how long rm keeps entries in the trash (/.trash) before they are deleted: "
      "seconds, or with an s, m, h or d suffix (default 1d; 0: no trash, rm deletes at once)")(
      "log-roll", po::value(&t->log_roll)->value_name("SIZE"),
      "master: start a new op-log file and write a checkpoint once the log passes this size "
      "(default 64M)")("keep-checkpoints", po::value(&t->keep_checkpoints)->value_name("N"),
                       "master: checkpoints kept, with the logs they need (default 2)")(
      "writeback", po::value(&t->writeback)->value_name("SIZE"),
      "chunkservers start writing a chunk's new bytes to disk once this much is written "
      "(default 0: off)")("no-short-circuit", po::bool_switch(&g->no_short_circuit),
                          "clients read replicas on their own host through the chunkserver, "
                          "not from its files (writes and appends always go through the "
                          "chunkservers)")("progress", po::bool_switch(&j.progress),
                                           "show the progress of long transfers on stderr")(
      "hostfile", po::value(&g->hostfile)->value_name("FILE"),
      "launcher: Open MPI hostfile for a multi-node job")(
      "push", po::value(&t->push)->value_name("MODE"),
      "benchmark mode: how clients push written data to the replicas, 'chain' (to the "
      "nearest, which forwards it down the chain; the default) or 'star' (the client sends "
      "each replica its copy itself, R times the bytes on its link; for measuring the chain "
      "against)")(
      "topology", po::value(&j.topology_file)->value_name("FILE"),
      "racks of the hosts, one 'HOST RACK' per line: replicas spread over racks, clients read "
      "the nearest (default: every host a rack of its own)")(
      "rebalance-threshold", po::value(&t->rebalance_threshold)->value_name("F"),
      "master: move replicas from fuller to emptier chunkservers while one's bytes of chunks "
      "differ from the mean by more than F times the mean (default 0.1; 0 off)")(
      "rebalance-moves", po::value(&t->rebalance_moves)->value_name("N"),
      "master: rebalancing moves started per second, one at a time per chunkserver (default 4)")(
      "mpirun-args", po::value(&g->mpirun_args)->value_name("\"...\""),
      "launcher: extra arguments for mpirun (one string)")(
      "dry-run", po::bool_switch(&g->dry_run), "launcher: print the mpirun command line and exit");
  return d;
}

po::options_description HiddenGlobals(GlobalText* t, GlobalOptions* g) {
  po::options_description hidden;
  hidden.add_options()("stats-dir", po::value(&g->job.stats_dir))(
      "status-file", po::value(&g->status_file))("slice-size", po::value(&t->slice_size))(
      "rank-mode", po::bool_switch(&g->rank_mode))("short-circuit-appends",
                                                   po::bool_switch(&g->short_circuit_appends))(
      "no-short-circuit-appends", po::bool_switch(&g->no_short_circuit_appends));
  return hidden;
}

po::options_description AllGlobals(GlobalText* t, GlobalOptions* g) {
  po::options_description all;
  all.add(VisibleGlobals(t, g)).add(HiddenGlobals(t, g));
  return all;
}

po::options_description CommandDescription(const CommandSpec& spec) {
  po::options_description d("Options of " + std::string(spec.name));
  for (const OptionSpec& o : spec.options) {
    if (o.value == nullptr) {
      d.add_options()(o.names, po::bool_switch(), o.help);
    } else {
      d.add_options()(o.names, po::value<std::string>()->value_name(o.value), o.help);
    }
  }
  return d;
}

Status Usage(const CommandSpec& spec, const std::string& what) {
  return Status::InvalidArgument(std::string(spec.name) + ": " + what + " (usage: gfs " +
                                 spec.name + " " + spec.args + "; see gfs " + spec.name +
                                 " --help)");
}

// Checks the positional arguments against the command's kinds.
Status CheckPositional(const CommandSpec& spec, const std::vector<std::string>& p) {
  const int n = static_cast<int>(p.size());
  if (n < spec.min_args) return Usage(spec, "missing arguments");
  if (spec.max_args >= 0 && n > spec.max_args) return Usage(spec, "too many arguments");
  const std::string kinds = spec.kinds;
  for (size_t i = 0; i < p.size(); ++i) {
    char k = kinds.empty() ? 'x' : kinds[std::min(i, kinds.size() - 1)];
    if (k == 'R') {
      if (p[i].empty() || p[i][0] != '/') {
        return Status::InvalidArgument(std::string(spec.name) + ": '" + OneLine(p[i], 200) +
                                       "': paths in the store are absolute (start with /)");
      }
      if (p[i].size() > 4096) {
        return Status::InvalidArgument(std::string(spec.name) + ": '" + OneLine(p[i], 60) +
                                       "': path longer than 4096 bytes");
      }
    }
    if (k == 'L' && p[i].empty()) {
      return Status::InvalidArgument(std::string(spec.name) + ": an empty local path");
    }
  }
  return Status::OK();
}

Status ApplyGlobals(const GlobalText& t, po::variables_map& vm, bool launcher, GlobalOptions* g) {
  JobConfig& j = g->job;
  if (vm["verbose"].as<bool>() && vm["quiet"].as<bool>()) {
    return Status::InvalidArgument("-v and -q contradict each other");
  }
  g->verbosity = vm["verbose"].as<bool>() ? 1 : vm["quiet"].as<bool>() ? -1 : 0;
  if (g->short_circuit_appends || g->no_short_circuit_appends) {
    return Status::InvalidArgument(
        std::string(g->short_circuit_appends ? "--short-circuit-appends"
                                             : "--no-short-circuit-appends") +
        " is no longer an option: record appends always go through the chunkservers");
  }
  j.short_circuit_reads = !g->no_short_circuit;
  auto count = [&](const std::string& text, const char* name, int64_t min, int64_t max,
                   auto* out) -> Status {
    if (text.empty()) return Status::OK();
    auto v = ParseInt(name, text, min, max);
    if (!v.ok()) return v.status();
    *out = static_cast<std::remove_pointer_t<decltype(out)>>(*v);
    return Status::OK();
  };
  GFS_RETURN_IF_ERROR(count(t.chunkservers, "chunkservers", 1, 65536, &j.chunkservers));
  GFS_RETURN_IF_ERROR(count(t.clients, "clients", 1, 65536, &j.clients));
  GFS_RETURN_IF_ERROR(count(t.shadows, "shadows", 0, 64, &j.shadows));
  GFS_RETURN_IF_ERROR(count(t.replication, "replication", 1, 64, &j.replication));
  GFS_RETURN_IF_ERROR(count(t.lease_seconds, "lease-seconds", 1, 86400, &j.lease_seconds));
  GFS_RETURN_IF_ERROR(count(t.heartbeat_ms, "heartbeat-ms", 1, 3600000, &j.heartbeat_ms));
  GFS_RETURN_IF_ERROR(count(t.timeout_ms, "timeout-ms", 100, 86400000, &j.request_timeout_ms));
  GFS_RETURN_IF_ERROR(count(t.scrub, "scrub-mb-per-s", 0, 1000000, &j.scrub_mb_per_s));
  GFS_RETURN_IF_ERROR(count(t.rpc_log_mb, "rpc-log-mb", 0, 1 << 20, &j.rpc_log_mb));
  GFS_RETURN_IF_ERROR(count(t.keep_checkpoints, "keep-checkpoints", 1, 1000, &j.keep_checkpoints));
  if (!t.trash_retention.empty()) {
    auto v = ParseDuration("trash-retention", t.trash_retention);
    if (!v.ok()) return v.status();
    j.trash_retention_s = *v;
  }
  GFS_RETURN_IF_ERROR(count(t.rebalance_moves, "rebalance-moves", 0, 1000, &j.rebalance_moves));
  if (!t.rebalance_threshold.empty()) {
    char* end = nullptr;
    const double v = std::strtod(t.rebalance_threshold.c_str(), &end);
    if (end == t.rebalance_threshold.c_str() || *end != '\0' || !(v >= 0) || v > 100) {
      return Status::InvalidArgument("--rebalance-threshold '" +
                                     OneLine(t.rebalance_threshold, 60) +
                                     "': a fraction of the mean, 0..100 (0.1 = 10%; 0 off)");
    }
    j.rebalance_threshold = v;
  }
  if (!t.chunk_size.empty()) {
    auto v = ParseSize("chunk-size", t.chunk_size);
    if (!v.ok()) return v.status();
    if (*v < 65536 || *v % 65536 != 0 || *v > (4ull << 30)) {
      return Status::InvalidArgument("--chunk-size must be a multiple of 64K between 64K and 4G");
    }
    j.chunk_size = *v;
  }
  if (!t.slice_size.empty()) {
    auto v = ParseSize("slice-size", t.slice_size);
    if (!v.ok()) return v.status();
    if (*v < 4096 || *v > (64u << 20)) {
      return Status::InvalidArgument("--slice-size must be 4K..64M");
    }
    j.slice_size = static_cast<uint32_t>(*v);
  }
  if (t.push == "star") {
    j.push_mode = JobConfig::PushMode::kStar;
  } else if (!t.push.empty() && t.push != "chain") {
    return Status::InvalidArgument("--push must be 'chain' or 'star', not '" + OneLine(t.push, 60) +
                                   "'");
  }
  if (!t.writeback.empty()) {
    auto v = ParseSize("writeback", t.writeback);
    if (!v.ok()) return v.status();
    if (*v > (1ull << 40)) return Status::InvalidArgument("--writeback must be at most 1T");
    j.writeback_bytes = *v;
  }
  if (!t.capacity.empty()) {
    auto v = ParseSize("capacity", t.capacity);
    if (!v.ok()) return v.status();
    if (*v < j.chunk_size) {
      return Status::InvalidArgument("--capacity " + t.capacity +
                                     " is less than one chunk (--chunk-size " +
                                     std::to_string(j.chunk_size) + " bytes)");
    }
    j.capacity = *v;
  }
  if (!t.log_roll.empty()) {
    auto v = ParseSize("log-roll", t.log_roll);
    if (!v.ok()) return v.status();
    if (*v < 4096 || *v > (1ull << 40)) {
      return Status::InvalidArgument("--log-roll must be between 4K and 1T");
    }
    j.log_roll_bytes = *v;
  }
  if (j.data_dir.empty()) return Status::InvalidArgument("--data-dir must not be empty");
  if (launcher) {
    if (j.chunkservers < 0) j.chunkservers = 3;
    if (j.clients < 0) j.clients = 1;
  }
  if (j.chunkservers > 0 && j.replication > static_cast<uint32_t>(j.chunkservers)) {
    return Status::InvalidArgument("--replication " + std::to_string(j.replication) +
                                   " needs at least as many chunkservers (--chunkservers is " +
                                   std::to_string(j.chunkservers) + ")");
  }
  return Status::OK();
}

// "-vq" -> {"-v", "-q"} (Boost finds short options by "-v"); "--name=x" ->
// {"name"}; "--name" -> {"name"}.
std::vector<std::string> OptionNames(const std::string& tok) {
  if (tok.rfind("--", 0) == 0) return {tok.substr(2, tok.find('=') - 2)};
  std::vector<std::string> out;
  for (size_t i = 1; i < tok.size(); ++i) out.push_back(std::string("-") + tok[i]);
  return out;
}

}  // namespace

bool IsGlobalOption(const std::string& name, bool* takes_value) {
  GlobalText t;
  GlobalOptions g;
  auto all = AllGlobals(&t, &g);
  const po::option_description* o = all.find_nothrow(name, false);
  if (o == nullptr) return false;
  if (takes_value) *takes_value = o->semantic()->max_tokens() > 0;
  return true;
}

std::string VersionText(const char* program) {
  return std::string(program) + " " + GFS_VERSION + " (wire format " +
         std::to_string(kWireVersion) + ", op-log format " + std::to_string(kOpLogFormatVersion) +
         ")\n";
}

std::string GlobalUsage() {
  GlobalText t;
  GlobalOptions g;
  std::ostringstream o;
  o << "usage: gfs [global options] COMMAND [options] [ARGS]\n"
       "       mpirun -np N gfs [global options] COMMAND [options] [ARGS]   (rank mode)\n\n"
       "A GFS-style replicated store whose master, chunkservers and clients are MPI ranks.\n"
       "Run directly, gfs starts the job itself with mpirun and exits with the command's\n"
       "status. Rank 0 is the master, then shadows, chunkservers, then clients.\n\n"
       "Commands:\n";
  for (const CommandSpec& c : Commands()) {
    std::string u = c.name, summary = c.summary;
    summary = summary.substr(0, summary.find("; "));
    o << "  " << u << std::string(u.size() < 19 ? 19 - u.size() : 1, ' ') << summary << "\n";
  }
  o << "\n" << VisibleGlobals(&t, &g) << "\n";
  o << "'gfs COMMAND --help' describes a command; `--` ends the options. Exit status: 0\n"
       "success, 1 the command failed, 2 usage error, 3 the job ended without reporting a\n"
       "status, 4/5 fsck found under-replicated/missing chunks, 128+N a signal.\n";
  return o.str();
}

std::string CommandUsage(const CommandSpec& spec) {
  std::ostringstream o;
  o << "usage: gfs [global options] " << spec.name << (spec.options.empty() ? "" : " [options]")
    << " " << spec.args << "\n\n"
    << spec.summary << ".\n\n"
    << CommandDescription(spec) << "  --help                show this help\n\n"
    << "Global options (see gfs --help) are accepted anywhere; `--` ends the options.\n";
  return o.str();
}

const std::vector<CommandSpec>& Commands() {
  // One entry per command. kinds: R store path, L local path, x other.
  static const std::vector<CommandSpec> cmds = {
      {"put",
       "LOCAL REMOTE",
       "store a local file ('-' = stdin) or, with -r, a directory; the file appears under "
       "REMOTE only once complete",
       2,
       2,
       "LR",
       {{"force,f", nullptr, "replace an existing file (in one step, with this job's settings)"},
        {"recursive,r", nullptr, "copy a directory tree"}}},
      {"get",
       "REMOTE LOCAL",
       "copy a file ('-' = stdout) or, with -r, a directory out; LOCAL appears only once "
       "complete",
       2,
       2,
       "RL",
       {{"force,f", nullptr, "replace an existing local file"},
        {"recursive,r", nullptr, "copy a directory tree"}},
       false,
       true},
      {"cat", "REMOTE...", "write files to stdout", 1, -1, "R", {}, false, true},
      {"head",
       "REMOTE",
       "write the first bytes of a file to stdout (default 1K)",
       1,
       1,
       "R",
       {{"bytes,c", "SIZE", "how many bytes (K/M/G suffixes)"}},
       false,
       true},
      {"tail",
       "REMOTE",
       "write the end of a file, up to its committed length, to stdout (default the last 1K)",
       1,
       1,
       "R",
       {{"bytes,c", "SIZE", "the last SIZE bytes"},
        {"lines,n", "N", "the last N lines"},
        {"follow,f", nullptr, "keep printing what is appended (needs a running service)"}},
       false,
       true},
      {"ls",
       "[PATH...]",
       "list directories (default /): type, replication, chunk size, chunks, size, path",
       0,
       -1,
       "R",
       {{"recursive,R", nullptr, "list subdirectories too"},
        {"all,a", nullptr,
         "also the entries of each directory that are in the trash, with their deletion times"},
        {"long,l", nullptr,
         "HDFS's columns: permissions, replication, owner, group, size, modification time, "
         "path"},
        {"human,h", nullptr, "sizes as 1.5K, 64M, 2.0G"},
        {"json", nullptr, "print one JSON array of objects"}},
       false,
       true},
      {"stat",
       "PATH",
       "show a file's or directory's attributes",
       1,
       1,
       "R",
       {{"json", nullptr, "print one JSON object"}},
       false,
       true},
      {"du",
       "[PATH...]",
       "space used by each entry of PATH (default /): size, with every replica, path",
       0,
       -1,
       "R",
       {{"summary,s", nullptr, "one total per PATH instead of one line per entry"},
        {"human,h", nullptr, "sizes as 1.5K, 64M, 2.0G"},
        {"json", nullptr, "print one JSON array of objects"}},
       false,
       true},
      {"df",
       "",
       "capacity, used and free space of the chunkservers, in total",
       0,
       0,
       "",
       {{"human,h", nullptr, "sizes as 1.5K, 64M, 2.0G"},
        {"json", nullptr, "print one JSON object"}},
       false,
       true},
      {"count",
       "[PATH...]",
       "directories, files and bytes under each PATH (default /)",
       0,
       -1,
       "R",
       {{"human,h", nullptr, "sizes as 1.5K, 64M, 2.0G"},
        {"json", nullptr, "print one JSON array of objects"}},
       false,
       true},
      {"test",
       "PATH",
       "exit 0 if PATH exists (-e), is a directory (-d), a file (-f), an empty file (-z); else 1",
       1,
       1,
       "R",
       {{"exists,e", nullptr, "PATH exists"},
        {"dir,d", nullptr, "PATH is a directory"},
        {"file,f", nullptr, "PATH is a file"},
        {"zero,z", nullptr, "PATH is a file of length 0"}},
       false,
       true},
      {"mkdir",
       "PATH...",
       "create directories",
       1,
       -1,
       "R",
       {{"parents,p", nullptr, "create missing parents; no error if it exists"}}},
      {"touchz", "PATH...", "create empty files (an existing empty file is fine)", 1, -1, "R", {}},
      {"rm",
       "PATH...",
       "move files (and, with -r, directories) to the trash, /.trash/<deletion ms>/PATH; the "
       "master deletes them once older than --trash-retention (gfs undelete brings one back)",
       1,
       -1,
       "R",
       {{"recursive,r", nullptr, "remove directories and their contents"},
        {"force,f", nullptr, "no error when a path does not exist"},
        {"skip-trash", nullptr,
         "delete at once (also what rm does with --trash-retention 0, or in /.trash)"}}},
      {"undelete",
       "PATH...",
       "move the most recent deletion of each PATH back from the trash (an error when there is "
       "none, or when PATH exists)",
       1,
       -1,
       "R",
       {}},
      {"expunge",
       "",
       "delete the trash older than --trash-retention (all of it with --all or a retention of "
       "0) and every chunk no file refers to; returns once the chunkservers have deleted them",
       0,
       0,
       "",
       {{"all", nullptr, "empty the whole trash"}, {"json", nullptr, "print one JSON object"}}},
      {"mv", "SRC DST", "rename a file or directory", 2, 2, "R", {}},
      {"cp",
       "SRC DST",
       "copy a file or directory tree within the store; DST appears only once complete",
       2,
       2,
       "R",
       {{"force,f", nullptr, "replace an existing file"}}},
      {"snapshot",
       "SRC DST",
       "make DST a copy of a file or tree at once: both share chunks until either is written "
       "(copy-on-write)",
       2,
       2,
       "RR",
       {}},
      {"write",
       "REMOTE OFFSET LOCAL",
       "overwrite bytes at OFFSET with LOCAL's, extending the file if needed",
       3,
       3,
       "RxL",
       {}},
      {"append",
       "REMOTE LOCAL",
       "append LOCAL's bytes ('-' = stdin) as one record; prints its offset",
       2,
       2,
       "RL",
       {}},
      {"records",
       "REMOTE",
       "print 'PRODUCER SEQUENCE LENGTH' for every valid record, once each",
       1,
       1,
       "R",
       {{"json", nullptr, "print one JSON array of {producer, sequence, length}"}},
       false,
       true},
      {"h5export",
       "REMOTE LOCAL.h5",
       "write a packet table into a real HDF5 file as one dataset",
       2,
       2,
       "RL",
       {{"dataset", "NAME", "dataset name in the HDF5 file (default packets)"}},
       false,
       true},
      {"format",
       "",
       "make a new, empty store in the data directory; -f first discards what it holds (the "
       "master's metadata and every chunkserver's chunks)",
       0,
       0,
       "",
       {{"force,f", nullptr, "discard the master's metadata and every chunk first"}}},
      {"report",
       "",
       "chunkservers (identity, rank, state, capacity, used, chunks) and totals",
       0,
       0,
       "",
       {{"human,h", nullptr, "sizes as 1.5K, 64M, 2.0G"},
        {"rpcs", nullptr,
         "also list the master's most recent requests and replies (from its RPC log; with "
         "--json: recent_rpcs)"},
        {"json", nullptr, "print one JSON object"}},
       false,
       true},
      {"fsck",
       "[PATH]",
       "per file: chunks, replicas, versions, missing, stale, corrupt; exit 0 only when healthy",
       0,
       1,
       "R",
       {{"verify", nullptr, "have every chunkserver check all its checksums now"},
        {"wait", "SECONDS", "first wait up to SECONDS for every chunk to reach full replication"},
        {"locations", nullptr, "list every chunk with its replicas' hosts and racks"},
        {"json", nullptr, "print one JSON object"}},
       false,
       true},
      {"setrep",
       "R PATH...",
       "set the replication of files, or of every file of a directory tree, to R; the master "
       "then clones or removes replicas to match",
       2,
       -1,
       "xR",
       {{"wait,w", nullptr, "wait until every chunk has exactly R complete replicas"}}},
      {"balance",
       "",
       "bytes of chunks per chunkserver, the spread from the mean and the rebalancing moves "
       "done; exit 0 only when within --rebalance-threshold",
       0,
       0,
       "",
       {{"wait", "SECONDS",
         "first wait up to SECONDS for rebalancing to bring every "
         "chunkserver within the threshold"},
        {"json", nullptr, "print one JSON object"}},
       false,
       true},
      {"producer-consumer",
       "--file PATH --producers P --records M",
       "P producer ranks append M records each to one file while the other clients tail it",
       0,
       0,
       "",
       {{"file", "PATH", "the file the producers append to (created, must not exist)"},
        {"producers", "P", "producer ranks (fewer than --clients)"},
        {"records", "M", "records per producer"},
        {"min-size", "B", "smallest record payload in bytes (default 64)"},
        {"max-size", "B", "largest record payload in bytes (default 65536)"},
        {"seed", "S", "seed of the record sizes and contents (default 1)"},
        {"sync-every", "N",
         "each producer fsyncs the file after every N of its records, so what it appended "
         "survives a crash of the job (default 0: only at the end)"},
        {"json", nullptr, "print one JSON object"}},
       true},
  };
  return cmds;
}

const CommandSpec* FindCommand(const std::string& name) {
  for (const CommandSpec& c : Commands()) {
    if (name == c.name) return &c;
  }
  return nullptr;
}

Result<CommandLine> ParseCommandLine(int argc, char** argv, bool launcher,
                                     const char* raw_command) {
  CommandLine cl;
  GlobalText text;
  const po::options_description globals = AllGlobals(&text, &cl.global);
  std::vector<std::string> tokens(argv + (argc > 0 ? 1 : 0), argv + argc);

  // Find COMMAND: the first word that is neither a global option nor its value.
  size_t cmd_at = tokens.size();
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string& t = tokens[i];
    if (t == "--") {
      if (i + 1 < tokens.size()) cmd_at = i + 1;
      break;
    }
    if (t.size() < 2 || t[0] != '-') {
      cmd_at = i;
      break;
    }
    for (const std::string& name : OptionNames(t)) {
      const po::option_description* o = globals.find_nothrow(name, false);
      if (o == nullptr) {
        return Status::InvalidArgument("unknown option '" + OneLine(t, 100) +
                                       "' before the command (see gfs --help)");
      }
      const bool inline_value = t.rfind("--", 0) == 0 ? t.find('=') != std::string::npos : false;
      if (o->semantic()->max_tokens() > 0 && !inline_value) ++i;
    }
  }
  const CommandSpec* spec = nullptr;
  if (cmd_at < tokens.size()) {
    cl.command = tokens[cmd_at];
    spec = FindCommand(cl.command);
    const bool raw = raw_command != nullptr && cl.command == raw_command;
    if (spec == nullptr && !raw && cl.command != "help") {
      return Status::InvalidArgument("unknown command '" + OneLine(cl.command, 100) +
                                     "' (see gfs --help)");
    }
    tokens.erase(tokens.begin() + static_cast<std::ptrdiff_t>(cmd_at));
  }
  const bool raw = raw_command != nullptr && cl.command == raw_command;

  po::options_description all;
  all.add(globals);
  if (spec != nullptr) all.add(CommandDescription(*spec));
  po::positional_options_description pos;
  pos.add("gfs-args", -1);
  po::options_description positional_holder;
  positional_holder.add_options()("gfs-args", po::value<std::vector<std::string>>());
  all.add(positional_holder);

  po::variables_map vm;
  try {
    auto parser = po::command_line_parser(tokens).options(all).positional(pos).style(
        po::command_line_style::unix_style ^ po::command_line_style::allow_guessing);
    if (raw) parser.allow_unregistered();
    po::parsed_options parsed = parser.run();
    std::set<std::string> seen;
    std::vector<std::string> last_tokens;
    std::vector<std::string> cmd_tokens;
    for (const po::option& o : parsed.options) {
      if (o.unregistered || o.string_key == "gfs-args") {
        if (o.unregistered) {
          for (const auto& tk : o.original_tokens) cl.args.positional.push_back(tk);
        } else {
          cl.args.positional.push_back(o.value.empty() ? "" : o.value[0]);
        }
        continue;
      }
      const bool is_global = globals.find_nothrow(o.string_key, false) != nullptr;
      // "-rf": one token for two options; keep it once.
      const bool same_token = o.original_tokens == last_tokens && o.original_tokens.size() == 1 &&
                              o.original_tokens[0].rfind("--", 0) != 0;
      last_tokens = o.original_tokens;
      if (is_global) {
        if (!same_token) cl.global_groups.push_back(o.original_tokens);
        continue;
      }
      if (!seen.insert(o.string_key).second) {
        return Status::InvalidArgument(cl.command + ": option '--" + o.string_key +
                                       "' given twice");
      }
      if (o.string_key == "help") {
        cl.args.help = true;
        continue;
      }
      cl.args.given[o.string_key] = o.value.empty() ? "" : o.value[0];
      if (!same_token)
        cmd_tokens.insert(cmd_tokens.end(), o.original_tokens.begin(), o.original_tokens.end());
    }
    po::store(parsed, vm);
    po::notify(vm);
    if (raw) {
      cl.command_tail = cl.args.positional;
    } else if (!cl.command.empty()) {
      cl.command_tail = cmd_tokens;
      cl.command_tail.push_back("--");
      for (const auto& a : cl.args.positional) cl.command_tail.push_back(a);
    }
  } catch (const po::unknown_option& e) {
    std::string where = cl.command.empty() ? "" : cl.command + ": ";
    return Status::InvalidArgument(where + "unknown option '" + OneLine(e.get_option_name(), 100) +
                                   "' (see gfs " + (spec ? cl.command + " " : "") + "--help)");
  } catch (const po::error& e) {
    std::string where = cl.command.empty() ? "" : cl.command + ": ";
    return Status::InvalidArgument(where + OneLine(e.what(), 300));
  }
  GFS_RETURN_IF_ERROR(ApplyGlobals(text, vm, launcher, &cl.global));
  if (cl.command == "help") {
    cl.global.help = true;
    cl.command.clear();
  }
  if (spec != nullptr && !cl.args.help && !cl.global.help) {
    GFS_RETURN_IF_ERROR(CheckPositional(*spec, cl.args.positional));
  }
  return cl;
}

}  // namespace gfs::tool
