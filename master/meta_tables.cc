// MetaState's storage: the open-addressing index tables, the name arena, the
// slot tables of directories, files and chunks, and removing them.
#include <algorithm>

#include "master/meta_state.h"

namespace gfs {

// ---------------------------------------------------------------- tables

namespace {

// Murmur3's finaliser: spreads sequential ids over the table.
inline uint64_t Mix(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

}  // namespace

uint32_t MetaState::IndexTable::Hash32(uint64_t h) { return static_cast<uint32_t>(Mix(h) >> 32); }

template <typename Eq>
uint32_t MetaState::IndexTable::Find(uint64_t h, Eq eq) const {
  if (size_ == 0) return kNone;
  const uint32_t mask = cap_ - 1;
  const uint64_t tag = uint64_t{Hash32(h)} << 32;
  for (uint32_t i = Hash32(h) & mask;; i = (i + 1) & mask) {
    const uint64_t e = t_[i];
    if (e == kEmpty) return kNone;
    if ((e & 0xffffffff00000000ULL) == tag && eq(static_cast<uint32_t>(e))) {
      return static_cast<uint32_t>(e);
    }
  }
}

void MetaState::IndexTable::Rehash(uint32_t cap) {
  std::unique_ptr<uint64_t[]> old = std::move(t_);
  const uint32_t old_cap = cap_;
  t_ = std::make_unique_for_overwrite<uint64_t[]>(cap);
  std::fill(t_.get(), t_.get() + cap, kEmpty);
  cap_ = cap;
  const uint32_t mask = cap - 1;
  for (uint32_t j = 0; j < old_cap; ++j) {
    const uint64_t e = old[j];
    if (e == kEmpty) continue;
    uint32_t i = static_cast<uint32_t>(e >> 32) & mask;
    while (t_[i] != kEmpty) i = (i + 1) & mask;
    t_[i] = e;
  }
}

void MetaState::IndexTable::Reserve(uint64_t n) {
  uint64_t cap = 8;
  while (cap * 3 < n * 4 && cap < (uint64_t{1} << 31)) cap *= 2;
  if (cap > cap_) Rehash(static_cast<uint32_t>(cap));
}

void MetaState::IndexTable::Insert(uint64_t h, uint32_t v) {
  // Load factor at most 3/4.
  if ((uint64_t{size_} + 1) * 4 > uint64_t{cap_} * 3) Rehash(cap_ == 0 ? 8 : cap_ * 2);
  const uint32_t mask = cap_ - 1;
  const uint32_t h32 = Hash32(h);
  uint32_t i = h32 & mask;
  while (t_[i] != kEmpty) i = (i + 1) & mask;
  t_[i] = uint64_t{h32} << 32 | v;
  ++size_;
}

template <typename Eq>
bool MetaState::IndexTable::Erase(uint64_t h, Eq eq) {
  if (size_ == 0) return false;
  const uint32_t mask = cap_ - 1;
  const uint32_t h32 = Hash32(h);
  uint32_t i = h32 & mask;
  for (;; i = (i + 1) & mask) {
    const uint64_t e = t_[i];
    if (e == kEmpty) return false;
    if (static_cast<uint32_t>(e >> 32) == h32 && eq(static_cast<uint32_t>(e))) break;
  }
  // Backward-shift deletion (no tombstones): pull later members of the probe
  // run into the hole unless their home lies cyclically in (hole, j].
  for (uint32_t j = (i + 1) & mask; t_[j] != kEmpty; j = (j + 1) & mask) {
    const uint32_t home = static_cast<uint32_t>(t_[j] >> 32) & mask;
    const bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (stays) continue;
    t_[i] = t_[j];
    i = j;
  }
  t_[i] = kEmpty;
  if (--size_ == 0) {
    Clear();  // an emptied directory gives its table back
  } else if (cap_ > 64 && uint64_t{size_} * 8 < cap_) {
    Rehash(cap_ / 2);
  }
  return true;
}

MetaState::MetaState() {
  const uint32_t root = dirs_.Add();
  dirs_[root].live = true;
}

MetaState::~MetaState() = default;
MetaState::MetaState(MetaState&&) = default;
MetaState& MetaState::operator=(MetaState&&) = default;

uint64_t MetaState::HashName(std::string_view name) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a
  for (char c : name) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

uint64_t MetaState::AddName(std::string_view name) {
  const uint64_t off = names_.size();
  names_.append(name);
  return off << 16 | name.size();
}

void MetaState::MaybeCompactNames() {
  if (dead_name_bytes_ < (1u << 20) || dead_name_bytes_ * 2 < names_.size()) return;
  std::string fresh;
  fresh.reserve(names_.size() - dead_name_bytes_);
  auto move = [&](uint64_t* ref) {
    const std::string_view n = Name(*ref);
    *ref = uint64_t{fresh.size()} << 16 | n.size();
    fresh.append(n);
  };
  for (uint32_t d = 1; d < dirs_.size(); ++d) {
    if (dirs_[d].live) move(&dirs_[d].name);
  }
  for (uint32_t f = 0; f < files_.size(); ++f) {
    if (files_[f].id != 0) move(&files_[f].name);
  }
  names_ = std::move(fresh);
  dead_name_bytes_ = 0;
}

uint32_t MetaState::FindChild(uint32_t dir, std::string_view name) const {
  return dirs_[dir].children.Find(HashName(name),
                                  [&](uint32_t ref) { return Name(NameOfChild(ref)) == name; });
}

void MetaState::InsertChild(uint32_t dir, uint32_t ref) {
  dirs_[dir].children.Insert(HashName(Name(NameOfChild(ref))), ref);
}

void MetaState::EraseChild(uint32_t dir, std::string_view name) {
  dirs_[dir].children.Erase(HashName(name),
                            [&](uint32_t ref) { return Name(NameOfChild(ref)) == name; });
}

uint32_t MetaState::FindFileSlot(uint64_t id) const {
  return file_index_.Find(id, [&](uint32_t s) { return files_[s].id == id; });
}

uint32_t MetaState::FindChunkSlot(uint64_t handle) const {
  return chunk_index_.Find(handle, [&](uint32_t s) { return chunks_[s].handle == handle; });
}

uint32_t MetaState::NewDir(uint64_t name) {
  uint32_t slot;
  if (!free_dirs_.empty()) {
    slot = free_dirs_.back();
    free_dirs_.pop_back();
  } else {
    slot = dirs_.Add();
  }
  dirs_[slot].name = name;
  dirs_[slot].live = true;
  return slot;
}

uint32_t MetaState::NewFile() {
  if (free_files_.empty()) return files_.Add();
  const uint32_t slot = free_files_.back();
  free_files_.pop_back();
  return slot;
}

uint32_t MetaState::NewChunk() {
  if (free_chunks_.empty()) return chunks_.Add();
  const uint32_t slot = free_chunks_.back();
  free_chunks_.pop_back();
  return slot;
}

void MetaState::ResizeChunks(FileRec& f, uint32_t n) {
  const uint32_t old = f.num_chunks;
  if (old <= 1 && n <= 1) {
    if (n == 0 || old == 0) f.chunks = 0;
  } else if (old <= 1) {
    uint32_t li;
    if (!free_lists_.empty()) {
      li = free_lists_.back();
      free_lists_.pop_back();
    } else {
      li = static_cast<uint32_t>(chunk_lists_.size());
      chunk_lists_.emplace_back();
    }
    std::vector<uint64_t>& list = chunk_lists_[li];
    list.assign(n, 0);
    if (old == 1) list[0] = f.chunks;
    f.chunks = li;
  } else if (n > 1) {
    std::vector<uint64_t>& list = chunk_lists_[f.chunks];
    list.resize(n, 0);
    if (list.capacity() > 2 * size_t{n}) list.shrink_to_fit();
  } else {
    std::vector<uint64_t>& list = chunk_lists_[f.chunks];
    const uint64_t first = n == 1 ? list[0] : 0;
    std::vector<uint64_t>().swap(list);
    free_lists_.push_back(static_cast<uint32_t>(f.chunks));
    f.chunks = first;
  }
  f.num_chunks = n;
}

void MetaState::AddChunkRec(uint64_t handle, uint64_t version, uint64_t file_id, uint32_t index) {
  const uint32_t slot = NewChunk();
  ChunkInfo& c = chunks_[slot];
  c.handle = handle;
  c.version = version;
  c.file_id = file_id;
  c.index = index;
  c.refs = 1;
  chunk_index_.Insert(handle, slot);
  ++num_chunks_;
  next_handle_ = std::max(next_handle_, handle + 1);
}

void MetaState::RemoveChunk(uint64_t handle, std::vector<uint64_t>* freed) {
  const uint32_t slot = FindChunkSlot(handle);
  if (slot == kNone) return;
  // Another file (a snapshot) still refers to it: only this reference goes.
  if (--chunks_[slot].refs > 0) return;
  chunk_index_.Erase(handle, [&](uint32_t s) { return s == slot; });
  chunks_[slot] = ChunkInfo();
  free_chunks_.push_back(slot);
  --num_chunks_;
  if (freed) freed->push_back(handle);
}

void MetaState::RemoveFileSlot(uint32_t slot, std::vector<uint64_t>* freed) {
  FileRec& f = files_[slot];
  const uint64_t* hs = ChunksOf(f);
  for (uint32_t i = 0; i < f.num_chunks; ++i) {
    if (hs[i] != 0) RemoveChunk(hs[i], freed);
  }
  ResizeChunks(f, 0);
  file_index_.Erase(f.id, [&](uint32_t s) { return s == slot; });
  DropName(f.name);
  f = FileRec();
  free_files_.push_back(slot);
  --num_files_;
}

void MetaState::RemoveSubtree(uint32_t ref, std::vector<uint64_t>* freed) {
  std::vector<uint32_t> stack{ref};
  while (!stack.empty()) {
    const uint32_t r = stack.back();
    stack.pop_back();
    if ((r & kDirTag) == 0) {
      RemoveFileSlot(r, freed);
      continue;
    }
    DirRec& d = dirs_[r & ~kDirTag];
    d.children.ForEach([&](uint32_t c) { stack.push_back(c); });
    d.children.Clear();
    DropName(d.name);
    d.name = 0;
    d.live = false;
    free_dirs_.push_back(r & ~kDirTag);
    --num_dirs_;
  }
}

void MetaState::CopySubtree(uint32_t ref, uint32_t parent, std::string_view name,
                            uint64_t* next_id) {
  if ((ref & kDirTag) == 0) {
    const uint32_t slot = NewFile();
    // files_[ref] and files_[slot] are both stable (paged records).
    const FileRec& src = files_[ref];
    FileRec& f = files_[slot];
    f.id = (*next_id)++;
    f.name = AddName(name);
    f.replication = src.replication;
    f.chunk_size = src.chunk_size;
    f.length = src.length;
    f.mtime_ms = src.mtime_ms;
    f.num_chunks = 0;
    f.chunks = 0;
    ResizeChunks(f, src.num_chunks);
    const uint64_t* from = ChunksOf(files_[ref]);
    uint64_t* to = MutableChunksOf(f);
    for (uint32_t i = 0; i < f.num_chunks; ++i) {
      to[i] = from[i];
      if (from[i] != 0) chunks_[FindChunkSlot(from[i])].refs++;
    }
    InsertChild(parent, slot);
    file_index_.Insert(f.id, slot);
    ++num_files_;
    return;
  }
  const uint32_t nd = NewDir(AddName(name));
  InsertChild(parent, nd | kDirTag);
  ++num_dirs_;
  // Sorted names: the ids handed out do not depend on table layout, so a
  // replay of the same record gives the same ids.
  for (uint32_t c : SortedChildren(ref & ~kDirTag)) {
    const std::string n(Name(NameOfChild(c)));  // a copy: AddName may grow names_
    CopySubtree(c, nd, n, next_id);
  }
}

}  // namespace gfs
