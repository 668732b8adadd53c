// Scans chunk files for record frames (test helper, no MPI): for each file
// given, prints "FILE frames=N garbage_before_tail=G tail_padding=P" where
// tail_padding counts the zero bytes after the last frame and G every other
// byte that is not part of a valid frame. Padding belongs only at chunk ends,
// so in a run without failures G must be 0.
#include <cstdio>
#include <fstream>
#include <iterator>
#include <vector>

#include "io/record.h"

int main(int argc, char** argv) {
  int bad = 0;
  for (int i = 1; i < argc; ++i) {
    std::ifstream in(argv[i], std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "cannot open %s\n", argv[i]);
      return 2;
    }
    std::vector<uint8_t> d((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    uint64_t frames = 0, covered = 0, last_end = 0;
    gfs::ScanFrames(
        d.data(), d.size(), 0,
        [&](const gfs::RecordView& r) {
          ++frames;
          covered += gfs::FrameSize(r.size);
          last_end = r.offset + gfs::FrameSize(r.size);
        },
        gfs::kMaxRecordPayloadAnyChunk, true);
    uint64_t tail = d.size() - last_end;
    for (uint64_t k = last_end; k < d.size(); ++k) {
      if (d[k] != 0) {
        ++bad;
        break;
      }
    }
    uint64_t garbage = last_end - covered;
    std::printf("%s frames=%llu garbage_before_tail=%llu tail_padding=%llu\n", argv[i],
                static_cast<unsigned long long>(frames), static_cast<unsigned long long>(garbage),
                static_cast<unsigned long long>(tail));
  }
  return bad ? 1 : 0;
}
