#include "jobs/launcher.h"

#include <dirent.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string_view>

#include "common/topology.h"

namespace gfs::tool {
namespace {

volatile sig_atomic_t g_child = 0;
volatile sig_atomic_t g_signal = 0;
volatile sig_atomic_t g_signals = 0;

// The first SIGINT/SIGTERM goes to the client ranks (see StopJob); a second
// one straight to mpirun.
void Forward(int sig) {
  g_signal = sig;
  g_signals = g_signals + 1;
  if (g_signals > 1 && g_child > 0) kill(static_cast<pid_t>(g_child), sig);
}

std::string SelfPath(const char* argv0) {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n > 0) return std::string(buf, static_cast<size_t>(n));
  return argv0;
}

std::vector<std::string> SplitArgs(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  std::string w;
  while (in >> w) out.push_back(w);
  return out;
}

std::string ShellQuote(const std::string& s) {
  if (!s.empty() &&
      s.find_first_not_of(
          "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./-_") ==
          std::string::npos) {
    return s;
  }
  std::string o = "'";
  for (char c : s) {
    if (c == '\'')
      o += "'\\''";
    else
      o += c;
  }
  return o + "'";
}

bool ParseCount(std::string_view v, int* out) {
  if (v.empty() || v.size() > 9) return false;
  int n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + (c - '0');
  }
  *out = n;
  return true;
}

std::string ShortName(const std::string& h) { return h.substr(0, h.find('.')); }

// Picks the first host from `start` on (round-robin over `allowed`) with a
// free slot; when every allowed host is full, `start` itself.
int PickHost(const std::vector<int>& allowed, size_t start, const std::vector<int>& used,
             const std::vector<HostSlots>& hosts) {
  for (size_t t = 0; t < allowed.size(); ++t) {
    int h = allowed[(start + t) % allowed.size()];
    if (used[static_cast<size_t>(h)] < hosts[static_cast<size_t>(h)].slots) return h;
  }
  return allowed[start % allowed.size()];
}

std::string JoinCommand(const std::vector<std::string>& cmd) {
  std::string line;
  for (const auto& a : cmd) {
    if (!line.empty()) line += ' ';
    line += ShellQuote(a);
  }
  return line;
}

// mkstemp in `dir`; returns the path or "" (errno set).
std::string MakeTemp(const std::string& dir, const char* stem) {
  std::string t = dir;
  t += '/';
  t += stem;
  t += "-XXXXXX";
  std::vector<char> buf(t.begin(), t.end());
  buf.push_back('\0');
  int fd = mkstemp(buf.data());
  if (fd < 0) return "";
  close(fd);
  return std::string(buf.data());
}

// Children of this process other than those already reaped: the ranks
// mpirun left (see PR_SET_CHILD_SUBREAPER in Launch).
// Every process's parent, from /proc/PID/stat.
std::map<pid_t, pid_t> ParentsOfAll() {
  std::map<pid_t, pid_t> parent;
  DIR* d = opendir("/proc");
  if (d == nullptr) return parent;
  while (struct dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::ifstream in(std::string("/proc/") + e->d_name + "/stat");
    std::string line;
    if (!std::getline(in, line)) continue;
    // pid (comm) state ppid ...: comm may hold spaces; parse after the last ')'.
    size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 1));
    std::string state;
    long ppid = 0;
    if (rest >> state >> ppid) parent[std::atoi(e->d_name)] = static_cast<pid_t>(ppid);
  }
  closedir(d);
  return parent;
}

std::vector<pid_t> Children() {
  std::vector<pid_t> out;
  const pid_t self = getpid();
  for (const auto& [pid, ppid] : ParentsOfAll()) {
    if (ppid == self) out.push_back(pid);
  }
  return out;
}

// The descendants of this process that are client ranks of the job (their
// environment has OMPI_COMM_WORLD_RANK >= first_client).
std::vector<pid_t> LocalClientRanks(int first_client) {
  const std::map<pid_t, pid_t> parent = ParentsOfAll();
  std::vector<pid_t> out;
  const pid_t self = getpid();
  for (const auto& [pid, pp] : parent) {
    pid_t up = pp;
    for (int depth = 0; depth < 8 && up > 1 && up != self; ++depth) {
      auto it = parent.find(up);
      up = it == parent.end() ? 0 : it->second;
    }
    if (up != self) continue;
    std::ifstream env("/proc/" + std::to_string(pid) + "/environ");
    std::string var;
    while (std::getline(env, var, '\0')) {
      if (var.rfind("OMPI_COMM_WORLD_RANK=", 0) == 0 &&
          std::atoi(var.c_str() + std::strlen("OMPI_COMM_WORLD_RANK=")) >= first_client) {
        out.push_back(pid);
      }
    }
  }
  return out;
}

