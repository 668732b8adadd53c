// gfs-bench: IOR/mdtest-like benchmark of the store against MPI-IO, parallel
// HDF5 and POSIX on the node's file system, in the same run, on the same bytes,
// with the same client ranks. The program hosts the store (gfs::Init): rank 0
// master, then K chunkservers, then the clients, every client taking part.
// Run directly it starts that job itself through gfs's launcher (same rank
// layout, options and exit status as `gfs`); under mpirun it is one rank:
//
//   build/gfs-bench [--data-dir DIR] [--chunkservers K] [--clients C]
//       [--replication R] [--chunk-size S] [--hostfile H] [--dry-run] ...
//       [--api gfs,mpiio,hdf5,posix] [--workload write,read,append,meta|all]
//       [-t 1M] [-b 64M] [-s 1] [-F] [--dir /tmp]
//       [--reps 3] [--json FILE] [--drop-caches]
//   mpirun -np 1+K+C build/gfs-bench [the same options, less --clients]
//
// See bench/README.md for the semantics of each workload and the output.
#include <fcntl.h>
#include <hdf5.h>
#include <mpi.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cctype>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "common/clock.h"
#include "io/record_io.h"
#include "jobs/gfs.h"
#include "jobs/launcher.h"
#include "jobs/options.h"

namespace po = boost::program_options;
using Json = nlohmann::json;

namespace {

using gfs::Result;
using gfs::Status;

// ---------------------------------------------------------------- options

struct Args {
  std::vector<std::string> apis = {"gfs", "mpiio", "hdf5", "posix"};
  std::vector<std::string> workloads = {"write", "read"};
  uint64_t transfer = 1u << 20, block = 64u << 20, segments = 1;
  bool fpp = false;
  std::string dir = "/tmp", json;
  int reps = 3;
  // The job's (gfs global options), copied here for the report.
  uint32_t replication = 1;
  int chunkservers = 1;
  uint64_t chunk_size = 64ull << 20;
  uint64_t meta_files = 100;
  bool drop_caches = false, verify = true;
  bool keep = false;  // -k: the last repetition's files stay
  uint64_t memcpy_mib = 256;
};

bool ParseSize(std::string s, uint64_t* out) {
  if (s.empty()) return false;
  uint64_t mult = 1;
  while (!s.empty() && (s.back() == 'B' || s.back() == 'b' || s.back() == 'i')) s.pop_back();
  if (!s.empty()) {
    switch (s.back()) {
      case 'k':
      case 'K':
        mult = 1ull << 10;
        break;
      case 'm':
      case 'M':
        mult = 1ull << 20;
        break;
      case 'g':
      case 'G':
        mult = 1ull << 30;
        break;
      case 't':
      case 'T':
        mult = 1ull << 40;
        break;
      default:
        break;
    }
    if (mult != 1) s.pop_back();
  }
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos) return false;
  *out = std::stoull(s) * mult;
  return true;
}

std::vector<std::string> SplitList(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

bool Has(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// The bench's own options (the job's -- data directory, chunkservers, clients,
// replication, chunk size -- and the launcher's are gfs's global options, see
// SplitArgs). Binds to the given storage.
struct OptionText {
  std::string api = "gfs,mpiio,hdf5,posix", workload = "write,read", t = "1M", b = "64M";
  std::string ior_file;                      // -o
  bool ior_write = false, ior_read = false;  // -w, -r
};

po::options_description BenchDescription(Args* a, OptionText* o) {
  po::options_description d("gfs-bench options");
  d.add_options()("help,h", "this help")("api,a", po::value(&o->api)->default_value(o->api),
                                         "comma list from gfs, mpiio, hdf5, posix (IOR's "
                                         "-a POSIX|MPIIO|HDF5 too)")(
      "workload", po::value(&o->workload)->default_value(o->workload),
      "comma list from write, read, append, meta, or all")(
      "transfer,t", po::value(&o->t)->default_value(o->t), "transfer size (also the record size)")(
      "block,b", po::value(&o->b)->default_value(o->b), "block per rank and segment")(
      "segments,s", po::value(&a->segments)->default_value(a->segments), "segments")(
      "file-per-process,F", po::bool_switch(&a->fpp), "one file per rank (else one shared file)")(
      "dir", po::value(&a->dir)->default_value(a->dir), "directory of the baselines' files")(
      "reps,i", po::value(&a->reps)->default_value(a->reps),
      "repetitions (the order of the APIs turns by one each repetition)")(
      "json", po::value(&a->json), "append one JSON object per result to FILE")(
      "drop-caches", po::bool_switch(&a->drop_caches),
      "root: drop the page cache before each read phase")("no-verify",
                                                          "do not check the data read")(
      "meta-files", po::value(&a->meta_files)->default_value(a->meta_files),
      "files per rank for the meta workload")(
      "memcpy-mib", po::value(&a->memcpy_mib)->default_value(a->memcpy_mib),
      "buffer size of the memory-copy measurement");
  po::options_description ior("IOR's short flags, so that an IOR command line can be reused");
  ior.add_options()("ior-write,w", po::bool_switch(&o->ior_write),
                    "the write workload (with -r: both; either replaces --workload)")(
      "ior-read,r", po::bool_switch(&o->ior_read), "the read workload")(
      "ior-file,o", po::value(&o->ior_file),
      "IOR's test file: its directory is --dir (the name is gfs-bench's own)")(
      "fsync,e", "fsync after the write phase: always done")(
      "reorder,C", "read what another rank wrote: always done (rank r reads rank r+1's)")(
      "keep,k", po::bool_switch(&a->keep), "keep the last repetition's files");
  d.add(ior);
  return d;
}

std::string Usage() {
  Args a;
  OptionText o;
  std::ostringstream u;
  u << "usage: gfs-bench [job and launcher options] [bench options]\n"
       "       mpirun -np 1+K+C gfs-bench [job options] [bench options]   (rank mode)\n\n"
       "Run directly, gfs-bench starts the job with mpirun through gfs's launcher (the same\n"
       "rank layout: master, K chunkservers, C clients; every client takes part) and exits\n"
       "with the bench's status. Job and launcher options are gfs's global options (see\n"
       "gfs --help): --data-dir DIR (default ./gfs-bench-data), --chunkservers K (default\n"
       "max(1, R)), --clients C (default 1), --replication R (default 1), --chunk-size,\n"
       "--hostfile, --mpirun-args, --dry-run, ...\n\n"
    << BenchDescription(&a, &o);
  return u.str();
}

// Parses the bench's own options. Returns "" on success, else the error;
// sets *help for --help.
std::string ParseArgs(const std::vector<std::string>& argv, Args* a, bool* help) {
  OptionText o;
  po::options_description d = BenchDescription(a, &o);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argv).options(d).run(), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    return e.what();
  }
  *help = vm.count("help") > 0;
  a->verify = vm.count("no-verify") == 0;
  a->apis = SplitList(o.api);
  for (auto& x : a->apis) {  // IOR spells them POSIX, MPIIO, HDF5
    for (auto& ch : x) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  }
  if (!o.ior_file.empty()) {
    const auto slash = o.ior_file.rfind('/');
    a->dir = slash == std::string::npos ? "." : slash == 0 ? "/" : o.ior_file.substr(0, slash);
  }
  for (const auto& x : a->apis) {
    if (x != "gfs" && x != "mpiio" && x != "hdf5" && x != "posix") {
      std::string e = "unknown api '";
      e += x;
      e += "' (gfs, mpiio, hdf5, posix)";
      return e;
    }
  }
  if (a->apis.empty()) return "--api is empty";
  a->workloads.clear();
  for (const auto& x : SplitList(o.workload)) {
    if (x == "all") {
      a->workloads = {"write", "read", "append", "meta"};
      break;
    }
    if (x != "write" && x != "read" && x != "append" && x != "meta") {
      std::string e = "unknown workload '";
      e += x;
      e += "' (write, read, append, meta, all)";
      return e;
    }
    if (!Has(a->workloads, x)) a->workloads.push_back(x);
  }
  if (o.ior_write || o.ior_read) {
    a->workloads.clear();
    if (o.ior_write) a->workloads.push_back("write");
    if (o.ior_read) a->workloads.push_back("read");
  }
  if (a->workloads.empty()) return "--workload is empty";
  if (!ParseSize(o.t, &a->transfer) || a->transfer == 0) return "bad transfer size (-t)";
  if (!ParseSize(o.b, &a->block) || a->block == 0) return "bad block size (-b)";
  if (a->block % a->transfer != 0) return "block size (-b) must be a multiple of -t";
  if (a->transfer > (1ull << 30)) return "transfer size (-t) above 1 GiB";
  if (a->segments == 0 || a->reps <= 0) return "-s and --reps must be positive";
  return "";
}

