#include "io/h5/export.h"

#include <hdf5.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <utility>
#include <vector>

#include "io/h5/packet_table.h"

namespace gfs::h5 {
namespace {

constexpr size_t kBatchBytes = 4u << 20;   // packets per H5Dwrite, in bytes
constexpr size_t kChunkBytes = 64u << 10;  // dataset chunk size, in bytes

// Silences HDF5's automatic error printing for its lifetime (errors are
// reported through Status instead).
class QuietHdf5 {
 public:
  QuietHdf5() {
    H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~QuietHdf5() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }
  QuietHdf5(const QuietHdf5&) = delete;
  QuietHdf5& operator=(const QuietHdf5&) = delete;

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

herr_t InnermostError(unsigned n, const H5E_error2_t* e, void* out) {
  auto* s = static_cast<std::string*>(out);
  if (n == 0 && e != nullptr && e->desc != nullptr) {
    *s = std::string(e->func_name != nullptr ? e->func_name : "?") + ": " + e->desc;
  }
  return 0;
}

// "HDF5: <what> failed (<innermost HDF5 error>)" and clears the stack.
Status H5Error(const std::string& what) {
  std::string detail;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, InnermostError, &detail);
  H5Eclear2(H5E_DEFAULT);
  std::string msg = "HDF5: ";
  msg += what;
  msg += " failed";
  if (!detail.empty()) {
    msg += " (";
    msg += detail;
    msg += ")";
  }
  return Status::IOError(msg);
}

// Closes HDF5 ids (not files) in reverse order of registration.
class Ids {
 public:
  ~Ids() { CloseAll(); }
  hid_t Add(hid_t id) {
    if (id >= 0) ids_.push_back(id);
    return id;
  }
  void CloseAll() {
    for (auto it = ids_.rbegin(); it != ids_.rend(); ++it) {
      switch (H5Iget_type(*it)) {
        case H5I_DATASET:
          H5Dclose(*it);
          break;
        case H5I_DATASPACE:
          H5Sclose(*it);
          break;
        case H5I_DATATYPE:
          H5Tclose(*it);
          break;
        case H5I_ATTR:
          H5Aclose(*it);
          break;
        case H5I_GENPROP_LST:
          H5Pclose(*it);
          break;
        default:
          break;
      }
    }
    ids_.clear();
  }

