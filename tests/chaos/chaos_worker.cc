// The MPI program of the kill-and-verify suite (tests/chaos/README.md): it
// hosts the store through gfs::Init and runs either the workload, under the
// driver's faults, or the verification of what the workload left behind.
//
//   mpirun -np N chaos_worker work   DATA_DIR WORK_DIR [key=value...]
//   mpirun -np N chaos_worker verify DATA_DIR WORK_DIR [key=value...]
//
// Job keys: cs (chunkservers), r (replication), shadows, chunk (bytes), hb
// (heartbeat ms), timeout (request ms), lease (s), scrub (MiB/s), job (the
// job's number in the iteration: it names every file the job writes in
// WORK_DIR and is part of every producer id and write generation).
//
// work: client i < producers is a producer, the next `writers` clients are
//   writers. Producers record-append self-validating frames (io/record.h) to
//   /chaos/records; writers write and overwrite regions of their own files
//   /chaos/w<client>-<k> and fsync now and then. Each client logs to
//   WORK_DIR/log-j<job>-c<client>.txt with one write(2) per event, before and
//   after every append, write and fsync (format below), so a SIGKILLed client
//   leaves its log in the page cache. It stops when WORK_DIR/stop-j<job>
//   exists (or its budget is spent), closes its files and writes
//   WORK_DIR/result-j<job>-c<client>.txt.
//   Keys: producers, writers, records (per producer), min_rec, max_rec
//   (payload bytes), big (per mille of records near the largest payload),
//   batch (largest RecordAppendMany), psync (a producer fsyncs after this many
//   records), files (per writer), fsize (largest file), wmax (largest write),
//   wsync (per cent of writes followed by an fsync), rate (records per second
//   per producer, 0: as fast as it goes), wrate (writes per second per
//   writer), seed.
// verify: a later job on the same data. Client 0 reads every log, checks the
//   records file and every writer file through the client API, runs fsck
//   with --verify, waits until every chunk has its replicas back (key wait,
//   seconds), then checks every replica file at the master's version on disk.
//   Writes WORK_DIR/verify.json.
//
// Every rank also writes WORK_DIR/exit-j<job>-r<rank>.txt ("ROLE STATUS")
// when it leaves gfs::Init / gfs::Finalize: a rank without one died.
//
// Log lines (decimal numbers):
//   A pid seq size            append attempt of record (pid, seq), payload size
//   K pid seq offset retried  acknowledged at file offset; retried: the client
//                             counted a failed attempt (append_retries) meanwhile
//   F pid seq code            the append returned an error
//   Y pid upto / S pid upto / X pid upto code
//                             fsync of the records file: attempt / done / failed
//                             (covers the records of pid below seq `upto`)
//   WA file off len gen       write attempt; WK gen (done) / WF gen code (failed)
//   WY file / WS file / WX file code
//                             fsync (or close) of a writer file: attempt / done / failed
//   WO file length            a writer opened its file (length as it found it)
//   E text                    an error, for the report
//   DONE                      the client finished cleanly
#include <fcntl.h>
#include <mpi.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "io/record.h"
#include "jobs/gfs.h"

namespace {

using Args = std::map<std::string, std::string>;

// ---- arguments, time, files ----

uint64_t Arg(const Args& a, const std::string& k, uint64_t def) {
  auto it = a.find(k);
  return it == a.end() ? def : std::stoull(it->second);
}

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void SleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// Writes all of `text` with write(2): no user-space buffer to lose at a kill.
void WriteAll(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

// Replaces `path` with `text` in one rename (a reader never sees half).
void PutFile(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return;
  WriteAll(fd, text);
  ::close(fd);
  std::rename(tmp.c_str(), path.c_str());
}

bool ReadWhole(const std::string& path, std::string* out) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return false;
  out->clear();
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out->append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return true;
}

// The per-client event log (format in the header comment).
class EventLog {
 public:
  explicit EventLog(const std::string& path)
      : fd_(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644)) {}
  ~EventLog() {
    if (fd_ >= 0) ::close(fd_);
  }
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;
  bool ok() const { return fd_ >= 0; }
  void Put(const std::string& lines) { WriteAll(fd_, lines); }

 private:
  int fd_;
};

std::string Code(const gfs::Status& s) { return gfs::CodeName(s.code()); }

std::string OneLine(std::string s) {
  for (char& ch : s) {
    if (ch == '\n' || ch == '\r') ch = ' ';
  }
  return s;
}

// ---- the data: every byte derived from who wrote it ----

