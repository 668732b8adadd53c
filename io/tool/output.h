// Output helpers of the gfs tool: error lines, JSON, sizes and times for
// people, path pieces, a progress line for long transfers.
#pragma once

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "common/clock.h"
#include "io/client.h"
#include "io/tool/commands.h"
#include "jobs/options.h"

namespace gfs::tool {

using Json = nlohmann::json;

// "gfs: get: /x: no such file or directory" (+ " (detail)" when the detail
// adds something). Always one line.
void PrintError(const std::string& cmd, const std::string& path, const Status& s);
void PrintJson(const Json& j);
// Names in text listings: control characters as '?', like ls(1) on a terminal.
std::string Shown(const std::string& s);
// A byte count, for people (HumanSize) or exact.
std::string Size(uint64_t v, bool human);
// Local time as "YYYY-MM-DD HH:MM".
std::string TimeText(int64_t ms);
// 16 hex digits.
std::string HexId(uint64_t id);
std::string BaseName(const std::string& p);
std::string DirName(const std::string& p);
std::string Join(const std::string& dir, const std::string& name);
// A name with the temporary prefix (kTempPrefix).
bool IsTemp(const std::string& name);
Json StatJson(const FileStat& s);

// Progress of a long transfer on stderr. On a terminal (as the launcher saw
// it: GFS_PROGRESS_TTY=1) one line redrawn in place with bytes, percent,
// rate and time left; otherwise a plain line every few seconds.
class Progress {
 public:
  Progress(bool on, std::string what, uint64_t total)
      : on_(on), what_(std::move(what)), total_(total), start_(MonoMicros()) {
    const char* tty = std::getenv("GFS_PROGRESS_TTY");
    tty_ = tty != nullptr && std::string(tty) == "1";
  }
  void Update(uint64_t done) {
    if (!on_) return;
    uint64_t now = MonoMicros();
    if (now < next_) return;
    next_ = now + (tty_ ? 200000 : 2000000);
    Print(done, now, false);
  }
  void Finish(uint64_t done) {
    if (!on_) return;
    Print(done, MonoMicros(), true);
  }

 private:
  void Print(uint64_t done, uint64_t now, bool last) {
    double secs = static_cast<double>(now - start_) / 1e6;
    double rate = secs > 0 ? static_cast<double>(done) / secs : 0;
    std::string line = OneLine(what_, 60) + ": " + HumanSize(done);
    if (total_ > 0) {
      char b[64];
      std::snprintf(
          b, sizeof b, " / %s (%.0f%%)", HumanSize(total_).c_str(),
          100.0 * static_cast<double>(std::min(done, total_)) / static_cast<double>(total_));
      line += b;
    }
    line += ", " + HumanSize(static_cast<uint64_t>(rate)) + "/s";
    if (last) {
      char b[32];
      std::snprintf(b, sizeof b, " in %.1f s", secs);
      line += b;
    } else if (total_ > done && rate > 0) {
      uint64_t left = static_cast<uint64_t>(static_cast<double>(total_ - done) / rate);
      char b[48];
      std::snprintf(b, sizeof b, ", ETA %" PRIu64 ":%02" PRIu64, left / 60, left % 60);
      line += b;
    }
    if (tty_) {
      std::fprintf(stderr, "\r%-78s%s", line.c_str(), last ? "\n" : "");
    } else {
      std::fprintf(stderr, "%s\n", line.c_str());
    }
    std::fflush(stderr);
  }

  bool on_;
  bool tty_ = false;
  std::string what_;
  uint64_t total_;
  uint64_t start_;
  uint64_t next_ = 0;
};

}  // namespace gfs::tool