 private:
  std::vector<hid_t> ids_;
};

// An HDF5 file id closed on scope exit unless Close() was called.
struct FileId {
  hid_t id = H5I_INVALID_HID;
  ~FileId() {
    if (id >= 0) H5Fclose(id);
  }
  herr_t Close() { return H5Fclose(std::exchange(id, H5I_INVALID_HID)); }
};

Status WriteAttributes(hid_t ds, const std::string& remote, uint64_t packets, Ids* ids) {
  hid_t str = ids->Add(H5Tcopy(H5T_C_S1));
  if (str < 0 || H5Tset_size(str, std::max<size_t>(remote.size(), 1)) < 0) {
    return H5Error("string type");
  }
  hid_t scalar = ids->Add(H5Screate(H5S_SCALAR));
  hid_t a = ids->Add(H5Acreate2(ds, "gfs_source", str, scalar, H5P_DEFAULT, H5P_DEFAULT));
  if (a < 0 || H5Awrite(a, str, remote.c_str()) < 0) return H5Error("attribute gfs_source");
  hid_t b =
      ids->Add(H5Acreate2(ds, "gfs_packets", H5T_STD_U64LE, scalar, H5P_DEFAULT, H5P_DEFAULT));
  if (b < 0 || H5Awrite(b, H5T_NATIVE_UINT64, &packets) < 0)
    return H5Error("attribute gfs_packets");
  return Status::OK();
}

Status Export(Client* client, const std::string& remote, const std::string& local,
              const std::string& name, ExportSummary* summary) {
  if (name.empty()) return Status::InvalidArgument("h5export: empty dataset name");
  auto table = PacketTable::Open(client, remote);
  if (!table.ok()) return table.status();
  const size_t psize = table->packet_size();
  const hid_t type = table->type();

  Ids ids;
  hid_t fapl = ids.Add(H5Pcreate(H5P_FILE_ACCESS));
  if (fapl < 0 || H5Pset_fapl_sec2(fapl) < 0) return H5Error("file access property list");
  FileId file_id;
  file_id.id = H5Fcreate(local.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  const hid_t file = file_id.id;
  if (file < 0) return H5Error("creating " + local);

  hsize_t zero = 0, unlimited = H5S_UNLIMITED;
  hsize_t chunk = std::max<hsize_t>(1, kChunkBytes / psize);
  hid_t space = ids.Add(H5Screate_simple(1, &zero, &unlimited));
  hid_t dcpl = ids.Add(H5Pcreate(H5P_DATASET_CREATE));
  hid_t lcpl = ids.Add(H5Pcreate(H5P_LINK_CREATE));
  if (space < 0 || dcpl < 0 || lcpl < 0 || H5Pset_chunk(dcpl, 1, &chunk) < 0 ||
      H5Pset_create_intermediate_group(lcpl, 1) < 0) {
    return H5Error("dataset properties");
  }
  hid_t ds = ids.Add(H5Dcreate2(file, name.c_str(), type, space, lcpl, dcpl, H5P_DEFAULT));
  if (ds < 0) return H5Error("creating dataset " + name);

  const size_t batch_packets = std::max<size_t>(1, kBatchBytes / psize);
  std::vector<uint8_t> batch(batch_packets * psize);
  size_t in_batch = 0;
  hsize_t written = 0;
  auto flush = [&]() -> Status {
    if (in_batch == 0) return Status::OK();
    hsize_t size = written + in_batch;
    hsize_t start = written, count = in_batch;
    if (H5Dset_extent(ds, &size) < 0) return H5Error("extending " + name);
    hid_t fspace = H5Dget_space(ds);
    hid_t mspace = H5Screate_simple(1, &count, nullptr);
    herr_t r = -1;
    if (fspace >= 0 && mspace >= 0 &&
        H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &start, nullptr, &count, nullptr) >= 0) {
      r = H5Dwrite(ds, type, mspace, fspace, H5P_DEFAULT, batch.data());
    }
    if (mspace >= 0) H5Sclose(mspace);
    if (fspace >= 0) H5Sclose(fspace);
    if (r < 0) return H5Error("writing " + name);
    written += in_batch;
    in_batch = 0;
    return Status::OK();
  };
  TableScanStats st;
  Status s = table->Scan(
      [&](const void* packets, size_t n) -> Status {
        const auto* p = static_cast<const uint8_t*>(packets);
        while (n > 0) {
          const size_t k = std::min(n, batch_packets - in_batch);
          std::memcpy(batch.data() + in_batch * psize, p, k * psize);
          in_batch += k;
          p += k * psize;
          n -= k;
          if (in_batch == batch_packets) GFS_RETURN_IF_ERROR(flush());
        }
        return Status::OK();
      },
      &st);
  if (s.ok()) s = flush();
  if (!s.ok()) return s;
  GFS_RETURN_IF_ERROR(WriteAttributes(ds, remote, written, &ids));
  if (summary != nullptr) {
    summary->packets = written;
    summary->records = st.records;
    summary->duplicates = st.duplicates;
    summary->skipped_bytes = st.skipped_bytes;
    summary->packet_size = psize;
  }
  // Close everything but the file, then the file (its errors count).
  ids.CloseAll();
  if (file_id.Close() < 0) return H5Error("closing " + local);
  return table->Close();
}

}  // namespace

Status ExportPacketTable(Client* client, const std::string& remote, const std::string& local_h5,
                         const std::string& dataset_name, ExportSummary* summary) {
  if (client == nullptr) return Status::InvalidArgument("h5export: no client");
  QuietHdf5 quiet;
  Status s = Export(client, remote, local_h5, dataset_name, summary);
  if (!s.ok()) std::remove(local_h5.c_str());
  return s;
}

}  // namespace gfs::h5