uint64_t Hash(uint64_t x) {  // a 64-bit finaliser (murmur3's)
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

// The payload of record (pid, seq): `size` bytes from a key of both.
void Payload(uint64_t pid, uint64_t seq, size_t size, std::vector<uint8_t>* out) {
  out->resize(size);
  const uint64_t key = Hash(Hash(pid * 0x9e3779b97f4a7c15ull) ^ (seq + 0x632be59bd9b4e019ull));
  for (size_t i = 0; i < size; i += 8) {
    uint64_t w = Hash(key + i / 8);
    size_t n = std::min<size_t>(8, size - i);
    std::memcpy(out->data() + i, &w, n);
  }
}

void Frame(uint64_t pid, uint64_t seq, size_t size, std::vector<uint8_t>* out) {
  std::vector<uint8_t> payload;
  Payload(pid, seq, size, &payload);
  out->clear();
  gfs::EncodeFrame(pid, seq, payload.data(), payload.size(), out);
}

// The byte a write of generation `gen` puts at offset `pos` of writer file
// `file`: any byte can be recomputed alone, and bytes of different
// generations differ (but for chance, 1 in 256 per byte).
struct GenBytes {
  uint64_t key;
  GenBytes(uint64_t file, uint64_t gen)
      : key(Hash((file << 40) ^ Hash(gen + 0x5851f42d4c957f2dull))) {}
  uint8_t At(uint64_t pos) const {
    return static_cast<uint8_t>(Hash(key ^ (pos >> 3) * 0x2545f4914f6cdd1dull) >> (8 * (pos & 7)));
  }
  void Fill(uint64_t pos, uint8_t* out, size_t n) const {
    for (size_t i = 0; i < n;) {
      const uint64_t p = pos + i;
      const uint64_t w = Hash(key ^ (p >> 3) * 0x2545f4914f6cdd1dull);
      for (unsigned b = static_cast<unsigned>(p & 7); b < 8 && i < n; ++b, ++i) {
        out[i] = static_cast<uint8_t>(w >> (8 * b));
      }
    }
  }
};

uint64_t ProducerId(uint64_t job, int client) {
  return job * 1000 + static_cast<uint64_t>(client) + 1;
}
uint64_t FileNo(int client, uint64_t k) { return static_cast<uint64_t>(client) * 16 + k; }
std::string WriterPath(uint64_t fileno) {
  return "/chaos/w" + std::to_string(fileno / 16) + "-" + std::to_string(fileno % 16);
}
const char* kRecordsPath = "/chaos/records";
// The small files of the delete cycles (Workload::DeleteCycle).
std::string DeletePath(uint64_t job, int client, uint64_t n) {
  return "/chaos/del-j" + std::to_string(job) + "-c" + std::to_string(client) + "-" +
         std::to_string(n);
}
uint64_t DeleteFileNo(uint64_t job, int client, uint64_t n) {
  return (1ull << 62) | (job << 44) | (static_cast<uint64_t>(client) << 32) | n;
}

// ---- the workload ----

struct Workload {
  gfs::Client* c;
  const Args& a;
  std::string work;
  uint64_t job;
  int client;
  std::string stop_file;
  std::mt19937_64 rng;
  uint64_t ops = 0, acked = 0, failed = 0, acked_bytes = 0, syncs = 0, sync_failures = 0;

  bool Stopped() const { return Exists(stop_file); }
  uint64_t Rand(uint64_t n) { return n == 0 ? 0 : rng() % n; }

  // Create (not exclusive) or open `path`, retrying while the store recovers.
  gfs::Result<gfs::File> OpenOrCreate(const std::string& path, EventLog* log) {
    gfs::Status last;
    for (int attempt = 0; attempt < 40 && !Stopped(); ++attempt) {
      auto f = c->Open(path);
      if (f.ok()) return f;
      if (f.status().code() == gfs::Code::kNotFound) {
        gfs::CreateOptions o;
        o.exclusive = false;
        f = c->Create(path, o);
        if (f.ok()) return f;
      }
      last = f.status();
      log->Put("E open " + path + ": " + OneLine(last.ToString()) + "\n");
      SleepMs(250);
    }
    if (last.ok()) last = gfs::Status::Unavailable("stopped before " + path + " could be opened");
    return last;
  }

  std::string Producer(EventLog* log) {
    const uint64_t pid = ProducerId(job, client);
    const uint64_t budget = Arg(a, "records", 4000),
                   batch_max = std::max<uint64_t>(1, Arg(a, "batch", 8));
    const uint64_t psync = std::max<uint64_t>(1, Arg(a, "psync", 50));
    const uint64_t min_rec = Arg(a, "min_rec", 1), max_rec = Arg(a, "max_rec", 8192);
    const uint64_t big = Arg(a, "big", 20);
    auto f = OpenOrCreate(kRecordsPath, log);
    if (!f.ok()) return "open " + std::string(kRecordsPath) + ": " + f.status().ToString();
    const uint64_t max_payload = gfs::MaxRecordPayload(f->chunk_size);
    PutFile(work + "/started-j" + std::to_string(job) + "-c" + std::to_string(client), "1\n");
    uint64_t seq = 0, since_sync = 0;
    auto sync = [&] {
      log->Put("Y " + std::to_string(pid) + " " + std::to_string(seq) + "\n");
      gfs::Status s = c->Fsync(&*f);
      ++syncs;
      if (s.ok()) {
        log->Put("S " + std::to_string(pid) + " " + std::to_string(seq) + "\n");
      } else {
        ++sync_failures;
        log->Put("X " + std::to_string(pid) + " " + std::to_string(seq) + " " + Code(s) + "\n" +
                 "E fsync: " + OneLine(s.ToString()) + "\n");
      }
      since_sync = 0;
    };
    std::vector<std::vector<uint8_t>> frames;
    const double rate = static_cast<double>(Arg(a, "rate", 0)), t_start = Now();
    while (seq < budget && !Stopped()) {
      // Paced: the budget is spread over the job, so a kill finds appends in
      // flight rather than a finished producer.
      while (rate > 0 && Now() < t_start + static_cast<double>(seq) / rate && !Stopped()) {
        SleepMs(static_cast<int>(
            std::min(50.0, (t_start + static_cast<double>(seq) / rate - Now()) * 1000) + 1));
      }
      uint64_t n = Rand(100) < 40 ? 2 + Rand(batch_max > 1 ? batch_max - 1 : 1) : 1;
      n = std::min(n, budget - seq);
      frames.assign(n, {});
      std::string attempt;
      for (uint64_t i = 0; i < n; ++i) {
        uint64_t size = Rand(1000) < big ? max_payload / 2 + Rand(max_payload / 2 + 1)
                                         : min_rec + Rand(max_rec - min_rec + 1);
        size = std::min(size, max_payload);
        Frame(pid, seq + i, static_cast<size_t>(size), &frames[i]);
        attempt += "A " + std::to_string(pid) + " " + std::to_string(seq + i) + " " +
                   std::to_string(size) + "\n";
      }
      log->Put(attempt);
      const uint64_t retries0 = c->stats().counters.get(gfs::Counter::kAppendRetries);
      std::vector<uint64_t> offsets;
      gfs::Status s;
      if (n == 1) {
        auto r = c->RecordAppend(&*f, frames[0].data(), frames[0].size());
        s = r.status();
        if (r.ok()) offsets.push_back(*r);
      } else {
        std::vector<gfs::Client::Span> spans;
        for (const auto& fr : frames) spans.push_back({fr.data(), fr.size()});
        s = c->RecordAppendMany(&*f, spans, &offsets);
      }
      const bool retried = c->stats().counters.get(gfs::Counter::kAppendRetries) != retries0;
      std::string out;
      for (uint64_t i = 0; i < n; ++i) {
        if (s.ok()) {
          out += "K " + std::to_string(pid) + " " + std::to_string(seq + i) + " " +
                 std::to_string(offsets[i]) + " " + (retried ? "1" : "0") + "\n";
          acked_bytes += frames[i].size() - gfs::kFrameHeaderSize;
        } else {
          out += "F " + std::to_string(pid) + " " + std::to_string(seq + i) + " " + Code(s) + "\n";
        }
      }
      if (!s.ok()) out += "E append: " + OneLine(s.ToString()) + "\n";
      log->Put(out);
      ops += n;
      (s.ok() ? acked : failed) += n;
      seq += n;
      since_sync += n;
      if (since_sync >= psync) sync();
    }
    if (Arg(a, "inject", 0) != 0 && client == 0) Inject(&*f, pid, seq, log);
    // Close = fsync on every replica (logged like one).
    log->Put("Y " + std::to_string(pid) + " " + std::to_string(seq) + "\n");
    gfs::Status s = c->Close(&*f);
    if (s.ok()) {
      log->Put("S " + std::to_string(pid) + " " + std::to_string(seq) + "\n");
    } else {
      ++sync_failures;
      log->Put("X " + std::to_string(pid) + " " + std::to_string(seq) + " " + Code(s) +
               "\nE close: " + OneLine(s.ToString()) + "\n");
    }
    return "";
  }

  // Self-test (inject=1, the driver's --selftest): what the verifier must
  // catch, none of it logged as attempted: a second copy of record (pid, 0)
  // whose append never failed, a frame of a record never attempted, 64 bytes
  // that are no frame at all, and a frame written across a chunk end.
  void Inject(gfs::File* f, uint64_t pid, uint64_t seq, EventLog* log) {
    std::vector<uint8_t> fr;
    Frame(pid, 0, 100, &fr);  // the size the verifier expects comes from the log
    std::string got;
    auto note = [&](const std::string& what, const gfs::Status& s) {
      got += " " + what + "=" + (s.ok() ? std::string("ok") : Code(s));
    };
    gfs::Status s;
    {
      // The duplicate: the same bytes as the first record's frame, whose size is logged.
      std::string text;
      ReadWhole(work + "/log-j" + std::to_string(job) + "-c" + std::to_string(client) + ".txt",
                &text);
      unsigned long long p = 0, q = 0, size = 0;
      if (std::sscanf(text.c_str(), "A %llu %llu %llu", &p, &q, &size) == 3) {
        Frame(p, q, static_cast<size_t>(size), &fr);
        s = c->RecordAppend(f, fr.data(), fr.size()).status();
        note("dup", s);
      }
    }
    Frame(pid, seq + 1000000, 200, &fr);
    note("phantom", c->RecordAppend(f, fr.data(), fr.size()).status());
    std::vector<uint8_t> junk(64, 0x5A);
    note("garbage", c->RecordAppend(f, junk.data(), junk.size()).status());
    Frame(pid, seq + 2000000, 300, &fr);
    const uint64_t end = (f->length / f->chunk_size + 2) * f->chunk_size;
    note("xend", c->Write(f, end - 100, fr.data(), fr.size()));
    log->Put("E inject:" + got + "\n");
  }

  // One delete cycle (the trash): a small file /chaos/del-j<J>-c<C>-<n> is
  // created and closed, then maybe moved to the trash (or deleted at once,
  // rm --skip-trash), then maybe undeleted. Every step is logged before it is
  // tried and once it is acknowledged; the verifier checks the state after
  // the last acknowledged step (when no step was tried after it).
  //   DA path no gen size    create attempt        DC path        created and closed
  //   DT path skip           trash attempt         DTK path TRASH  trashed ("-": deleted)
  //   DU path                undelete attempt      DUK path       undeleted
  //   DF path code           the step tried last failed
  void DeleteCycle(EventLog* log, uint64_t n) {
    const std::string path = DeletePath(job, client, n);
    const uint64_t no = DeleteFileNo(job, client, n), gen = (job << 32) | n;
    const uint64_t size = 1 + Rand(128 << 10);
    log->Put("DA " + path + " " + std::to_string(no) + " " + std::to_string(gen) + " " +
             std::to_string(size) + "\n");
    auto fail = [&](const gfs::Status& s) {
      log->Put("DF " + path + " " + Code(s) + "\nE delete cycle: " + OneLine(s.ToString()) + "\n");
    };
    gfs::CreateOptions o;
    o.exclusive = true;
    auto f = c->Create(path, o);
    if (!f.ok()) return fail(f.status());
    std::vector<uint8_t> buf(size);
    GenBytes(no, gen).Fill(0, buf.data(), size);
    gfs::Status s = c->Write(&*f, 0, buf.data(), size);
    if (s.ok()) s = c->Close(&*f);
    if (!s.ok()) return fail(s);
    log->Put("DC " + path + "\n");
    const uint64_t what = Rand(100);
    if (what < 20) return;  // stays
    const bool skip = what < 35;
    log->Put("DT " + path + " " + (skip ? "1" : "0") + "\n");
    auto t = c->Trash(path, false, skip);
    if (!t.ok()) return fail(t.status());
    log->Put("DTK " + path + " " + (t->empty() ? std::string("-") : *t) + "\n");
    if (t->empty() || Rand(100) < 50) return;
    log->Put("DU " + path + "\n");
    auto u = c->Undelete(path);
    if (!u.ok()) return fail(u.status());
    log->Put("DUK " + path + "\n");
  }

  std::string Writer(EventLog* log) {
    const uint64_t nfiles = std::max<uint64_t>(1, Arg(a, "files", 2));
    const uint64_t fsize = std::max<uint64_t>(4096, Arg(a, "fsize", 3u << 20));
    const uint64_t wmax = std::max<uint64_t>(1, std::min(Arg(a, "wmax", 600u << 10), fsize));
    const uint64_t wsync = Arg(a, "wsync", 30);
    const uint64_t chunk = Arg(a, "chunk", 1u << 20);
    std::vector<gfs::File> files;
    for (uint64_t k = 0; k < nfiles; ++k) {
      const uint64_t no = FileNo(client, k);
      auto f = OpenOrCreate(WriterPath(no), log);
      if (!f.ok()) return "open " + WriterPath(no) + ": " + f.status().ToString();
      log->Put("WO " + std::to_string(no) + " " + std::to_string(f->length) + "\n");
      files.push_back(*f);
    }
    PutFile(work + "/started-j" + std::to_string(job) + "-c" + std::to_string(client), "1\n");
    auto sync = [&](uint64_t k, bool close) {
      const std::string no = std::to_string(FileNo(client, k));
      log->Put("WY " + no + "\n");
      gfs::Status s = close ? c->Close(&files[k]) : c->Fsync(&files[k]);
      ++syncs;
      if (s.ok()) {
        log->Put("WS " + no + "\n");
      } else {
        ++sync_failures;
        log->Put("WX " + no + " " + Code(s) + "\nE fsync: " + OneLine(s.ToString()) + "\n");
      }
    };
    std::vector<uint8_t> buf;
    uint64_t counter = 0, cycles = 0;
    const uint64_t deletes = Arg(a, "deletes", 50);  // delete cycles per 1000 writes
    const double wrate = static_cast<double>(Arg(a, "wrate", 0)), t_start = Now();
    while (!Stopped()) {
      while (wrate > 0 && Now() < t_start + static_cast<double>(counter) / wrate && !Stopped()) {
        SleepMs(static_cast<int>(
            std::min(50.0, (t_start + static_cast<double>(counter) / wrate - Now()) * 1000) + 1));
      }
      if (Stopped()) break;
      const uint64_t k = Rand(nfiles);
      gfs::File& f = files[k];
      const uint64_t no = FileNo(client, k);
      const uint64_t len = 1 + Rand(wmax);
      uint64_t off;
      const uint64_t how = Rand(100);
      if (how < 40) {
        off = f.length;  // extend the file
      } else if (how < 60) {
        // Across a chunk end.
        const uint64_t end = chunk * (1 + Rand(std::max<uint64_t>(1, fsize / chunk)));
        off = end > len / 2 ? end - len / 2 : 0;
      } else {
        off = Rand(std::max<uint64_t>(f.length, 1));
      }
      if (off + len > fsize) off = Rand(fsize - len + 1);
      const uint64_t gen = (job << 32) | ++counter;
      buf.resize(len);
      GenBytes(no, gen).Fill(off, buf.data(), len);
      log->Put("WA " + std::to_string(no) + " " + std::to_string(off) + " " + std::to_string(len) +
               " " + std::to_string(gen) + "\n");
      gfs::Status s = c->Write(&f, off, buf.data(), len);
      ++ops;
      if (s.ok()) {
        ++acked;
        acked_bytes += len;
        log->Put("WK " + std::to_string(gen) + "\n");
      } else {
        ++failed;
        log->Put("WF " + std::to_string(gen) + " " + Code(s) +
                 "\nE write: " + OneLine(s.ToString()) + "\n");
      }
      if (Rand(100) < wsync) sync(k, false);
      if (Rand(1000) < deletes) DeleteCycle(log, ++cycles);
    }
    if (Arg(a, "inject", 0) != 0 && static_cast<uint64_t>(client) == Arg(a, "producers", 2)) {
      // Self-test: 100 bytes no write logged, inside the first file.
      std::vector<uint8_t> junk(100, 0xEE);
      gfs::Status s = c->Write(&files[0], 10, junk.data(), junk.size());
      log->Put("E inject: 100 unlogged bytes at 10 of " + WriterPath(FileNo(client, 0)) + ": " +
               OneLine(s.ToString()) + "\n");
      // And a delete cycle whose rm is logged as acknowledged but never sent:
      // the file is still at its path and not in the trash.
      const std::string path = DeletePath(job, client, 999999);
      const uint64_t no = DeleteFileNo(job, client, 999999), gen = (job << 32) | 999999;
      std::vector<uint8_t> bytes(1000);
      GenBytes(no, gen).Fill(0, bytes.data(), bytes.size());
      auto f = c->Create(path);
      gfs::Status d = f.status();
      if (d.ok()) d = c->Write(&*f, 0, bytes.data(), bytes.size());
      if (d.ok()) d = c->Close(&*f);
      log->Put("DA " + path + " " + std::to_string(no) + " " + std::to_string(gen) + " 1000\nDC " +
               path + "\nDT " + path + " 0\nDTK " + path + " /.trash/1" + path + "\n" +
               "E inject: an rm logged, never sent: " + OneLine(d.ToString()) + "\n");
    }
    for (uint64_t k = 0; k < nfiles; ++k) sync(k, true);
    return "";
  }
};

std::string RunWork(gfs::Session* s, const Args& a, const std::string& work, std::string* info) {
  const uint64_t job = Arg(a, "job", 1);
  const int client = s->client_index();
  const int producers = static_cast<int>(Arg(a, "producers", 2));
  const int writers = static_cast<int>(Arg(a, "writers", 1));
  EventLog log(work + "/log-j" + std::to_string(job) + "-c" + std::to_string(client) + ".txt");
  if (!log.ok()) return "cannot open the event log";
  Workload w{s->client(),
             a,
             work,
             job,
             client,
             work + "/stop-j" + std::to_string(job),
             std::mt19937_64(
                 Hash(Arg(a, "seed", 1) * 1000003 + job * 1009 + static_cast<uint64_t>(client))),
             0,
             0,
             0,
             0,
             0,
             0};
  gfs::Status m = w.c->Mkdir("/chaos", true);
  if (!m.ok() && m.code() != gfs::Code::kAlreadyExists) {
    log.Put("E mkdir /chaos: " + OneLine(m.ToString()) + "\n");
  }
  std::string bad;
  std::string role = "idle";
  if (client < producers) {
    role = "producer";
    bad = w.Producer(&log);
  } else if (client < producers + writers) {
    role = "writer";
    bad = w.Writer(&log);
  }
  if (bad.empty()) log.Put("DONE\n");
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "role=%s ops=%" PRIu64 " acked=%" PRIu64 " failed=%" PRIu64 " acked_bytes=%" PRIu64
                " syncs=%" PRIu64 " sync_failures=%" PRIu64,
                role.c_str(), w.ops, w.acked, w.failed, w.acked_bytes, w.syncs, w.sync_failures);
  *info = buf;
  return bad;
}

