// A packet table appended by every client rank at once, read back, exported
// to a real .h5 file and read through the HDF5 C API.
//
//   mpirun -np 8 h5_packet_table DATA_DIR RESULT_FILE OUT_H5 [REMOTE_PATH]
//
// 1 master + 3 chunkservers + the rest clients. Client 0 creates REMOTE_PATH
// (default /h5/table.pt, 1 MiB chunks so records cross chunk ends) with the
// compound packet type {int32 rank; int64 seq; double value; char tag[8]};
// after a barrier every client appends M packets (20000 x GFS_TEST_SCALE) in
// batches of varying size (1 to 200 packets, and one batch larger than a
// record holds). Then client 0 opens the table afresh and checks: the decoded
// type equals the one given, NumPackets = clients x M, every (rank, seq)
// appears exactly once with the right value and tag, each rank's packets in
// order, and random ReadPackets ranges agree with the full read. Then it
// exports the table to OUT_H5 (dataset "packets") and reads that file with
// H5Fopen/H5Dread into the same struct, checking every packet against the
// table's order. Client 0 writes "OK ..." or "FAIL ..." to RESULT_FILE.
#include <hdf5.h>
#include <mpi.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "io/h5/export.h"
#include "io/h5/packet_table.h"
#include "jobs/gfs.h"

namespace {

struct Packet {
  int32_t rank;
  int64_t seq;
  double value;
  char tag[8];
};

hid_t PacketType() {
  hid_t str = H5Tcopy(H5T_C_S1);
  H5Tset_size(str, sizeof(Packet::tag));
  H5Tset_strpad(str, H5T_STR_NULLTERM);
  hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(Packet));
  H5Tinsert(t, "rank", HOFFSET(Packet, rank), H5T_NATIVE_INT32);
  H5Tinsert(t, "seq", HOFFSET(Packet, seq), H5T_NATIVE_INT64);
  H5Tinsert(t, "value", HOFFSET(Packet, value), H5T_NATIVE_DOUBLE);
  H5Tinsert(t, "tag", HOFFSET(Packet, tag), str);
  H5Tclose(str);
  return t;
}

Packet Make(int rank, int64_t seq) {
  Packet p;
  std::memset(&p, 0, sizeof(p));
  p.rank = rank;
  p.seq = seq;
  p.value = rank * 1e6 + static_cast<double>(seq) * 0.5;
  // "r<rank%10>-<seq%1000, 3 digits>"
  const int k = static_cast<int>(seq % 1000);
  const char tag[8] = {'r',
                       static_cast<char>('0' + rank % 10),
                       '-',
                       static_cast<char>('0' + k / 100),
                       static_cast<char>('0' + k / 10 % 10),
                       static_cast<char>('0' + k % 10),
                       '\0',
                       '\0'};
  std::memcpy(p.tag, tag, sizeof(p.tag));
  return p;
}

bool Same(const Packet& a, const Packet& b) {
  return a.rank == b.rank && a.seq == b.seq && a.value == b.value &&
         std::strncmp(a.tag, b.tag, sizeof(a.tag)) == 0;
}

std::string Describe(const Packet& p) {
  std::ostringstream o;
  o << "{rank " << p.rank << ", seq " << p.seq << ", value " << p.value << ", tag '"
    << std::string(p.tag, strnlen(p.tag, sizeof(p.tag))) << "'}";
  return o.str();
}

// This rank's appends: batches of 1..200 packets, plus one batch bigger than
// a record holds.
std::string Produce(gfs::h5::PacketTable* t, int rank, int64_t m) {
  std::mt19937_64 rng(static_cast<uint64_t>(rank) * 7919 + 1);
  std::vector<Packet> batch;
  int64_t seq = 0;
  bool big_done = false;
  while (seq < m) {
    int64_t k = static_cast<int64_t>(rng() % 200) + 1;
    if (!big_done && seq >= m / 3) {
      k = static_cast<int64_t>(t->packets_per_record()) + 17;  // split over records
      big_done = true;
    }
    k = std::min(k, m - seq);
    batch.resize(static_cast<size_t>(k));
    for (int64_t i = 0; i < k; ++i) batch[static_cast<size_t>(i)] = Make(rank, seq + i);
    gfs::Status s = t->Append(batch.size(), batch.data());
    if (!s.ok()) return "append: " + s.ToString();
    seq += k;
  }
  return "";
}

