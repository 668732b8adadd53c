#include "common/log.h"

#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <ctime>

namespace gfs::log {
namespace {

std::atomic<int> g_level{static_cast<int>(Level::kWarn)};

char Letter(Level l) {
  switch (l) {
    case Level::kError:
      return 'E';
    case Level::kWarn:
      return 'W';
    case Level::kInfo:
      return 'I';
    case Level::kDebug:
      return 'D';
  }
  return '?';
}

}  // namespace

void SetLevel(Level level) { g_level.store(static_cast<int>(level)); }

Level GetLevel() { return static_cast<Level>(g_level.load()); }

void Write(Level level, const char* fmt, ...) {
  if (!Enabled(level)) return;
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  struct tm tm;
  localtime_r(&tv.tv_sec, &tm);
  char line[2048];
  int n = std::snprintf(line, sizeof line, "gfs: %02d:%02d:%02d.%03d %c ", tm.tm_hour, tm.tm_min,
                        tm.tm_sec, static_cast<int>(tv.tv_usec / 1000), Letter(level));
  va_list ap;
  va_start(ap, fmt);
  int m = std::vsnprintf(line + n, sizeof line - static_cast<size_t>(n) - 1, fmt, ap);
  va_end(ap);
  size_t len = static_cast<size_t>(n) + (m < 0 ? 0 : static_cast<size_t>(m));
  if (len > sizeof line - 2) len = sizeof line - 2;
  while (len > 0 && line[len - 1] == '\n') --len;
  line[len++] = '\n';
  ssize_t w = ::write(2, line, len);
  (void)w;
}

}  // namespace gfs::log
