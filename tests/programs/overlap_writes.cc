// Concurrent overlapping writes from several client ranks through the library
// (a user MPI program hosting the store with gfs::Init).
//
//   mpirun -np N overlap_writes DATA_DIR RESULT_FILE
//
// Phase 1 (concurrent): every client writes, at the same time, 12 blocks of
// 1.5 MiB filled with its own byte value at pseudo-random overlapping offsets
// of /overlap (1 MiB chunks). Afterwards the file is "consistent but
// undefined": every replica holds the same bytes (checked on disk by the test
// script), and every byte is one of the writers' values.
// Phase 2 (serial): clients take turns writing overlapping ranges of /serial;
// the result must be exactly the serial composition ("defined").
// Writes "OK" or "FAIL reason" to RESULT_FILE (mpirun's exit status is not
// reliable under --enable-recovery).
#include <mpi.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "jobs/gfs.h"

namespace {

void Report(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  if (argc != 3) {
    std::fprintf(stderr, "usage: overlap_writes DATA_DIR RESULT_FILE\n");
    MPI_Finalize();
    return 2;
  }
  gfs::JobConfig cfg;
  cfg.data_dir = argv[1];
  cfg.chunkservers = 3;
  cfg.replication = 3;
  cfg.chunk_size = 1 << 20;
  cfg.write_op_size = 256 << 10;
  cfg.slice_size = 64 << 10;
  gfs::Session s;
  gfs::Status st = gfs::Init(MPI_COMM_WORLD, cfg, &s);
  std::string verdict = "OK";
  if (!st.ok()) {
    verdict = "FAIL init: " + st.ToString();
  } else if (s.is_client()) {
    gfs::Client* c = s.client();
    MPI_Comm comm = s.app_comm();
    const int me = s.client_index(), n = s.num_clients();
    const size_t kFile = 6u << 20, kBlock = (3u << 20) / 2;
    if (me == 0) {
      gfs::CreateOptions co;
      auto f = c->Create("/overlap", co);
      auto g = c->Create("/serial", co);
      if (!f.ok() || !g.ok()) verdict = "FAIL create";
    }
    MPI_Barrier(comm);
    // Phase 1: concurrent overlapping writes.
    auto f = c->Open("/overlap");
    std::vector<uint8_t> block(kBlock, static_cast<uint8_t>(me + 1));
    std::mt19937_64 rng(static_cast<uint64_t>(me) * 7919 + 1);
    for (int i = 0; i < 12 && f.ok(); ++i) {
      uint64_t off = rng() % (kFile - kBlock);
      gfs::Status w = c->Write(&*f, off, block.data(), block.size());
      if (!w.ok()) verdict = "FAIL concurrent write: " + w.ToString();
    }
    if (f.ok()) {
      gfs::Status cl = c->Close(&*f);
      if (!cl.ok()) verdict = "FAIL close: " + cl.ToString();
    }
    MPI_Barrier(comm);
    if (me == 0 && verdict == "OK") {
      auto r = c->Open("/overlap");
      std::vector<uint8_t> all(kFile);
      auto got = r.ok() ? c->Read(&*r, 0, all.data(), all.size()) : gfs::Result<size_t>(r.status());
      if (!got.ok()) {
        verdict = "FAIL read: " + got.status().ToString();
      } else {
        for (size_t i = 0; i < *got; ++i) {
          if (all[i] > n) {
            verdict = "FAIL byte " + std::to_string(i) + " = " + std::to_string(all[i]) +
                      " is no writer's value";
            break;
          }
        }
      }
    }
    // Phase 2: serial overlapping writes, one client at a time.
    std::vector<uint8_t> expect(kFile, 0);
    size_t expect_len = 0;
    for (int turn = 0; turn < n; ++turn) {
      uint64_t off = static_cast<uint64_t>(turn) * (kBlock / 2);
      if (turn == me) {
        auto g = c->Open("/serial");
        gfs::Status w = g.ok() ? c->Write(&*g, off, block.data(), block.size()) : g.status();
        if (w.ok()) w = c->Close(&*g);
        if (!w.ok()) verdict = "FAIL serial write: " + w.ToString();
      }
      std::memset(expect.data() + off, turn + 1, kBlock);
      expect_len = std::max<size_t>(expect_len, off + kBlock);
      MPI_Barrier(comm);
    }
    if (me == 0 && verdict == "OK") {
      auto g = c->Open("/serial");
      std::vector<uint8_t> all(kFile);
      auto got = g.ok() ? c->Read(&*g, 0, all.data(), all.size()) : gfs::Result<size_t>(g.status());
      if (!got.ok() || *got != expect_len) {
        verdict = "FAIL serial read";
      } else if (std::memcmp(all.data(), expect.data(), expect_len) != 0) {
        verdict = "FAIL serial writes are not defined: content differs";
      }
    }
    // Gather verdicts to client 0.
    int bad = verdict == "OK" ? 0 : 1, any = 0;
    MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, comm);
    if (me == 0) Report(argv[2], any && verdict == "OK" ? "FAIL on another client" : verdict);
    if (bad) std::fprintf(stderr, "client %d: %s\n", me, verdict.c_str());
  }
  if (gfs::Status fin = gfs::Finalize(&s, verdict == "OK" ? 0 : 1); !fin.ok()) {
    std::fprintf(stderr, "finalize: %s\n", fin.ToString().c_str());
  }
  MPI_Finalize();
  return 0;
}