// ---------------------------------------------------------------- data

uint64_t Mix(uint64_t x) {  // splitmix64
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// The bytes of one transfer of `rank`: a per-rank pseudo-random base, with
// every 4 KiB page stamped with (logical offset, rank, segment), so a page in
// the wrong place, of the wrong rank or segment, does not compare equal.
void FillBase(std::vector<uint8_t>* buf, int rank) {
  uint64_t seed = Mix(static_cast<uint64_t>(rank) + 1);
  for (size_t i = 0; i + 8 <= buf->size(); i += 8) {
    uint64_t w = Mix(seed + i);
    std::memcpy(buf->data() + i, &w, 8);
  }
  for (size_t i = buf->size() & ~size_t{7}; i < buf->size(); ++i)
    (*buf)[i] = static_cast<uint8_t>(seed + i);
}

void Stamp(uint8_t* p, size_t n, int rank, uint64_t seg, uint64_t logical) {
  for (size_t o = 0; o + 16 <= n; o += 4096) {
    uint64_t a = logical + o, b = (static_cast<uint64_t>(rank) << 32) | seg;
    std::memcpy(p + o, &a, 8);
    std::memcpy(p + o + 8, &b, 8);
  }
}

// ------------------------------------------------------------- collectives

// The bench's own barriers and reductions sleep while they wait: MPI's
// blocking collectives spin, and a client rank that is done early would take
// the CPU from the storage ranks (or baseline ranks) still working on the same
// 2 cores. Every API is measured with the same collectives.
void Await(MPI_Request* r) {
  int done = 0;
  uint32_t us = 10;
  while (MPI_Test(r, &done, MPI_STATUS_IGNORE) == MPI_SUCCESS && done == 0) {
    std::this_thread::sleep_for(std::chrono::microseconds(us));
    us = std::min<uint32_t>(us * 2, 500);
  }
}

void Barrier(MPI_Comm c) {
  MPI_Request r;
  MPI_Ibarrier(c, &r);
  Await(&r);
}

void Allreduce(const void* in, void* out, int n, MPI_Datatype t, MPI_Op op, MPI_Comm c) {
  MPI_Request r;
  MPI_Iallreduce(in, out, n, t, op, c, &r);
  Await(&r);
}

// ---------------------------------------------------------------- backends

std::string Errno(const char* what, const std::string& path) {
  std::string s = what;
  s += " ";
  s += path;
  s += ": ";
  s += std::strerror(errno);
  return s;
}

std::string MpiErr(const char* what, int rc) {
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  std::string s = what;
  s += ": ";
  s.append(msg, static_cast<size_t>(len));
  return s;
}

// One API under test. Open/Close are collective over `comm` (the clients for a
// shared file, MPI_COMM_SELF for a file per process).
class Backend {
 public:
  virtual ~Backend() = default;
  // write: create (truncate) a file of file_bytes; else open for reading.
  virtual Status Open(const std::string& path, MPI_Comm comm, bool write, uint64_t file_bytes) = 0;
  virtual Status Write(uint64_t off, const uint8_t* buf, size_t n) = 0;
  virtual Status Read(uint64_t off, uint8_t* buf, size_t n) = 0;
  // After writing: durable on return (fsync, like IOR -e).
  virtual Status Close(bool write) = 0;
  virtual void Remove(const std::string& path) = 0;
};

class GfsBackend : public Backend {
 public:
  GfsBackend(gfs::Client* c, uint32_t r) : c_(c), r_(r) {}
  Status Open(const std::string& path, MPI_Comm comm, bool write, uint64_t) override {
    int me = 0;
    MPI_Comm_rank(comm, &me);
    Status s;
    if (write && me == 0) {
      gfs::CreateOptions co;
      co.replication = r_;
      co.exclusive = false;
      co.truncate = true;
      auto f = c_->Create(path, co);
      if (f.ok()) f_ = *f;
      s = f.status();
    }
    Barrier(comm);
    if (!write || me != 0) {
      auto f = c_->Open(path);
      if (f.ok()) f_ = *f;
      s = f.status();
    }
    return s;
  }
  Status Write(uint64_t off, const uint8_t* buf, size_t n) override {
    return c_->Write(&f_, off, buf, n);
  }
  Status Read(uint64_t off, uint8_t* buf, size_t n) override {
    auto got = c_->Read(&f_, off, buf, n);
    if (!got.ok()) return got.status();
    if (*got != n) return Status::IOError("short read");
    return Status::OK();
  }
  Status Close(bool) override { return c_->Close(&f_); }
  void Remove(const std::string& path) override {
    // Deleted at once (Client::Remove is rm --skip-trash): nothing left in the trash.
    (void)c_->Remove(path, false);  // between runs: a file already gone is fine
  }

 private:
  gfs::Client* c_;
  uint32_t r_;
  gfs::File f_;
};

class PosixBackend : public Backend {
 public:
  Status Open(const std::string& path, MPI_Comm comm, bool write, uint64_t) override {
    int me = 0;
    MPI_Comm_rank(comm, &me);
    fd_ = -1;
    if (write && me == 0) fd_ = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    Barrier(comm);
    if (!write) {
      fd_ = open(path.c_str(), O_RDONLY);
    } else if (me != 0) {
      fd_ = open(path.c_str(), O_WRONLY);
    }
    if (fd_ < 0) return Status::IOError(Errno("open", path));
    path_ = path;
    return Status::OK();
  }
  Status Write(uint64_t off, const uint8_t* buf, size_t n) override {
    while (n > 0) {
      ssize_t w = pwrite(fd_, buf, n, static_cast<off_t>(off));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return Status::IOError(Errno("pwrite", path_));
      buf += w;
      off += static_cast<uint64_t>(w);
      n -= static_cast<size_t>(w);
    }
    return Status::OK();
  }
  Status Read(uint64_t off, uint8_t* buf, size_t n) override {
    while (n > 0) {
      ssize_t r = pread(fd_, buf, n, static_cast<off_t>(off));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return Status::IOError(Errno("pread", path_));
      if (r == 0) return Status::IOError("short read");
      buf += r;
      off += static_cast<uint64_t>(r);
      n -= static_cast<size_t>(r);
    }
    return Status::OK();
  }
  Status Close(bool write) override {
    if (fd_ < 0) return Status::OK();
    Status s;
    if (write && fsync(fd_) != 0) s = Status::IOError(Errno("fsync", path_));
    close(fd_);
    fd_ = -1;
    return s;
  }
  void Remove(const std::string& path) override { unlink(path.c_str()); }

 private:
  int fd_ = -1;
  std::string path_;
};

class MpiioBackend : public Backend {
 public:
  Status Open(const std::string& path, MPI_Comm comm, bool write, uint64_t) override {
    int amode = write ? (MPI_MODE_CREATE | MPI_MODE_WRONLY) : MPI_MODE_RDONLY;
    int rc = MPI_File_open(comm, path.c_str(), amode, MPI_INFO_NULL, &fh_);
    if (rc != MPI_SUCCESS) {
      fh_ = MPI_FILE_NULL;
      return Status::IOError(MpiErr("MPI_File_open", rc));
    }
    return Status::OK();
  }
  Status Write(uint64_t off, const uint8_t* buf, size_t n) override {
    MPI_Status st;
    int rc = MPI_File_write_at(fh_, static_cast<MPI_Offset>(off), buf, static_cast<int>(n),
                               MPI_BYTE, &st);
    if (rc != MPI_SUCCESS) return Status::IOError(MpiErr("MPI_File_write_at", rc));
    return Status::OK();
  }
  Status Read(uint64_t off, uint8_t* buf, size_t n) override {
    MPI_Status st;
    int rc = MPI_File_read_at(fh_, static_cast<MPI_Offset>(off), buf, static_cast<int>(n), MPI_BYTE,
                              &st);
    if (rc != MPI_SUCCESS) return Status::IOError(MpiErr("MPI_File_read_at", rc));
    int got = 0;
    MPI_Get_count(&st, MPI_BYTE, &got);
    if (static_cast<size_t>(got) != n) return Status::IOError("short read");
    return Status::OK();
  }
  Status Close(bool write) override {
    if (fh_ == MPI_FILE_NULL) return Status::OK();
    Status s;
    if (write) {
      int rc = MPI_File_sync(fh_);
      if (rc != MPI_SUCCESS) s = Status::IOError(MpiErr("MPI_File_sync", rc));
    }
    MPI_File_close(&fh_);
    return s;
  }
  void Remove(const std::string& path) override { unlink(path.c_str()); }

 private:
  MPI_File fh_ = MPI_FILE_NULL;
};

// Parallel HDF5 (MPI-IO driver): one 1-D dataset of bytes, each transfer a
// hyperslab, independent transfers (like IOR's HDF5 backend).
class Hdf5Backend : public Backend {
 public:
  Status Open(const std::string& path, MPI_Comm comm, bool write, uint64_t file_bytes) override {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL);
    if (write) {
      file_ = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    } else {
      file_ = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl);
    }
    H5Pclose(fapl);
    if (file_ < 0) return Status::IOError("HDF5: cannot open " + path);
    if (write) {
      hsize_t dims = file_bytes;
      hid_t space = H5Screate_simple(1, &dims, nullptr);
      hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
      H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
      H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY);
      dset_ = H5Dcreate2(file_, "data", H5T_NATIVE_UCHAR, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
      H5Pclose(dcpl);
      H5Sclose(space);
    } else {
      dset_ = H5Dopen2(file_, "data", H5P_DEFAULT);
    }
    if (dset_ < 0) return Status::IOError("HDF5: no dataset in " + path);
    fspace_ = H5Dget_space(dset_);
    return Status::OK();
  }
  Status Write(uint64_t off, const uint8_t* buf, size_t n) override {
    hid_t mem = Select(off, n);
    herr_t e = H5Dwrite(dset_, H5T_NATIVE_UCHAR, mem, fspace_, H5P_DEFAULT, buf);
    H5Sclose(mem);
    return e < 0 ? Status::IOError("H5Dwrite failed") : Status::OK();
  }
  Status Read(uint64_t off, uint8_t* buf, size_t n) override {
    hid_t mem = Select(off, n);
    herr_t e = H5Dread(dset_, H5T_NATIVE_UCHAR, mem, fspace_, H5P_DEFAULT, buf);
    H5Sclose(mem);
    return e < 0 ? Status::IOError("H5Dread failed") : Status::OK();
  }
  Status Close(bool write) override {
    Status s;
    if (file_ >= 0 && write && H5Fflush(file_, H5F_SCOPE_GLOBAL) < 0)
      s = Status::IOError("H5Fflush failed");
    if (fspace_ >= 0) H5Sclose(fspace_);
    if (dset_ >= 0) H5Dclose(dset_);
    if (file_ >= 0) H5Fclose(file_);
    fspace_ = dset_ = file_ = -1;
    return s;
  }
  void Remove(const std::string& path) override { unlink(path.c_str()); }

 private:
  hid_t Select(uint64_t off, size_t n) {
    hsize_t start = off, count = n;
    H5Sselect_hyperslab(fspace_, H5S_SELECT_SET, &start, nullptr, &count, nullptr);
    return H5Screate_simple(1, &count, nullptr);
  }
  hid_t file_ = -1, dset_ = -1, fspace_ = -1;
};

