// Packet tables: HDF5's H5PT shape (create/open, append n packets,
// read_packets(start, n), num_packets, close) over gfs record append, so any
// number of producer ranks append to one table at the same time, with no
// locks among them (HDF5's own packet tables are single-writer).
//
//   hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(Sample)); ... H5Tinsert ...
//   auto pt = gfs::h5::PacketTable::Create(client, "/runs/samples.pt", t);  // once
//   MPI_Barrier(app_comm);
//   auto pt = gfs::h5::PacketTable::Open(client, "/runs/samples.pt");       // every producer
//   pt->Append(n, samples);
//   pt->ReadPackets(0, 100, out);
//
// On-disk layout (doc/hdf5.md): the table is one gfs file of self-validating
// record frames (io/record.h). Its first record, appended by Create before it
// returns, is the header: the packet type encoded with H5Tencode, so the data
// is self-describing. Every later record holds one or more whole packets
// (Append batches up to kMaxRecordPayload bytes of packets per record, never
// splitting a packet). A record is appended atomically at least once; readers
// de-duplicate by (producer, sequence), so each packet is read exactly once.
// Packet order is file order: packets of one record stay together and in
// order; records of concurrent producers interleave as the primary ordered
// them. Reading stops at the file's committed length (every append below it
// has completed on every replica), so readers may tail a table while
// producers append.
//
// A PacketTable is used from one thread (its Client's). Movable, not
// copyable. Packets are raw bytes in the layout of the table's type (the type
// given to Create, e.g. a native compound type; H5Tget_size bytes each).
#pragma once

#include <hdf5.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "io/client.h"
#include "io/record.h"

namespace gfs::h5 {

// Record payload layout (little-endian), after the 32-byte frame header:
//   header record: u32 kHeaderMagic, u32 format version (1),
//                  u64 packet size, u32 encoded-type length L, L bytes H5Tencode
//   data record:   u32 kDataMagic, u32 packet count k, k * packet size bytes
inline constexpr uint32_t kHeaderMagic = 0x31485450;  // "PTH1"
inline constexpr uint32_t kDataMagic = 0x31445450;    // "PTD1"
inline constexpr size_t kDataPrefix = 8;              // magic + count
inline constexpr uint32_t kTableFormatVersion = 1;
// Append puts at most this many payload bytes in one record (and never more
// than the file's record limit, MaxRecordPayload(chunk_size)): big enough to
// amortize a record append, small enough that the padding a chunk end costs
// stays small (at most this per 64 MiB chunk).
inline constexpr size_t kMaxRecordPayload = 1u << 20;

// What a scan of the table found (cumulative).
struct TableScanStats {
  uint64_t records = 0;        // distinct data records
  uint64_t packets = 0;        // packets in them
  uint64_t duplicates = 0;     // repeated frames dropped
  uint64_t skipped_bytes = 0;  // padding and garbage between frames
  uint64_t bad_records = 0;    // valid frames whose payload is not a table record
};

class PacketTable {
 public:
  // Creates the table file (opts: replication, chunk size; exclusive by
  // default — with exclusive = false an existing file is truncated) and
  // appends the header record holding packet_type (H5Tencode). The table keeps
  // its own copy of the type.
  static Result<PacketTable> Create(Client* client, const std::string& path, hid_t packet_type,
                                    const CreateOptions& opts = {});
  // Opens an existing table: reads its header record and decodes the type.
  // kUnavailable if the header has not been appended yet; kCorruption if the
  // file holds data but no header.
  static Result<PacketTable> Open(Client* client, const std::string& path);

  PacketTable(PacketTable&& o) noexcept;
  PacketTable& operator=(PacketTable&& o) noexcept;
  PacketTable(const PacketTable&) = delete;
  PacketTable& operator=(const PacketTable&) = delete;
  ~PacketTable();  // releases the type; no I/O (Close to fsync)

  // Appends n packets (n * packet_size() bytes): as few records as the
  // per-record limit allows, each atomic. Acknowledged = on every replica.
  Status Append(size_t n, const void* packets);
  // Reads up to n packets starting at packet number `start` (file order,
  // de-duplicated, up to the committed length at the time of the call) into
  // out (n * packet_size() bytes). Returns the number read (0 past the end).
  Result<size_t> ReadPackets(uint64_t start, size_t n, void* out);
  // Packets in the table up to its current committed length.
  Result<uint64_t> NumPackets();
  // Streams every packet up to the committed length, record by record, in
  // file order (independent of the index ReadPackets keeps; memory: one read
  // block of at most 4 MiB plus one frame). fn gets whole packets; a non-ok
  // Status from fn stops the scan and is returned.
  Status Scan(const std::function<Status(const void* packets, size_t n)>& fn,
              TableScanStats* stats = nullptr);
  // Fsyncs what this instance appended on every replica; releases the type.
  // The table cannot be used afterwards.
  Status Close();

  hid_t type() const { return type_; }  // owned by the table
  size_t packet_size() const { return packet_size_; }
  const std::string& path() const { return file_.path; }
  uint64_t producer_id() const { return producer_; }
  // Packets per record Append uses for this file.
  size_t packets_per_record() const { return per_record_; }
  // Counters of the index scans so far (ReadPackets / NumPackets).
  const TableScanStats& stats() const { return stats_; }

 private:
  PacketTable() = default;
  // Index of data records, in file order.
  struct Entry {
    uint64_t data_offset;  // file offset of the first packet
    uint64_t first;        // number of its first packet
    uint32_t count;        // packets
  };
  // Reads newly committed bytes into the index. Stops early once the header
  // is known if header_only.
  Status Refresh(bool header_only);
  // Handles one de-duplicated record found by the index scan.
  void OnRecord(const RecordView& r);
  Status SetType(const uint8_t* payload, size_t n);

  Client* client_ = nullptr;
  File file_;
  hid_t type_ = H5I_INVALID_HID;
  size_t packet_size_ = 0;
  size_t per_record_ = 0;
  uint64_t producer_ = 0;
  uint64_t next_seq_ = 0;
  Bytes frame_;  // Append's frame buffer
  // Index state.
  std::unique_ptr<RecordReader> reader_;
  std::vector<Entry> index_;
  uint64_t total_packets_ = 0;
  Status type_error_;
  // Data records met before the header (only if a failed header append left
  // a copy behind a producer's record on some replica): checked once the
  // type is known.
  struct Pending {
    uint64_t data_offset;
    uint32_t count;
    uint32_t payload;
  };
  std::vector<Pending> pending_;
  TableScanStats stats_;
};

}  // namespace gfs::h5