// Client 0's checks. all: the table in file order (filled).
std::string CheckTable(gfs::Client* c, const std::string& remote, int clients, int64_t m,
                       std::vector<Packet>* all, std::ostringstream* info) {
  auto t = gfs::h5::PacketTable::Open(c, remote);
  if (!t.ok()) return "open: " + t.status().ToString();
  hid_t mine = PacketType();
  htri_t eq = H5Tequal(mine, t->type());
  H5Tclose(mine);
  if (eq <= 0) return "the decoded packet type differs from the one the table was created with";
  if (t->packet_size() != sizeof(Packet)) return "packet size " + std::to_string(t->packet_size());
  auto n = t->NumPackets();
  if (!n.ok()) return "num packets: " + n.status().ToString();
  const uint64_t want = static_cast<uint64_t>(clients) * static_cast<uint64_t>(m);
  if (*n != want) {
    return "NumPackets = " + std::to_string(*n) + ", expected " + std::to_string(want);
  }
  all->resize(*n);
  // Read in uneven pieces.
  uint64_t at = 0;
  size_t piece = 1;
  while (at < *n) {
    auto r = t->ReadPackets(at, piece, all->data() + at);
    if (!r.ok()) return "read packets at " + std::to_string(at) + ": " + r.status().ToString();
    if (*r == 0) return "read packets at " + std::to_string(at) + " returned 0";
    at += *r;
    piece = piece * 3 + 1;
    if (piece > 5000) piece = 7;
  }
  auto past = t->ReadPackets(*n, 10, all->data());
  if (!past.ok() || *past != 0) return "ReadPackets past the end did not return 0";
  // Exactly once, right values, each rank in order.
  std::vector<std::vector<uint8_t>> seen(static_cast<size_t>(clients),
                                         std::vector<uint8_t>(static_cast<size_t>(m), 0));
  std::vector<int64_t> last(static_cast<size_t>(clients), -1);
  for (uint64_t i = 0; i < *n; ++i) {
    const Packet& p = (*all)[i];
    if (p.rank < 0 || p.rank >= clients || p.seq < 0 || p.seq >= m) {
      return "packet " + std::to_string(i) + " out of range: " + Describe(p);
    }
    if (!Same(p, Make(p.rank, p.seq)))
      return "packet " + std::to_string(i) + " wrong: " + Describe(p);
    auto& s = seen[static_cast<size_t>(p.rank)][static_cast<size_t>(p.seq)];
    if (s) return "packet " + Describe(p) + " appears twice";
    s = 1;
    if (p.seq <= last[static_cast<size_t>(p.rank)]) {
      return "rank " + std::to_string(p.rank) + "'s packets out of order at " + std::to_string(i);
    }
    last[static_cast<size_t>(p.rank)] = p.seq;
  }
  // (All present follows from the count and no duplicates.)
  // Random ranges agree with the full read.
  std::mt19937_64 rng(42);
  std::vector<Packet> buf;
  for (int k = 0; k < 50; ++k) {
    uint64_t start = rng() % *n;
    size_t len = static_cast<size_t>(rng() % 3000) + 1;
    buf.assign(len, Packet{});
    auto r = t->ReadPackets(start, len, buf.data());
    if (!r.ok()) return "random read: " + r.status().ToString();
    size_t expect = static_cast<size_t>(std::min<uint64_t>(len, *n - start));
    if (*r != expect) return "random read returned " + std::to_string(*r);
    for (size_t i = 0; i < expect; ++i) {
      if (!Same(buf[i], (*all)[start + i])) {
        return "random read at " + std::to_string(start + i) + " disagrees with the full read";
      }
    }
  }
  const auto& st = t->stats();
  *info << "packets=" << *n << " records=" << st.records << " duplicates=" << st.duplicates
        << " skipped_bytes=" << st.skipped_bytes << " bad_records=" << st.bad_records
        << " packets_per_record=" << t->packets_per_record();
  gfs::Status cs = t->Close();
  if (!cs.ok()) return "close: " + cs.ToString();
  return "";
}

