// Record-append throughput against baselines in the same run (an MPI program
// hosting the store, like the ones in tests/programs).
//
//   mpirun -np 1+K+C build/bench/gfs-append-bench --data-dir DIR [--chunkservers K]
//       [--mib N] [--record-size B,B...] [--producers P,P...] [--replication R,R...]
//       [--h5-dir DIR] [--json FILE]
//
// For each replication R and record size B:
//  - stream:  client 0 writes N MiB with Client::Write (one stream), then
//             closes (fsync on every replica);
//  - append:  P producers record-append N/P MiB each (framed records, packed
//             into append units) to one file, then close; for each P;
//  - h5pt:    (R = 1 only) HDF5's own packet table, single-writer: every
//             producer's packets are gathered (MPI_Gather) to client 0, which
//             H5PTappend()s them to a local .h5 file, then flushes and fsyncs.
// MB/s = 10^6 payload bytes per second, wall time from a barrier to the last
// rank done. Prints a table and, with --json, one JSON object per line.
#include <fcntl.h>
#include <hdf5.h>
#include <hdf5_hl.h>
#include <mpi.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "io/gfs.h"
#include "io/record_io.h"
#include "mpi/clock.h"

namespace {

std::vector<uint64_t> ParseList(const std::string& s) {
  std::vector<uint64_t> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(std::stoull(item));
  }
  return out;
}

struct Args {
  std::string data_dir = "./gfs-bench-data", h5_dir = "/tmp", json;
  int chunkservers = 3;
  uint64_t mib = 256;
  std::vector<uint64_t> sizes = {4096, 65536}, producers = {1, 2, 4, 8}, repl = {1, 3};
};

