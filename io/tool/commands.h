// The `gfs` commands, run on the first client rank.
#pragma once

#include <string>

#include "io/gfs.h"
#include "io/tool/options.h"

namespace gfs::tool {

// Runs one command; returns its exit status (0 ok, 1 failure) after printing
// any error as one line on stderr.
int RunCommand(Client* c, const JobConfig& job, const CommandSpec& spec, const CommandArgs& args);

}  // namespace gfs::tool