// Ctrl-C / SIGTERM: the client ranks on this host get the signal first, so
// that the command stops at its next step, removes its temporaries and ends
// the job the usual way (the storage ranks shut down cleanly); mpirun gets it
// only when that does not happen within a few seconds, or there is no client
// rank here to tell.
void StopJob(pid_t mpirun, int sig, int first_client, int* wstatus, bool* done) {
  std::vector<pid_t> clients = LocalClientRanks(first_client);
  for (pid_t p : clients) kill(p, sig);
  if (!clients.empty()) {
    for (int i = 0; i < 100; ++i) {
      if (waitpid(mpirun, wstatus, WNOHANG) == mpirun) {
        *done = true;
        return;
      }
      usleep(50000);
    }
  }
  kill(mpirun, sig);
}

// Whether the first client has written the job's status (a number and a
// newline) into the status file.
bool StatusWritten(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  return in && std::getline(in, line) && !in.eof() && !line.empty();
}

// Waits up to 10 s for the orphaned ranks to end, then kills what is left.
void ReapOrphans() {
  for (int i = 0; i < 200; ++i) {
    while (waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    if (Children().empty()) return;
    usleep(50000);
  }
  for (pid_t p : Children()) kill(p, SIGKILL);
  while (waitpid(-1, nullptr, 0) > 0 || errno == EINTR) {
  }
}

}  // namespace

Result<std::vector<HostSlots>> ParseHostfileText(const std::string& text, const std::string& name) {
  std::vector<HostSlots> hosts;
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    line = line.substr(0, line.find('#'));
    std::istringstream words(line);
    std::string host;
    if (!(words >> host)) continue;
    int slots = -1;
    int max_slots = 0;
    std::string w;
    while (words >> w) {
      size_t eq = w.find('=');
      std::string key = w.substr(0, eq);
      std::string_view val;
      if (eq != std::string::npos) val = std::string_view(w).substr(eq + 1);
      int n = 0;
      bool is_slots = key == "slots" || key == "count" || key == "cpu" || key == "cpus";
      bool is_max = key == "max_slots" || key == "max-slots";
      if (!is_slots && !is_max) continue;  // other Open MPI keys: not ours
      if (!ParseCount(val, &n) || n < 1) {
        std::string m = "hostfile ";
        m += name;
        m += ':';
        m += std::to_string(lineno);
        m += ": bad value in '";
        m += w;
        m += "' (want a positive count)";
        return Status::InvalidArgument(m);
      }
      if (is_slots)
        slots = n;
      else
        max_slots = n;
    }
    if (slots < 0) slots = max_slots > 0 ? max_slots : 1;
    bool merged = false;
    for (auto& h : hosts) {
      if (h.name == host) {
        h.slots += slots;
        if (max_slots > 0) h.max_slots += max_slots;
        merged = true;
      }
    }
    if (!merged) hosts.push_back(HostSlots{host, slots, max_slots});
  }
  if (hosts.empty()) {
    std::string m = "hostfile ";
    m += name;
    m += " names no host";
    return Status::InvalidArgument(m);
  }
  return hosts;
}

Result<std::vector<HostSlots>> ParseHostfile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    std::string m = "cannot read hostfile ";
    m += path;
    m += ": ";
    m += std::strerror(errno);
    return Status::IOError(m);
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseHostfileText(ss.str(), path);
}

