// Round trip of a multi-dataset .h5 file through the gfs HDF5 driver.
//
//   mpirun -np 8 h5_vfd DATA_DIR RESULT_FILE [REMOTE_PATH]
//
// 1 master + 3 chunkservers + the rest clients. Client 0 creates REMOTE_PATH
// (default /h5/vfd.h5) through the driver with three datasets (int64
// contiguous, a chunked 2-D double grid, a compound contiguous dataset),
// 64 MiB in all times env GFS_TEST_SCALE, written in 1 MiB hyperslabs; closes
// it; reopens it read-only through the driver and checks every value; and
// checks that its peak RSS grew by far less than the file size (the driver
// streams; the baseline is taken after a small warm-up file, REMOTE_PATH.warmup,
// went through the same paths). Then client 1 (another client) opens the file through the driver
// and checks it too. Client 0 writes "OK ..." or "FAIL ..." to RESULT_FILE
// (mpirun --enable-recovery loses exit codes).
#include <hdf5.h>
#include <mpi.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "io/h5/vfd.h"
#include "jobs/gfs.h"

namespace {

struct Rec {
  int32_t a;
  double b;
  char tag[8];
};

constexpr hsize_t kGridCols = 1024;
constexpr size_t kSlabBytes = 1 << 20;

int64_t IntAt(hsize_t i) { return static_cast<int64_t>(i) * 7 + 1; }
double GridAt(hsize_t r, hsize_t c) { return static_cast<double>(r * kGridCols + c) + 0.5; }
Rec RecAt(hsize_t i) {
  Rec r{};
  r.a = static_cast<int32_t>(i % 1000003) - 500000;
  r.b = static_cast<double>(i) * 0.25;
  std::snprintf(r.tag, sizeof(r.tag), "t%06u", static_cast<unsigned>(i % 1000000));
  return r;
}

bool Same(int64_t x, int64_t y) { return x == y; }
bool Same(const Rec& x, const Rec& y) {
  return x.a == y.a && x.b == y.b && std::strncmp(x.tag, y.tag, sizeof(x.tag)) == 0;
}

// Peak resident set (VmHWM) in bytes.
uint64_t PeakRss() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
  }
  return 0;
}

hid_t RecType() {
  hid_t str = H5Tcopy(H5T_C_S1);
  H5Tset_size(str, 8);
  H5Tset_strpad(str, H5T_STR_NULLTERM);
  hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(Rec));
  H5Tinsert(t, "a", HOFFSET(Rec, a), H5T_NATIVE_INT32);
  H5Tinsert(t, "b", HOFFSET(Rec, b), H5T_NATIVE_DOUBLE);
  H5Tinsert(t, "tag", HOFFSET(Rec, tag), str);
  H5Tclose(str);
  return t;
}

struct Sizes {
  hsize_t ints = 0;       // elements of /ints
  hsize_t grid_rows = 0;  // rows of /grid (kGridCols doubles each)
  hsize_t recs = 0;       // elements of /records
};

Sizes SizesFor(double scale) {
  const double total = 64.0 * 1048576.0 * scale;
  Sizes s;
  s.ints = static_cast<hsize_t>(total / 2 / sizeof(int64_t));
  s.grid_rows = static_cast<hsize_t>(total * 3 / 8 / (kGridCols * sizeof(double)));
  s.recs = static_cast<hsize_t>(total / 8 / sizeof(Rec));
  if (s.ints < 1) s.ints = 1;
  if (s.grid_rows < 64) s.grid_rows = 64;
  if (s.recs < 1) s.recs = 1;
  return s;
}