// ---- verification ----

struct Problems {
  std::vector<std::string> list;
  uint64_t total = 0;
  void Add(const std::string& p) {
    ++total;
    if (list.size() < 60) list.push_back(p);
  }
};

// What the logs say.
struct Rec {
  uint64_t pid = 0, seq = 0, size = 0, job = 0;
  bool acked = false, failed = false, retried = false, synced = false;
  uint64_t off = 0;
  std::vector<uint64_t> found;  // file offsets where the record was read intact
};
struct Wr {
  uint64_t file = 0, off = 0, len = 0, gen = 0;
  bool acked = false, failed = false, durable = false;
};

// A delete-cycle file as its log leaves it.
struct Del {
  uint64_t no = 0, gen = 0, size = 0;
  enum State { kLive, kTrashed, kGone } state = kLive;
  std::string trash_path;
  bool unsure = true;  // a step was tried after the last acknowledged one
};

struct Model {
  std::map<std::string, Del> dels;  // by path
  std::vector<Rec> recs;
  std::unordered_map<uint64_t, size_t> rec_index;  // RecKey -> recs index
  std::map<uint64_t, std::vector<Wr>> writes;      // file -> writes in order
  uint64_t logs = 0, clean_logs = 0, errors = 0;
  std::vector<std::string> error_samples;

  static uint64_t RecKey(uint64_t pid, uint64_t seq) { return (pid << 40) ^ seq; }
  Rec* FindRec(uint64_t pid, uint64_t seq) {
    auto it = rec_index.find(RecKey(pid, seq));
    return it == rec_index.end() ? nullptr : &recs[it->second];
  }
};

