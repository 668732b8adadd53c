// Command-line parsing for the `gfs` tool: global options (before COMMAND)
// and each command's own options. Shared by the launcher, which validates the
// whole line before starting mpirun, and by the ranks. See doc/options.md.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "mpi/config.h"

namespace gfs::tool {

struct GlobalOptions {
  JobConfig job;
  std::string hostfile;
  std::string mpirun_args;
  std::string status_file;  // hidden: where the first client writes the exit status
  bool help = false;
  bool rank_mode = false;         // hidden: force rank mode
  bool dry_run = false;           // print the mpirun line instead of running it
  bool no_short_circuit = false;  // JobConfig::short_circuit_reads off
  // Retired options, refused with a line saying why.
  bool no_short_circuit_appends = false;
  bool short_circuit_appends = false;
};

struct CommandLine {
  GlobalOptions global;
  std::string command;            // empty: none given
  std::vector<std::string> args;  // after COMMAND, unparsed
  // The global options as given: one group per option (name, then its value
  // when separate), for the launcher to pass on.
  std::vector<std::vector<std::string>> global_groups;
};

// Parses "64M", "8k", "1G", "4096" (binary multiples). kInvalidArgument names
// the option and the bad value.
Result<uint64_t> ParseSize(const std::string& option, const std::string& text);

// Splits argv into global options, COMMAND and its arguments, and parses the
// global options. `launcher` selects the launcher defaults (3 chunkservers,
// 1 client) for counts not given.
Result<CommandLine> ParseCommandLine(int argc, char** argv, bool launcher);

std::string GlobalUsage();

// A command's parsed arguments.
struct CommandArgs {
  bool recursive = false;  // -r / -R
  bool parents = false;    // -p
  bool force = false;      // -f
  bool json = false;       // --json
  bool verify = false;     // --verify
  bool help = false;
  std::vector<std::string> positional;
  std::map<std::string, std::string> values;  // --name VALUE options
};

struct CommandSpec {
  const char* name;
  const char* usage;
  const char* summary;
  int min_args;
  int max_args;       // -1: any
  const char* flags;  // letters among "rRpfjV" this command accepts (j: --json, V: --verify)
  // --name VALUE options this command takes: "name=help;name=help"; "" none.
  const char* values = "";
  // A job command runs on every client rank; the others on the first only.
  bool job = false;
};

const std::vector<CommandSpec>& Commands();
const CommandSpec* FindCommand(const std::string& name);
// The --name VALUE options of a command: name -> help.
std::map<std::string, std::string> ValueOptions(const CommandSpec& spec);
Result<CommandArgs> ParseCommandArgs(const CommandSpec& spec, const std::vector<std::string>& args);
std::string CommandUsage(const CommandSpec& spec);

}  // namespace gfs::tool
