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

#include <algorithm>
#include <boost/program_options.hpp>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "common/clock.h"
#include "io/record_io.h"
#include "jobs/gfs.h"

namespace {

namespace po = boost::program_options;
using Json = nlohmann::json;

#ifndef GFS_VERSION
#define GFS_VERSION "unknown"
#endif

// "4096,65536" -> {4096, 65536}; false on anything but positive whole numbers.
bool ParseList(const std::string& s, std::vector<uint64_t>* out) {
  out->clear();
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item.empty() || item.size() > 15 ||
        item.find_first_not_of("0123456789") != std::string::npos)
      return false;
    uint64_t v = std::stoull(item);
    if (v == 0) return false;
    out->push_back(v);
  }
  return !out->empty();
}

void WriteJson(FILE* f, const Json& j) {
  std::fprintf(f, "%s\n", j.dump(-1, ' ', false, Json::error_handler_t::replace).c_str());
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
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  {
    std::string sizes = "4096,65536", producers = "1,2,4,8", repl = "1,3";
    po::options_description d("gfs-append-bench options");
    d.add_options()("help", "this help")("version", "print the version")(
        "data-dir", po::value(&a.data_dir), "the store's data directory")(
        "chunkservers", po::value(&a.chunkservers), "chunkserver ranks K (default 3)")(
        "mib", po::value(&a.mib), "MiB per measurement (default 256)")(
        "record-size", po::value(&sizes), "record sizes B,B... (default 4096,65536)")(
        "producers", po::value(&producers), "producer counts P,P... (default 1,2,4,8)")(
        "replication", po::value(&repl), "replications R,R... (default 1,3)")(
        "h5-dir", po::value(&a.h5_dir), "directory of the HDF5 packet table (default /tmp)")(
        "json", po::value(&a.json), "write one JSON object per result to FILE");
    std::string err;
    po::variables_map vm;
    try {
      po::store(po::parse_command_line(argc, argv, d), vm);
      po::notify(vm);
    } catch (const std::exception& e) {
      err = e.what();
    }
    if (err.empty() && (a.chunkservers < 1 || a.mib == 0))
      err = "--chunkservers and --mib must be positive";
    if (err.empty() && (!ParseList(sizes, &a.sizes) || !ParseList(producers, &a.producers) ||
                        !ParseList(repl, &a.repl))) {
      err = "--record-size, --producers and --replication take positive numbers, comma-separated";
    }
    const bool help = err.empty() && vm.count("help"), version = err.empty() && vm.count("version");
    if (rank == 0) {
      if (!err.empty()) std::fprintf(stderr, "gfs-append-bench: %s (see --help)\n", err.c_str());
      if (help) std::cout << "usage: mpirun -np 1+K+C gfs-append-bench [options]\n\n" << d;
      if (version) std::printf("gfs-append-bench %s\n", GFS_VERSION);
    }
    if (!err.empty() || help || version) {
      MPI_Finalize();
      return err.empty() ? 0 : 2;
    }
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
      double mbs = static_cast<double>(total) / 1e6 / std::max(secs, 1e-9);
      std::printf("%-7s R=%" PRIu64 " record=%7" PRIu64 " producers=%d  %8.1f MB/s  %6.2f s", api,
                  r, size, producers, mbs, secs);
      if (base > 0) std::printf("  ratio vs stream %.2f", mbs / base);
      std::printf("\n");
      std::fflush(stdout);
      if (json) {
        Json ratio = Json::object();
        if (base > 0) ratio["stream"] = mbs / base;
        WriteJson(json, Json{{"api", api},
                             {"workload", "append"},
                             {"ranks", producers},
                             {"replication", r},
                             {"record_size", size},
                             {"bytes", total},
                             {"seconds", secs},
                             {"mb_per_s", mbs},
                             {"ratio_vs", ratio}});
      }
    };
    for (uint64_t r : a.repl) {
      for (uint64_t size : a.sizes) {
        // Single stream.
        std::string path = "/bench/stream-" + std::to_string(run++);
        double stream_mbs = 0;
        {
          if (me == 0) {
            if (gfs::Status made = c->Mkdir("/bench", true); !made.ok()) {
              std::fprintf(stderr, "append-bench: mkdir /bench: %s\n", made.ToString().c_str());
            }
            gfs::CreateOptions co;
            co.replication = static_cast<uint32_t>(r);
            co.exclusive = false;
            co.truncate = true;
            auto f = c->Create(path, co);
            std::vector<uint8_t> buf(8u << 20, 0x5a);
            MPI_Barrier(comm);
            uint64_t t0 = gfs::MonoMicros();
            gfs::Status ws = f.status();
            for (uint64_t off = 0; ws.ok() && off < total; off += buf.size()) {
              ws = c->Write(&*f, off, buf.data(), std::min<uint64_t>(buf.size(), total - off));
            }
            if (ws.ok()) ws = c->Close(&*f);
            if (!ws.ok()) std::fprintf(stderr, "append-bench: stream: %s\n", ws.ToString().c_str());
            double secs = Timed(comm, t0);
            stream_mbs = static_cast<double>(total) / 1e6 / std::max(secs, 1e-9);
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
            auto made = c->Create(apath, co);
            if (!made.ok()) {
              std::fprintf(stderr, "append-bench: create %s: %s\n", apath.c_str(),
                           made.status().ToString().c_str());
            }
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
            if (gfs::Status cs = c->Close(&*f); !cs.ok()) {
              std::fprintf(stderr, "append-bench: close: %s\n", cs.ToString().c_str());
            }
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
            double mbs = static_cast<double>(total) / 1e6 / std::max(secs, 1e-9);
            std::printf("h5pt    R=local record=%7" PRIu64
                        " producers=%d  %8.1f MB/s  %6.2f s  "
                        "(single writer, gathered)\n",
                        size, p, mbs, secs);
            if (json) {
              WriteJson(json, Json{{"api", "hdf5-pt"},
                                   {"workload", "append"},
                                   {"ranks", p},
                                   {"replication", 1},
                                   {"record_size", size},
                                   {"bytes", total},
                                   {"seconds", secs},
                                   {"mb_per_s", mbs},
                                   {"ratio_vs", Json::object()}});
            }
          }
        }
      }
    }
    if (json) std::fclose(json);
  }
  gfs::Status fin = gfs::Finalize(&s, 0);
  if (!fin.ok()) std::fprintf(stderr, "append-bench: finalize: %s\n", fin.ToString().c_str());
  MPI_Finalize();
  return fin.ok() ? 0 : 1;
}
