#include "io/tool/options.h"

#include <boost/program_options.hpp>
#include <cctype>
#include <cstring>
#include <sstream>

namespace po = boost::program_options;

namespace gfs::tool {

Result<uint64_t> ParseSize(const std::string& option, const std::string& text) {
  auto bad = [&]() {
    return Status::InvalidArgument(
        "--" + option + ": '" + text +
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

namespace {

po::options_description GlobalDescription(std::string* chunk_size, std::string* slice_size,
                                          std::string* capacity, std::string* log_roll,
                                          std::string* writeback, GlobalOptions* g) {
  JobConfig& j = g->job;
  po::options_description d("Global options (before COMMAND)");
  d.add_options()("help,h", po::bool_switch(&g->help), "show this help")(
      "data-dir", po::value(&j.data_dir),
      "directory holding every role's data (default ./gfs-data)")(
      "chunkservers", po::value(&j.chunkservers),
      "chunkserver ranks K (launcher default 3; rank mode: N - 2 - S)")(
      "clients", po::value(&j.clients),
      "client ranks C (launcher default 1; rank mode: N - 1 - S - K)")(
      "shadows", po::value(&j.shadows), "shadow master ranks S (default 0)")(
      "replication", po::value(&j.replication),
      "replicas per chunk for new files (default min(3, K))")(
      "chunk-size", po::value(chunk_size),
      "chunk size for new files, K/M/G suffixes (default 64M)")(
      "lease-seconds", po::value(&j.lease_seconds), "primary lease length (default 60)")(
      "heartbeat-ms", po::value(&j.heartbeat_ms), "chunkserver heartbeat interval (default 1000)")(
      "timeout-ms", po::value(&j.request_timeout_ms), "deadline of one request (default 30000)")(
      "capacity", po::value(capacity),
      "bytes each chunkserver may store, K/M/G/T suffixes (default: its free disk space)")(
      "scrub-mb-per-s", po::value(&j.scrub_mb_per_s),
      "background checksum scrubbing of idle chunks, MiB/s per chunkserver (default 32, 0 off)")(
      "log-roll", po::value(log_roll),
      "master: start a new op-log file and write a checkpoint in the background once the log "
      "passes this size, K/M/G suffixes (default 64M)")(
      "keep-checkpoints", po::value(&j.keep_checkpoints),
      "master: checkpoints kept, with the logs they need (default 2)")(
      "writeback", po::value(writeback),
      "chunkservers start writing a chunk's new bytes to disk once this much is written, "
      "so an fsync finds little left to do; K/M/G suffixes, 0 off (default 0)")(
      "no-short-circuit", po::bool_switch(&g->no_short_circuit),
      "clients read replicas on their own host through the chunkserver, not from its files "
      "(writes and appends always go through the chunkservers)")(
      "progress", po::bool_switch(&j.progress), "show progress of long transfers on stderr")(
      "hostfile", po::value(&g->hostfile), "launcher: Open MPI hostfile for a multi-node job")(
      "mpirun-args", po::value(&g->mpirun_args),
      "launcher: extra arguments for mpirun (one string)")(
      "dry-run", po::bool_switch(&g->dry_run), "launcher: print the mpirun command line and exit");
  po::options_description hidden;
  hidden.add_options()("stats-dir", po::value(&j.stats_dir))(
      "status-file", po::value(&g->status_file))("slice-size", po::value(slice_size))(
      "rank-mode", po::bool_switch(&g->rank_mode))("short-circuit-appends",
                                                   po::bool_switch(&g->short_circuit_appends))(
      "no-short-circuit-appends", po::bool_switch(&g->no_short_circuit_appends));
  po::options_description all;
  all.add(d).add(hidden);
  return all;
}

bool TakesValue(const po::options_description& d, const std::string& name) {
  const po::option_description* o = d.find_nothrow(name, false);
  return o != nullptr && o->semantic()->max_tokens() > 0;
}

}  // namespace

std::string GlobalUsage() {
  std::string cs, ss, cap, roll, wb;
  GlobalOptions g;
  auto all = GlobalDescription(&cs, &ss, &cap, &roll, &wb, &g);
  std::ostringstream o;
  o << "usage: gfs [global options] COMMAND [ARGS]\n"
       "       mpirun -np N gfs [global options] COMMAND [ARGS]   (rank mode)\n\n"
       "A GFS-style replicated store whose master, chunkservers and clients are MPI ranks.\n"
       "Run directly, gfs starts the job itself with mpirun and exits with the command's\n"
       "status. Rank 0 is the master, then shadows, chunkservers, then clients.\n\n"
       "Commands:\n";
  for (const CommandSpec& c : Commands()) {
    std::string u = c.usage;
    o << "  " << u << std::string(u.size() < 34 ? 34 - u.size() : 1, ' ') << c.summary << "\n";
  }
  o << "\n";
  // Print the visible options only (the hidden ones have no description).
  std::ostringstream opts;
  opts << all;
  std::istringstream lines(opts.str());
  std::string line;
  while (std::getline(lines, line)) {
    if (line.find("--stats-dir") != std::string::npos ||
        line.find("--status-file") != std::string::npos ||
        line.find("--slice-size") != std::string::npos ||
        line.find("--rank-mode") != std::string::npos) {
      continue;
    }
    o << line << "\n";
  }
  o << "\n'gfs COMMAND --help' describes a command. Exit status: 0 success, 1 the command\n"
       "failed, 2 usage error, 3 the job ended without reporting a status.\n";
  return o.str();
}

Result<CommandLine> ParseCommandLine(int argc, char** argv, bool launcher) {
  CommandLine cl;
  std::string chunk_size, slice_size, capacity, log_roll, writeback;
  auto desc =
      GlobalDescription(&chunk_size, &slice_size, &capacity, &log_roll, &writeback, &cl.global);
  std::vector<std::string> globals;
  int i = 1;
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a.size() < 2 || a[0] != '-') break;  // COMMAND
    if (a == "--") {
      ++i;
      break;
    }
    globals.push_back(a);
    cl.global_groups.push_back({a});
    std::string name = a.rfind("--", 0) == 0 ? a.substr(2) : a.substr(1);
    if (name.find('=') != std::string::npos) continue;
    if (a.rfind("--", 0) != 0 && name == "h") continue;
    if (desc.find_nothrow(name, false) == nullptr) {
      return Status::InvalidArgument("unknown global option '" + a + "' (see gfs --help)");
    }
    if (TakesValue(desc, name)) {
      if (i + 1 >= argc) return Status::InvalidArgument("option '" + a + "' needs a value");
      globals.push_back(argv[++i]);
      cl.global_groups.back().push_back(argv[i]);
    }
  }
  if (i < argc) {
    cl.command = argv[i++];
    for (; i < argc; ++i) cl.args.push_back(argv[i]);
  }
  try {
    po::variables_map vm;
    po::store(po::command_line_parser(globals)
                  .options(desc)
                  .style(po::command_line_style::unix_style)
                  .run(),
              vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    return Status::InvalidArgument(e.what());
  }
  JobConfig& j = cl.global.job;
  if (cl.global.short_circuit_appends || cl.global.no_short_circuit_appends) {
    return Status::InvalidArgument(
        std::string(cl.global.short_circuit_appends ? "--short-circuit-appends"
                                                    : "--no-short-circuit-appends") +
        " is no longer an option: record appends always go through the chunkservers");
  }
  j.short_circuit_reads = !cl.global.no_short_circuit;
  if (!chunk_size.empty()) {
    auto v = ParseSize("chunk-size", chunk_size);
    if (!v.ok()) return v.status();
    if (*v < 65536 || *v % 65536 != 0 || *v > (4ull << 30)) {
      return Status::InvalidArgument("--chunk-size must be a multiple of 64K between 64K and 4G");
    }
    j.chunk_size = *v;
  }
  if (!slice_size.empty()) {
    auto v = ParseSize("slice-size", slice_size);
    if (!v.ok()) return v.status();
    if (*v < 4096 || *v > (64u << 20))
      return Status::InvalidArgument("--slice-size must be 4K..64M");
    j.slice_size = static_cast<uint32_t>(*v);
  }
  if (!writeback.empty()) {
    auto v = ParseSize("writeback", writeback);
    if (!v.ok()) return v.status();
    j.writeback_bytes = *v;
  }
  if (!capacity.empty()) {
    auto v = ParseSize("capacity", capacity);
    if (!v.ok()) return v.status();
    if (*v == 0) return Status::InvalidArgument("--capacity must be more than 0");
    j.capacity = *v;
  }
  if (!log_roll.empty()) {
    auto v = ParseSize("log-roll", log_roll);
    if (!v.ok()) return v.status();
    if (*v < 4096) return Status::InvalidArgument("--log-roll must be at least 4K");
    j.log_roll_bytes = *v;
  }
  if (j.keep_checkpoints == 0)
    return Status::InvalidArgument("--keep-checkpoints must be at least 1");
  if (j.lease_seconds == 0) return Status::InvalidArgument("--lease-seconds must be at least 1");
  if (j.heartbeat_ms == 0) return Status::InvalidArgument("--heartbeat-ms must be at least 1");
  if (j.request_timeout_ms < 100)
    return Status::InvalidArgument("--timeout-ms must be at least 100");
  if (j.data_dir.empty()) return Status::InvalidArgument("--data-dir must not be empty");
  if (j.chunkservers == 0 || j.chunkservers < -1)
    return Status::InvalidArgument("--chunkservers must be at least 1");
  if (j.clients == 0 || j.clients < -1)
    return Status::InvalidArgument("--clients must be at least 1");
  if (launcher) {
    if (j.chunkservers < 0) j.chunkservers = 3;
    if (j.clients < 0) j.clients = 1;
  }
  if (j.chunkservers > 0 && j.replication > static_cast<uint32_t>(j.chunkservers)) {
    return Status::InvalidArgument("--replication " + std::to_string(j.replication) +
                                   " needs at least as many chunkservers (--chunkservers is " +
                                   std::to_string(j.chunkservers) + ")");
  }
  return cl;
}

const std::vector<CommandSpec>& Commands() {
  static const std::vector<CommandSpec> cmds = {
      {"put", "put [-r] [-f] LOCAL REMOTE",
       "store a local file ('-' = stdin) or, with -r, a directory", 2, 2, "rf"},
      {"get", "get [-r] REMOTE LOCAL", "copy a file ('-' = stdout) or, with -r, a directory out", 2,
       2, "r"},
      {"cat", "cat REMOTE", "write a file to stdout", 1, 1, ""},
      {"ls", "ls [-R] [--json] [PATH]", "list a directory (size, replication, chunk size, chunks)",
       0, 1, "Rj"},
      {"stat", "stat [--json] PATH", "show a file's or directory's attributes", 1, 1, "j"},
      {"mkdir", "mkdir [-p] PATH...", "create directories", 1, -1, "p"},
      {"rm", "rm [-r] PATH...", "remove files (and, with -r, directories)", 1, -1, "r"},
      {"mv", "mv SRC DST", "rename a file or directory", 2, 2, ""},
      {"write", "write REMOTE OFFSET LOCAL",
       "overwrite bytes at OFFSET with LOCAL's, extending if needed", 3, 3, ""},
      {"append", "append REMOTE LOCAL",
       "append LOCAL's bytes ('-' = stdin) as one record; prints its offset", 2, 2, ""},
      {"records", "records REMOTE",
       "print 'PRODUCER SEQUENCE LENGTH' for every valid record, once each", 1, 1, ""},
      {"h5export", "h5export REMOTE LOCAL.h5 [--dataset NAME]",
       "write a packet table into a real HDF5 file as one dataset", 2, 2, "",
       "dataset=dataset name in the HDF5 file (default packets)"},
      {"format", "format [-f]",
       "make a new, empty store in the data directory; -f first discards what it holds (the "
       "master's metadata and every chunkserver's chunks)",
       0, 0, "f"},
      {"report", "report [--json]",
       "chunkservers with state, capacity, used, chunk count; under-replicated chunks", 0, 0, "j"},
      {"fsck", "fsck [PATH] [--verify] [--wait SECONDS] [--json]",
       "per file: chunks, replicas, versions, missing, stale, corrupt; exit 0 only when healthy", 0,
       1, "jV", "wait=first wait up to SECONDS for every chunk to reach full replication"},
      {"producer-consumer",
       "producer-consumer --file PATH --producers P --records M [--min-size B] [--max-size B] "
       "[--seed S] [--sync-every N] [--json]",
       "P producer ranks append M records each to one file while the other clients tail it", 0, 0,
       "j",
       "file=the file the producers append to (created; must not exist);"
       "producers=producer ranks P (fewer than --clients);"
       "records=records per producer M;"
       "min-size=smallest record payload in bytes (default 64);"
       "max-size=largest record payload in bytes (default 65536);"
       "seed=seed of the record sizes and contents (default 1);"
       "sync-every=each producer fsyncs the file after every N of its records, so "
       "what it appended survives a crash of the job (default 0: only at the end)",
       true},
  };
  return cmds;
}

std::map<std::string, std::string> ValueOptions(const CommandSpec& spec) {
  std::map<std::string, std::string> out;
  std::string all = spec.values;
  size_t pos = 0;
  while (pos < all.size()) {
    size_t end = all.find(';', pos);
    if (end == std::string::npos) end = all.size();
    std::string item = all.substr(pos, end - pos);
    size_t eq = item.find('=');
    out[item.substr(0, eq)] = eq == std::string::npos ? "" : item.substr(eq + 1);
    pos = end + 1;
  }
  return out;
}

const CommandSpec* FindCommand(const std::string& name) {
  for (const CommandSpec& c : Commands()) {
    if (name == c.name) return &c;
  }
  return nullptr;
}

std::string CommandUsage(const CommandSpec& spec) {
  std::ostringstream o;
  o << "usage: gfs [global options] " << spec.usage << "\n\n" << spec.summary << ".\n";
  std::string f = spec.flags;
  if (!f.empty()) o << "\nOptions:\n";
  if (f.find('r') != std::string::npos) o << "  -r          recursive\n";
  if (f.find('R') != std::string::npos) o << "  -R          list recursively\n";
  if (f.find('p') != std::string::npos)
    o << "  -p          create missing parents; no error if it exists\n";
  if (f.find('f') != std::string::npos) o << "  -f          overwrite an existing file\n";
  if (f.find('j') != std::string::npos) o << "  --json      print JSON\n";
  if (f.find('V') != std::string::npos) {
    o << "  --verify    have every chunkserver check all its checksums now\n";
  }
  for (const auto& [name, help] : ValueOptions(spec)) {
    std::string left = "  --" + name + " V";
    o << left << std::string(left.size() < 14 ? 14 - left.size() : 1, ' ') << help << "\n";
  }
  o << "  -h, --help  show this help\n";
  return o.str();
}

Result<CommandArgs> ParseCommandArgs(const CommandSpec& spec,
                                     const std::vector<std::string>& args) {
  CommandArgs out;
  const std::string flags = spec.flags;
  bool only_positional = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (only_positional || a == "-" || a.empty() || a[0] != '-') {
      out.positional.push_back(a);
      continue;
    }
    if (a == "--") {
      only_positional = true;
      continue;
    }
    if (a == "--help" || a == "-h") {
      out.help = true;
      continue;
    }
    if (a == "--json" && flags.find('j') != std::string::npos) {
      out.json = true;
      continue;
    }
    if (a == "--verify" && flags.find('V') != std::string::npos) {
      out.verify = true;
      continue;
    }
    if (a.rfind("--", 0) == 0) {
      std::string name = a.substr(2), value;
      bool inline_value = false;
      if (auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        inline_value = true;
      }
      auto vo = ValueOptions(spec);
      if (vo.count(name) == 0) {
        return Status::InvalidArgument(std::string(spec.name) + ": unknown option '" + a + "'");
      }
      if (!inline_value) {
        if (i + 1 >= args.size()) {
          return Status::InvalidArgument(std::string(spec.name) + ": option '--" + name +
                                         "' needs a value");
        }
        value = args[++i];
      }
      out.values[name] = value;
      continue;
    }
    if (a.size() >= 2 && a[1] != '-') {
      // Bundled short flags: -rf
      for (size_t k = 1; k < a.size(); ++k) {
        char c = a[k];
        if (flags.find(c) == std::string::npos || c == 'j' || c == 'V') {
          if (spec.name == std::string("write") && std::isdigit(static_cast<unsigned char>(c)))
            break;
          return Status::InvalidArgument(std::string(spec.name) + ": unknown option '-" + c + "'");
        }
        if (c == 'r' || c == 'R') out.recursive = true;
        if (c == 'p') out.parents = true;
        if (c == 'f') out.force = true;
      }
      continue;
    }
    return Status::InvalidArgument(std::string(spec.name) + ": unknown option '" + a + "'");
  }
  if (out.help) return out;
  int n = static_cast<int>(out.positional.size());
  if (n < spec.min_args || (spec.max_args >= 0 && n > spec.max_args)) {
    return Status::InvalidArgument(std::string("usage: gfs ") + spec.usage);
  }
  return out;
}

}  // namespace gfs::tool
