// The `gfs` command-line tool. Run directly it is a launcher that starts the
// job under mpirun (jobs/launcher.cc); run under mpirun/srun it is one rank
// of the job (rank mode). See README.md and doc/options.md.
#include <mpi.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "io/tool/commands.h"
#include "jobs/gfs.h"
#include "jobs/launcher.h"
#include "jobs/options.h"

using namespace gfs;
using namespace gfs::tool;

namespace {

// Validates what can be validated without MPI. Returns -1 when the command
// should run, else the exit status (help printed / usage error reported).
int Precheck(const Result<CommandLine>& cl, bool print, const CommandSpec** spec) {
  if (!cl.ok()) {
    if (print) std::fprintf(stderr, "gfs: %s\n", OneLine(cl.status().message()).c_str());
    return 2;
  }
  if (cl->global.version) {
    if (print) std::printf("%s", VersionText("gfs").c_str());
    return 0;
  }
  const CommandSpec* found = cl->command.empty() ? nullptr : FindCommand(cl->command);
  if (cl->global.help || cl->args.help) {
    if (print) std::printf("%s", found ? CommandUsage(*found).c_str() : GlobalUsage().c_str());
    return 0;
  }
  if (found == nullptr) {
    if (print) std::fprintf(stderr, "gfs: no command given (see gfs --help)\n");
    return 2;
  }
  *spec = found;
  Status v = ValidateCommand(*found, cl->args, cl->global.job,
                             cl->global.job.clients > 0 ? cl->global.job.clients : 0);
  if (!v.ok()) {
    if (print) std::fprintf(stderr, "gfs: %s\n", OneLine(v.message()).c_str());
    return 2;
  }
  return -1;
}

void WriteStatus(const std::string& file, int code) {
  if (file.empty()) return;
  std::ofstream out(file, std::ios::trunc);
  out << code << "\n";
}

// A command that only reads needs a store: DATA/master is where the master
// keeps the namespace; a master or shadow directory, or chunkservers' (whose
// master directory may have been lost: the master then says what it found),
// mean one is there. Checked on rank 0 (the master's host) and shared.
bool HasStore(const std::string& data_dir) {
  struct stat st;
  if (::stat((data_dir + "/master").c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return true;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(data_dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("chunkserver-", 0) == 0 || n.rfind("shadow-", 0) == 0) return true;
  }
  return false;
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
  int pre = Precheck(cl, rank == 0, &spec);
  if (pre >= 0) {
    if (rank == 0 && cl.ok()) WriteStatus(cl->global.status_file, pre);
    MPI_Finalize();
    return pre;
  }
  const bool launched = !cl->global.status_file.empty();
  // gfs format -f: every role discards what its directory holds at start.
  if (std::string(spec->name) == "format" && cl->args.Flag("force")) cl->global.job.format = true;
  const JobConfig& job = cl->global.job;
  // The first client reports (it runs where the launcher reads the status).
  auto layout = ComputeLayout(size, job);
  const int reporter = layout.ok() ? layout->first_client() : 0;
  if (spec->read_only && layout.ok()) {
    int store = rank == 0 ? (HasStore(job.data_dir) ? 1 : 0) : 0;
    MPI_Bcast(&store, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (store == 0) {
      if (rank == reporter) {
        std::fprintf(stderr, "gfs: %s: no store at %s (a mistyped --data-dir?)\n", spec->name,
                     OneLine(job.data_dir).c_str());
        WriteStatus(cl->global.status_file, 1);
      }
      MPI_Finalize();
      return launched ? 0 : 1;
    }
  }
  SetLogLevel(cl->global.verbosity);
  if (layout.ok() && rank >= layout->first_client()) InstallInterruptHandlers();
  Session s;
  Status st = Init(MPI_COMM_WORLD, job, &s);
  int code = 0;
  if (!st.ok()) {
    // Every rank got the same error; one prints it.
    code = st.code() == Code::kInvalidArgument ? 2 : 1;
    if (rank == reporter) {
      std::fprintf(stderr, "gfs: %s\n", OneLine(st.message()).c_str());
      WriteStatus(cl->global.status_file, code);
    }
  } else if (s.is_client()) {
    if (spec->job) {
      code = RunJob(&s, job, *spec, cl->args);
    } else if (s.client_index() == 0) {
      code = RunCommand(s.client(), job, *spec, cl->args);
    }
    Status fin = Finalize(&s, code);
    if (s.client_index() == 0) {
      if (!fin.ok() && code == 0) {
        std::fprintf(stderr, "gfs: shutting down: %s\n", OneLine(fin.ToString()).c_str());
        code = 1;
      }
      WriteStatus(cl->global.status_file, code);
      if (!launched) std::fprintf(stderr, "gfs: exit status %d\n", code);
    }
  } else {
    Status fin = Finalize(&s, 0);
    if (!st.ok() || !fin.ok()) code = 1;
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
    if (std::string(argv[i]) == "--") break;
  }
  if (rank_mode) return RankMain(argc, argv);
  auto cl = ParseCommandLine(argc, argv, true);
  const CommandSpec* spec = nullptr;
  int pre = Precheck(cl, true, &spec);
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
      if (!cl->args.Flag("force")) {
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
