// Pieces shared by the re-replication benchmark (bench/rerep_bench.cc) and
// the fault-injection test program it grew from (tests/programs/
// fault_client.cc, its `put` mode): key=value arguments, the seekable
// pseudo-random byte stream both sides regenerate instead of storing, and
// the put loop that writes such a stream. Header-only, on the client API.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "io/client.h"

namespace gfs::stream {

using Args = std::map<std::string, std::string>;

// argv[first..argc) as key=value pairs; words without '=' are ignored.
inline Args ParseArgs(int argc, char** argv, int first) {
  Args a;
  for (int i = first; i < argc; ++i) {
    std::string kv = argv[i];
    auto eq = kv.find('=');
    if (eq != std::string::npos) a[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return a;
}

inline uint64_t Num(const Args& a, const std::string& k, uint64_t def) {
  auto it = a.find(k);
  return it == a.end() ? def : std::stoull(it->second);
}

inline uint64_t Mix(uint64_t x) {  // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// The content of "stream" `seed` at byte position `pos`: any range of it can
// be generated on its own, so writer and checker agree without storing it
// (and 1 GiB is never held in memory).
inline void Fill(uint64_t seed, uint64_t pos, uint8_t* out, size_t n) {
  for (size_t i = 0; i < n;) {
    uint64_t p = pos + i;
    uint64_t w = Mix(seed * 0x100000001b3ull ^ (p >> 3));
    for (unsigned b = static_cast<unsigned>(p & 7); b < 8 && i < n; ++b, ++i) {
      out[i] = static_cast<uint8_t>(w >> (8 * b));
    }
  }
}

// Replaces `path` with one line of text in one rename, so a script polling
// for the file never reads half of it.
inline void WriteText(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text << "\n";
  }
  std::rename(tmp.c_str(), path.c_str());
}

// Creates `path`, writes `bytes` of stream `seed` to it in 8 MiB calls and
// closes it (fsync on every replica). after_write(off, n) runs after each
// call (progress files, kill points); a non-empty answer stops the put and
// is returned. Returns "" on success, else what failed.
inline std::string PutStream(
    gfs::Client* c, const std::string& path, uint64_t bytes, uint64_t seed,
    const std::function<std::string(uint64_t off, uint64_t n)>& after_write = nullptr) {
  auto f = c->Create(path);
  if (!f.ok()) return "create: " + f.status().ToString();
  const size_t step = 8u << 20;
  std::vector<uint8_t> buf(static_cast<size_t>(std::min<uint64_t>(step, bytes)));
  for (uint64_t off = 0; off < bytes; off += step) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(step, bytes - off));
    Fill(seed, off, buf.data(), n);
    gfs::Status s = c->Write(&*f, off, buf.data(), n);
    if (!s.ok()) return "write at " + std::to_string(off) + ": " + s.ToString();
    if (after_write) {
      std::string stop = after_write(off, n);
      if (!stop.empty()) return stop;
    }
  }
  gfs::Status s = c->Close(&*f);
  if (!s.ok()) return "close: " + s.ToString();
  return "";
}

}  // namespace gfs::stream
