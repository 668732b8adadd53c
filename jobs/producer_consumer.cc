#include "jobs/producer_consumer.h"

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "io/record_io.h"

namespace gfs::jobs {
namespace {

constexpr int kTagDone = 71;
constexpr int kTagProgress = 72;  // a producer's count of acknowledged records
constexpr int kTagVerdict = 73;   // a consumer's verdict, to every other client

// The client indexes the master has taken as gone (their process ended or
// their host was lost: master/clients.cc), asked at most every 500 ms. A rank
// that waits for a peer polls this, so that a lost peer ends the wait
// instead of hanging the job.
class GoneWatch {
 public:
  explicit GoneWatch(Session* s) : s_(s) {}
  bool Gone(int index) {
    Refresh();
    return gone_.count(index) != 0;
  }

 private:
  void Refresh() {
    const uint64_t now = MonoMicros();
    if (now < next_us_) return;
    next_us_ = now + 500000;
    auto g = s_->client()->GoneClients();
    if (!g.ok()) return;  // asked again next time
    for (int rank : *g) gone_.insert(rank - s_->layout().first_client());
  }
  Session* s_;
  uint64_t next_us_ = 0;
  std::set<int> gone_;
};

// Waits, sleeping between tests, until every request has completed or only
// requests to gone clients are left (those are freed: a send to a dead rank
// may never complete). dest[k] is the client index request k goes to.
void WaitSends(std::vector<MPI_Request>* reqs, const std::vector<int>& dest, GoneWatch* gone) {
  for (;;) {
    bool pending = false;
    for (size_t k = 0; k < reqs->size(); ++k) {
      MPI_Request& r = (*reqs)[k];
      if (r == MPI_REQUEST_NULL) continue;
      int flag = 0;
      MPI_Test(&r, &flag, MPI_STATUS_IGNORE);
      if (flag) continue;
      if (gone->Gone(dest[k])) {
        MPI_Request_free(&r);
        continue;
      }
      pending = true;
    }
    if (!pending) return;
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
}

uint64_t Mix(uint64_t x) {  // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

double Seconds(uint64_t us) { return static_cast<double>(us) / 1e6; }

}  // namespace

uint64_t RecordSize(const ProducerConsumerOptions& o, uint64_t index, uint64_t seq) {
  uint64_t span = o.max_size - o.min_size + 1;
  return o.min_size + Mix(o.seed ^ Mix(index * 0x100000001b3ull + seq)) % span;
}

void FillRecord(const ProducerConsumerOptions& o, uint64_t index, uint64_t seq, uint8_t* out,
                size_t n) {
  uint64_t state = Mix(o.seed + 0x51ed27ull) ^ Mix(index << 40 ^ seq);
  for (size_t i = 0; i < n; i += 8) {
    uint64_t w = Mix(state + i);
    std::memcpy(out + i, &w, std::min<size_t>(8, n - i));
  }
}

int RunProducerConsumer(Session* s, const ProducerConsumerOptions& o) {
  Client* c = s->client();
  MPI_Comm comm = s->app_comm();
  const int me = s->client_index();
  const int clients = s->num_clients();
  const bool producer = me < o.producers;
  const int first_consumer = o.producers;
  Status st;

  // Client 0 creates the file; then everyone opens it.
  int create_code = 0;
  if (me == 0) {
    CreateOptions co;
    auto f = c->Create(o.file, co);
    if (!f.ok()) {
      std::fprintf(stderr, "gfs: producer-consumer: %s: %s\n", o.file.c_str(),
                   f.status().ToString().c_str());
      create_code = 1;
    }
  }
  MPI_Bcast(&create_code, 1, MPI_INT, 0, comm);
  if (create_code != 0) return create_code;
  auto file = c->Open(o.file);
  if (!file.ok()) {
    std::fprintf(stderr, "gfs: producer-consumer: %s: %s\n", o.file.c_str(),
                 file.status().ToString().c_str());
    return 1;
  }
  // Producers announce their producer ids so consumers can map them to
  // indexes and check every byte.
  RecordWriter writer(c, &*file);
  uint64_t my_id = producer ? writer.producer() : 0;
  std::vector<uint64_t> ids(static_cast<size_t>(clients));
  MPI_Allgather(&my_id, 1, MPI_UINT64_T, ids.data(), 1, MPI_UINT64_T, comm);
  std::map<uint64_t, uint64_t> index_of;
  for (int i = 0; i < o.producers; ++i)
    index_of[ids[static_cast<size_t>(i)]] = static_cast<uint64_t>(i);

  MPI_Barrier(comm);
  const uint64_t start = MonoMicros();
  GoneWatch gone(s);
  int failed = 0;
  uint64_t produce_us = 0;

  if (producer) {
    // Batches of records, many appends in flight per producer.
    constexpr uint64_t kBatch = 64;
    std::vector<std::vector<uint8_t>> payloads(kBatch);
    std::vector<Client::Span> spans;
    std::vector<uint64_t> offsets;
    // After each acknowledged batch, every consumer is told how many records
    // of this producer are acknowledged (one send in flight per consumer; a
    // newer count waits for it): if this rank is lost, the consumers still
    // know which of its records must be in the file.
    const size_t nc = static_cast<size_t>(clients - first_consumer);
    std::vector<uint64_t> progress(nc, 0);
    std::vector<MPI_Request> progress_reqs(nc, MPI_REQUEST_NULL);
    auto tell_progress = [&](uint64_t acked) {
      for (size_t k = 0; k < nc; ++k) {
        int flag = 1;
        if (progress_reqs[k] != MPI_REQUEST_NULL)
          MPI_Test(&progress_reqs[k], &flag, MPI_STATUS_IGNORE);
        if (!flag) continue;
        progress[k] = acked;
        MPI_Isend(&progress[k], 1, MPI_UINT64_T, first_consumer + static_cast<int>(k), kTagProgress,
                  comm, &progress_reqs[k]);
      }
    };
    for (uint64_t seq = 0; seq < o.records && !failed; seq += kBatch) {
      uint64_t n = std::min(kBatch, o.records - seq);
      spans.clear();
      for (uint64_t k = 0; k < n; ++k) {
        uint64_t size = RecordSize(o, static_cast<uint64_t>(me), seq + k);
        payloads[k].resize(size);
        FillRecord(o, static_cast<uint64_t>(me), seq + k, payloads[k].data(), size);
        spans.push_back({payloads[k].data(), payloads[k].size()});
      }
      Status a = writer.AppendMany(spans, &offsets);
      // Every N records (rounded up to whole batches) the producer makes what
      // it appended durable: after a crash of the job, the records up to the
      // last fsync that returned are in the file.
      if (a.ok() && o.sync_every != 0 && (seq + n) / o.sync_every != seq / o.sync_every) {
        a = c->Fsync(&*file);
      }
      if (!a.ok()) {
        std::fprintf(stderr, "gfs: producer-consumer: producer %d records %" PRIu64 "..: %s\n", me,
                     seq, a.ToString().c_str());
        failed = 1;
      } else {
        tell_progress(seq + n);
      }
    }
    st = c->Close(&*file);
    if (!st.ok() && !failed) {
      std::fprintf(stderr, "gfs: producer-consumer: producer %d: close: %s\n", me,
                   st.ToString().c_str());
      failed = 1;
    }
    produce_us = MonoMicros() - start;
    // End of stream: tell every consumer (over MPI, not as a record).
    uint64_t done[2] = {static_cast<uint64_t>(failed), writer.next_seq()};
    std::vector<MPI_Request> reqs = progress_reqs;
    std::vector<int> dest;
    for (size_t k = 0; k < nc; ++k) dest.push_back(first_consumer + static_cast<int>(k));
    for (int r = first_consumer; r < clients; ++r) {
      reqs.emplace_back();
      dest.push_back(r);
      MPI_Isend(done, 2, MPI_UINT64_T, r, kTagDone, comm, &reqs.back());
    }
    WaitSends(&reqs, dest, &gone);
  }

  // Consumers: tail the file up to its committed length until every producer
  // said it is done, then read to the end once more.
  uint64_t records = 0, bytes = 0, duplicates = 0, padding = 0, skipped = 0, corrupt = 0,
           missing = 0, unknown = 0, expected = 0, lost_producers = 0, lost_acked = 0;
  // Per producer: acknowledged records (its last progress count), whether
  // it was lost, and how many of its records arrived.
  std::vector<uint64_t> acked(static_cast<size_t>(o.producers), 0);
  std::vector<uint64_t> arrived(static_cast<size_t>(o.producers), 0);
  std::vector<bool> lost(static_cast<size_t>(o.producers), false);
  uint64_t consume_us = 0;
  if (!producer) {
    RecordReader reader(MaxRecordPayload(file->chunk_size));
    std::vector<uint8_t> expect(o.max_size);
    auto check = [&](const RecordView& r) {
      auto it = index_of.find(r.producer);
      if (it == index_of.end()) {
        ++unknown;
        return;
      }
      uint64_t idx = it->second;
      uint64_t n = RecordSize(o, idx, r.seq);
      if (r.seq >= o.records || n != r.size) {
        ++corrupt;
        return;
      }
      FillRecord(o, idx, r.seq, expect.data(), n);
      if (std::memcmp(expect.data(), r.data, n) != 0) ++corrupt;
    };
    int done_count = 0;
    uint64_t produced_failed = 0;
    uint32_t idle_ms = 0;
    std::vector<bool> finished(static_cast<size_t>(o.producers), false);
    while (true) {
      int flag = 0;
      MPI_Status mst;
      MPI_Iprobe(MPI_ANY_SOURCE, kTagProgress, comm, &flag, &mst);
      while (flag) {
        uint64_t n = 0;
        MPI_Recv(&n, 1, MPI_UINT64_T, mst.MPI_SOURCE, kTagProgress, comm, MPI_STATUS_IGNORE);
        uint64_t& a = acked[static_cast<size_t>(mst.MPI_SOURCE)];
        a = std::max(a, n);
        MPI_Iprobe(MPI_ANY_SOURCE, kTagProgress, comm, &flag, &mst);
      }
      MPI_Iprobe(MPI_ANY_SOURCE, kTagDone, comm, &flag, &mst);
      while (flag) {
        uint64_t done[2];
        MPI_Recv(done, 2, MPI_UINT64_T, mst.MPI_SOURCE, kTagDone, comm, MPI_STATUS_IGNORE);
        produced_failed += done[0];
        if (!finished[static_cast<size_t>(mst.MPI_SOURCE)]) {
          finished[static_cast<size_t>(mst.MPI_SOURCE)] = true;
          ++done_count;
        }
        MPI_Iprobe(MPI_ANY_SOURCE, kTagDone, comm, &flag, &mst);
      }
      // A producer the master took as gone will never say it is done: what
      // it had acknowledged (its last progress count) must be in the file.
      for (int i = 0; i < o.producers; ++i) {
        if (finished[static_cast<size_t>(i)] || !gone.Gone(i)) continue;
        finished[static_cast<size_t>(i)] = true;
        lost[static_cast<size_t>(i)] = true;
        ++done_count;
      }
      const bool last = done_count == o.producers;
      uint64_t before = reader.offset();
      auto got = ReadRecordsOnce(c, &*file, &reader, check, last);
      if (!got.ok()) {
        std::fprintf(stderr, "gfs: producer-consumer: consumer %d: %s\n", me,
                     got.status().ToString().c_str());
        failed = 1;
        break;
      }
      if (last) break;
      if (reader.offset() == before) {
        idle_ms = std::min<uint32_t>(idle_ms + 1, 20);
        std::this_thread::sleep_for(std::chrono::milliseconds(idle_ms));
      } else {
        idle_ms = 0;
      }
    }
    if (produced_failed) failed = 1;
    consume_us = MonoMicros() - start;
    for (int i = 0; i < o.producers; ++i) {
      const size_t k = static_cast<size_t>(i);
      // A lost producer's records must be there up to its last acknowledged
      // one; later ones may or may not have landed (at least once, intact).
      const uint64_t must = lost[k] ? acked[k] : o.records;
      for (uint64_t seq = 0; seq < o.records; ++seq) {
        const bool seen = reader.Seen(ids[k], seq);
        if (!seen && seq < must) ++missing;
        if (seen) ++arrived[k];
      }
      if (lost[k]) {
        ++lost_producers;
        lost_acked += acked[k];
        expected += arrived[k];
        std::fprintf(stderr,
                     "gfs: producer-consumer: producer %d (rank %d) was lost after %" PRIu64
                     " acknowledged records; %" PRIu64 " of its records arrived\n",
                     i, s->layout().first_client() + i, acked[k], arrived[k]);
      } else {
        expected += o.records;
      }
    }
    records = reader.records();
    bytes = reader.bytes();
    duplicates = reader.duplicates();
    padding = reader.padding_bytes();
    skipped = reader.skipped_bytes();
    if (missing || corrupt || unknown || records != expected) failed = 1;
    if (me == first_consumer) {
      double secs = Seconds(consume_us);
      double mbs = secs > 0 ? static_cast<double>(bytes) / 1e6 / secs : 0;
      if (o.json) {
        nlohmann::json j{{"file", o.file},
                         {"producers", o.producers},
                         {"consumers", clients - o.producers},
                         {"records", records},
                         {"expected", expected},
                         {"lost_producers", lost_producers},
                         {"lost_acknowledged", lost_acked},
                         {"bytes", bytes},
                         {"duplicates", duplicates},
                         {"padding_bytes", padding},
                         {"skipped_bytes", skipped},
                         {"missing", missing},
                         {"corrupt", corrupt + unknown},
                         {"seconds", secs},
                         {"mb_per_s", mbs},
                         {"ok", failed == 0}};
        std::printf("%s\n",
                    j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      } else {
        std::printf(
            "producer-consumer: %s: %d producers x %" PRIu64
            " records, %d consumer(s)\n"
            "  records:    %" PRIu64 " of %" PRIu64 " (missing %" PRIu64 ", corrupt %" PRIu64
            ")\n"
            "  bytes:      %" PRIu64
            " payload\n"
            "  duplicates: %" PRIu64
            " dropped\n"
            "  padding:    %" PRIu64 " bytes (%" PRIu64
            " skipped in all)\n"
            "  time:       %.3f s, %.1f MB/s\n"
            "  result:     %s\n",
            o.file.c_str(), o.producers, o.records, clients - o.producers, records, expected,
            missing, corrupt + unknown, bytes, duplicates, padding, skipped, secs, mbs,
            failed               ? "FAILED"
            : lost_producers > 0 ? "a producer was lost; every record it acknowledged arrived"
                                 : "every record arrived exactly once");
      }
      std::fflush(stdout);
    }
  }
  (void)produce_us;
  // The verdict: each consumer sends its own (bit 0: a check failed; bit 1:
  // a producer was lost) to every other client; every client waits for the
  // verdict of each consumer that is not gone. Point to point rather than a
  // collective, which would wait for a lost rank for ever.
  int mine = failed ? 1 : 0;
  if (!producer && lost_producers > 0) mine |= 2;
  int verdict = mine;
  if (!producer) {
    std::vector<MPI_Request> reqs;
    std::vector<int> dest;
    for (int r = 0; r < clients; ++r) {
      if (r == me || (r < o.producers && lost[static_cast<size_t>(r)]) || gone.Gone(r)) continue;
      reqs.emplace_back();
      dest.push_back(r);
      MPI_Isend(&mine, 1, MPI_INT, r, kTagVerdict, comm, &reqs.back());
    }
    WaitSends(&reqs, dest, &gone);
  }
  for (int r = first_consumer; r < clients; ++r) {
    if (r == me) continue;
    for (;;) {
      int flag = 0;
      MPI_Iprobe(r, kTagVerdict, comm, &flag, MPI_STATUS_IGNORE);
      if (flag) {
        int v = 0;
        MPI_Recv(&v, 1, MPI_INT, r, kTagVerdict, comm, MPI_STATUS_IGNORE);
        verdict |= v;
        break;
      }
      if (gone.Gone(r)) {
        if (me == 0) {
          std::fprintf(stderr, "gfs: producer-consumer: consumer %d (rank %d) was lost\n", r,
                       s->layout().first_client() + r);
        }
        verdict |= 1;  // its checks never finished
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  return verdict ? 1 : 0;
}

}  // namespace gfs::jobs