// Writes (write=true) or reads and checks a 1-D dataset slab by slab.
template <typename T, typename Gen>
std::string Slabs1D(hid_t ds, hid_t memtype, hsize_t n, bool write, Gen gen) {
  const hsize_t per = kSlabBytes / sizeof(T);
  std::vector<T> buf(per);
  hid_t fspace = H5Dget_space(ds);
  for (hsize_t start = 0; start < n; start += per) {
    hsize_t count = std::min(per, n - start);
    hid_t mspace = H5Screate_simple(1, &count, nullptr);
    H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &start, nullptr, &count, nullptr);
    if (write) {
      for (hsize_t i = 0; i < count; ++i) buf[i] = gen(start + i);
      if (H5Dwrite(ds, memtype, mspace, fspace, H5P_DEFAULT, buf.data()) < 0) {
        H5Sclose(mspace);
        H5Sclose(fspace);
        return "H5Dwrite failed at element " + std::to_string(start);
      }
    } else {
      std::memset(static_cast<void*>(buf.data()), 0xAB, count * sizeof(T));
      if (H5Dread(ds, memtype, mspace, fspace, H5P_DEFAULT, buf.data()) < 0) {
        H5Sclose(mspace);
        H5Sclose(fspace);
        return "H5Dread failed at element " + std::to_string(start);
      }
      for (hsize_t i = 0; i < count; ++i) {
        T want = gen(start + i);
        if (!Same(buf[i], want)) {
          H5Sclose(mspace);
          H5Sclose(fspace);
          return "wrong value at element " + std::to_string(start + i);
        }
      }
    }
    H5Sclose(mspace);
  }
  H5Sclose(fspace);
  return "";
}

std::string GridSlabs(hid_t ds, hsize_t rows, bool write) {
  const hsize_t per_rows = kSlabBytes / (kGridCols * sizeof(double));
  std::vector<double> buf(per_rows * kGridCols);
  hid_t fspace = H5Dget_space(ds);
  std::string err;
  for (hsize_t r0 = 0; r0 < rows && err.empty(); r0 += per_rows) {
    hsize_t start[2] = {r0, 0};
    hsize_t count[2] = {std::min(per_rows, rows - r0), kGridCols};
    hid_t mspace = H5Screate_simple(2, count, nullptr);
    H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, nullptr, count, nullptr);
    if (write) {
      for (hsize_t r = 0; r < count[0]; ++r) {
        for (hsize_t c = 0; c < kGridCols; ++c) buf[r * kGridCols + c] = GridAt(r0 + r, c);
      }
      if (H5Dwrite(ds, H5T_NATIVE_DOUBLE, mspace, fspace, H5P_DEFAULT, buf.data()) < 0) {
        err = "grid H5Dwrite failed at row " + std::to_string(r0);
      }
    } else {
      std::fill(buf.begin(), buf.end(), -1.0);
      if (H5Dread(ds, H5T_NATIVE_DOUBLE, mspace, fspace, H5P_DEFAULT, buf.data()) < 0) {
        err = "grid H5Dread failed at row " + std::to_string(r0);
      }
      for (hsize_t r = 0; r < count[0] && err.empty(); ++r) {
        for (hsize_t c = 0; c < kGridCols; ++c) {
          if (buf[r * kGridCols + c] != GridAt(r0 + r, c)) {
            err = "grid: wrong value at row " + std::to_string(r0 + r);
            break;
          }
        }
      }
    }
    H5Sclose(mspace);
  }
  H5Sclose(fspace);
  return err;
}

