// Short-circuit reads: a chunk with a replica on this host is read from its
// data file, every block checked against the chunkserver's checksums.
#include <algorithm>
#include <cstdio>
#include <cstring>

#include "common/crc32c.h"
#include "io/client.h"
#include "io/client/read_state.h"

namespace gfs {

bool Client::LocalPeer(int32_t target) const {
  const int self = rpc_.transport()->rank();
  if (target < 0 || target == self || reads_->no_local.count(target) != 0 ||
      !SameHostName(target, self)) {
    return false;
  }
  // The same name on another machine (two nodes configured alike) is not
  // this host: the boot ids tell them apart.
  const std::string& mine = hosts_[static_cast<size_t>(self)].boot_id;
  return !mine.empty() && mine == hosts_[static_cast<size_t>(target)].boot_id;
}

bool Client::ShortCircuit(int32_t target) const {
  return cfg_.short_circuit_reads && LocalPeer(target);
}

bool Client::ChunkFilePath(const std::string& path, uint64_t handle) const {
  // <data dir>/<one directory>/chunks/<16 hex digits>.chunk, absolute, with no
  // "." or ".." anywhere: the chunk's own data file, never another file.
  char name[40];
  std::snprintf(name, sizeof name, "/chunks/%016llx.chunk",
                static_cast<unsigned long long>(handle));
  const std::string prefix = data_dir_abs_ == "/" ? "/" : data_dir_abs_ + "/";
  if (path.size() <= prefix.size() + std::strlen(name) ||
      path.compare(0, prefix.size(), prefix) != 0 ||
      path.compare(path.size() - std::strlen(name), std::strlen(name), name) != 0) {
    return false;
  }
  const std::string dir =
      path.substr(prefix.size(), path.size() - prefix.size() - std::strlen(name));
  return !dir.empty() && dir.find('/') == std::string::npos && dir != "." && dir != ".." &&
         path.find("/./") == std::string::npos && path.find("/../") == std::string::npos;
}

Status Client::ReadBlocksChecked(LocalView* v, uint64_t from, uint64_t to, uint8_t* dst) {
  size_t got = 0;
  GFS_RETURN_IF_ERROR(v->file->Read(from, to - from, dst, &got));
  if (got != to - from) return Status::Corruption("short chunk file");
  for (uint64_t b = from; b < to; b += v->block_size) {
    const size_t len = static_cast<size_t>(std::min<uint64_t>(b + v->block_size, to) - b);
    if (crc32c::Value(dst + (b - from), len) != v->crcs[(b - v->base) / v->block_size]) {
      return Status::Corruption("block checksum mismatch");
    }
  }
  return Status::OK();
}

Status Client::ReadFromView(LocalView* v, uint64_t chunk_off, uint8_t* out, size_t n) {
  const uint64_t bs = v->block_size;
  const uint64_t stop = chunk_off + n;
  uint64_t pos = chunk_off;
  while (pos < stop) {
    const uint64_t b0 = pos / bs * bs;
    const uint64_t b1 = std::min(b0 + bs, v->end);
    // Whole blocks go straight into the caller's memory and are checked
    // there; a block the range covers only in part goes through reads_->edge.
    const uint64_t whole_end = stop == v->end ? stop : b0 + (stop - b0) / bs * bs;
    if (pos == b0 && whole_end > pos) {
      GFS_RETURN_IF_ERROR(ReadBlocksChecked(v, pos, whole_end, out + (pos - chunk_off)));
      pos = whole_end;
      continue;
    }
    reads_->edge.resize(static_cast<size_t>(b1 - b0));
    GFS_RETURN_IF_ERROR(ReadBlocksChecked(v, b0, b1, reads_->edge.data()));
    const uint64_t upto = std::min(b1, stop);
    std::memcpy(out + (pos - chunk_off), reads_->edge.data() + (pos - b0),
                static_cast<size_t>(upto - pos));
    pos = upto;
  }
  return Status::OK();
}

size_t Client::TakeLocal(File* f, uint64_t offset, uint8_t* out, size_t n) {
  auto it = reads_->local.find(f->id);
  if (it == reads_->local.end()) return 0;
  LocalView& v = it->second;
  if (MonoMicros() - v.fetched_us > kAheadMaxAgeUs) {
    reads_->local.erase(it);
    return 0;
  }
  const uint64_t co = offset % f->chunk_size;
  if (offset / f->chunk_size != v.index || co < v.base || co >= v.end) return 0;
  const size_t take = static_cast<size_t>(std::min<uint64_t>(n, v.end - co));
  if (!ReadFromView(&v, co, out, take).ok()) {
    stats_.counters["local_read_fallbacks"]++;
    reads_->local.erase(it);
    return 0;
  }
  stats_.counters["bytes_read"] += take;
  stats_.counters["bytes_read_local"] += take;
  return take;
}

Status Client::ReadLocalPiece(File* f, uint32_t index, uint64_t rep_handle, int32_t target,
                              ReadLocalReply& rep, uint64_t chunk_off, uint8_t* out, size_t n,
                              size_t* got) {
  *got = rep.chunk_length > chunk_off
             ? static_cast<size_t>(std::min<uint64_t>(n, rep.chunk_length - chunk_off))
             : 0;
  if (*got == 0) return Status::OK();
  LocalView v;
  v.index = index;
  v.block_size = rep.block_size;
  v.base = rep.base;
  v.end = rep.end;
  v.crcs = std::move(rep.crcs);
  v.fetched_us = MonoMicros();
  if (v.block_size == 0 || v.base % v.block_size != 0 || chunk_off < v.base ||
      chunk_off + *got > v.end ||
      v.crcs.size() != (v.end - v.base + v.block_size - 1) / v.block_size) {
    return Status::Protocol("read_local: checksums do not cover the range");
  }
  if (!ChunkFilePath(rep.path, rep_handle)) {
    // Not the chunk's own data file under the job's data directory: never
    // opened (a chunkserver of another configuration, or a bad answer).
    reads_->no_local.insert(target);
    stats_.counters["local_read_refused_paths"]++;
    return Status::Protocol("read_local: " + rep.path + " is not the data file of chunk " +
                            std::to_string(rep_handle) + " under " + data_dir_abs_);
  }
  Status opened = env_->OpenReadOnly(rep.path, &v.file);
  if (!opened.ok()) {
    reads_->no_local.insert(target);
    stats_.counters["local_read_unreachable"]++;
    return opened;
  }
  GFS_RETURN_IF_ERROR(ReadFromView(&v, chunk_off, out, *got));
  if (reads_->local.size() >= 8 && reads_->local.count(f->id) == 0)
    reads_->local.erase(reads_->local.begin());
  reads_->local[f->id] = std::move(v);
  return Status::OK();
}

}  // namespace gfs
