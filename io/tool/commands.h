// The `gfs` commands, run on the first client rank (a job command on every
// client rank).
#pragma once

#include <string>

#include "jobs/gfs.h"
#include "jobs/options.h"

namespace gfs::tool {

// The hidden prefix of temporary names: `put` and `cp` write
// DIR/.gfs-tmp.<16 hex>.<name> and rename it to DIR/<name> once the file is
// complete and synced; `get` writes LOCALDIR/.gfs-tmp.<6 chars>.<name>. A
// name with this prefix is a transfer in progress or the leftover of one
// that was killed (see doc/options.md).
inline constexpr const char* kTempPrefix = ".gfs-tmp.";

// Runs one command; returns its exit status (0 ok, 1 failure, 128+N after
// signal N) after printing any error as one line on stderr.
int RunCommand(Client* c, const JobConfig& job, const CommandSpec& spec, const CommandArgs& args);

// Checks a command's arguments beyond their syntax (numbers, required
// options, limits that depend on the job). `clients` is the number of client
// ranks when known, else 0.
Status ValidateCommand(const CommandSpec& spec, const CommandArgs& args, const JobConfig& job,
                       int clients);

// Runs a job command on every client rank; returns its exit status.
int RunJob(Session* s, const JobConfig& job, const CommandSpec& spec, const CommandArgs& args);

// Client ranks: SIGINT and SIGTERM stop the command at its next step (a
// local temporary file is removed at once, in the handler).
void InstallInterruptHandlers();
// The signal that interrupted this rank, or 0.
int Interrupted();

// -q: -1, default 0, -v: 1 (the storage ranks' logger, common/log.h).
void SetLogLevel(int verbosity);

// Sizes for people: 999, 1.5K, 64M, 2.0G (binary multiples).
std::string HumanSize(uint64_t bytes);

}  // namespace gfs::tool
