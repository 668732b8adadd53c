#include "io/tool/output.h"

#include <ctime>

#include "io/tool/commands.h"

namespace gfs::tool {

// "gfs: get: /x: no such file or directory" (+ " (detail)" when the detail
// adds something). Always one line.
void PrintError(const std::string& cmd, const std::string& path, const Status& s) {
  std::string line = "gfs: " + cmd + ": ";
  if (!path.empty()) line += OneLine(path, 300) + ": ";
  line += CodeName(s.code());
  const std::string& m = s.message();
  if (!m.empty() && m != path) line += " (" + OneLine(m, 600) + ")";
  std::fprintf(stderr, "%s\n", line.c_str());
}

void PrintJson(const Json& j) {
  std::string s = j.dump(-1, ' ', false, Json::error_handler_t::replace);
  std::printf("%s\n", s.c_str());
}

// Names in text listings: control characters as '?', like ls(1) on a terminal.
std::string Shown(const std::string& s) {
  std::string o = s;
  for (char& c : o) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return o;
}

std::string Size(uint64_t v, bool human) { return human ? HumanSize(v) : std::to_string(v); }

std::string TimeText(int64_t ms) {
  time_t t = static_cast<time_t>(ms / 1000);
  struct tm tm;
  localtime_r(&t, &tm);
  char b[32];
  std::strftime(b, sizeof b, "%Y-%m-%d %H:%M", &tm);
  return b;
}

std::string HexId(uint64_t id) {
  char b[20];
  std::snprintf(b, sizeof b, "%016" PRIx64, id);
  return b;
}

std::string BaseName(const std::string& p) {
  std::string s = p;
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  auto slash = s.rfind('/');
  return slash == std::string::npos ? s : s.substr(slash + 1);
}

std::string DirName(const std::string& p) {
  std::string s = p;
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  auto slash = s.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return s.substr(0, slash);
}

std::string Join(const std::string& dir, const std::string& name) {
  if (!dir.empty() && dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

bool IsTemp(const std::string& name) { return name.rfind(kTempPrefix, 0) == 0; }

Json StatJson(const FileStat& s) {
  Json j;
  j["path"] = s.path;
  j["type"] = s.is_dir ? "dir" : "file";
  j["size"] = s.size;
  j["replication"] = s.replication;
  j["chunk_size"] = s.chunk_size;
  j["chunks"] = s.chunks;
  j["mtime_ms"] = s.mtime_ms;
  return j;
}

std::string HumanSize(uint64_t v) {
  static const char* kUnits = "KMGTPE";
  if (v < 1024) return std::to_string(v);
  double d = static_cast<double>(v);
  int u = -1;
  while (d >= 1024 && u < 5) {
    d /= 1024;
    ++u;
  }
  char b[32];
  if (d < 10 && d != static_cast<double>(static_cast<uint64_t>(d)))
    std::snprintf(b, sizeof b, "%.1f%c", d, kUnits[u]);
  else
    std::snprintf(b, sizeof b, "%.0f%c", d, kUnits[u]);
  return b;
}

}  // namespace gfs::tool
