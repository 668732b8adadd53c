#include "io/tool/launcher.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "io/gfs.h"

namespace gfs::tool {
namespace {

volatile sig_atomic_t g_child = 0;
volatile sig_atomic_t g_signal = 0;

void Forward(int sig) {
  g_signal = sig;
  if (g_child > 0) kill(static_cast<pid_t>(g_child), sig);
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

}  // namespace

bool UnderMpiLauncher() {
  for (const char* v :
       {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "MPI_LOCALNRANKS"}) {
    if (std::getenv(v) != nullptr) return true;
  }
  return false;
}

std::vector<std::string> MpirunCommand(const CommandLine& cl, int argc, char** argv,
                                       const std::string& self, const std::string& status_file) {
  const JobConfig& j = cl.global.job;
  const int np = 1 + j.shadows + j.chunkservers + j.clients;
  const char* mpirun = std::getenv("GFS_MPIRUN");
  std::vector<std::string> cmd = {mpirun ? mpirun : "mpirun", "-q", "--enable-recovery"};
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  if (cl.global.hostfile.empty() && np > cores) cmd.push_back("--oversubscribe");
  if (geteuid() == 0) cmd.push_back("--allow-run-as-root");
  if (!cl.global.hostfile.empty()) {
    cmd.push_back("--hostfile");
    cmd.push_back(cl.global.hostfile);
  }
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
  for (const auto& a : cl.args) cmd.push_back(a);
  return cmd;
}

int Launch(const CommandLine& cl, int argc, char** argv) {
  std::string self = SelfPath(argv[0]);
  if (cl.global.dry_run) {
    auto cmd = MpirunCommand(cl, argc, argv, self, "");
    std::string line;
    for (const auto& a : cmd) {
      if (!line.empty()) line += ' ';
      line += ShellQuote(a);
    }
    std::printf("%s\n", line.c_str());
    return 0;
  }
  char tmpl[] = "/tmp/gfs-status-XXXXXX";
  int fd = mkstemp(tmpl);
  if (fd < 0) {
    std::fprintf(stderr, "gfs: cannot create a status file in /tmp: %s\n", std::strerror(errno));
    return 1;
  }
  close(fd);
  std::string status_file = tmpl;
  auto cmd = MpirunCommand(cl, argc, argv, self, status_file);
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

  pid_t pid = fork();
  if (pid < 0) {
    std::fprintf(stderr, "gfs: fork: %s\n", std::strerror(errno));
    unlink(status_file.c_str());
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
  while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  g_child = 0;
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
  return 3;
}

}  // namespace gfs::tool
