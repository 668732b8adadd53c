// The launcher: `gfs ...` run outside mpirun starts the job itself.
#pragma once

#include <string>
#include <vector>

#include "io/tool/options.h"

namespace gfs::tool {

// Builds the mpirun command line for `cl` (self = path of this executable,
// status_file = where the first client writes the exit status).
std::vector<std::string> MpirunCommand(const CommandLine& cl, int argc, char** argv,
                                       const std::string& self, const std::string& status_file);

// Runs the job and returns the exit status for the user. REQUIRES: the
// command line was validated.
int Launch(const CommandLine& cl, int argc, char** argv);

// True when this process was started by mpirun/srun (rank mode).
bool UnderMpiLauncher();

}  // namespace gfs::tool