// ---------------------------------------------------------------- results

struct Sample {
  double value = 0;  // MB/s or ops/s
  double seconds = 0;
  uint64_t errors = 0;
};

struct Key {
  std::string workload, op, api;
  bool operator<(const Key& o) const {
    auto rank = [](const std::string& w) {
      return w == "write" ? 0 : w == "read" ? 1 : w == "append" ? 2 : 3;
    };
    return std::make_tuple(rank(workload), workload, op, api) <
           std::make_tuple(rank(o.workload), o.workload, o.op, o.api);
  }
};

struct Series {
  std::vector<Sample> reps;
  int ranks = 0;
  uint64_t bytes = 0;  // bytes moved (or operations, for meta)
  bool ops = false;    // ops/s instead of MB/s
  uint32_t replication = 1;
  std::string note;
  double Median() const {
    std::vector<double> v;
    for (const auto& s : reps) v.push_back(s.value);
    std::sort(v.begin(), v.end());
    if (v.empty()) return 0;
    size_t m = v.size() / 2;
    return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
  }
  double Min() const {
    double x = reps.empty() ? 0 : reps[0].value;
    for (const auto& s : reps) x = std::min(x, s.value);
    return x;
  }
  double Max() const {
    double x = 0;
    for (const auto& s : reps) x = std::max(x, s.value);
    return x;
  }
  double MedianSeconds() const {
    std::vector<double> v;
    for (const auto& s : reps) v.push_back(s.seconds);
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
  }
  uint64_t Errors() const {
    uint64_t e = 0;
    for (const auto& s : reps) e += s.errors;
    return e;
  }
};

