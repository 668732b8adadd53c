// MetaState's checkpoint support: walking the tree in the order a checkpoint
// stores it (VisitTree) and loading one back node by node, with checks that
// turn a damaged checkpoint into kCorruption.
#include <algorithm>

#include "master/meta_state.h"

namespace gfs {

namespace {

// A name as one path component: what Apply would accept.
bool ValidName(std::string_view name) {
  return !name.empty() && name.size() <= kMaxNameLen && name != "." && name != ".." &&
         name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

Status Corrupt(std::string m) { return Status::Corruption("checkpoint load: " + std::move(m)); }

}  // namespace

void MetaState::VisitTree(const std::function<void(const TreeNode&)>& fn) const {
  std::vector<std::pair<uint32_t, uint32_t>> queue{{0, 0}};  // (slot, ordinal)
  uint32_t next_ordinal = 1;
  for (size_t qi = 0; qi < queue.size(); ++qi) {
    const uint32_t ordinal = queue[qi].second;
    dirs_[queue[qi].first].children.ForEach([&](uint32_t r) {
      TreeNode n;
      n.parent = ordinal;
      if (r & kDirTag) {
        const uint32_t d = r & ~kDirTag;
        n.name = Name(dirs_[d].name);
        n.is_dir = true;
        queue.emplace_back(d, next_ordinal++);
      } else {
        const FileRec& f = files_[r];
        n.name = Name(f.name);
        n.id = f.id;
        n.replication = f.replication;
        n.chunk_size = f.chunk_size;
        n.length = f.length;
        n.mtime_ms = f.mtime_ms;
        n.chunks = ChunksOf(f);
        n.num_chunks = f.num_chunks;
      }
      fn(n);
    });
  }
}

Status MetaState::LoadDir(uint32_t parent, std::string_view name, uint32_t* ordinal) {
  if (!loading_allowed_) return Status::InvalidArgument("LoadDir: state is not fresh");
  if (parent >= dirs_.size()) {
    return Corrupt("directory parent " + std::to_string(parent) + " not loaded yet");
  }
  if (!ValidName(name)) return Corrupt("invalid directory name");
  if (FindChild(parent, name) != kNone) {
    return Corrupt("duplicate name '" + std::string(name) + "' in directory " +
                   std::to_string(parent));
  }
  InvalidateFound();
  const uint32_t d = NewDir(AddName(name));
  InsertChild(parent, d | kDirTag);
  ++num_dirs_;
  *ordinal = d;
  return Status::OK();
}

Status MetaState::LoadFile(uint32_t parent, std::string_view name, const TreeNode& n,
                           const uint64_t* versions) {
  if (!loading_allowed_) return Status::InvalidArgument("LoadFile: state is not fresh");
  if (parent >= dirs_.size()) {
    return Corrupt("file parent " + std::to_string(parent) + " not loaded yet");
  }
  if (!ValidName(name)) return Corrupt("invalid file name");
  if (FindChild(parent, name) != kNone) {
    return Corrupt("duplicate name '" + std::string(name) + "' in directory " +
                   std::to_string(parent));
  }
  if (n.id == 0 || FindFileSlot(n.id) != kNone) {
    return Corrupt("file id " + std::to_string(n.id) + " is 0 or repeated");
  }
  if (n.replication == 0 || n.chunk_size == 0) return Corrupt("replication or chunk size 0");
  if (n.num_chunks > kMaxChunksPerFile) return Corrupt("too many chunks");
  InvalidateFound();
  const uint32_t slot = NewFile();
  FileRec& f = files_[slot];
  f.id = n.id;
  f.name = AddName(name);
  f.replication = n.replication;
  f.chunk_size = n.chunk_size;
  f.length = n.length;
  f.mtime_ms = n.mtime_ms;
  InsertChild(parent, slot);
  file_index_.Insert(n.id, slot);
  ++num_files_;
  next_file_id_ = std::max(next_file_id_, n.id + 1);
  ResizeChunks(f, n.num_chunks);
  uint64_t* hs = MutableChunksOf(f);
  std::vector<uint64_t> shared;  // handles this file shares with files loaded before
  for (uint32_t i = 0; i < n.num_chunks; ++i) {
    const uint64_t h = n.chunks[i];
    if (h == 0) continue;
    hs[i] = h;
    const uint32_t known = FindChunkSlot(h);
    if (known == kNone) {
      AddChunkRec(h, versions[i], n.id, i);
      continue;
    }
    // A snapshot shares chunks between files, never within one.
    if (chunks_[known].file_id == n.id) {
      return Corrupt("chunk handle " + std::to_string(h) + " repeated in one file");
    }
    shared.push_back(h);
    // A chunk shared with a snapshot appears once per file, always at the
    // same version.
    if (chunks_[known].version != versions[i]) {
      return Corrupt("chunk handle " + std::to_string(h) + " repeated at another version");
    }
    chunks_[known].refs++;
  }
  std::sort(shared.begin(), shared.end());
  if (std::adjacent_find(shared.begin(), shared.end()) != shared.end()) {
    return Corrupt("chunk handle repeated in one file");
  }
  return Status::OK();
}

Status MetaState::LoadCounters(uint64_t next_file_id, uint64_t next_handle) {
  if (!loading_allowed_) return Status::InvalidArgument("LoadCounters: state is not fresh");
  if (next_file_id < next_file_id_ || next_handle < next_handle_ || next_file_id == 0 ||
      next_handle == 0) {
    return Corrupt("next file id / handle below one in use");
  }
  next_file_id_ = next_file_id;
  next_handle_ = next_handle;
  loading_allowed_ = false;
  return Status::OK();
}

void MetaState::LoadReserve(uint64_t files, uint64_t chunks) {
  if (!loading_allowed_) return;
  file_index_.Reserve(files);
  chunk_index_.Reserve(chunks);
}

size_t MetaState::MemoryBytes() const {
  size_t b = files_.MemoryBytes() + dirs_.MemoryBytes() + chunks_.MemoryBytes();
  b += (free_files_.capacity() + free_dirs_.capacity() + free_chunks_.capacity() +
        free_lists_.capacity()) *
       sizeof(uint32_t);
  b += file_index_.MemoryBytes() + chunk_index_.MemoryBytes();
  for (uint32_t d = 0; d < dirs_.size(); ++d) b += dirs_[d].children.MemoryBytes();
  b += chunk_lists_.capacity() * sizeof(std::vector<uint64_t>);
  for (const auto& l : chunk_lists_) b += l.capacity() * sizeof(uint64_t);
  b += names_.capacity();
  return b;
}

}  // namespace gfs
