// gfs-mpi-stream: an MPI point-to-point stream from rank 0 to rank 1, the
// transport's own ceiling between two hosts. bench/chain.sh runs it between
// two test hosts with no rate limit and picks the link rate T of the chain
// measurement from it (R * T at most a third of this stream, so that the
// links and not the cores are the limit).
//
//   mpirun -np 2 gfs-mpi-stream [BYTES [MESSAGE]]
//
// Rank 0 sends BYTES (default 512 MiB) in MESSAGE-byte messages (default
// 1 MiB, the push slice) with up to 4 in flight, after a warm-up of 8
// messages; rank 1 receives them and answers with one byte once all arrived.
// Rank 0 prints one JSON object: {"bytes":..,"seconds":..,"mbit_per_s":..}.
#include <mpi.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

constexpr int kInFlight = 4;
constexpr int kWarmup = 8;

uint64_t Arg(int argc, char** argv, int i, uint64_t def) {
  if (argc <= i) return def;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(argv[i], &end, 10);
  return (end != nullptr && *end == '\0' && v > 0) ? v : 0;
}

// Moves `count` messages of `msg` bytes from rank 0 to rank 1, kInFlight at
// a time, then rank 1 answers with one byte.
void Stream(int rank, std::vector<char>* buf, uint64_t count) {
  const int msg = static_cast<int>(buf->size() / kInFlight);
  std::vector<MPI_Request> reqs(kInFlight, MPI_REQUEST_NULL);
  for (uint64_t i = 0; i < count; ++i) {
    const int k = static_cast<int>(i % kInFlight);
    MPI_Wait(&reqs[static_cast<size_t>(k)], MPI_STATUS_IGNORE);
    char* p = buf->data() + static_cast<size_t>(k) * static_cast<size_t>(msg);
    if (rank == 0) {
      MPI_Isend(p, msg, MPI_CHAR, 1, 1, MPI_COMM_WORLD, &reqs[static_cast<size_t>(k)]);
    } else {
      MPI_Irecv(p, msg, MPI_CHAR, 0, 1, MPI_COMM_WORLD, &reqs[static_cast<size_t>(k)]);
    }
  }
  MPI_Waitall(kInFlight, reqs.data(), MPI_STATUSES_IGNORE);
  char one = 0;
  if (rank == 0) {
    MPI_Recv(&one, 1, MPI_CHAR, 1, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  } else {
    MPI_Send(&one, 1, MPI_CHAR, 0, 2, MPI_COMM_WORLD);
  }
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const uint64_t bytes = Arg(argc, argv, 1, 512ull << 20);
  const uint64_t msg = Arg(argc, argv, 2, 1ull << 20);
  if (size != 2 || bytes == 0 || msg == 0 || msg > (256ull << 20)) {
    if (rank == 0) {
      std::fprintf(stderr,
                   "usage: mpirun -np 2 gfs-mpi-stream [BYTES [MESSAGE]] (MESSAGE <= 256M)\n");
    }
    MPI_Finalize();
    return 2;
  }
  std::vector<char> buf(static_cast<size_t>(msg) * kInFlight, 'x');
  const uint64_t count = (bytes + msg - 1) / msg;
  Stream(rank, &buf, kWarmup);
  MPI_Barrier(MPI_COMM_WORLD);
  const auto t0 = std::chrono::steady_clock::now();
  Stream(rank, &buf, count);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (rank == 0) {
    const double moved = static_cast<double>(count * msg);
    std::printf("{\"bytes\":%.0f,\"seconds\":%.6f,\"mbit_per_s\":%.1f}\n", moved, s,
                moved * 8 / s / 1e6);
  }
  MPI_Finalize();
  return 0;
}