// ---------------------------------------------------------------- the run

class Bench {
 public:
  Bench(const Args& a, gfs::Session* s)
      : a_(a), c_(s->client()), comm_(s->app_comm()), me_(s->client_index()), n_(s->num_clients()) {
    uint64_t id = static_cast<uint64_t>(getpid());
    MPI_Bcast(&id, 1, MPI_UINT64_T, 0, comm_);
    run_id_ = std::to_string(id);
  }

  int Run();

 private:
  std::unique_ptr<Backend> Make(const std::string& api) {
    if (api == "gfs") return std::make_unique<GfsBackend>(c_, a_.replication);
    if (api == "posix") return std::make_unique<PosixBackend>();
    if (api == "mpiio") return std::make_unique<MpiioBackend>();
    return std::make_unique<Hdf5Backend>();
  }
  std::string PathOf(const std::string& api, const std::string& tag, int rank) const {
    std::string p;
    if (api == "gfs") {
      p = "/gfs-bench/";
    } else {
      p = a_.dir;
      p += "/gfs-bench-";
      p += run_id_;
      p += "-";
    }
    p += api;
    p += "-";
    p += tag;
    if (a_.fpp) {
      p += ".";
      p += std::to_string(rank);
    }
    if (api == "hdf5") p += ".h5";
    return p;
  }
  // Wall time of the slowest rank (seconds) from a common start.
  double MaxOf(double mine) {
    double all = 0;
    Allreduce(&mine, &all, 1, MPI_DOUBLE, MPI_MAX, comm_);
    return all;
  }
  uint64_t SumOf(uint64_t mine) {
    uint64_t all = 0;
    Allreduce(&mine, &all, 1, MPI_UINT64_T, MPI_SUM, comm_);
    return all;
  }
  // Reports a failure (from whichever rank saw one) and counts it.
  uint64_t Failed(const Status& st, const std::string& what) {
    if (!st.ok()) {
      std::fprintf(stderr, "gfs-bench: client %d: %s: %s\n", me_, what.c_str(),
                   st.ToString().c_str());
    }
    return st.ok() ? 0 : 1;
  }
  void DropCaches();
  void MeasureMemcpy();
  void Add(const std::string& workload, const std::string& op, const std::string& api,
           const Sample& s, uint64_t bytes, bool ops, int ranks, uint32_t r) {
    Series& x = results_[Key{workload, op, api}];
    x.reps.push_back(s);
    x.bytes = bytes;
    x.ops = ops;
    x.ranks = ranks;
    x.replication = r;
  }
  void Progress(const std::string& what, const Sample& s, bool ops) {
    if (me_ != 0) return;
    std::printf("  rep: %-22s %12.1f %s  %8.3f s%s\n", what.c_str(), s.value,
                ops ? "ops/s" : "MB/s ", s.seconds, s.errors ? "  ERRORS" : "");
    std::fflush(stdout);
  }

  // Chunk replicas the live chunkservers hold, as the master last heard
  // (client 0 only).
  uint64_t HeldChunks();
  // After the removal of a rep's gfs files: waits until the chunkservers
  // hold no more chunks than when the benchmark began.
  void WaitForDeletes();

  void WriteRead(const std::string& api, int rep);
  void Append(const std::string& api, int rep);
  void Meta(const std::string& api, int rep);
  void Report();

  const Args& a_;
  gfs::Client* c_;
  MPI_Comm comm_;
  int me_, n_;
  std::string run_id_;
  double memcpy_mbs_ = 0;
  bool dropped_ = false, drop_failed_ = false;
  uint64_t held_at_start_ = 0;
  std::map<Key, Series> results_;
};

uint64_t Bench::HeldChunks() {
  auto rep = c_->Report();
  if (!rep.ok()) return 0;
  uint64_t held = 0;
  for (const gfs::ServerReport& sr : rep->servers) {
    if (sr.alive) held += sr.chunks;
  }
  return held;
}

// Removing a gfs file frees its chunks later: the master's garbage collection
// tells the chunkservers at their next heartbeat, and freeing a 64 MiB chunk
// file takes about 22 ms of the chunkserver here. MPI-IO's and POSIX's unlink is
// over when it returns. So that no timed phase (of either API) pays for an
// earlier rep's deletions, client 0 waits for them after each rep, for at
// most 20 s.
void Bench::WaitForDeletes() {
  if (me_ == 0) {
    const uint64_t until = gfs::MonoMicros() + 20000000;
    uint64_t held = HeldChunks();
    while (held > held_at_start_ && gfs::MonoMicros() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      held = HeldChunks();
    }
    if (held > held_at_start_) {
      std::fprintf(stderr,
                   "gfs-bench: note: chunkservers still hold %" PRIu64
                   " chunks of deleted files after 20 s\n",
                   held - held_at_start_);
    }
  }
  Barrier(comm_);
}

void Bench::DropCaches() {
  if (!a_.drop_caches) return;
  int ok = 1;
  if (me_ == 0) {
    sync();
    FILE* f = std::fopen("/proc/sys/vm/drop_caches", "w");
    ok = f != nullptr && std::fputs("3\n", f) >= 0;
    if (f != nullptr && std::fclose(f) != 0) ok = 0;
    if (!ok && !drop_failed_) {
      std::fprintf(stderr,
                   "gfs-bench: cannot drop the page cache (%s); reads may come from memory\n",
                   std::strerror(errno));
    }
  }
  MPI_Bcast(&ok, 1, MPI_INT, 0, comm_);
  if (ok) dropped_ = true;
  if (!ok) drop_failed_ = true;
}

void Bench::MeasureMemcpy() {
  double best = 0;
  if (me_ == 0) {
    size_t n = static_cast<size_t>(a_.memcpy_mib) << 20;
    std::vector<uint8_t> src(n, 1), dst(n, 2);
    for (int i = 0; i < 3; ++i) {
      src[static_cast<size_t>(i)] = static_cast<uint8_t>(i);
      uint64_t t0 = gfs::MonoMicros();
      std::memcpy(dst.data(), src.data(), n);
      double secs = static_cast<double>(gfs::MonoMicros() - t0) / 1e6;
      if (dst[static_cast<size_t>(i)] != static_cast<uint8_t>(i)) std::abort();
      best = std::max(best, static_cast<double>(n) / 1e6 / std::max(secs, 1e-9));
    }
  }
  // The other ranks wait asleep (a blocking MPI_Bcast would spin and yield
  // on the same 2 cores and slow the copy being timed).
  Barrier(comm_);
  MPI_Bcast(&best, 1, MPI_DOUBLE, 0, comm_);
  memcpy_mbs_ = best;
}