// One delete-cycle line (Workload::DeleteCycle) into m->dels.
void LoadDeleteLine(const std::string& line, Model* m) {
  char kind[4] = {0}, path[256] = {0}, trash[4200] = {0};
  unsigned long long no = 0, gen = 0, size = 0;
  if (std::sscanf(line.c_str(), "%3s %255s", kind, path) != 2) return;
  const std::string k = kind;
  if (k == "DA" && std::sscanf(line.c_str(), "DA %*s %llu %llu %llu", &no, &gen, &size) == 3) {
    Del& d = m->dels[path];
    d.no = no;
    d.gen = gen;
    d.size = size;
    d.unsure = true;
    return;
  }
  auto it = m->dels.find(path);
  if (it == m->dels.end()) return;
  Del& d = it->second;
  if (k == "DC" || k == "DUK") {
    d.state = Del::kLive;
    d.unsure = false;
  } else if (k == "DTK" && std::sscanf(line.c_str(), "DTK %*s %4199s", trash) == 1) {
    d.trash_path = trash;
    d.state = d.trash_path == "-" ? Del::kGone : Del::kTrashed;
    d.unsure = false;
  } else {
    d.unsure = true;  // DT, DU: tried; DF: failed (applied or not)
  }
}

// Reads every WORK/log-j<J>-c<C>.txt, in (job, client) order.
std::string LoadLogs(const std::string& work, Model* m) {
  std::vector<std::pair<std::pair<uint64_t, uint64_t>, std::string>> logs;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(work, ec)) {
    const std::string name = e.path().filename().string();
    unsigned long long j = 0, cl = 0;
    char tail[8] = {0};
    if (std::sscanf(name.c_str(), "log-j%llu-c%llu.%3s", &j, &cl, tail) == 3 &&
        std::string(tail) == "txt") {
      logs.push_back({{j, cl}, e.path().string()});
    }
  }
  if (ec) return "cannot list " + work + ": " + ec.message();
  std::sort(logs.begin(), logs.end());
  for (const auto& [key, path] : logs) {
    std::string text;
    if (!ReadWhole(path, &text)) return "cannot read " + path;
    ++m->logs;
    std::unordered_map<uint64_t, std::pair<uint64_t, size_t>> gen_at;  // gen -> (file, index)
    std::map<uint64_t, std::vector<size_t>> acked_since;         // file -> acked, not yet synced
    std::unordered_map<uint64_t, std::vector<size_t>> unsynced;  // pid -> acked recs not synced
    size_t pos = 0;
    while (pos < text.size()) {
      size_t nl = text.find('\n', pos);
      if (nl == std::string::npos) break;  // a line cut by the kill
      const std::string line = text.substr(pos, nl - pos);
      pos = nl + 1;
      char kind[4] = {0};
      unsigned long long x1 = 0, x2 = 0, x3 = 0, x4 = 0;
      char word[64] = {0};
      if (line == "DONE") {
        ++m->clean_logs;
        continue;
      }
      if (line.rfind("E ", 0) == 0) {
        ++m->errors;
        if (m->error_samples.size() < 10) m->error_samples.push_back(line.substr(2));
        continue;
      }
      if (std::sscanf(line.c_str(), "%3s", kind) != 1) continue;
      const std::string k = kind;
      if (k[0] == 'D') {
        LoadDeleteLine(line, m);
        continue;
      }
      if (k == "A" && std::sscanf(line.c_str(), "A %llu %llu %llu", &x1, &x2, &x3) == 3) {
        Rec r;
        r.pid = x1;
        r.seq = x2;
        r.size = x3;
        r.job = key.first;
        m->rec_index[Model::RecKey(x1, x2)] = m->recs.size();
        m->recs.push_back(r);
      } else if (k == "K" &&
                 std::sscanf(line.c_str(), "K %llu %llu %llu %llu", &x1, &x2, &x3, &x4) == 4) {
        if (Rec* r = m->FindRec(x1, x2)) {
          r->acked = true;
          r->off = x3;
          r->retried = x4 != 0;
          unsynced[x1].push_back(m->rec_index[Model::RecKey(x1, x2)]);
        }
      } else if (k == "F" && std::sscanf(line.c_str(), "F %llu %llu", &x1, &x2) == 2) {
        if (Rec* r = m->FindRec(x1, x2)) r->failed = true;
      } else if (k == "S" && std::sscanf(line.c_str(), "S %llu %llu", &x1, &x2) == 2) {
        for (size_t i : unsynced[x1]) {
          if (m->recs[i].seq < x2) m->recs[i].synced = true;
        }
        unsynced[x1].clear();
      } else if (k == "WA" &&
                 std::sscanf(line.c_str(), "WA %llu %llu %llu %llu", &x1, &x2, &x3, &x4) == 4) {
        Wr w;
        w.file = x1;
        w.off = x2;
        w.len = x3;
        w.gen = x4;
        gen_at[x4] = {x1, m->writes[x1].size()};
        m->writes[x1].push_back(w);
      } else if (k == "WK" && std::sscanf(line.c_str(), "WK %llu", &x1) == 1) {
        auto it = gen_at.find(x1);
        if (it != gen_at.end()) {
          m->writes[it->second.first][it->second.second].acked = true;
          acked_since[it->second.first].push_back(it->second.second);
        }
      } else if (k == "WF" && std::sscanf(line.c_str(), "WF %llu %63s", &x1, word) >= 1) {
        auto it = gen_at.find(x1);
        if (it != gen_at.end()) m->writes[it->second.first][it->second.second].failed = true;
      } else if (k == "WS" && std::sscanf(line.c_str(), "WS %llu", &x1) == 1) {
        for (size_t i : acked_since[x1]) m->writes[x1][i].durable = true;
        acked_since[x1].clear();
      }
    }
  }
  return "";
}

// Reads [0, n) of f into *out; pieces that cannot be read after retries are
// marked in *bad (per 64 KiB block) and left as zeros.
void ReadAll(gfs::Client* c, gfs::File* f, uint64_t n, std::vector<uint8_t>* out,
             std::vector<bool>* bad, Problems* probs) {
  const uint64_t kBlock = 64 << 10, kPiece = 4u << 20;
  out->assign(n, 0);
  bad->assign((n + kBlock - 1) / kBlock, false);
  auto read = [&](uint64_t off, uint64_t len, std::string* why) {
    for (int attempt = 0; attempt < 3; ++attempt) {
      auto r = c->Read(f, off, out->data() + off, len);
      if (r.ok() && *r == len) return true;
      *why = r.ok() ? "short read: " + std::to_string(*r) + " of " + std::to_string(len) + " bytes"
                    : r.status().ToString();
      SleepMs(500);
    }
    return false;
  };
  for (uint64_t off = 0; off < n; off += kPiece) {
    const uint64_t len = std::min(kPiece, n - off);
    std::string why;
    if (read(off, len, &why)) continue;
    for (uint64_t b = off; b < off + len; b += kBlock) {
      const uint64_t bl = std::min(kBlock, off + len - b);
      if (read(b, bl, &why)) continue;
      std::memset(out->data() + b, 0, bl);
      (*bad)[b / kBlock] = true;
      probs->Add(f->path + ": bytes " + std::to_string(b) + ".." + std::to_string(b + bl) +
                 " unreadable: " + OneLine(why));
    }
  }
}

struct RecordCheck {
  uint64_t attempted = 0, acked = 0, acked_bytes = 0, synced = 0, failed = 0;
  uint64_t file_length = 0, committed_length = 0, frames = 0, distinct_found = 0;
  uint64_t lost = 0, lost_synced = 0, lost_unsynced = 0, not_at_acked_offset = 0;
  uint64_t duplicates = 0, unexplained_duplicates = 0, phantom = 0, wrong_payload = 0;
  uint64_t across_chunk_end = 0, skipped_bytes = 0, zero_bytes = 0, garbage_explained = 0;
  uint64_t never_written_bytes = 0, unreadable_bytes = 0, lost_unreadable = 0;
  uint64_t chunk_size = 0;
  bool have_file = false;
};

