// The launcher: `gfs ...` run outside mpirun starts the job itself.
//
// With `--hostfile H` naming more than one host, the launcher also writes an
// Open MPI rankfile (see PlaceRanks) so that the roles are spread over the
// nodes instead of being packed by slot onto the first one. See
// doc/cluster.md.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "jobs/options.h"

namespace gfs::tool {

// One host of an Open MPI hostfile. Repeated lines for one host add up.
struct HostSlots {
  std::string name;
  int slots = 1;      // `slots=N` (or `count=`/`cpu=`); else max_slots; else 1
  int max_slots = 0;  // `max_slots=N`; 0: not given
};

// Parses an Open MPI hostfile: `node1 slots=4 max_slots=8`, `node1`, blank
// lines and `#` comments. Errors name the file and line.
Result<std::vector<HostSlots>> ParseHostfile(const std::string& path);
Result<std::vector<HostSlots>> ParseHostfileText(const std::string& text, const std::string& name);

// Where each rank of a job runs: host index (into the host list) and slot.
struct Placement {
  std::vector<int> host;
  std::vector<int> slot;
};

// Places a job over `hosts` (at least one): rank 0 (master) on the first
// host; shadows round-robin over the other hosts (apart from the master when
// there is more than one host); chunkservers one per host round-robin (K =
// number of hosts gives exactly one per node); clients round-robin after the
// chunkservers, preferring hosts with free slots. When `first_client_host` is
// a host index, the first client (which runs the command and writes the exit
// status) goes there. Slots count per host from 0, wrapping at its slots.
Placement PlaceRanks(const std::vector<HostSlots>& hosts, const RoleLayout& layout,
                     int first_client_host = -1);

// The rankfile text (`rank N=host slot=S` lines) for a placement. A rankfile
// also binds each rank to its slot's core; with `whole_host` every rank gets
// all of its host's slots instead (`slot=0-N`), i.e. no binding within the
// host: what `--bind-to none` in --mpirun-args asks for (Open MPI applies a
// rankfile's slots even then), e.g. for test hosts that share one machine's
// cores (jobs/netns-cluster).
std::string RankfileText(const std::vector<HostSlots>& hosts, const Placement& p,
                         bool whole_host = false);

// Whether mpirun arguments ask for no binding (`--bind-to none`).
bool UnboundRanks(const std::string& mpirun_args);

// The index of the host this process runs on in `hosts` (by name, short
// name, localhost or 127.0.0.1), or -1.
int LocalHostIndex(const std::vector<HostSlots>& hosts);

// What the launcher decided before building the mpirun line.
struct LaunchPlan {
  std::vector<HostSlots> hosts;  // from --hostfile; empty without one
  std::string rankfile;          // rankfile text; empty: no rankfile (0 or 1 host)
  bool oversubscribe = false;    // more ranks than slots (or than cores, no hostfile)
  int local_host = -1;           // LocalHostIndex(hosts)
};

// Reads the hostfile (if any) and places the ranks. Errors: unreadable or
// malformed hostfile.
Result<LaunchPlan> PlanLaunch(const CommandLine& cl);

// Builds the mpirun command line for `cl` (self = path of this executable,
// status_file = where the first client writes the exit status). With a plan
// whose rankfile is not empty, `rankfile_path` is passed as --rankfile. With
// no plan, one is made (a bad hostfile then only loses the placement).
std::vector<std::string> MpirunCommand(const CommandLine& cl, int argc, char** argv,
                                       const std::string& self, const std::string& status_file,
                                       const LaunchPlan* plan = nullptr,
                                       const std::string& rankfile_path = "");

// Runs the job and returns the exit status for the user. REQUIRES: the
// command line was validated.
int Launch(const CommandLine& cl, int argc, char** argv);

// True when this process was started by mpirun/srun (rank mode).
bool UnderMpiLauncher();

}  // namespace gfs::tool