// One write phase, then (if asked) one read phase of the same bytes.
void Bench::WriteRead(const std::string& api, int rep) {
  const bool do_write = Has(a_.workloads, "write"), do_read = Has(a_.workloads, "read");
  const uint64_t t = a_.transfer, per_seg = a_.block / t;
  const uint64_t total = a_.block * a_.segments * static_cast<uint64_t>(n_);
  const uint64_t file_bytes = a_.fpp ? a_.block * a_.segments : total;
  MPI_Comm fcomm = a_.fpp ? MPI_COMM_SELF : comm_;
  const std::string tag = "wr" + std::to_string(rep);
  const uint32_t r = api == "gfs" ? a_.replication : 1;
  // File offset of (rank, segment, transfer i).
  auto offset = [&](int rank, uint64_t seg, uint64_t i) {
    uint64_t base =
        a_.fpp ? seg * a_.block
               : (seg * static_cast<uint64_t>(n_) + static_cast<uint64_t>(rank)) * a_.block;
    return base + i * t;
  };
  std::vector<uint8_t> buf(t), expect(t);

  // Write.
  {
    auto b = Make(api);
    FillBase(&buf, me_);
    uint64_t fails = 0;
    Barrier(comm_);
    uint64_t t0 = gfs::MonoMicros();
    Status st = b->Open(PathOf(api, tag, me_), fcomm, true, file_bytes);
    fails += Failed(st, "open for write");
    for (uint64_t seg = 0; st.ok() && seg < a_.segments; ++seg) {
      for (uint64_t i = 0; st.ok() && i < per_seg; ++i) {
        Stamp(buf.data(), t, me_, seg, seg * a_.block + i * t);
        st = b->Write(offset(me_, seg, i), buf.data(), t);
        fails += Failed(st, "write");
      }
    }
    fails += Failed(b->Close(true), "close after write");
    Sample s;
    s.seconds = MaxOf(static_cast<double>(gfs::MonoMicros() - t0) / 1e6);
    s.value = static_cast<double>(total) / 1e6 / s.seconds;
    s.errors = SumOf(fails);
    if (do_write) {
      Add("write", "", api, s, total, false, n_, r);
      Progress(api + " write", s, false);
    }
  }

  // Read: rank r reads what rank (r+1)%n wrote (IOR -C).
  if (do_read) {
    auto b = Make(api);
    const int src = (me_ + 1) % n_;
    FillBase(&expect, src);
    DropCaches();
    uint64_t fails = 0, bad = 0, verify_us = 0;
    Barrier(comm_);
    uint64_t t0 = gfs::MonoMicros();
    Status st = b->Open(PathOf(api, tag, src), fcomm, false, file_bytes);
    fails += Failed(st, "open for read");
    for (uint64_t seg = 0; st.ok() && seg < a_.segments; ++seg) {
      for (uint64_t i = 0; st.ok() && i < per_seg; ++i) {
        st = b->Read(offset(src, seg, i), buf.data(), t);
        fails += Failed(st, "read");
        if (st.ok() && a_.verify) {
          uint64_t v0 = gfs::MonoMicros();
          Stamp(expect.data(), t, src, seg, seg * a_.block + i * t);
          if (std::memcmp(buf.data(), expect.data(), t) != 0) {
            if (bad == 0) {
              std::fprintf(stderr,
                           "gfs-bench: client %d: %s: wrong data at offset %" PRIu64
                           " (block of rank %d, segment %" PRIu64 ")\n",
                           me_, api.c_str(), offset(src, seg, i), src, seg);
            }
            ++bad;
          }
          verify_us += gfs::MonoMicros() - v0;
        }
      }
    }
    fails += Failed(b->Close(false), "close after read");
    Sample s;
    // The time spent comparing is not the API's: left out.
    s.seconds = MaxOf(static_cast<double>(gfs::MonoMicros() - t0 - verify_us) / 1e6);
    s.value = static_cast<double>(total) / 1e6 / s.seconds;
    s.errors = SumOf(fails + bad);
    Add("read", "", api, s, total, false, n_, r);
    Progress(api + " read", s, false);
  }

  Barrier(comm_);
  auto b = Make(api);
  if (a_.keep && rep + 1 == a_.reps) {
    // -k: the last repetition's files stay.
  } else if (a_.fpp) {
    b->Remove(PathOf(api, tag, me_));
  } else if (me_ == 0) {
    b->Remove(PathOf(api, tag, 0));
  }
  Barrier(comm_);
  if (api == "gfs") WaitForDeletes();
}

