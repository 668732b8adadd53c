// A tiny program built against an installed gfs-mpi (find_package(gfs)):
//
//   mpirun -np 5 gfs_install_app DATA_DIR RESULT_FILE
//
// 1 master + 3 chunkservers + the rest clients. Client 0 writes a 3 MiB + 5
// byte file (1 MiB chunks, 3 replicas), reads it back, compares, and writes
// "OK <bytes>" or "FAIL <why>" to RESULT_FILE (and prints it). Built with
// GFS_INSTALL_WITH_H5 (gfs_install_h5, linked to gfs::gfs_h5 as well) it also
// appends to a packet table.
#include <gfs/gfs.h>
#include <mpi.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>
#ifdef GFS_INSTALL_WITH_H5
#include <gfs/io/h5/packet_table.h>
#include <hdf5.h>
#endif

namespace {

std::string Check(gfs::Client* c) {
  const size_t n = (3u << 20) + 5;
  std::vector<char> data(n);
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (auto& b : data) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b = static_cast<char>(x);
  }
  gfs::Status st = c->Mkdir("/install", true);
  if (!st.ok()) return "FAIL mkdir: " + st.ToString();
  gfs::CreateOptions opts;
  opts.chunk_size = 1u << 20;
  auto f = c->Create("/install/hello.bin", opts);
  if (!f.ok()) return "FAIL create: " + f.status().ToString();
  st = c->Write(&*f, 0, data.data(), n);
  if (!st.ok()) return "FAIL write: " + st.ToString();
  st = c->Close(&*f);
  if (!st.ok()) return "FAIL close: " + st.ToString();
  auto g = c->Open("/install/hello.bin");
  if (!g.ok()) return "FAIL open: " + g.status().ToString();
  std::vector<char> back(n + 100);
  auto got = c->Read(&*g, 0, back.data(), back.size());
  if (!got.ok()) return "FAIL read: " + got.status().ToString();
  if (*got != n) {
    std::string m = "FAIL read ";
    m += std::to_string(*got);
    m += " bytes, want ";
    m += std::to_string(n);
    return m;
  }
  back.resize(n);
  if (back != data) return "FAIL the bytes read differ from the bytes written";
#ifdef GFS_INSTALL_WITH_H5
  // The HDF5 glue (gfs::gfs_h5): a packet table of 100 int32 packets.
  auto t = gfs::h5::PacketTable::Create(c, "/install/table.pt", H5T_NATIVE_INT32);
  if (!t.ok()) return "FAIL packet table create: " + t.status().ToString();
  std::vector<int32_t> packets(100);
  for (size_t i = 0; i < packets.size(); ++i) packets[i] = static_cast<int32_t>(i * 7);
  st = t->Append(packets.size(), packets.data());
  if (!st.ok()) return "FAIL packet table append: " + st.ToString();
  auto count = t->NumPackets();
  if (!count.ok() || *count != packets.size()) return "FAIL packet table count";
  st = t->Close();
  if (!st.ok()) return "FAIL packet table close: " + st.ToString();
#endif
  std::string ok = "OK ";
  ok += std::to_string(n);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s DATA_DIR RESULT_FILE\n", argv[0]);
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  gfs::JobConfig cfg;
  cfg.data_dir = argv[1];
  cfg.chunkservers = 3;
  cfg.replication = 3;
  gfs::Session s;
  gfs::Status st = gfs::Init(MPI_COMM_WORLD, cfg, &s);
  int code = st.ok() ? 0 : 1;
  if (st.ok() && s.is_client() && s.client_index() == 0) {
    std::string result = Check(s.client());
    std::printf("%s\n", result.c_str());
    std::ofstream(argv[2]) << result << "\n";
    code = result.rfind("OK", 0) == 0 ? 0 : 1;
  } else if (!st.ok() && s.world_rank() <= 0) {
    std::fprintf(stderr, "gfs::Init: %s\n", st.ToString().c_str());
  }
  if (gfs::Status done = gfs::Finalize(&s, code); !done.ok()) {
    std::fprintf(stderr, "gfs::Finalize: %s\n", done.ToString().c_str());
  }
  MPI_Finalize();
  return 0;
}