Placement PlaceRanks(const std::vector<HostSlots>& hosts, const RoleLayout& layout,
                     int first_client_host) {
  const int nh = static_cast<int>(hosts.size());
  const int np = layout.first_client() + layout.clients;
  Placement p;
  p.host.assign(static_cast<size_t>(np), 0);
  p.slot.assign(static_cast<size_t>(np), 0);
  if (nh == 0) return p;
  std::vector<int> used(static_cast<size_t>(nh), 0);
  auto put = [&](int rank, int h) {
    p.host[static_cast<size_t>(rank)] = h;
    p.slot[static_cast<size_t>(rank)] =
        used[static_cast<size_t>(h)] % hosts[static_cast<size_t>(h)].slots;
    ++used[static_cast<size_t>(h)];
  };
  std::vector<int> all;
  for (int h = 0; h < nh; ++h) all.push_back(h);
  // Master on the first host.
  put(0, 0);
  // Chunkservers first in the accounting of slots (their placement is fixed:
  // one per host), so shadows and clients fill around them.
  for (int i = 0; i < layout.chunkservers; ++i) {
    int r = layout.first_chunkserver() + i;
    p.host[static_cast<size_t>(r)] = i % nh;
  }
  // Shadows: the hosts other than the master's, round-robin.
  std::vector<int> others(all.begin() + (nh > 1 ? 1 : 0), all.end());
  for (int i = 0; i < layout.shadows; ++i) {
    std::vector<int> tentative = used;
    for (int c = 0; c < layout.chunkservers; ++c) ++tentative[static_cast<size_t>(c % nh)];
    int h = PickHost(others, static_cast<size_t>(i), tentative, hosts);
    put(layout.first_shadow() + i, h);
  }
  for (int i = 0; i < layout.chunkservers; ++i) put(layout.first_chunkserver() + i, i % nh);
  // Clients: round-robin after the chunkservers, preferring free slots.
  size_t cursor = static_cast<size_t>(layout.chunkservers % nh);
  for (int i = 0; i < layout.clients; ++i) {
    int h;
    if (i == 0 && first_client_host >= 0 && first_client_host < nh)
      h = first_client_host;
    else
      h = PickHost(all, cursor, used, hosts);
    put(layout.first_client() + i, h);
    cursor = static_cast<size_t>(h + 1);
  }
  return p;
}

std::string RankfileText(const std::vector<HostSlots>& hosts, const Placement& p, bool whole_host) {
  std::string out;
  for (size_t r = 0; r < p.host.size(); ++r) {
    const HostSlots& h = hosts[static_cast<size_t>(p.host[r])];
    out += "rank ";
    out += std::to_string(r);
    out += '=';
    out += h.name;
    out += " slot=";
    if (whole_host && h.slots > 1) {
      out += "0-";
      out += std::to_string(h.slots - 1);
    } else {
      out += std::to_string(whole_host ? 0 : p.slot[r]);
    }
    out += '\n';
  }
  return out;
}

bool UnboundRanks(const std::string& mpirun_args) {
  std::vector<std::string> w = SplitArgs(mpirun_args);
  for (size_t i = 0; i < w.size(); ++i) {
    if (w[i] == "--bind-to=none" || w[i] == "-bind-to=none") return true;
    if ((w[i] == "--bind-to" || w[i] == "-bind-to") && i + 1 < w.size() && w[i + 1] == "none") {
      return true;
    }
  }
  return false;
}

