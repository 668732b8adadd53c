// Export of a packet table (io/h5/packet_table.h) to a real HDF5 file.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"
#include "io/client.h"

namespace gfs::h5 {

inline constexpr const char* kDefaultExportDataset = "packets";

// What an export wrote.
struct ExportSummary {
  uint64_t packets = 0;
  uint64_t records = 0;
  uint64_t duplicates = 0;     // repeated records dropped
  uint64_t skipped_bytes = 0;  // padding and garbage skipped
  uint64_t packet_size = 0;
};

// Writes the packet table `remote` (as far as it is committed now) into a new
// local HDF5 file `local_h5` (sec2 driver; replaced if it exists) as one 1-D
// dataset `dataset_name` (intermediate groups created) of the table's packet
// type, chunked and extendible, with attributes gfs_source (the remote path)
// and gfs_packets. Streams: packets go to the file in batches of about
// 4 MiB, never the whole table in memory. On failure the local file is
// removed and the Status says what failed (HDF5's innermost error message
// included).
Status ExportPacketTable(Client* client, const std::string& remote, const std::string& local_h5,
                         const std::string& dataset_name = kDefaultExportDataset,
                         ExportSummary* summary = nullptr);

}  // namespace gfs::h5