// Explains the non-zero bytes of a skipped region as pieces of attempted
// frames (left by failed or cut attempts); counts the rest as never written.
class GarbageIndex {
 public:
  explicit GarbageIndex(const Model& m) : m_(m) {}
  void Build() {
    if (built_) return;
    built_ = true;
    std::vector<uint8_t> fr;
    for (size_t i = 0; i < m_.recs.size(); ++i) {
      Frame(m_.recs[i].pid, m_.recs[i].seq, m_.recs[i].size, &fr);
      for (size_t off = 0; off + 8 <= fr.size(); off += 8) {
        uint64_t key;
        std::memcpy(&key, fr.data() + off, 8);
        entries_.push_back({key, static_cast<uint32_t>(i), static_cast<uint32_t>(off)});
      }
    }
    std::sort(entries_.begin(), entries_.end(),
              [](const Entry& x, const Entry& y) { return x.key < y.key; });
  }
  // Bytes of [a, b) of `data` (file offsets = indexes) that are neither zero
  // nor explained; *explained counts the others that are not zero.
  uint64_t Unexplained(const std::vector<uint8_t>& data, uint64_t a, uint64_t b, uint64_t* zeros,
                       uint64_t* explained, uint64_t* first_bad) {
    uint64_t bad = 0;
    std::vector<uint8_t> fr;
    uint64_t p = a;
    while (p < b) {
      if (data[p] == 0) {
        ++*zeros;
        ++p;
        continue;
      }
      Build();
      uint64_t best = 0;
      for (uint64_t d = 0; d < 8 && p + d + 8 <= b && best == 0; ++d) {
        const uint64_t q = p + d;
        uint64_t key;
        std::memcpy(&key, data.data() + q, 8);
        // Mostly-zero words (a small sequence number, a producer id) would
        // match any frame's header: they explain nothing.
        int nonzero = 0;
        for (int i = 0; i < 8; ++i) nonzero += ((key >> (8 * i)) & 0xff) != 0;
        if (nonzero < 3) continue;
        auto lo = std::lower_bound(entries_.begin(), entries_.end(), key,
                                   [](const Entry& e, uint64_t k) { return e.key < k; });
        int tries = 0;
        for (auto it = lo; it != entries_.end() && it->key == key && tries < 256; ++it, ++tries) {
          if (q < it->off) continue;
          const uint64_t start = q - it->off;  // the frame's file offset if this is it
          if (p < start) continue;
          const Rec& r = m_.recs[it->rec];
          Frame(r.pid, r.seq, r.size, &fr);
          uint64_t len = 0;
          while (p + len < b && p - start + len < fr.size() &&
                 data[p + len] == fr[p - start + len]) {
            ++len;
          }
          if (len >= d + 8) best = std::max(best, len);
        }
      }
      if (best > 0) {
        *explained += best;
        p += best;
      } else {
        if (bad == 0) *first_bad = p;
        ++bad;
        ++p;
      }
    }
    return bad;
  }

 private:
  struct Entry {
    uint64_t key;
    uint32_t rec, off;
  };
  const Model& m_;
  bool built_ = false;
  std::vector<Entry> entries_;
};

void CheckRecords(gfs::Client* c, Model* m, RecordCheck* rc, Problems* probs) {
  for (const Rec& r : m->recs) {
    ++rc->attempted;
    if (r.acked) {
      ++rc->acked;
      rc->acked_bytes += r.size;
    }
    if (r.synced) ++rc->synced;
    if (r.failed) ++rc->failed;
  }
  if (m->recs.empty()) return;
  gfs::Result<gfs::File> f = gfs::Status::Internal("unset");
  for (int attempt = 0; attempt < 20; ++attempt) {
    f = c->Open(kRecordsPath);
    if (f.ok() || f.status().code() == gfs::Code::kNotFound) break;
    SleepMs(500);
  }
  if (!f.ok()) {
    probs->Add(std::string("open ") + kRecordsPath + ": " + f.status().ToString());
  } else {
    rc->have_file = true;
  }
  std::vector<uint8_t> data;
  std::vector<bool> bad;
  uint64_t chunk = 1;
  if (rc->have_file) {
    chunk = f->chunk_size;
    rc->chunk_size = chunk;
    rc->file_length = f->length;
    auto cl = c->CommittedLength(&*f);
    if (cl.ok()) {
      rc->committed_length = *cl;
    } else {
      probs->Add(std::string("committed length of ") + kRecordsPath + ": " +
                 cl.status().ToString());
    }
    const uint64_t n = std::max(rc->file_length, rc->committed_length);
    f->length = n;
    ReadAll(c, &*f, n, &data, &bad, probs);
    for (bool b : bad) rc->unreadable_bytes += b ? 64 << 10 : 0;
  }
  // Every valid frame, in file order.
  struct Found {
    uint64_t off, end;
  };
  std::vector<Found> frames;
  std::vector<uint8_t> want;
  const uint64_t max_payload = gfs::MaxRecordPayload(chunk);
  gfs::ScanFrames(
      data.data(), data.size(), 0,
      [&](const gfs::RecordView& v) {
        ++rc->frames;
        const uint64_t end = v.offset + gfs::FrameSize(v.size);
        frames.push_back({v.offset, end});
        if (v.offset / chunk != (end - 1) / chunk) {
          ++rc->across_chunk_end;
          probs->Add("record (" + std::to_string(v.producer) + "," + std::to_string(v.seq) +
                     ") at " + std::to_string(v.offset) + " crosses the chunk end at " +
                     std::to_string((v.offset / chunk + 1) * chunk));
        }
        Rec* r = m->FindRec(v.producer, v.seq);
        if (r == nullptr) {
          ++rc->phantom;
          probs->Add("record (" + std::to_string(v.producer) + "," + std::to_string(v.seq) +
                     ") at " + std::to_string(v.offset) + " was never appended");
          return;
        }
        Payload(r->pid, r->seq, r->size, &want);
        if (v.size != r->size || std::memcmp(v.data, want.data(), v.size) != 0) {
          ++rc->wrong_payload;
          probs->Add("record (" + std::to_string(v.producer) + "," + std::to_string(v.seq) +
                     ") at " + std::to_string(v.offset) + " has a valid frame but wrong payload");
          return;
        }
        r->found.push_back(v.offset);
      },
      max_payload, true, nullptr);
  // Bytes between frames: zeros (padding, never landed) or pieces of
  // attempted frames; anything else was never written to this file.
  GarbageIndex gi(*m);
  uint64_t prev = 0;
  auto gap = [&](uint64_t a, uint64_t b) {
    if (a >= b) return;
    rc->skipped_bytes += b - a;
    uint64_t first_bad = 0;
    uint64_t bad_here =
        gi.Unexplained(data, a, b, &rc->zero_bytes, &rc->garbage_explained, &first_bad);
    if (bad_here > 0) {
      rc->never_written_bytes += bad_here;
      probs->Add(std::to_string(bad_here) + " bytes in " + std::to_string(a) + ".." +
                 std::to_string(b) + " of " + kRecordsPath + " (first at " +
                 std::to_string(first_bad) + ") are neither padding nor any attempted record's");
    }
  };
  for (const Found& fr : frames) {
    gap(prev, fr.off);
    prev = std::max(prev, fr.end);
  }
  gap(prev, data.size());
  for (Rec& r : m->recs) {
    if (!r.found.empty()) ++rc->distinct_found;
    if (r.found.size() > 1) {
      rc->duplicates += r.found.size() - 1;
      const bool resolved = r.acked || r.failed;
      if (!(r.failed || r.retried || !resolved)) {
        ++rc->unexplained_duplicates;
        probs->Add("record (" + std::to_string(r.pid) + "," + std::to_string(r.seq) + ") appears " +
                   std::to_string(r.found.size()) + " times; its append never failed");
      }
    }
    if (!r.acked) continue;
    if (r.found.empty()) {
      ++rc->lost;
      ++(r.synced ? rc->lost_synced : rc->lost_unsynced);
      bool unreadable = false;
      for (uint64_t b = r.off / (64 << 10);
           b < bad.size() && b <= (r.off + gfs::FrameSize(r.size)) / (64 << 10); ++b) {
        unreadable = unreadable || bad[b];
      }
      if (unreadable) ++rc->lost_unreadable;
      probs->Add("acknowledged record (" + std::to_string(r.pid) + "," + std::to_string(r.seq) +
                 ") of job " + std::to_string(r.job) + " at " + std::to_string(r.off) + " (" +
                 std::to_string(gfs::FrameSize(r.size)) + " bytes, " +
                 (r.synced ? "fsynced" : "not fsynced") + ") is missing" +
                 (r.off >= data.size()
                      ? " (past the file's length " + std::to_string(data.size()) + ")"
                  : unreadable ? " (unreadable)"
                               : ""));
    } else if (std::find(r.found.begin(), r.found.end(), r.off) == r.found.end()) {
      ++rc->not_at_acked_offset;
      probs->Add("acknowledged record (" + std::to_string(r.pid) + "," + std::to_string(r.seq) +
                 ") is not at its acknowledged offset " + std::to_string(r.off) + " (found at " +
                 std::to_string(r.found[0]) + ")");
    }
  }
}