double Timed(MPI_Comm comm, uint64_t start_us) {
  double mine = static_cast<double>(gfs::MonoMicros() - start_us) / 1e6, all = 0;
  MPI_Allreduce(&mine, &all, 1, MPI_DOUBLE, MPI_MAX, comm);
  return all;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--data-dir")
      a.data_dir = v;
    else if (k == "--chunkservers")
      a.chunkservers = std::stoi(v);
    else if (k == "--mib")
      a.mib = std::stoull(v);
    else if (k == "--record-size")
      a.sizes = ParseList(v);
    else if (k == "--producers")
      a.producers = ParseList(v);
    else if (k == "--replication")
      a.repl = ParseList(v);
    else if (k == "--h5-dir")
      a.h5_dir = v;
    else if (k == "--json")
      a.json = v;
  }
  gfs::JobConfig cfg;
  cfg.data_dir = a.data_dir;
  cfg.chunkservers = a.chunkservers;
  cfg.replication = 1;
  gfs::Session s;
  gfs::Status st = gfs::Init(MPI_COMM_WORLD, cfg, &s);
  if (!st.ok()) {
    if (s.world_rank() == 0) std::fprintf(stderr, "append-bench: %s\n", st.ToString().c_str());
    MPI_Finalize();
    return 1;
  }
  if (s.is_client()) {
    gfs::Client* c = s.client();
    MPI_Comm comm = s.app_comm();
    const int me = s.client_index(), clients = s.num_clients();
    const uint64_t total = a.mib << 20;
    FILE* json = (me == 0 && !a.json.empty()) ? std::fopen(a.json.c_str(), "w") : nullptr;
    int run = 0;
    auto report = [&](const char* api, uint64_t r, uint64_t size, int producers, double secs,
                      double base) {
      if (me != 0) return;
      double mbs = static_cast<double>(total) / 1e6 / secs;
      std::printf("%-7s R=%" PRIu64 " record=%7" PRIu64 " producers=%d  %8.1f MB/s  %6.2f s", api,
                  r, size, producers, mbs, secs);
      if (base > 0) std::printf("  ratio vs stream %.2f", mbs / base);
      std::printf("\n");
      std::fflush(stdout);
      if (json) {
        std::fprintf(json,
                     "{\"api\":\"%s\",\"workload\":\"append\",\"ranks\":%d,\"replication\":%" PRIu64
                     ",\"record_size\":%" PRIu64 ",\"bytes\":%" PRIu64
                     ",\"seconds\":%.4f,\"mb_per_s\":%.2f,\"ratio_vs\":{\"stream\":%.3f}}\n",
                     api, producers, r, size, total, secs, mbs, base > 0 ? mbs / base : 1.0);
      }
    };
    for (uint64_t r : a.repl) {
      for (uint64_t size : a.sizes) {
        // Single stream.
        std::string path = "/bench/stream-" + std::to_string(run++);
        double stream_mbs = 0;
        {
          if (me == 0) {
            c->Mkdir("/bench", true);
            gfs::CreateOptions co;
            co.replication = static_cast<uint32_t>(r);
            co.exclusive = false;
            co.truncate = true;
            auto f = c->Create(path, co);
            std::vector<uint8_t> buf(8u << 20, 0x5a);
            MPI_Barrier(comm);
            uint64_t t0 = gfs::MonoMicros();
            for (uint64_t off = 0; f.ok() && off < total; off += buf.size()) {
              c->Write(&*f, off, buf.data(), std::min<uint64_t>(buf.size(), total - off));
            }
            if (f.ok()) c->Close(&*f);
            double secs = Timed(comm, t0);
            stream_mbs = static_cast<double>(total) / 1e6 / secs;
            report("stream", r, size, 1, secs, 0);
          } else {
            MPI_Barrier(comm);
            Timed(comm, gfs::MonoMicros());
          }
          MPI_Bcast(&stream_mbs, 1, MPI_DOUBLE, 0, comm);
        }
        // Record append from P producers.
        for (uint64_t p : a.producers) {
          if (static_cast<int>(p) > clients) continue;
          std::string apath = "/bench/append-" + std::to_string(run++);
          if (me == 0) {
            gfs::CreateOptions co;
            co.replication = static_cast<uint32_t>(r);
            c->Create(apath, co);
          }
          MPI_Barrier(comm);
          auto f = c->Open(apath);
          uint64_t count = total / size / p;
          MPI_Barrier(comm);
          uint64_t t0 = gfs::MonoMicros();
          if (static_cast<uint64_t>(me) < p && f.ok()) {
            gfs::RecordWriter w(c, &*f);
            std::vector<uint8_t> payload(size, static_cast<uint8_t>(me));
            std::vector<gfs::Client::Span> batch;
            std::vector<uint64_t> offsets;
            for (uint64_t done = 0; done < count;) {
              uint64_t n = std::min<uint64_t>(256, count - done);
              batch.assign(n, gfs::Client::Span{payload.data(), payload.size()});
              gfs::Status as = w.AppendMany(batch, &offsets);
              if (!as.ok()) {
                std::fprintf(stderr, "append-bench: %s\n", as.ToString().c_str());
                break;
              }
              done += n;
            }
            c->Close(&*f);
          }
          report("append", r, size, static_cast<int>(p), Timed(comm, t0), stream_mbs);
        }
        // HDF5's packet table: single writer, packets gathered to it.
        if (r == 1) {
          int p = clients;
          uint64_t count = total / size / static_cast<uint64_t>(p);
          std::string h5 = a.h5_dir + "/gfs-bench-h5pt-" + std::to_string(getpid()) + ".h5";
          hid_t fid = -1, pt = -1, type = -1;
          if (me == 0) {
            fid = H5Fcreate(h5.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
            type = H5Tarray_create2(H5T_NATIVE_UCHAR, 1, std::vector<hsize_t>{size}.data());
            pt = H5PTcreate(fid, "packets", type,
                            static_cast<hsize_t>(std::max<uint64_t>(1, (1u << 20) / size)),
                            H5P_DEFAULT);
          }
          const uint64_t kBatch = std::max<uint64_t>(1, (1u << 20) / size);
          std::vector<uint8_t> mine(kBatch * size, static_cast<uint8_t>(me));
          std::vector<uint8_t> all(me == 0 ? kBatch * size * static_cast<uint64_t>(p) : 0);
          MPI_Barrier(comm);
          uint64_t t0 = gfs::MonoMicros();
          for (uint64_t done = 0; done < count; done += kBatch) {
            uint64_t n = std::min(kBatch, count - done);
            MPI_Gather(mine.data(), static_cast<int>(n * size), MPI_BYTE, all.data(),
                       static_cast<int>(n * size), MPI_BYTE, 0, comm);
            if (me == 0)
              H5PTappend(pt, static_cast<size_t>(n) * static_cast<size_t>(p), all.data());
          }
          if (me == 0) {
            H5PTclose(pt);
            H5Tclose(type);
            H5Fflush(fid, H5F_SCOPE_GLOBAL);
            H5Fclose(fid);
            int fd = open(h5.c_str(), O_RDONLY);
            if (fd >= 0) {
              fsync(fd);
              close(fd);
            }
          }
          double secs = Timed(comm, t0);
          if (me == 0) {
            unlink(h5.c_str());
            double mbs = static_cast<double>(total) / 1e6 / secs;
            std::printf("h5pt    R=local record=%7" PRIu64
                        " producers=%d  %8.1f MB/s  %6.2f s  "
                        "(single writer, gathered)\n",
                        size, p, mbs, secs);
            if (json) {
              std::fprintf(json,
                           "{\"api\":\"hdf5-pt\",\"workload\":\"append\",\"ranks\":%d,"
                           "\"replication\":1,\"record_size\":%" PRIu64 ",\"bytes\":%" PRIu64
                           ",\"seconds\":%.4f,\"mb_per_s\":%.2f,\"ratio_vs\":{}}\n",
                           p, size, total, secs, mbs);
            }
          }
        }
      }
    }
    if (json) std::fclose(json);
  }
  gfs::Finalize(&s, 0);
  MPI_Finalize();
  return 0;
}
