// The Transport conformance checks (tests/unit/transport_conformance.h) over
// MpiTransport, in two real ranks. Rank 0 writes one line per check to the
// result file: "NAME OK" or "NAME FAIL what went wrong" (either side's).
//
// Usage: mpirun -np 2 transport_conformance RESULT_FILE
#include "tests/unit/transport_conformance.h"

#include <mpi.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "mpi/transport/mpi_transport.h"

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (argc < 2 || size != 2) {
    if (rank == 0) std::fprintf(stderr, "usage: mpirun -np 2 transport_conformance RESULT_FILE\n");
    MPI_Finalize();
    return 2;
  }
  std::string report;
  bool all_ok = true;
  {
    gfs::MpiTransport t(MPI_COMM_WORLD, 10000000);
    for (const auto& check : gfs::conformance::AllChecks()) {
      MPI_Barrier(MPI_COMM_WORLD);
      std::string mine = check.run(&t);
      // Rank 1's verdict travels to rank 0 outside the transport under test.
      char theirs[512] = {0};
      if (rank == 1) {
        std::strncpy(theirs, mine.c_str(), sizeof(theirs) - 1);
        MPI_Send(theirs, sizeof(theirs), MPI_CHAR, 0, 99, MPI_COMM_WORLD);
      } else {
        MPI_Recv(theirs, sizeof(theirs), MPI_CHAR, 1, 99, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        std::string why = !mine.empty()    ? "rank 0: " + mine
                          : theirs[0] != 0 ? std::string("rank 1: ") + theirs
                                           : std::string();
        all_ok = all_ok && why.empty();
        report += std::string(check.name) + (why.empty() ? " OK" : " FAIL " + why) + "\n";
      }
    }
    MPI_Barrier(MPI_COMM_WORLD);
  }
  if (rank == 0) {
    if (FILE* f = std::fopen(argv[1], "w")) {
      std::fputs(report.c_str(), f);
      std::fclose(f);
    }
    std::fputs(report.c_str(), stderr);
  }
  MPI_Finalize();
  return all_ok ? 0 : 1;
}