struct WriteCheck {
  uint64_t files = 0, attempted = 0, acked = 0, acked_bytes = 0, durable_writes = 0;
  uint64_t durable_bytes = 0, checked_bytes = 0, wrong_bytes = 0, lost_bytes = 0;
  uint64_t unreadable_bytes = 0, unreadable_durable_bytes = 0, never_written_bytes = 0;
};

// Per writer file: which write covers each byte last, and last durably.
struct FileShape {
  std::vector<int32_t> last, dur;
  uint64_t durable_end = 0, attempted_end = 0;
};

FileShape Shape(const std::vector<Wr>& ws, uint64_t n) {
  FileShape s;
  for (const Wr& w : ws) {
    s.attempted_end = std::max(s.attempted_end, w.off + w.len);
    if (w.durable) s.durable_end = std::max(s.durable_end, w.off + w.len);
  }
  n = std::max(n, s.attempted_end);
  s.last.assign(n, -1);
  s.dur.assign(n, -1);
  for (size_t i = 0; i < ws.size(); ++i) {
    std::fill(s.last.begin() + static_cast<long>(ws[i].off),
              s.last.begin() + static_cast<long>(ws[i].off + ws[i].len), static_cast<int32_t>(i));
    if (ws[i].durable) {
      std::fill(s.dur.begin() + static_cast<long>(ws[i].off),
                s.dur.begin() + static_cast<long>(ws[i].off + ws[i].len), static_cast<int32_t>(i));
    }
  }
  return s;
}

// The byte at p may be: what a write at or after the last durable one
// covering p put there, or, if no durable write covers p, zero.
bool Allowed(const std::vector<Wr>& ws, const FileShape& s, uint64_t p, uint8_t b) {
  if (p >= s.last.size() || s.last[p] < 0) return b == 0;
  const int32_t hi = s.last[p], lo = std::max(s.dur[p], 0);
  if (s.dur[p] < 0 && b == 0) return true;
  for (int32_t i = hi; i >= lo; --i) {
    const Wr& w = ws[static_cast<size_t>(i)];
    if (p >= w.off && p < w.off + w.len && GenBytes(w.file, w.gen).At(p) == b) return true;
  }
  return false;
}

// What the bytes at [p, p+8) look like, for the report.
std::string Describe(const std::vector<Wr>& ws, const FileShape& s, const std::vector<uint8_t>& d,
                     uint64_t p) {
  const uint64_t n = std::min<uint64_t>(8, d.size() - p);
  bool zero = true;
  for (uint64_t i = 0; i < n; ++i) zero = zero && d[p + i] == 0;
  std::string want = s.dur[p] >= 0
                         ? "durable gen " + std::to_string(ws[static_cast<size_t>(s.dur[p])].gen)
                         : "no durable write";
  if (zero) return "zeros (want " + want + ")";
  for (size_t i = 0; i < ws.size(); ++i) {
    const Wr& w = ws[i];
    if (p < w.off || p + n > w.off + w.len) continue;
    bool match = true;
    GenBytes g(w.file, w.gen);
    for (uint64_t k = 0; k < n && match; ++k) match = g.At(p + k) == d[p + k];
    if (match) {
      return "bytes of gen " + std::to_string(w.gen) + " (write #" + std::to_string(i) +
             (w.acked    ? ", acked"
              : w.failed ? ", failed"
                         : ", in flight") +
             "; want " + want + ")";
    }
  }
  return "bytes of no write covering them (want " + want + ")";
}

void CheckWrites(gfs::Client* c, Model* m, WriteCheck* wc, Problems* probs,
                 std::map<uint64_t, FileShape>* shapes,
                 std::map<uint64_t, std::vector<uint8_t>>* contents) {
  for (auto& [file, ws] : m->writes) {
    ++wc->files;
    for (const Wr& w : ws) {
      ++wc->attempted;
      if (w.acked) {
        ++wc->acked;
        wc->acked_bytes += w.len;
      }
      if (w.durable) ++wc->durable_writes;
    }
    const std::string path = WriterPath(file);
    gfs::Result<gfs::File> f = gfs::Status::Internal("unset");
    for (int attempt = 0; attempt < 20; ++attempt) {
      f = c->Open(path);
      if (f.ok() || f.status().code() == gfs::Code::kNotFound) break;
      SleepMs(500);
    }
    uint64_t length = 0;
    std::vector<uint8_t> data;
    std::vector<bool> bad;
    if (!f.ok()) {
      probs->Add("open " + path + ": " + f.status().ToString());
    } else {
      length = f->length;
      if (length > (1ull << 32)) {
        probs->Add(path + " is " + std::to_string(length) + " bytes long: beyond any write");
        length = 1ull << 32;
      }
      ReadAll(c, &*f, length, &data, &bad, probs);
    }
    FileShape s = Shape(ws, length);
    for (uint64_t p = 0; p < s.dur.size(); ++p) wc->durable_bytes += s.dur[p] >= 0 ? 1 : 0;
    if (length > s.attempted_end) {
      probs->Add(path + " is " + std::to_string(length) + " bytes; no write reached past " +
                 std::to_string(s.attempted_end));
    }
    // Bytes within the file's length. Wrong bytes closer than 64 bytes to
    // each other are reported as one range (a wrong byte can match by chance).
    uint64_t run_start = 0, run_last = 0, run_count = 0;
    auto flush = [&] {
      if (run_count == 0) return;
      probs->Add(path + ": " + std::to_string(run_count) + " wrong bytes in " +
                 std::to_string(run_start) + ".." + std::to_string(run_last + 1) + ": " +
                 Describe(ws, s, data, run_start));
      run_count = 0;
    };
    for (uint64_t p = 0; p < length; ++p) {
      if (bad[p / (64 << 10)]) {
        ++wc->unreadable_bytes;
        if (s.dur[p] >= 0) ++wc->unreadable_durable_bytes;
        continue;
      }
      ++wc->checked_bytes;
      // Past every write's end the file should not reach at all.
      if (p < s.attempted_end && Allowed(ws, s, p, data[p])) continue;
      ++wc->wrong_bytes;
      if (s.last[p] < 0) ++wc->never_written_bytes;
      if (run_count > 0 && p - run_last > 64) flush();
      if (run_count == 0) run_start = p;
      run_last = p;
      ++run_count;
    }
    flush();
    // Durable bytes past the length the master reports.
    uint64_t lost_here = 0;
    for (uint64_t p = length; p < s.dur.size(); ++p) lost_here += s.dur[p] >= 0 ? 1 : 0;
    if (lost_here > 0) {
      wc->lost_bytes += lost_here;
      probs->Add(path + " is " + std::to_string(length) + " bytes; fsynced writes reach " +
                 std::to_string(s.durable_end) + " (" + std::to_string(lost_here) +
                 " fsynced bytes gone)");
    }
    (*contents)[file] = std::move(data);
    (*shapes)[file] = std::move(s);
  }
}

struct RepairCheck {
  bool verified = false, healthy = false;
  double seconds = 0;
  uint64_t chunks = 0, under = 0, lost = 0, corrupt = 0;
};

struct ReplicaCheck {
  uint64_t chunks = 0, replica_files = 0, records_checked = 0, bad_records = 0;
  uint64_t bytes_checked = 0, bad_bytes = 0, listed_missing = 0, unlisted_current = 0;
};

void CountFsck(const gfs::FsckReply& rep, RepairCheck* rc) {
  rc->chunks = rc->under = rc->lost = rc->corrupt = 0;
  for (const gfs::FsckFile& f : rep.files) {
    for (const gfs::FsckChunk& ch : f.chunks) {
      ++rc->chunks;
      rc->corrupt += ch.corrupt.size();
      if (ch.replicas.empty()) {
        ++rc->lost;
      } else if (ch.replicas.size() < f.replication) {
        ++rc->under;
      }
    }
  }
}

bool ReadMetaVersion(const std::string& path, uint64_t* version) {
  std::string meta;
  if (!ReadWhole(path, &meta) || meta.size() != 28) return false;
  uint32_t magic;
  std::memcpy(&magic, meta.data(), 4);
  if (magic != 0x4D534647u) return false;
  std::memcpy(version, meta.data() + 16, 8);
  return true;
}

// Rank -> chunkserver directory name, from the master's report.
std::map<int32_t, std::string> ChunkserverDirs(gfs::Client* c, Problems* probs) {
  std::map<int32_t, std::string> dir_of;
  auto rep = c->Report();
  if (!rep.ok()) {
    probs->Add("report: " + rep.status().ToString());
  } else {
    for (const gfs::ServerReport& s : rep->servers) dir_of[s.rank] = s.dir_name;
  }
  return dir_of;
}

std::string HexHandle(uint64_t h) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016" PRIx64, h);
  return hex;
}

