// HDF5 virtual file driver "gfs": an HDF5 program creates, writes and reads
// ordinary .h5 files stored in gfs-mpi (HDF5 1.10 H5FDregister API).
//
//   gfs::Client* c = session.client();
//   hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
//   gfs::h5::SetFaplGfs(fapl, c);
//   hid_t f = H5Fcreate("/results/run1.h5", H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
//   ... H5Dcreate / H5Dwrite / H5Dread as usual ...
//   H5Fclose(f);   // close = fsync on every replica
//
// The file name given to H5Fcreate/H5Fopen is the path in gfs (a leading '/'
// is added if missing). The driver streams: every HDF5 read or write goes
// straight to Client::Read/Write at that address, with no file-sized buffer
// (only the client's own bounded write window). A write is applied on every
// replica when it returns, so what the driver wrote is visible to other
// clients at once; H5Fflush/H5Fclose additionally fsync it on every replica.
// Errors are pushed on the HDF5 error stack (major H5E_VFL) with the gfs
// status text, and the callback returns -1.
//
// A Client is used from one thread; so is a file opened through it.
#pragma once

#include <hdf5.h>

#include <cstdint>

#include "io/client.h"

namespace gfs::h5 {

inline constexpr const char* kDriverName = "gfs";

// Registers the driver class with HDF5 (once per process; again after an
// H5close) and makes `client` the default client for file access property
// lists that select the driver without one (may be null: keep the current
// default). Returns the driver id, or H5I_INVALID_HID on failure.
hid_t RegisterDriver(Client* client);

// Selects the gfs driver on the file access property list `fapl`, with
// `client` doing the I/O (null: the default set by RegisterDriver).
// Registers the driver if needed. Returns 0, or -1 (HDF5 error pushed).
herr_t SetFaplGfs(hid_t fapl, Client* client);

// Counters over all files the driver opened in this process.
struct DriverStats {
  uint64_t opens = 0;
  uint64_t reads = 0;
  uint64_t writes = 0;
  uint64_t bytes_read = 0;     // bytes read from gfs (not the zero fill past EOF)
  uint64_t bytes_written = 0;  // bytes written to gfs
  uint64_t flushes = 0;
  uint64_t truncates = 0;
  uint64_t largest_io = 0;  // largest single read/write request HDF5 made
};
DriverStats GetDriverStats();

}  // namespace gfs::h5
