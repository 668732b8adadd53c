// Built against the installed client library alone (gfs::gfs_io,
// <gfs/client.h>): it must compile and link with no master, chunkserver or
// role-split code in it.
//
//   mpirun -np N gfs_install_client [MASTER_RANK PATH]
//
// With arguments, rank 0 stats PATH through a Client over an MpiTransport of
// MPI_COMM_WORLD whose rank MASTER_RANK serves as the master. No store can be
// reached that way today (a store lives inside the job that hosts it, and
// gfs::Init sets that job up); without arguments the program prints
// "OK client-only" and exits, which is what the install test runs.
#include <gfs/client.h>
#include <gfs/mpi/transport/mpi_transport.h>
#include <mpi.h>

#include <cstdio>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  int code = 0;
  if (argc > 2) {
    gfs::MpiTransport t(MPI_COMM_WORLD, 10000000);
    if (rank == 0 && t.init_status().ok()) {
      gfs::JobConfig cfg;
      std::vector<gfs::HostId> hosts(static_cast<size_t>(size));
      gfs::Client c(&t, cfg, std::stoi(argv[1]), hosts);
      auto st = c.Stat(argv[2]);
      if (st.ok()) {
        std::printf("%s: %llu bytes\n", argv[2], static_cast<unsigned long long>(st->size));
      } else {
        std::fprintf(stderr, "stat %s: %s\n", argv[2], st.status().ToString().c_str());
        code = 1;
      }
    }
  } else if (rank == 0) {
    std::printf("OK client-only\n");
  }
  MPI_Finalize();
  return code;
}