int LocalHostIndex(const std::vector<HostSlots>& hosts) {
  char buf[256] = {};
  std::string self;
  if (gethostname(buf, sizeof buf - 1) == 0) self = buf;
  for (size_t i = 0; i < hosts.size(); ++i) {
    const std::string& n = hosts[i].name;
    if (n == "localhost" || n == "127.0.0.1" || (!self.empty() && n == self) ||
        (!self.empty() && ShortName(n) == ShortName(self))) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

Result<LaunchPlan> PlanLaunch(const CommandLine& cl) {
  const JobConfig& j = cl.global.job;
  RoleLayout layout;
  layout.shadows = j.shadows;
  layout.chunkservers = j.chunkservers;
  layout.clients = j.clients;
  layout.world = 1 + j.shadows + j.chunkservers + j.clients;
  LaunchPlan plan;
  // The topology is read by the master (and the clients) once the job runs:
  // a bad file is refused here, before mpirun starts, with its line.
  if (!j.topology_file.empty()) {
    auto topo = Topology::Load(j.topology_file);
    if (!topo.ok()) return topo.status();
  }
  if (cl.global.hostfile.empty()) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    plan.oversubscribe = layout.world > cores;
    return plan;
  }
  auto hosts = ParseHostfile(cl.global.hostfile);
  if (!hosts.ok()) return hosts.status();
  plan.hosts = std::move(*hosts);
  long slots = 0;
  for (const auto& h : plan.hosts) slots += h.slots;
  plan.oversubscribe = layout.world > slots;
  plan.local_host = LocalHostIndex(plan.hosts);
  if (plan.hosts.size() > 1) {
    plan.rankfile = RankfileText(plan.hosts, PlaceRanks(plan.hosts, layout, plan.local_host),
                                 UnboundRanks(cl.global.mpirun_args));
  }
  return plan;
}

bool UnderMpiLauncher() {
  for (const char* v :
       {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "MPI_LOCALNRANKS"}) {
    if (std::getenv(v) != nullptr) return true;
  }
  return false;
}

std::vector<std::string> MpirunCommand(const CommandLine& cl, int argc, char** argv,
                                       const std::string& self, const std::string& status_file,
                                       const LaunchPlan* plan, const std::string& rankfile_path) {
  const JobConfig& j = cl.global.job;
  const int np = 1 + j.shadows + j.chunkservers + j.clients;
  LaunchPlan own;
  if (plan == nullptr) {
    auto p = PlanLaunch(cl);
    if (p.ok()) own = std::move(*p);
    plan = &own;
  }
  const char* mpirun = std::getenv("GFS_MPIRUN");
  // --enable-recovery: a killed rank leaves the rest running. Then the
  // barrier at the start of MPI_Finalize can wait for the dead rank for ever
  // (seen after a chunkserver was SIGKILLed mid-transfer): skip it.
  // rtc_hwloc_vmhole none: a remote daemon otherwise maps its hardware
  // topology into a "hole" of its address space for the ranks to share, and
  // on a loaded node that hole can be next to the growing stack (seen as a
  // SIGSEGV in hwloc_shmem_topology_write in the daemon). Each rank reads
  // the topology itself instead.
  std::vector<std::string> cmd = {mpirun ? mpirun : "mpirun",
                                  "-q",
                                  "--enable-recovery",
                                  "--mca",
                                  "async_mpi_finalize",
                                  "1",
                                  "--mca",
                                  "rtc_hwloc_vmhole",
                                  "none"};
  if (plan->oversubscribe) cmd.push_back("--oversubscribe");
  if (geteuid() == 0) cmd.push_back("--allow-run-as-root");
  if (!cl.global.hostfile.empty()) {
    cmd.push_back("--hostfile");
    cmd.push_back(cl.global.hostfile);
  }
  if (!plan->rankfile.empty() && !rankfile_path.empty()) {
    cmd.push_back("--rankfile");
    cmd.push_back(rankfile_path);
  }
  // Whether progress may redraw one line: the launcher's stderr is what the
  // user sees (the ranks' stderr is a pipe to mpirun).
  cmd.push_back("-x");
  cmd.push_back(std::string("GFS_PROGRESS_TTY=") + (isatty(2) ? "1" : "0"));
  // stdin goes to the client that runs the command.
  cmd.push_back("--stdin");
  cmd.push_back(std::to_string(1 + j.shadows + j.chunkservers));
  for (const std::string& a : SplitArgs(cl.global.mpirun_args)) cmd.push_back(a);
  cmd.push_back("-np");
  cmd.push_back(std::to_string(np));
  cmd.push_back(self);
  // Pass the user's global options through unchanged, then pin the counts
  // the launcher decided, then the command.
  (void)argc;
  (void)argv;
  for (const auto& g : cl.global_groups) {
    std::string name = g[0].substr(0, g[0].find('='));
    if (name == "--dry-run" || name == "--chunkservers" || name == "--clients" ||
        name == "--status-file") {
      continue;
    }
    for (const auto& t : g) cmd.push_back(t);
  }
  cmd.push_back("--chunkservers");
  cmd.push_back(std::to_string(j.chunkservers));
  cmd.push_back("--clients");
  cmd.push_back(std::to_string(j.clients));
  if (!status_file.empty()) {
    cmd.push_back("--status-file");
    cmd.push_back(status_file);
  }
  cmd.push_back(cl.command);
  for (const auto& a : cl.command_tail) cmd.push_back(a);
  return cmd;
}

int Launch(const CommandLine& cl, int argc, char** argv) {
  std::string self = SelfPath(argv[0]);
  auto planned = PlanLaunch(cl);
  if (!planned.ok()) {
    std::fprintf(stderr, "gfs: %s\n", planned.status().message().c_str());
    return 2;
  }
  const LaunchPlan& plan = *planned;
  if (cl.global.dry_run) {
    auto cmd = MpirunCommand(cl, argc, argv, self, "", &plan, "RANKFILE");
    std::printf("%s\n", JoinCommand(cmd).c_str());
    if (!plan.rankfile.empty()) {
      std::printf("# RANKFILE (a temp file, removed when mpirun exits):\n");
      std::istringstream in(plan.rankfile);
      std::string l;
      while (std::getline(in, l)) std::printf("# %s\n", l.c_str());
    }
    return 0;
  }
  // The first client writes the exit status to a file the launcher reads.
  // It runs on this host when the hostfile names it (or there is no
  // hostfile); otherwise the file must be on a shared directory: the
  // current one (see doc/cluster.md).
  bool status_here = plan.hosts.empty() || plan.local_host >= 0;
  std::string status_dir = "/tmp";
  if (!status_here) {
    char cwd[4096];
    if (getcwd(cwd, sizeof cwd) != nullptr) status_dir = cwd;
  }
  std::string status_file = MakeTemp(status_dir, status_here ? "gfs-status" : ".gfs-status");
  if (status_file.empty()) {
    std::fprintf(stderr, "gfs: cannot create a status file in %s: %s\n", status_dir.c_str(),
                 std::strerror(errno));
    return 1;
  }
  std::string rankfile_path;
  if (!plan.rankfile.empty()) {
    rankfile_path = MakeTemp("/tmp", "gfs-rankfile");
    std::ofstream rf(rankfile_path);
    if (rankfile_path.empty() || !(rf << plan.rankfile) || !rf.flush()) {
      std::fprintf(stderr, "gfs: cannot write a rankfile in /tmp: %s\n", std::strerror(errno));
      if (!rankfile_path.empty()) unlink(rankfile_path.c_str());
      unlink(status_file.c_str());
      return 1;
    }
  }
  auto cmd = MpirunCommand(cl, argc, argv, self, status_file, &plan, rankfile_path);
  std::vector<char*> cargv;
  for (auto& a : cmd) cargv.push_back(a.data());
  cargv.push_back(nullptr);

  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = Forward;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);

  // Ranks that mpirun leaves behind (it can exit before they do after a
  // signal) become this process's children, so it can wait for them: no rank
  // runs, or writes a file, once the prompt is back.
  prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  pid_t pid = fork();
  if (pid < 0) {
    std::fprintf(stderr, "gfs: fork: %s\n", std::strerror(errno));
    unlink(status_file.c_str());
    if (!rankfile_path.empty()) unlink(rankfile_path.c_str());
    return 1;
  }
  if (pid == 0) {
    execvp(cargv[0], cargv.data());
    std::fprintf(stderr, "gfs: cannot run %s: %s (is Open MPI installed?)\n", cargv[0],
                 std::strerror(errno));
    _exit(127);
  }
  g_child = pid;
  int wstatus = 0;
  const int first_client = 1 + cl.global.job.shadows + cl.global.job.chunkservers;
  bool stopping = false, done = false;
  // mpirun can outlive the job. Seen with Open MPI 4.1 on the test hosts: a
  // host's client rank SIGKILLed while another rank of that host later ended
  // normally, and mpirun waited for ever after every rank had exited. Once
  // the first client has written the status, every rank is past its work
  // (it writes it after the storage ranks stopped), so mpirun gets
  // kMpirunGraceSeconds to end, then SIGTERM (it stops its daemons), then
  // SIGKILL. Checked every 100 ms, sleeping in between.
  constexpr int kMpirunGraceSeconds = 20;
  int ticks_since_status = -1;
  while (!done) {
    const pid_t w = waitpid(pid, &wstatus, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) break;
    if (g_signal != 0 && !stopping) {
      stopping = true;
      StopJob(pid, g_signal, first_client, &wstatus, &done);
      continue;
    }
    if (ticks_since_status < 0 && !stopping && StatusWritten(status_file)) ticks_since_status = 0;
    if (ticks_since_status >= 0) {
      ++ticks_since_status;
      if (ticks_since_status == kMpirunGraceSeconds * 10) {
        std::fprintf(stderr,
                     "gfs: mpirun has not exited %d s after the job reported its status (a rank "
                     "on another host was lost?): stopping it\n",
                     kMpirunGraceSeconds);
        kill(pid, SIGTERM);
      } else if (ticks_since_status == (kMpirunGraceSeconds + 10) * 10) {
        kill(pid, SIGKILL);
      }
    }
    usleep(100000);
  }
  g_child = 0;
  ReapOrphans();
  if (!rankfile_path.empty()) unlink(rankfile_path.c_str());
  std::ifstream in(status_file);
  int code = -1;
  if (!(in >> code)) code = -1;
  unlink(status_file.c_str());
  if (g_signal != 0) {
    // Interrupted: whatever the ranks managed to report, the command did not
    // run to its end (a put fed from stdin sees end-of-file, for one).
    std::fprintf(stderr, "gfs: interrupted by signal %d\n", static_cast<int>(g_signal));
    return 128 + g_signal;
  }
  if (code >= 0) return code;
  if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 127) return 127;
  if (WIFSIGNALED(wstatus)) {
    std::fprintf(stderr, "gfs: the job was killed by signal %d before reporting a status\n",
                 WTERMSIG(wstatus));
  } else {
    std::fprintf(stderr, "gfs: the job ended without reporting a status (mpirun exit %d)\n",
                 WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1);
  }
  if (!status_here) {
    std::fprintf(stderr,
                 "gfs: (this host is not in the hostfile: the status file %s must be on a "
                 "directory every node shares; see doc/cluster.md)\n",
                 status_file.c_str());
  }
  return 3;
}

}  // namespace gfs::tool
