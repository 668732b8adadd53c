// A small logger for the storage ranks' diagnostics: one line per message on
// stderr, with the time, the level and the writer ("gfs: 11:04:05.123 W
// master: ..."). The level is per process: warnings and errors by default, so
// that a command that succeeds prints nothing; `gfs -v` adds info and debug,
// `gfs -q` keeps errors only. Thread-safe (one write(2) per line).
#pragma once

namespace gfs::log {

enum class Level { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

void SetLevel(Level level);
Level GetLevel();
inline bool Enabled(Level level) { return static_cast<int>(level) <= static_cast<int>(GetLevel()); }

// printf-style; the line ends are added here.
void Write(Level level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace gfs::log

#define GFS_LOG_ERROR(...) ::gfs::log::Write(::gfs::log::Level::kError, __VA_ARGS__)
#define GFS_LOG_WARN(...) ::gfs::log::Write(::gfs::log::Level::kWarn, __VA_ARGS__)
#define GFS_LOG_INFO(...) ::gfs::log::Write(::gfs::log::Level::kInfo, __VA_ARGS__)
#define GFS_LOG_DEBUG(...) ::gfs::log::Write(::gfs::log::Level::kDebug, __VA_ARGS__)