// Runs fsck --verify once, then waits until every chunk has its replicas
// and no replica the master calls corrupt is still on disk at the master's
// version (the master keeps listing a corrupt replica after it is deleted,
// so the list alone says nothing).
gfs::Result<gfs::FsckReply> Repair(gfs::Client* c, const std::string& data_dir, uint64_t wait_s,
                                   RepairCheck* rc, Problems* probs) {
  const double t0 = Now(), until = t0 + static_cast<double>(wait_s);
  gfs::Result<gfs::FsckReply> r = gfs::Status::Internal("unset");
  std::map<int32_t, std::string> dir_of;
  uint64_t corrupt_on_disk = 0;
  for (;;) {
    r = c->Fsck("/", !rc->verified);
    if (r.ok()) {
      rc->verified = true;
      CountFsck(*r, rc);
      corrupt_on_disk = 0;
      if (rc->corrupt > 0 && dir_of.empty()) dir_of = ChunkserverDirs(c, probs);
      for (const gfs::FsckFile& f : r->files) {
        for (const gfs::FsckChunk& ch : f.chunks) {
          for (int32_t rank : ch.corrupt) {
            uint64_t v = 0;
            auto d = dir_of.find(rank);
            if (d == dir_of.end() || (ReadMetaVersion(data_dir + "/" + d->second + "/chunks/" +
                                                          HexHandle(ch.handle) + ".meta",
                                                      &v) &&
                                      v == ch.version)) {
              ++corrupt_on_disk;
            }
          }
        }
      }
      if (rc->under == 0 && rc->lost == 0 && corrupt_on_disk == 0) {
        rc->healthy = true;
        break;
      }
    }
    if (Now() > until) break;
    SleepMs(500);
  }
  rc->seconds = Now() - t0;
  if (!r.ok()) {
    probs->Add("fsck: " + r.status().ToString());
  } else if (!rc->healthy) {
    probs->Add("not repaired after " + std::to_string(wait_s) + " s: " + std::to_string(rc->under) +
               " chunks under-replicated, " + std::to_string(rc->lost) + " without a replica, " +
               std::to_string(corrupt_on_disk) + " replicas called corrupt still on disk");
  }
  return r;
}

// Every replica file at the master's version of every chunk of the records
// file and the writer files, read straight from the chunkservers' directories.
void CheckReplicas(gfs::Client* c, const std::string& data_dir, const gfs::FsckReply& fsck,
                   const Model& m, const std::map<uint64_t, FileShape>& shapes, ReplicaCheck* rc,
                   Problems* probs) {
  std::map<int32_t, std::string> dir_of = ChunkserverDirs(c, probs);
  std::vector<std::string> dirs;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(data_dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("chunkserver-", 0) == 0) dirs.push_back(name);
  }
  std::sort(dirs.begin(), dirs.end());
  std::vector<uint8_t> fr, file;
  for (const gfs::FsckFile& ff : fsck.files) {
    const bool records = ff.path == kRecordsPath;
    uint64_t fileno = 0;
    bool writer = false;
    for (const auto& [no, ws] : m.writes) {
      if (WriterPath(no) == ff.path) {
        fileno = no;
        writer = true;
      }
    }
    if (!records && !writer) continue;
    uint64_t chunk = 0;
    {
      auto st = c->Stat(ff.path);
      if (!st.ok()) {
        probs->Add("stat " + ff.path + ": " + st.status().ToString());
        continue;
      }
      chunk = st->chunk_size;
    }
    for (const gfs::FsckChunk& ch : ff.chunks) {
      if (ch.handle == 0) continue;
      ++rc->chunks;
      const std::string hex = HexHandle(ch.handle);
      std::set<std::string> current;
      for (const std::string& d : dirs) {
        uint64_t v = 0;
        if (ReadMetaVersion(data_dir + "/" + d + "/chunks/" + hex + ".meta", &v) &&
            v == ch.version) {
          current.insert(d);
        }
      }
      for (int32_t r : ch.replicas) {
        auto it = dir_of.find(r);
        if (it == dir_of.end() || current.count(it->second) == 0) {
          ++rc->listed_missing;
          probs->Add(ff.path + " chunk " + std::to_string(ch.index) + " (" + hex + " v" +
                     std::to_string(ch.version) + "): replica on rank " + std::to_string(r) +
                     (it == dir_of.end() ? " (no directory known)" : " in " + it->second) +
                     " is not on disk at that version");
        }
      }
      for (const std::string& d : current) {
        bool listed = false;
        for (int32_t r : ch.replicas) listed = listed || (dir_of.count(r) && dir_of[r] == d);
        if (!listed) ++rc->unlisted_current;
        ++rc->replica_files;
        const std::string path = data_dir + "/" + d + "/chunks/" + hex + ".chunk";
        std::string raw;
        if (!ReadWhole(path, &raw)) raw.clear();
        const uint64_t base = uint64_t{ch.index} * chunk, end = base + chunk;
        auto at = [&](uint64_t file_off, uint8_t* b) {
          const uint64_t o = file_off - base;
          if (o >= raw.size()) return false;
          *b = static_cast<uint8_t>(raw[o]);
          return true;
        };
        if (records) {
          for (const Rec& r : m.recs) {
            if (!r.acked || r.off < base || r.off >= end) continue;
            ++rc->records_checked;
            Frame(r.pid, r.seq, r.size, &fr);
            bool ok = r.off - base + fr.size() <= raw.size() &&
                      std::memcmp(raw.data() + (r.off - base), fr.data(), fr.size()) == 0;
            if (!ok) {
              ++rc->bad_records;
              probs->Add("replica " + d + "/" + hex + " (v" + std::to_string(ch.version) +
                         (listed ? "" : ", not listed by the master") + ", " +
                         std::to_string(raw.size()) + " bytes) lacks acknowledged record (" +
                         std::to_string(r.pid) + "," + std::to_string(r.seq) + ") at file offset " +
                         std::to_string(r.off));
            }
          }
        } else {
          // Bytes whose last write is durable: exactly that write's bytes.
          const FileShape& s = shapes.at(fileno);
          const std::vector<Wr>& ws = m.writes.at(fileno);
          uint64_t bad = 0, first = 0;
          for (uint64_t p = base; p < end && p < s.dur.size(); ++p) {
            if (s.dur[p] < 0 || s.dur[p] != s.last[p]) continue;
            ++rc->bytes_checked;
            const Wr& w = ws[static_cast<size_t>(s.dur[p])];
            uint8_t b = 0;
            if (!at(p, &b) || b != GenBytes(w.file, w.gen).At(p)) {
              if (bad == 0) first = p;
              ++bad;
            }
          }
          if (bad > 0) {
            rc->bad_bytes += bad;
            probs->Add("replica " + d + "/" + hex + " (v" + std::to_string(ch.version) +
                       (listed ? "" : ", not listed by the master") + ", " +
                       std::to_string(raw.size()) + " bytes) of " + ff.path + ": " +
                       std::to_string(bad) + " fsynced bytes wrong, the first at file offset " +
                       std::to_string(first));
          }
        }
      }
    }
  }
}

std::string Json(const std::string& s) {
  std::string o = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') {
      o += '\\';
      o += ch;
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", ch);
      o += b;
    } else {
      o += ch;
    }
  }
  return o + "\"";
}

struct JsonObj {
  std::string s = "{";
  JsonObj& N(const char* k, uint64_t v) { return Raw(k, std::to_string(v)); }
  JsonObj& D(const char* k, double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.2f", v);
    return Raw(k, b);
  }
  JsonObj& B(const char* k, bool v) { return Raw(k, v ? "true" : "false"); }
  JsonObj& Raw(const char* k, const std::string& v) {
    if (s.size() > 1) s += ",";
    s += Json(k) + ":" + v;
    return *this;
  }
  std::string End() { return s + "}"; }
};

struct DeleteCheck {
  uint64_t files = 0, checked = 0, live = 0, trashed = 0, gone = 0, wrong = 0;
};

// Reads a whole file; false when it cannot be opened or read.
bool ReadStoreFile(gfs::Client* c, const std::string& path, std::vector<uint8_t>* out) {
  auto f = c->Open(path);
  if (!f.ok()) return false;
  out->assign(f->length, 0);
  auto n = c->Read(&*f, 0, out->data(), out->size());
  if (!n.ok()) return false;
  out->resize(*n);
  return true;
}

