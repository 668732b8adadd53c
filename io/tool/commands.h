// The `gfs` commands, run on the first client rank.
#pragma once

#include <string>

#include "io/gfs.h"
#include "io/tool/options.h"

namespace gfs::tool {

// Runs one command; returns its exit status (0 ok, 1 failure) after printing
// any error as one line on stderr.
int RunCommand(Client* c, const JobConfig& job, const CommandSpec& spec, const CommandArgs& args);

// Checks a command's arguments beyond their syntax (numbers, required
// options, limits that depend on the job). `clients` is the number of client
// ranks when known, else 0.
Status ValidateCommand(const CommandSpec& spec, const CommandArgs& args, const JobConfig& job,
                       int clients);

// Runs a job command on every client rank; returns its exit status.
int RunJob(Session* s, const JobConfig& job, const CommandSpec& spec, const CommandArgs& args);

}  // namespace gfs::tool