// All ranks append records of -t bytes into one file (gfs: record append
// through RecordWriter::AppendMany; posix: O_APPEND writes), then the same
// bytes by one stream from client 0.
void Bench::Append(const std::string& api, int rep) {
  if (api != "gfs" && api != "posix") return;
  const uint64_t t = a_.transfer;
  const uint64_t count = a_.block * a_.segments / t;  // records per rank
  const uint64_t total = count * t * static_cast<uint64_t>(n_);
  const uint32_t r = api == "gfs" ? a_.replication : 1;
  std::string path = PathOf(api, "app" + std::to_string(rep), 0);
  std::string spath = PathOf(api, "stream" + std::to_string(rep), 0);
  if (a_.fpp) {  // one file whatever -F says
    path = path.substr(0, path.rfind('.'));
    spath = spath.substr(0, spath.rfind('.'));
  }
  if (api == "gfs" && t > gfs::MaxRecordPayload(a_.chunk_size)) {
    if (me_ == 0 && rep == 0) {
      std::printf("  gfs append skipped: records of %" PRIu64
                  " bytes exceed the largest payload (%" PRIu64 ") for chunks of %" PRIu64 "\n",
                  t, gfs::MaxRecordPayload(a_.chunk_size), a_.chunk_size);
    }
    return;
  }
  std::vector<uint8_t> rec(t);
  FillBase(&rec, me_);
  // P producers.
  {
    uint64_t fails = 0;
    Barrier(comm_);
    uint64_t t0 = gfs::MonoMicros();
    if (api == "gfs") {
      Status st;
      if (me_ == 0) {
        gfs::CreateOptions co;
        co.replication = r;
        co.exclusive = false;
        co.truncate = true;
        st = c_->Create(path, co).status();
      }
      Barrier(comm_);
      auto f = c_->Open(path);
      if (st.ok()) st = f.status();
      fails += Failed(st, "append: open");
      if (st.ok()) {
        gfs::RecordWriter w(c_, &*f);
        std::vector<gfs::Client::Span> batch;
        std::vector<uint64_t> offsets;
        const uint64_t per_batch = std::max<uint64_t>(1, (16u << 20) / t);
        for (uint64_t done = 0; st.ok() && done < count;) {
          uint64_t k = std::min(per_batch, count - done);
          batch.assign(k, gfs::Client::Span{rec.data(), rec.size()});
          st = w.AppendMany(batch, &offsets);
          fails += Failed(st, "record append");
          done += k;
        }
        fails += Failed(c_->Close(&*f), "append: close");
      }
    } else {
      int fd = -1;
      if (me_ == 0) fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
      Barrier(comm_);
      if (me_ != 0) fd = open(path.c_str(), O_WRONLY | O_APPEND);
      if (fd < 0) fails += Failed(Status::IOError(Errno("open", path)), "append");
      for (uint64_t i = 0; fd >= 0 && i < count; ++i) {
        if (write(fd, rec.data(), t) != static_cast<ssize_t>(t)) {
          fails += Failed(Status::IOError(Errno("write", path)), "append");
          break;
        }
      }
      if (fd >= 0) {
        if (fsync(fd) != 0) fails += Failed(Status::IOError(Errno("fsync", path)), "append");
        close(fd);
      }
    }
    Sample s;
    s.seconds = MaxOf(static_cast<double>(gfs::MonoMicros() - t0) / 1e6);
    s.value = static_cast<double>(total) / 1e6 / s.seconds;
    // Check (untimed): every record is in the file exactly once.
    if (api == "gfs" && me_ == 0 && a_.verify) {
      auto f = c_->Open(path);
      if (f.ok()) {
        gfs::RecordReader rd(gfs::MaxRecordPayload(f->chunk_size));
        auto end = gfs::ReadRecordsOnce(
            c_, &*f, &rd, [](const gfs::RecordView&) {}, true);
        if (!end.ok() || rd.records() != count * static_cast<uint64_t>(n_)) {
          std::fprintf(stderr,
                       "gfs-bench: append: %" PRIu64 " distinct records read back, %" PRIu64
                       " appended\n",
                       rd.records(), count * static_cast<uint64_t>(n_));
          ++fails;
        }
      } else {
        fails += Failed(f.status(), "append: reopen");
      }
    } else if (api == "posix" && me_ == 0) {
      struct stat sb;
      if (stat(path.c_str(), &sb) != 0 || static_cast<uint64_t>(sb.st_size) != total) ++fails;
    }
    s.errors = SumOf(fails);
    Add("append", "", api, s, total, false, n_, r);
    Progress(api + " append", s, false);
  }
  // One stream, the same bytes.
  {
    uint64_t fails = 0;
    // The stream's buffer is made (and its pages touched) before the clock
    // starts, like the producers' records.
    const uint64_t chunk = std::min<uint64_t>(total, std::max<uint64_t>(t, 32u << 20));
    std::vector<uint8_t> buf(me_ == 0 ? chunk : 0, 0x5a);
    Barrier(comm_);
    uint64_t t0 = gfs::MonoMicros();
    if (me_ == 0) {
      if (api == "gfs") {
        gfs::CreateOptions co;
        co.replication = r;
        co.exclusive = false;
        co.truncate = true;
        auto f = c_->Create(spath, co);
        Status st = f.status();
        for (uint64_t off = 0; st.ok() && off < total; off += chunk) {
          st = c_->Write(&*f, off, buf.data(), std::min(chunk, total - off));
        }
        if (st.ok()) st = c_->Close(&*f);
        fails += Failed(st, "stream write");
      } else {
        PosixBackend pb;
        Status st = pb.Open(spath, MPI_COMM_SELF, true, total);
        for (uint64_t off = 0; st.ok() && off < total; off += chunk) {
          st = pb.Write(off, buf.data(), std::min(chunk, total - off));
        }
        Status cs = pb.Close(true);
        if (st.ok()) st = cs;
        fails += Failed(st, "stream write");
      }
    }
    Sample s;
    s.seconds = MaxOf(static_cast<double>(gfs::MonoMicros() - t0) / 1e6);
    s.value = static_cast<double>(total) / 1e6 / s.seconds;
    s.errors = SumOf(fails);
    Add("append", "stream", api, s, total, false, 1, r);
    Progress(api + " append-stream", s, false);
  }
  Barrier(comm_);
  if (me_ == 0) {
    if (api == "gfs") {
      // Between runs: a file already gone is fine.
      (void)c_->Remove(path, false);
      (void)c_->Remove(spath, false);
    } else {
      unlink(path.c_str());
      unlink(spath.c_str());
    }
  }
  Barrier(comm_);
  if (api == "gfs") WaitForDeletes();
}

