// Command-line parsing for the `gfs` tool with Boost.Program_options: global
// options and each command's own options, accepted anywhere on the line
// (`gfs put --progress a /a` and `gfs --progress put a /a` are the same), `--`
// ends the options. Shared by the launcher, which validates the whole line
// before starting mpirun, by the ranks, and by gfs-bench. See doc/options.md.
//
// Each command is one entry of the table in Commands() (options.cc): its
// arguments, its options, and whether it only reads. Adding an option to a
// command is one line there.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "mpi/protocol/config.h"

namespace gfs::tool {

struct GlobalOptions {
  JobConfig job;
  std::string hostfile;
  std::string mpirun_args;
  std::string status_file;  // hidden: where the first client writes the exit status
  bool help = false;
  bool version = false;
  bool rank_mode = false;         // hidden: force rank mode
  bool dry_run = false;           // print the mpirun line instead of running it
  bool no_short_circuit = false;  // JobConfig::short_circuit_reads off
  // Retired options, refused with a line saying why.
  bool no_short_circuit_appends = false;
  bool short_circuit_appends = false;
  int verbosity = 0;  // -q: -1, default 0, -v: 1
};

// A command's parsed arguments.
struct CommandArgs {
  bool help = false;
  std::vector<std::string> positional;
  // Every option given, by its long name: its value, "" for a switch.
  std::map<std::string, std::string> given;

  bool Flag(const std::string& name) const { return given.count(name) > 0; }
  // The value of an option, or null when it was not given.
  const std::string* Value(const std::string& name) const {
    auto it = given.find(name);
    return it == given.end() ? nullptr : &it->second;
  }
};

// One option of a command.
struct OptionSpec {
  const char* names;  // Boost style: "recursive,R" (long name, then the letter)
  const char* value;  // null: a switch; else the value's placeholder ("N", "NAME")
  const char* help;
};

struct CommandSpec {
  const char* name;
  const char* args;  // the positional arguments, for the usage line ("LOCAL REMOTE")
  const char* summary;
  int min_args;
  int max_args;  // -1: any
  // One letter per positional argument: 'R' a path in the store (absolute),
  // 'L' a local path, 'x' anything else; the last letter covers the rest.
  const char* kinds;
  std::vector<OptionSpec> options;
  bool job = false;        // runs on every client rank; the others on the first only
  bool read_only = false;  // only reads: refused on a data directory that holds no store
};

struct CommandLine {
  GlobalOptions global;
  std::string command;  // empty: none given
  CommandArgs args;
  // The global options as given, one group per option (the tokens it took),
  // for the launcher to pass on.
  std::vector<std::vector<std::string>> global_groups;
  // What follows COMMAND on the ranks' command line: the command's options as
  // given, then `--` and the positional arguments.
  std::vector<std::string> command_tail;
};

// Parses "64M", "8k", "1G", "4096" (binary multiples; B, KB, KiB ... also
// accepted). kInvalidArgument names the option and the bad value.
Result<uint64_t> ParseSize(const std::string& option, const std::string& text);
// A whole number in [min, max]; kInvalidArgument names the option.
Result<int64_t> ParseInt(const std::string& option, const std::string& text, int64_t min,
                         int64_t max);

// A duration in seconds: "90", "90s", "15m", "12h", "1d" (at most 10 years).
// kInvalidArgument names the option and the bad value.
Result<uint64_t> ParseDuration(const std::string& option, const std::string& text);

// Parses a whole `gfs` command line. `launcher` selects the launcher defaults
// (3 chunkservers, 1 client) for counts not given. With `raw_command`, that
// command word is accepted and everything after it that is not a global
// option is kept unparsed in args.positional (gfs-bench's "bench").
// Errors (kInvalidArgument, one line): unknown command or option, a bad
// value, missing or extra arguments, a relative path in the store.
Result<CommandLine> ParseCommandLine(int argc, char** argv, bool launcher,
                                     const char* raw_command = nullptr);

// Whether `name` (without dashes) is a global option; *takes_value says
// whether it takes a value.
bool IsGlobalOption(const std::string& name, bool* takes_value);

std::string GlobalUsage();
std::string CommandUsage(const CommandSpec& spec);
// "PROGRAM VERSION (wire format W, op-log format L)".
std::string VersionText(const char* program);

const std::vector<CommandSpec>& Commands();
const CommandSpec* FindCommand(const std::string& name);

// Text safe for one line of a terminal: control characters and bytes that
// are not UTF-8 as \n, \t, \xNN; longer than `max` bytes: cut, with "...".
std::string OneLine(const std::string& s, size_t max = 512);

}  // namespace gfs::tool
