#include "io/tool/interrupt.h"

#include <signal.h>
#include <unistd.h>

#include <cstring>

#include "io/tool/commands.h"

namespace gfs::tool {
namespace {

volatile sig_atomic_t g_interrupted = 0;
// The local temporary file being written (get), removed by the handler.
char g_local_temp[8192];
volatile sig_atomic_t g_local_temp_set = 0;

void OnInterrupt(int sig) {
  g_interrupted = sig;
  if (g_local_temp_set) {
    ::unlink(g_local_temp);
    g_local_temp_set = 0;
  }
}

}  // namespace

void SetLocalTemp(const std::string& path) {
  if (path.size() >= sizeof g_local_temp) return;
  g_local_temp_set = 0;
  std::memcpy(g_local_temp, path.c_str(), path.size() + 1);
  g_local_temp_set = 1;
}

void ClearLocalTemp() { g_local_temp_set = 0; }

Status InterruptedStatus() {
  return Status(Code::kUnavailable,
                std::string("interrupted by ") + (g_interrupted == SIGINT ? "SIGINT" : "SIGTERM"));
}

void InstallInterruptHandlers() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = OnInterrupt;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

int Interrupted() { return g_interrupted; }

}  // namespace gfs::tool