// mdtest-like: every rank creates, stats, renames and deletes N files in its
// own directory; each phase timed on its own.
void Bench::Meta(const std::string& api, int rep) {
  if (api != "gfs" && api != "posix") return;
  const uint64_t nf = a_.meta_files;
  std::string top;
  if (api == "gfs") {
    top = "/gfs-bench/meta";
  } else {
    top = a_.dir;
    top += "/gfs-bench-";
    top += run_id_;
    top += "-meta";
  }
  top += std::to_string(rep);
  std::string dir = top;
  dir += "/r";
  dir += std::to_string(me_);
  if (api == "gfs") {
    Status made = c_->Mkdir(dir, true);
    if (!made.ok())
      std::fprintf(stderr, "gfs-bench: mkdir %s: %s\n", dir.c_str(), made.ToString().c_str());
  } else {
    mkdir(top.c_str(), 0755);
    mkdir(dir.c_str(), 0755);
  }
  auto name = [&](const char* p, uint64_t i) {
    std::string s = dir;
    s += "/";
    s += p;
    s += std::to_string(i);
    return s;
  };
  const char* ops[] = {"create", "stat", "rename", "delete"};
  for (int op = 0; op < 4; ++op) {
    uint64_t fails = 0;
    Barrier(comm_);
    uint64_t t0 = gfs::MonoMicros();
    for (uint64_t i = 0; i < nf; ++i) {
      Status st;
      if (api == "gfs") {
        switch (op) {
          case 0: {
            auto f = c_->Create(name("f", i));
            st = f.ok() ? c_->Close(&*f) : f.status();
            break;
          }
          case 1:
            st = c_->Stat(name("f", i)).status();
            break;
          case 2:
            st = c_->Rename(name("f", i), name("g", i));
            break;
          default:
            // A delete at once, as rm --skip-trash: the trash's move is
            // not what this rate compares with the local unlink.
            st = c_->Remove(name("g", i), false);
        }
      } else {
        int rc = 0;
        struct stat sb;
        switch (op) {
          case 0: {
            int fd = open(name("f", i).c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
            rc = fd < 0 ? -1 : close(fd);
            break;
          }
          case 1:
            rc = stat(name("f", i).c_str(), &sb);
            break;
          case 2:
            rc = rename(name("f", i).c_str(), name("g", i).c_str());
            break;
          default:
            rc = unlink(name("g", i).c_str());
        }
        if (rc != 0) st = Status::IOError(Errno(ops[op], name(op < 3 ? "f" : "g", i)));
      }
      if (!st.ok()) {
        if (fails == 0) Failed(st, std::string("meta ") + ops[op]);
        ++fails;
      }
    }
    Sample s;
    s.seconds = MaxOf(static_cast<double>(gfs::MonoMicros() - t0) / 1e6);
    const uint64_t total = nf * static_cast<uint64_t>(n_);
    s.value = static_cast<double>(total) / std::max(s.seconds, 1e-9);
    s.errors = SumOf(fails);
    Add("meta", ops[op], api, s, total, true, n_, api == "gfs" ? a_.replication : 1);
    Progress(api + " meta " + ops[op], s, true);
  }
  Barrier(comm_);
  if (api == "gfs") {
    // Clean-up after the measurement; what is left is removed with the top.
    (void)c_->Remove(dir, false);
    Barrier(comm_);
    if (me_ == 0) (void)c_->Remove(top, true);
  } else {
    rmdir(dir.c_str());
    Barrier(comm_);
    if (me_ == 0) rmdir(top.c_str());
  }
  Barrier(comm_);
}

std::string Fmt(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.4g", v);
  return b;
}

void Bench::Report() {
  if (me_ != 0) return;
  FILE* json = a_.json.empty() ? nullptr : std::fopen(a_.json.c_str(), "a");
  if (!a_.json.empty() && json == nullptr) {
    std::fprintf(stderr, "gfs-bench: cannot open %s: %s\n", a_.json.c_str(), std::strerror(errno));
  }
  std::printf("\n%-8s %-7s %-6s %5s %2s %12s %12s %12s %6s  %s\n", "workload", "op", "api", "ranks",
              "R", "median", "min", "max", "errors", "ratio (median vs)");
  for (const auto& [k, x] : results_) {
    const double med = x.Median();
    // Ratios to every other API measured for the same workload and op.
    std::string ratios;
    Json rjson = Json::object(), limits = Json::object();
    auto ratio = [&](const std::string& name, double v, Json* into) {
      if (!std::isfinite(v)) return;
      if (!ratios.empty()) ratios += " ";
      ratios += name + "=" + Fmt(v);
      (*into)[name] = v;
    };
    for (const auto& [k2, y] : results_) {
      if (k2.workload != k.workload || k2.op != k.op || k2.api == k.api) continue;
      double base = y.Median();
      if (base > 0) ratio(k2.api, med / base, &rjson);
    }
    // Append: the producers against the single stream of the same API.
    if (k.workload == "append" && k.op.empty()) {
      auto it = results_.find(Key{"append", "stream", k.api});
      if (it != results_.end() && it->second.Median() > 0) {
        ratio("stream", med / it->second.Median(), &rjson);
      }
    }
    // Machine limits: memory copy; for R replicas on one machine, each
    // baseline divided by R.
    if (!x.ops) {
      if (memcpy_mbs_ > 0) limits["memcpy"] = med / memcpy_mbs_;
      if (k.api == "gfs" && a_.replication > 1 && k.workload != "read") {
        for (const auto& [k2, y] : results_) {
          if (k2.workload != k.workload || k2.op != k.op || k2.api == k.api) continue;
          double lim = y.Median() / a_.replication;
          if (lim > 0) ratio(k2.api + "/" + std::to_string(a_.replication), med / lim, &limits);
        }
      }
    }
    std::printf("%-8s %-7s %-6s %5d %2u %12.1f %12.1f %12.1f %6" PRIu64 "  %s %s\n",
                k.workload.c_str(), k.op.empty() ? "-" : k.op.c_str(), k.api.c_str(), x.ranks,
                x.replication, med, x.Min(), x.Max(), x.Errors(), x.ops ? "ops/s" : "MB/s ",
                ratios.c_str());
    if (json) {
      Json j{{"api", k.api},
             {"workload", k.workload},
             {"op", k.op},
             {"ranks", x.ranks},
             {"replication", x.replication},
             {"bytes", x.ops ? 0 : x.bytes},
             {x.ops ? "ops_per_s" : "mb_per_s", med},
             {"median", med},
             {"min", x.Min()},
             {"max", x.Max()},
             {"seconds", x.MedianSeconds()},
             {"ratio_vs", rjson},
             {"ratio_vs_limit", limits},
             {"memcpy_mb_per_s", memcpy_mbs_},
             {"errors", x.Errors()},
             {"transfer", a_.transfer},
             {"block", a_.block},
             {"segments", a_.segments},
             {"file_per_process", a_.fpp},
             {"reps", static_cast<int>(x.reps.size())},
             {"chunkservers", a_.chunkservers},
             {"chunk_size", a_.chunk_size},
             {"drop_caches", dropped_ && !drop_failed_},
             {"dir", a_.dir}};
      std::fprintf(json, "%s\n", j.dump(-1, ' ', false, Json::error_handler_t::replace).c_str());
    }
  }
  std::printf(
      "machine: memcpy %.1f MB/s (%" PRIu64 " MiB buffer, best of 3)%s\n", memcpy_mbs_,
      a_.memcpy_mib,
      a_.drop_caches ? (drop_failed_ ? "; page cache NOT dropped" : "; page cache dropped") : "");
  std::fflush(stdout);
  if (json) std::fclose(json);
}

int Bench::Run() {
  if (me_ == 0) {
    std::printf("gfs-bench: %d client ranks, %d chunkservers, R=%u, -t %" PRIu64 " -b %" PRIu64
                " -s %" PRIu64 "%s, %d reps, baselines in %s\n",
                n_, a_.chunkservers, a_.replication, a_.transfer, a_.block, a_.segments,
                a_.fpp ? " -F" : "", a_.reps, a_.dir.c_str());
    std::fflush(stdout);
  }
  if (Has(a_.apis, "gfs")) {
    Status made = c_->Mkdir("/gfs-bench", true);
    if (!made.ok())
      std::fprintf(stderr, "gfs-bench: mkdir /gfs-bench: %s\n", made.ToString().c_str());
    if (me_ == 0) held_at_start_ = HeldChunks();
  }
  Barrier(comm_);
  MeasureMemcpy();
  const bool wr = Has(a_.workloads, "write") || Has(a_.workloads, "read");
  // Reps outer, APIs inner: slow drift of the machine hits every API alike.
  // The order of the APIs turns by one each repetition (gfs, mpiio, posix;
  // then mpiio, posix, gfs; ...), so that none always runs first after a
  // cache drop or always follows the same neighbour: this VM's disk serves
  // the same cold bytes at rates that differ by 2-3x from one phase to the
  // next, and a fixed order would hand the fast phases to one API.
  for (int rep = 0; rep < a_.reps; ++rep) {
    const size_t n = a_.apis.size();
    for (size_t k = 0; k < n; ++k) {
      const std::string& api = a_.apis[(k + static_cast<size_t>(rep)) % n];
      if (wr) WriteRead(api, rep);
      if (Has(a_.workloads, "append")) Append(api, rep);
      if (Has(a_.workloads, "meta")) Meta(api, rep);
    }
  }
  Report();
  uint64_t errors = 0;
  for (const auto& [k, x] : results_) errors += x.Errors();
  if (me_ == 0 && errors > 0) std::fprintf(stderr, "gfs-bench: %" PRIu64 " errors\n", errors);
  return errors > 0 ? 1 : 0;
}

// Splits the command line into gfs's global options (the job and the
// launcher: --data-dir, --chunkservers, --clients, --replication,
// --chunk-size, --hostfile, --dry-run, ...) and the bench's own options, each
// kept in order. The word "bench" (the command the launcher passes on to the
// ranks) is dropped. Errors: an option neither knows.
Status SplitArgs(int argc, char** argv, std::vector<std::string>* globals,
                 std::vector<std::string>* own) {
  Args a;
  OptionText o;
  const po::options_description bench = BenchDescription(&a, &o);
  // Asks gfs's own parser whether a global option exists and takes a value.
  auto probe = [&](const std::string& opt, bool* takes_value) -> Status {
    if (!gfs::tool::IsGlobalOption(opt.substr(2), takes_value)) {
      return Status::InvalidArgument("unknown option '" + opt + "'");
    }
    return Status::OK();
  };
  for (int i = 1; i < argc; ++i) {
    const std::string t = argv[i];
    if (t == "bench") continue;
    const bool is_long = t.rfind("--", 0) == 0, is_short = !is_long && t.size() >= 2 && t[0] == '-';
    const po::option_description* d = nullptr;
    if (is_long) {
      d = bench.find_nothrow(t.substr(2, t.find('=') - 2), false);
    } else if (is_short) {
      d = bench.find_nothrow(t.substr(0, 2), false);
    }
    if (d != nullptr) {
      own->push_back(t);
      // A separate value: "--json FILE", "-t 1M" (not "--json=FILE", "-t1M").
      const bool inline_value = is_long ? t.find('=') != std::string::npos : t.size() > 2;
      if (d->semantic()->max_tokens() > 0 && !inline_value && i + 1 < argc)
        own->push_back(argv[++i]);
      continue;
    }
    globals->push_back(t);
    if (is_long && t.find('=') == std::string::npos) {
      bool takes_value = false;
      GFS_RETURN_IF_ERROR(probe(t, &takes_value));
      if (takes_value && i + 1 < argc) globals->push_back(argv[++i]);
    } else if (is_short && t != "-h" && t != "-v" && t != "-q") {
      return Status::InvalidArgument("unknown option '" + t + "'");
    }
  }
  return Status::OK();
}

// The job's command line: the global options, the bench's defaults for what
// they leave out (data directory, R = 1, K = max(1, R)), then "bench" and the
// bench's own options.
Result<gfs::tool::CommandLine> JobCommandLine(const char* argv0,
                                              const std::vector<std::string>& globals,
                                              const std::vector<std::string>& own, bool launcher,
                                              std::vector<std::string>* line) {
  auto parse = [&](const std::vector<std::string>& g, bool l) {
    line->assign(1, argv0);
    line->insert(line->end(), g.begin(), g.end());
    line->push_back("bench");
    line->insert(line->end(), own.begin(), own.end());
    std::vector<char*> pv;
    for (auto& x : *line) pv.push_back(x.data());
    pv.push_back(nullptr);
    return gfs::tool::ParseCommandLine(static_cast<int>(line->size()), pv.data(), l, "bench");
  };
  auto first = parse(globals, false);
  if (!first.ok()) return first.status();
  std::vector<std::string> g;
  const gfs::JobConfig& j = first->global.job;
  bool dir_given = false;
  for (const auto& grp : first->global_groups) dir_given |= grp[0].rfind("--data-dir", 0) == 0;
  if (!dir_given) g.insert(g.end(), {"--data-dir", "./gfs-bench-data"});
  if (j.replication == 0) g.insert(g.end(), {"--replication", "1"});
  if (j.chunkservers < 0) {
    g.push_back("--chunkservers");
    g.push_back(std::to_string(std::max<uint32_t>(1, j.replication)));
  }
  g.insert(g.end(), globals.begin(), globals.end());
  return parse(g, launcher);
}

void WriteStatus(const std::string& file, int code) {
  if (file.empty()) return;
  FILE* f = std::fopen(file.c_str(), "w");
  if (f == nullptr) return;
  std::fprintf(f, "%d\n", code);
  std::fclose(f);
}

// One rank of the job (under mpirun/srun, or started by the launcher).
int RankMain(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int world_rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  std::vector<std::string> globals, own, line;
  Status st = SplitArgs(argc, argv, &globals, &own);
  Result<gfs::tool::CommandLine> cl = st;
  if (st.ok()) cl = JobCommandLine(argv[0], globals, own, false, &line);
  Args a;
  bool help = false;
  std::string err = cl.ok() ? ParseArgs(own, &a, &help) : cl.status().message();
  const std::string status_file = cl.ok() ? cl->global.status_file : "";
  const bool launched = !status_file.empty();
  if (help || !err.empty()) {
    if (world_rank == 0) {
      if (help) {
        std::printf("%s", Usage().c_str());
      } else {
        std::fprintf(stderr, "gfs-bench: %s (see --help)\n", err.c_str());
      }
      WriteStatus(status_file, help ? 0 : 2);
    }
    MPI_Finalize();
    return launched ? 0 : (help ? 0 : 2);
  }
  const gfs::JobConfig& cfg = cl->global.job;
  a.replication = cfg.replication;
  a.chunkservers = cfg.chunkservers;
  a.chunk_size = cfg.chunk_size;
  gfs::Session s;
  st = gfs::Init(MPI_COMM_WORLD, cfg, &s);
  if (!st.ok()) {
    const int code = st.code() == gfs::Code::kInvalidArgument ? 2 : 1;
    if (world_rank == 0) {
      std::fprintf(stderr, "gfs-bench: %s\n", st.ToString().c_str());
      WriteStatus(status_file, code);
    }
    MPI_Finalize();
    return launched ? 0 : code;
  }
  int rc = 0;
  if (s.is_client()) {
    a.chunkservers = s.layout().chunkservers;
    Bench b(a, &s);
    rc = b.Run();
  }
  const bool first_client = s.is_client() && s.client_index() == 0;
  if (Status fin = gfs::Finalize(&s, rc); !fin.ok()) {
    std::fprintf(stderr, "gfs-bench: finalize: %s\n", fin.ToString().c_str());
    if (rc == 0) rc = 1;
  }
  if (first_client) WriteStatus(status_file, rc);
  // Every rank leaves with the clients' verdict (mpirun reports the first
  // non-zero exit status); launched, the status file carries it instead (under
  // --enable-recovery mpirun's own status is always 0).
  int all = 0;
  MPI_Allreduce(&rc, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return launched ? 0 : all;
}

// Run directly: check the whole command line, then start the job through
// gfs's launcher (jobs/launcher.h), which re-executes this binary under
// mpirun and returns the status the first client reports.
int LauncherMain(int argc, char** argv) {
  std::vector<std::string> globals, own, line;
  Status st = SplitArgs(argc, argv, &globals, &own);
  Result<gfs::tool::CommandLine> cl = st;
  if (st.ok()) cl = JobCommandLine(argv[0], globals, own, true, &line);
  if (!cl.ok()) {
    std::fprintf(stderr, "gfs-bench: %s (see --help)\n", cl.status().message().c_str());
    return 2;
  }
  Args a;
  bool help = false;
  std::string err = ParseArgs(own, &a, &help);
  if (help || cl->global.help) {
    std::printf("%s", Usage().c_str());
    return 0;
  }
  if (cl->global.version) {
    std::printf("%s", gfs::tool::VersionText("gfs-bench").c_str());
    return 0;
  }
  if (!err.empty()) {
    std::fprintf(stderr, "gfs-bench: %s (see --help)\n", err.c_str());
    return 2;
  }
  const gfs::JobConfig& j = cl->global.job;
  auto layout = gfs::ComputeLayout(1 + j.shadows + j.chunkservers + j.clients, j);
  if (!layout.ok()) {
    std::fprintf(stderr, "gfs-bench: %s\n", layout.status().message().c_str());
    return 2;
  }
  std::vector<char*> pv;
  for (auto& x : line) pv.push_back(x.data());
  pv.push_back(nullptr);
  return gfs::tool::Launch(*cl, static_cast<int>(line.size()), pv.data());
}

}  // namespace

int main(int argc, char** argv) {
  bool rank_mode = gfs::tool::UnderMpiLauncher();
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--rank-mode") rank_mode = true;
  }
  return rank_mode ? RankMain(argc, argv) : LauncherMain(argc, argv);
}