std::string CheckExport(gfs::Client* c, const std::string& remote, const std::string& out_h5,
                        const std::vector<Packet>& all, std::ostringstream* info) {
  gfs::h5::ExportSummary sum;
  gfs::Status s = gfs::h5::ExportPacketTable(c, remote, out_h5, "packets", &sum);
  if (!s.ok()) return "export: " + s.ToString();
  if (sum.packets != all.size()) return "export wrote " + std::to_string(sum.packets) + " packets";
  *info << " exported=" << sum.packets;
  hid_t f = H5Fopen(out_h5.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) return "H5Fopen " + out_h5 + " failed";
  std::string err;
  hid_t ds = H5Dopen2(f, "packets", H5P_DEFAULT);
  if (ds < 0) err = "H5Dopen packets failed";
  if (err.empty()) {
    hid_t sp = H5Dget_space(ds);
    hsize_t dims = 0;
    if (H5Sget_simple_extent_ndims(sp) != 1 || H5Sget_simple_extent_dims(sp, &dims, nullptr) != 1 ||
        dims != all.size()) {
      err = "dataset has " + std::to_string(dims) + " elements, expected " +
            std::to_string(all.size());
    }
    H5Sclose(sp);
  }
  if (err.empty()) {
    // Field names survive: a type with the same names reads every field.
    hid_t t = PacketType();
    std::vector<Packet> got(all.size());
    std::memset(static_cast<void*>(got.data()), 0, got.size() * sizeof(Packet));
    if (H5Dread(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, got.data()) < 0) err = "H5Dread failed";
    for (size_t i = 0; err.empty() && i < all.size(); ++i) {
      if (!Same(got[i], all[i])) {
        err = "exported packet " + std::to_string(i) + " is " + Describe(got[i]) + ", expected " +
              Describe(all[i]);
      }
    }
    H5Tclose(t);
  }
  if (err.empty()) {
    uint64_t n = 0;
    hid_t a = H5Aopen(ds, "gfs_packets", H5P_DEFAULT);
    if (a < 0 || H5Aread(a, H5T_NATIVE_UINT64, &n) < 0 || n != all.size()) {
      err = "attribute gfs_packets wrong";
    }
    if (a >= 0) H5Aclose(a);
  }
  if (ds >= 0) H5Dclose(ds);
  H5Fclose(f);
  // An export of a missing table fails cleanly and leaves no file behind.
  if (err.empty()) {
    const std::string bad = out_h5 + ".missing.h5";
    gfs::Status m = gfs::h5::ExportPacketTable(c, remote + ".does-not-exist", bad, "packets");
    if (m.ok()) err = "export of a missing table succeeded";
    std::ifstream probe(bad);
    if (err.empty() && probe.good()) err = "failed export left " + bad + " behind";
  }
  // A plain file is refused as "not a packet table".
  if (err.empty()) {
    const std::string plain = remote + ".plain";
    const std::string bad = out_h5 + ".plain.h5";
    auto f = c->Create(plain);
    const char text[] = "plain bytes, not records\n";
    gfs::Status w = f.ok() ? c->Write(&*f, 0, text, sizeof(text) - 1) : f.status();
    if (w.ok()) w = c->Close(&*f);
    if (!w.ok()) return "writing " + plain + ": " + w.ToString();
    gfs::Status m = gfs::h5::ExportPacketTable(c, plain, bad, "packets");
    if (m.ok() || m.message().find("not a packet table") == std::string::npos) {
      err = "export of a plain file: expected 'not a packet table', got " + m.ToString();
    }
    std::ifstream probe(bad);
    if (err.empty() && probe.good()) err = "failed export left " + bad + " behind";
  }
  return err;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  if (argc < 4) {
    std::fprintf(stderr, "usage: h5_packet_table DATA_DIR RESULT_FILE OUT_H5 [REMOTE_PATH]\n");
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  const std::string result_file = argv[2];
  const std::string out_h5 = argv[3];
  const std::string remote = argc > 4 ? argv[4] : "/h5/table.pt";
  const char* scale_env = std::getenv("GFS_TEST_SCALE");
  const double scale = scale_env != nullptr ? std::atof(scale_env) : 1.0;
  const int64_t m = std::max<int64_t>(100, static_cast<int64_t>(20000 * scale));

  gfs::JobConfig cfg;
  cfg.data_dir = argv[1];
  cfg.chunkservers = 3;
  gfs::Session s;
  gfs::Status st = gfs::Init(MPI_COMM_WORLD, cfg, &s);
  int status = st.ok() ? 0 : 1;
  if (!st.ok()) std::fprintf(stderr, "h5_packet_table: init: %s\n", st.ToString().c_str());
  if (st.ok() && s.is_client()) {
    gfs::Client* c = s.client();
    const int me = s.client_index();
    const int clients = s.num_clients();
    std::string err;
    std::ostringstream info;
    // Client 0 creates the table; the others open it after the barrier.
    gfs::Result<gfs::h5::PacketTable> table = gfs::Status::Internal("not opened");
    if (me == 0) {
      gfs::Status md = c->Mkdir("/h5", true);
      if (!md.ok() && md.code() != gfs::Code::kAlreadyExists) err = "mkdir: " + md.ToString();
      gfs::CreateOptions opts;
      opts.chunk_size = 1u << 20;  // records cross chunk ends: padding, next-chunk retries
      hid_t type = PacketType();
      if (err.empty()) {
        table = gfs::h5::PacketTable::Create(c, remote, type, opts);
        if (!table.ok()) err = "create: " + table.status().ToString();
      }
      H5Tclose(type);
    }
    MPI_Barrier(s.app_comm());
    if (me != 0) {
      table = gfs::h5::PacketTable::Open(c, remote);
      if (!table.ok()) err = "open: " + table.status().ToString();
    }
    const double t0 = MPI_Wtime();
    if (err.empty()) err = Produce(&*table, me, m);
    if (err.empty()) {
      gfs::Status cs = table->Close();
      if (!cs.ok()) err = "close: " + cs.ToString();
    }
    if (!err.empty()) std::fprintf(stderr, "h5_packet_table: client %d: %s\n", me, err.c_str());
    int ok = err.empty() ? 1 : 0, all_ok = 0;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, s.app_comm());
    const double t1 = MPI_Wtime();
    if (me == 0) {
      if (err.empty() && !all_ok) err = "a producer failed (see stderr)";
      std::vector<Packet> all;
      if (err.empty()) err = CheckTable(c, remote, clients, m, &all, &info);
      if (err.empty()) err = CheckExport(c, remote, out_h5, all, &info);
      info << " append_seconds=" << (t1 - t0) << " clients=" << clients << " per_client=" << m;
      std::ofstream out(result_file);
      if (err.empty()) {
        out << "OK " << info.str() << "\n";
      } else {
        out << "FAIL " << err << " (" << info.str() << ")\n";
        std::fprintf(stderr, "h5_packet_table: FAIL %s\n", err.c_str());
      }
      std::printf("h5_packet_table: %s %s\n", err.empty() ? "OK" : "FAIL", info.str().c_str());
    }
    if (!err.empty() || !all_ok) status = 1;
  }
  if (gfs::Status fin = gfs::Finalize(&s, status); !fin.ok()) {
    std::fprintf(stderr, "finalize: %s\n", fin.ToString().c_str());
  }
  MPI_Finalize();
  return status;
}