// Every delete-cycle file whose last step was acknowledged is where that
// step left it, with its bytes: live at its path, in the trash at the path
// rm named (and not at its own), or nowhere.
void CheckDeletes(gfs::Client* c, const Model& m, DeleteCheck* dc, Problems* probs) {
  std::vector<uint8_t> want, got;
  for (const auto& [path, d] : m.dels) {
    ++dc->files;
    if (d.unsure) continue;
    ++dc->checked;
    want.resize(d.size);
    GenBytes(d.no, d.gen).Fill(0, want.data(), d.size);
    auto wrong = [&](const std::string& what) {
      ++dc->wrong;
      probs->Add("delete cycle " + path + ": " + what);
    };
    const bool at_path = c->Stat(path).ok();
    switch (d.state) {
      case Del::kLive:
        ++dc->live;
        if (!ReadStoreFile(c, path, &got)) {
          wrong("created or undeleted, but not readable at its path");
        } else if (got != want) {
          wrong("wrong bytes after create or undelete");
        }
        break;
      case Del::kTrashed:
        ++dc->trashed;
        if (at_path) wrong("moved to the trash, but still at its path");
        if (!ReadStoreFile(c, d.trash_path, &got)) {
          wrong("not readable in the trash at " + d.trash_path);
        } else if (got != want) {
          wrong("wrong bytes in the trash at " + d.trash_path);
        }
        break;
      case Del::kGone:
        ++dc->gone;
        if (at_path) wrong("deleted (skip-trash), but still at its path");
        break;
    }
  }
}

std::string RunVerify(gfs::Client* c, const Args& a, const std::string& data_dir,
                      const std::string& work, std::string* info) {
  const double t0 = Now();
  Model m;
  std::string bad = LoadLogs(work, &m);
  if (!bad.empty()) return bad;
  Problems probs;
  RecordCheck rc;
  CheckRecords(c, &m, &rc, &probs);
  WriteCheck wc;
  std::map<uint64_t, FileShape> shapes;
  std::map<uint64_t, std::vector<uint8_t>> contents;
  CheckWrites(c, &m, &wc, &probs, &shapes, &contents);
  contents.clear();
  DeleteCheck dc;
  CheckDeletes(c, m, &dc, &probs);
  const double t1 = Now();
  RepairCheck rep;
  auto fsck = Repair(c, data_dir, Arg(a, "wait", 60), &rep, &probs);
  ReplicaCheck rpc;
  if (fsck.ok()) CheckReplicas(c, data_dir, *fsck, m, shapes, &rpc, &probs);
  const double t2 = Now();
  std::string problems = "[";
  for (size_t i = 0; i < probs.list.size(); ++i) problems += (i ? "," : "") + Json(probs.list[i]);
  problems += "]";
  std::string errors = "[";
  for (size_t i = 0; i < m.error_samples.size(); ++i)
    errors += (i ? "," : "") + Json(m.error_samples[i]);
  errors += "]";
  JsonObj out;
  out.N("logs", m.logs)
      .N("clean_logs", m.clean_logs)
      .N("logged_errors", m.errors)
      .Raw("error_samples", errors);
  out.Raw("records", JsonObj()
                         .N("attempted", rc.attempted)
                         .N("acked", rc.acked)
                         .N("acked_bytes", rc.acked_bytes)
                         .N("synced", rc.synced)
                         .N("failed", rc.failed)
                         .N("chunk_size", rc.chunk_size)
                         .N("file_length", rc.file_length)
                         .N("committed_length", rc.committed_length)
                         .N("frames", rc.frames)
                         .N("distinct_found", rc.distinct_found)
                         .N("lost", rc.lost)
                         .N("lost_synced", rc.lost_synced)
                         .N("lost_unsynced", rc.lost_unsynced)
                         .N("not_at_acked_offset", rc.not_at_acked_offset)
                         .N("duplicates", rc.duplicates)
                         .N("unexplained_duplicates", rc.unexplained_duplicates)
                         .N("phantom", rc.phantom)
                         .N("wrong_payload", rc.wrong_payload)
                         .N("across_chunk_end", rc.across_chunk_end)
                         .N("skipped_bytes", rc.skipped_bytes)
                         .N("zero_bytes", rc.zero_bytes)
                         .N("garbage_explained", rc.garbage_explained)
                         .N("never_written_bytes", rc.never_written_bytes)
                         .N("unreadable_bytes", rc.unreadable_bytes)
                         .N("lost_unreadable", rc.lost_unreadable)
                         .End());
  out.Raw("writes", JsonObj()
                        .N("files", wc.files)
                        .N("attempted", wc.attempted)
                        .N("acked", wc.acked)
                        .N("acked_bytes", wc.acked_bytes)
                        .N("durable_writes", wc.durable_writes)
                        .N("durable_bytes", wc.durable_bytes)
                        .N("checked_bytes", wc.checked_bytes)
                        .N("wrong_bytes", wc.wrong_bytes)
                        .N("never_written_bytes", wc.never_written_bytes)
                        .N("lost_bytes", wc.lost_bytes)
                        .N("unreadable_bytes", wc.unreadable_bytes)
                        .N("unreadable_durable_bytes", wc.unreadable_durable_bytes)
                        .End());
  out.Raw("deletes", JsonObj()
                         .N("files", dc.files)
                         .N("checked", dc.checked)
                         .N("live", dc.live)
                         .N("trashed", dc.trashed)
                         .N("gone", dc.gone)
                         .N("wrong", dc.wrong)
                         .End());
  out.Raw("repair", JsonObj()
                        .B("healthy", rep.healthy)
                        .D("seconds", rep.seconds)
                        .N("chunks", rep.chunks)
                        .N("under_replicated", rep.under)
                        .N("lost", rep.lost)
                        .N("corrupt", rep.corrupt)
                        .End());
  out.Raw("replicas", JsonObj()
                          .N("chunks", rpc.chunks)
                          .N("replica_files", rpc.replica_files)
                          .N("records_checked", rpc.records_checked)
                          .N("bad_records", rpc.bad_records)
                          .N("bytes_checked", rpc.bytes_checked)
                          .N("bad_bytes", rpc.bad_bytes)
                          .N("listed_missing", rpc.listed_missing)
                          .N("unlisted_current", rpc.unlisted_current)
                          .End());
  out.D("api_seconds", t1 - t0)
      .D("seconds", t2 - t0)
      .N("problem_count", probs.total)
      .Raw("problems", problems);
  PutFile(work + "/verify.json", out.End() + "\n");
  *info = "problems=" + std::to_string(probs.total);
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  if (argc < 4) {
    std::fprintf(stderr, "usage: chaos_worker work|verify DATA_DIR WORK_DIR [key=value...]\n");
    MPI_Finalize();
    return 2;
  }
  const std::string mode = argv[1], data_dir = argv[2], work = argv[3];
  Args a;
  for (int i = 4; i < argc; ++i) {
    std::string kv = argv[i];
    auto eq = kv.find('=');
    if (eq != std::string::npos) a[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  const std::string job = std::to_string(Arg(a, "job", 1));
  gfs::JobConfig cfg;
  cfg.data_dir = data_dir;
  cfg.chunkservers = static_cast<int>(Arg(a, "cs", 3));
  cfg.shadows = static_cast<int>(Arg(a, "shadows", 0));
  cfg.replication = static_cast<uint32_t>(Arg(a, "r", 3));
  cfg.chunk_size = Arg(a, "chunk", 1u << 20);
  cfg.heartbeat_ms = static_cast<uint32_t>(Arg(a, "hb", 200));
  cfg.request_timeout_ms = static_cast<uint32_t>(Arg(a, "timeout", 5000));
  cfg.lease_seconds = static_cast<uint32_t>(Arg(a, "lease", 5));
  cfg.scrub_mb_per_s = static_cast<uint32_t>(Arg(a, "scrub", 32));
  if (a.count("stats")) cfg.stats_dir = a.at("stats");
  gfs::Session s;
  gfs::Status st = gfs::Init(MPI_COMM_WORLD, cfg, &s);
  std::string bad, info;
  if (st.ok() && s.is_client()) {
    if (mode == "work") {
      bad = RunWork(&s, a, work, &info);
    } else if (mode == "verify") {
      if (s.client_index() == 0) bad = RunVerify(s.client(), a, data_dir, work, &info);
    } else {
      bad = "unknown mode " + mode;
    }
    PutFile(work + "/result-j" + job + "-c" + std::to_string(s.client_index()) + ".txt",
            (bad.empty() ? "OK " + info : "FAIL " + OneLine(bad)) + "\n");
  }
  gfs::Status fin = gfs::Finalize(&s, bad.empty() && st.ok() ? 0 : 1);
  PutFile(work + "/exit-j" + job + "-r" + std::to_string(rank) + ".txt",
          std::string(gfs::RoleName(s.role())) + " " +
              (st.ok() ? (fin.ok() ? "OK" : "FINALIZE " + OneLine(fin.ToString()))
                       : OneLine(st.ToString())) +
              "\n");
  MPI_Finalize();
  return bad.empty() && st.ok() ? 0 : 1;
}
