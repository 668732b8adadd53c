// The `gfs` command-line tool. Run directly it is a launcher that starts the
// job under mpirun (io/tool/launcher.cc); run under mpirun/srun it is one rank
// of the job (rank mode). See README.md and doc/options.md.
#include <mpi.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "io/gfs.h"
#include "io/tool/commands.h"
#include "io/tool/launcher.h"
#include "io/tool/options.h"

using namespace gfs;
using namespace gfs::tool;

namespace {

// Validates what can be validated without MPI. Returns -1 when the command
// should run, else the exit status (help printed / usage error reported).
int Precheck(const Result<CommandLine>& cl, bool print, const CommandSpec** spec,
             CommandArgs* args) {
  if (!cl.ok()) {
    if (print) std::fprintf(stderr, "gfs: %s\n", cl.status().message().c_str());
    return 2;
  }
  if (cl->global.help || cl->command == "help") {
    if (print) std::printf("%s", GlobalUsage().c_str());
    return 0;
  }
  if (cl->command.empty()) {
    if (print) std::fprintf(stderr, "gfs: no command given (see gfs --help)\n");
    return 2;
  }
  *spec = FindCommand(cl->command);
  if (*spec == nullptr) {
    if (print)
      std::fprintf(stderr, "gfs: unknown command '%s' (see gfs --help)\n", cl->command.c_str());
    return 2;
  }
  auto a = ParseCommandArgs(**spec, cl->args);
  if (!a.ok()) {
    if (print) std::fprintf(stderr, "gfs: %s\n", a.status().message().c_str());
    return 2;
  }
  if (a->help) {
    if (print) std::printf("%s", CommandUsage(**spec).c_str());
    return 0;
  }
  Status v = ValidateCommand(**spec, *a, cl->global.job,
                             cl->global.job.clients > 0 ? cl->global.job.clients : 0);
  if (!v.ok()) {
    if (print) std::fprintf(stderr, "gfs: %s\n", v.message().c_str());
    return 2;
  }
  *args = *a;
  return -1;
}

void WriteStatus(const std::string& file, int code) {
  if (file.empty()) return;
  std::ofstream out(file, std::ios::trunc);
  out << code << "\n";
}

int RankMain(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  auto cl = ParseCommandLine(argc, argv, false);
  const CommandSpec* spec = nullptr;
  CommandArgs args;
  int pre = Precheck(cl, rank == 0, &spec, &args);
  if (pre >= 0) {
    if (rank == 0 && cl.ok()) WriteStatus(cl->global.status_file, pre);
    MPI_Finalize();
    return pre;
  }
  const bool launched = !cl->global.status_file.empty();
  // gfs format -f: every role discards what its directory holds at start.
  if (std::string(spec->name) == "format" && args.force) cl->global.job.format = true;
  Session s;
  Status st = Init(MPI_COMM_WORLD, cl->global.job, &s);
  int code = 0;
  if (!st.ok()) {
    // Every rank got the same error; one prints it.
    code = st.code() == Code::kInvalidArgument ? 2 : 1;
    if (rank == 0) {
      std::fprintf(stderr, "gfs: %s\n", st.message().c_str());
      WriteStatus(cl->global.status_file, code);
    }
  } else if (s.is_client()) {
    if (spec->job) {
      code = RunJob(&s, cl->global.job, *spec, args);
    } else if (s.client_index() == 0) {
      code = RunCommand(s.client(), cl->global.job, *spec, args);
    }
    Status fin = Finalize(&s, code);
    if (s.client_index() == 0) {
      if (!fin.ok() && code == 0) {
        std::fprintf(stderr, "gfs: shutting down: %s\n", fin.ToString().c_str());
        code = 1;
      }
      WriteStatus(cl->global.status_file, code);
      if (!launched) std::fprintf(stderr, "gfs: exit status %d\n", code);
    }
  } else {
    Finalize(&s, 0);
    if (!st.ok()) code = 1;
  }
  MPI_Finalize();
  // Launched: the status travels through the status file, and a non-zero
  // return under --enable-recovery only makes mpirun print a PMIx error line.
  return launched ? 0 : code;
}

struct DataDirContents {
  uint64_t metadata_files = 0;  // op logs, checkpoints, VERSION of the master group
  uint64_t chunks = 0;          // chunk meta files
  uint64_t chunk_dirs = 0;      // chunkserver directories holding any
};

DataDirContents ScanDataDir(const std::string& data_dir) {
  namespace fs = std::filesystem;
  DataDirContents d;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(data_dir, ec)) {
    const std::string name = e.path().filename().string();
    std::error_code ec2;
    if (name == "master" || name.rfind("shadow-", 0) == 0) {
      for (const auto& f : fs::directory_iterator(e.path(), ec2)) {
        const std::string n = f.path().filename().string();
        if (n != "LOCK" && n != "IDENTITY") ++d.metadata_files;
      }
    } else if (name.rfind("chunkserver-", 0) == 0) {
      uint64_t here = 0;
      for (const auto& f : fs::directory_iterator(e.path() / "chunks", ec2)) {
        if (f.path().extension() == ".meta") ++here;
      }
      d.chunks += here;
      if (here > 0) ++d.chunk_dirs;
    }
  }
  return d;
}

}  // namespace

int main(int argc, char** argv) {
  bool rank_mode = UnderMpiLauncher();
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--rank-mode") rank_mode = true;
    if (argv[i][0] != '-') break;
  }
  if (rank_mode) return RankMain(argc, argv);
  auto cl = ParseCommandLine(argc, argv, true);
  const CommandSpec* spec = nullptr;
  CommandArgs args;
  int pre = Precheck(cl, true, &spec, &args);
  if (pre >= 0) return pre;
  auto layout = ComputeLayout(
      1 + cl->global.job.shadows + cl->global.job.chunkservers + cl->global.job.clients,
      cl->global.job);
  if (!layout.ok()) {
    std::fprintf(stderr, "gfs: %s\n", layout.status().message().c_str());
    return 2;
  }
  if (std::string(spec->name) == "format") {
    // What a format would discard here (the embedded one-machine layout: every
    // role's directory under --data-dir); on a cluster the ranks see their own.
    DataDirContents d = ScanDataDir(cl->global.job.data_dir);
    if (d.metadata_files + d.chunks > 0) {
      if (!args.force) {
        std::fprintf(stderr,
                     "gfs: format: %s holds master metadata (%llu files) and %llu chunks in %llu "
                     "chunkserver directories; 'gfs format -f' discards them\n",
                     cl->global.job.data_dir.c_str(),
                     static_cast<unsigned long long>(d.metadata_files),
                     static_cast<unsigned long long>(d.chunks),
                     static_cast<unsigned long long>(d.chunk_dirs));
        return 1;
      }
      std::printf(
          "format: discarding master metadata (%llu files) and %llu chunks in %llu "
          "chunkserver directories under %s\n",
          static_cast<unsigned long long>(d.metadata_files),
          static_cast<unsigned long long>(d.chunks), static_cast<unsigned long long>(d.chunk_dirs),
          cl->global.job.data_dir.c_str());
      std::fflush(stdout);
    }
  }
  return Launch(*cl, argc, argv);
}