std::string CreateFile(gfs::Client* c, const std::string& path, const Sizes& sz) {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (gfs::h5::SetFaplGfs(fapl, c) < 0) return "SetFaplGfs failed";
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  if (f < 0) return "H5Fcreate through the gfs driver failed";
  std::string err;
  {
    hsize_t n = sz.ints;
    hid_t sp = H5Screate_simple(1, &n, nullptr);
    hid_t ds = H5Dcreate2(f, "ints", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Sclose(sp);
    if (ds < 0) return "H5Dcreate ints failed";
    err = Slabs1D<int64_t>(ds, H5T_NATIVE_INT64, n, true, IntAt);
    H5Dclose(ds);
  }
  if (err.empty()) {
    hsize_t dims[2] = {sz.grid_rows, kGridCols};
    hsize_t chunk[2] = {64, kGridCols};
    hid_t sp = H5Screate_simple(2, dims, nullptr);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 2, chunk);
    hid_t ds = H5Dcreate2(f, "grid", H5T_IEEE_F64LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    H5Sclose(sp);
    if (ds < 0) return "H5Dcreate grid failed";
    err = GridSlabs(ds, sz.grid_rows, true);
    // An attribute too (metadata written after raw data).
    hid_t asp = H5Screate(H5S_SCALAR);
    hid_t at = H5Acreate2(ds, "rows", H5T_STD_U64LE, asp, H5P_DEFAULT, H5P_DEFAULT);
    uint64_t rows = sz.grid_rows;
    H5Awrite(at, H5T_NATIVE_UINT64, &rows);
    H5Aclose(at);
    H5Sclose(asp);
    H5Dclose(ds);
  }
  if (err.empty()) {
    hsize_t n = sz.recs;
    hid_t sp = H5Screate_simple(1, &n, nullptr);
    hid_t t = RecType();
    hid_t g = H5Gcreate2(f, "group", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t ds = H5Dcreate2(g, "records", t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Sclose(sp);
    if (ds < 0) return "H5Dcreate records failed";
    err = Slabs1D<Rec>(ds, t, n, true, RecAt);
    H5Dclose(ds);
    H5Gclose(g);
    H5Tclose(t);
  }
  if (H5Fclose(f) < 0 && err.empty()) err = "H5Fclose failed";
  return err;
}

std::string VerifyFile(gfs::Client* c, const std::string& path, const Sizes& sz, bool all) {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (gfs::h5::SetFaplGfs(fapl, c) < 0) return "SetFaplGfs failed";
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl);
  H5Pclose(fapl);
  if (f < 0) return "H5Fopen through the gfs driver failed";
  std::string err;
  hid_t ds = H5Dopen2(f, "ints", H5P_DEFAULT);
  if (ds < 0) {
    err = "H5Dopen ints failed";
  } else {
    err = Slabs1D<int64_t>(ds, H5T_NATIVE_INT64, sz.ints, false, IntAt);
    H5Dclose(ds);
  }
  if (err.empty() && all) {
    ds = H5Dopen2(f, "grid", H5P_DEFAULT);
    if (ds < 0) {
      err = "H5Dopen grid failed";
    } else {
      err = GridSlabs(ds, sz.grid_rows, false);
      uint64_t rows = 0;
      hid_t at = H5Aopen(ds, "rows", H5P_DEFAULT);
      if (at < 0 || H5Aread(at, H5T_NATIVE_UINT64, &rows) < 0 || rows != sz.grid_rows) {
        if (err.empty()) err = "grid attribute rows wrong";
      }
      if (at >= 0) H5Aclose(at);
      H5Dclose(ds);
    }
  }
  if (err.empty() && all) {
    ds = H5Dopen2(f, "group/records", H5P_DEFAULT);
    if (ds < 0) {
      err = "H5Dopen group/records failed";
    } else {
      hid_t t = RecType();
      err = Slabs1D<Rec>(ds, t, sz.recs, false, RecAt);
      H5Tclose(t);
      H5Dclose(ds);
    }
  }
  if (H5Fclose(f) < 0 && err.empty()) err = "H5Fclose (read-only) failed";
  return err;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  if (argc < 3) {
    std::fprintf(stderr, "usage: h5_vfd DATA_DIR RESULT_FILE [REMOTE_PATH]\n");
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  const std::string result_file = argv[2];
  const std::string remote = argc > 3 ? argv[3] : "/h5/vfd.h5";
  const char* scale_env = std::getenv("GFS_TEST_SCALE");
  const double scale = scale_env != nullptr ? std::atof(scale_env) : 1.0;

  gfs::JobConfig cfg;
  cfg.data_dir = argv[1];
  cfg.chunkservers = 3;
  cfg.chunk_size = 8ull << 20;  // the file spans several chunks
  gfs::Session s;
  gfs::Status st = gfs::Init(MPI_COMM_WORLD, cfg, &s);
  int status = st.ok() ? 0 : 1;
  if (!st.ok()) std::fprintf(stderr, "h5_vfd: init: %s\n", st.ToString().c_str());
  if (st.ok() && s.is_client()) {
    gfs::Client* c = s.client();
    const Sizes sz = SizesFor(scale);
    std::string err;
    std::ostringstream info;
    if (s.client_index() == 0) {
      gfs::Status m = c->Mkdir("/h5", true);
      if (!m.ok() && m.code() != gfs::Code::kAlreadyExists) err = "mkdir /h5: " + m.ToString();
      // Warm-up: a small file through the same paths first, so that one-time
      // costs (HDF5 and MPI buffers, the slab buffers) are in the baseline and
      // the growth measured below is what depends on the file's size.
      Sizes small;
      small.ints = kSlabBytes / sizeof(int64_t) + 1;
      small.grid_rows = 2 * kSlabBytes / (kGridCols * sizeof(double)) + 64;
      small.recs = kSlabBytes / sizeof(Rec) + 1;
      if (err.empty()) err = CreateFile(c, remote + ".warmup", small);
      if (err.empty()) err = VerifyFile(c, remote + ".warmup", small, true);
      if (!err.empty()) err = "warm-up: " + err;
      const uint64_t before = PeakRss();
      if (err.empty()) err = CreateFile(c, remote, sz);
      const uint64_t after_write = PeakRss();
      if (err.empty()) err = VerifyFile(c, remote, sz, true);
      const uint64_t after_read = PeakRss();
      uint64_t size = 0;
      if (err.empty()) {
        auto fs = c->Stat(remote);
        if (!fs.ok()) {
          err = "stat: " + fs.status().ToString();
        } else {
          size = fs->size;
        }
      }
      const uint64_t growth = after_read - before;
      gfs::h5::DriverStats ds = gfs::h5::GetDriverStats();
      info << "file_bytes=" << size << " rss_before=" << before
           << " rss_after_write=" << after_write << " rss_after_read=" << after_read
           << " rss_growth=" << growth << " driver_reads=" << ds.reads
           << " driver_writes=" << ds.writes << " bytes_read=" << ds.bytes_read
           << " bytes_written=" << ds.bytes_written << " largest_io=" << ds.largest_io
           << " flushes=" << ds.flushes << " truncates=" << ds.truncates;
      const uint64_t min_payload =
          (sz.ints * 8 + sz.grid_rows * kGridCols * 8 + sz.recs * sizeof(Rec));
      if (err.empty() && size < min_payload) {
        err = "file is " + std::to_string(size) + " bytes, expected at least " +
              std::to_string(min_payload);
      }
#if defined(__SANITIZE_ADDRESS__)
      // AddressSanitizer keeps freed blocks in quarantine (and maps shadow
      // memory), so peak RSS says nothing about the driver there.
      info << " rss_check=skipped(asan)";
      const bool check_rss = false;
#else
      const bool check_rss = true;
#endif
      // The client's sequential read-ahead holds up to read_ahead bytes (and
      // one request more) whatever the file's size: a fixed cost, allowed.
      const uint64_t fixed = cfg.read_ahead + cfg.read_size;
      if (err.empty() && check_rss && growth >= size / 4 + fixed) {
        err = "peak RSS grew by " + std::to_string(growth) + " bytes for a " +
              std::to_string(size) + "-byte file (must be < 1/4 of it + " + std::to_string(fixed) +
              " of read-ahead)";
      }
    }
    MPI_Barrier(s.app_comm());
    // Another client sees what client 0 wrote and closed.
    int other_ok = 1;
    if (s.num_clients() > 1 && s.client_index() == 1) {
      std::string e = VerifyFile(c, remote, sz, true);
      if (!e.empty()) {
        std::fprintf(stderr, "h5_vfd: client 1: %s\n", e.c_str());
        other_ok = 0;
      }
    }
    int all_ok = 0;
    MPI_Allreduce(&other_ok, &all_ok, 1, MPI_INT, MPI_MIN, s.app_comm());
    if (s.client_index() == 0) {
      if (err.empty() && !all_ok) err = "client 1 could not read the file back";
      std::ofstream out(result_file);
      if (err.empty()) {
        out << "OK " << info.str() << "\n";
      } else {
        out << "FAIL " << err << " (" << info.str() << ")\n";
        std::fprintf(stderr, "h5_vfd: FAIL %s\n", err.c_str());
      }
      std::printf("h5_vfd: %s %s\n", err.empty() ? "OK" : "FAIL", info.str().c_str());
    }
    if (!err.empty() || !all_ok) status = 1;
  }
  if (gfs::Status fin = gfs::Finalize(&s, status); !fin.ok()) {
    std::fprintf(stderr, "finalize: %s\n", fin.ToString().c_str());
  }
  MPI_Finalize();
  return status;
}
