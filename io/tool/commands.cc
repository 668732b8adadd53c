#include "io/tool/commands.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/log.h"
#include "io/h5/export.h"
#include "io/record_io.h"
#include "io/tool/admin.h"
#include "io/tool/interrupt.h"
#include "io/tool/listing.h"
#include "io/tool/output.h"
#include "io/tool/transfer.h"
#include "jobs/producer_consumer.h"

namespace gfs::tool {
namespace {

Result<uint64_t> SizeValue(const CommandArgs& a, const char* name, uint64_t def) {
  const std::string* v = a.Value(name);
  if (v == nullptr) return def;
  return ParseSize(name, *v);
}

}  // namespace

void SetLogLevel(int verbosity) {
  log::SetLevel(verbosity < 0   ? log::Level::kError
                : verbosity > 0 ? log::Level::kDebug
                                : log::Level::kWarn);
}

int RunCommand(Client* c, const JobConfig& job, const CommandSpec& spec, const CommandArgs& a) {
  const std::string cmd = spec.name;
  const auto& p = a.positional;
  std::string err_path;
  Status s;
  int code = 0;
  if (cmd == "put") {
    std::string remote = p[1];
    auto st = c->Stat(remote);
    if (st.ok() && st->is_dir) remote = Join(remote, BaseName(p[0] == "-" ? "stdin" : p[0]));
    struct stat ls;
    if (p[0] != "-" && ::stat(p[0].c_str(), &ls) == 0 && S_ISDIR(ls.st_mode) &&
        !a.Flag("recursive")) {
      err_path = p[0];
      s = Status(Code::kIsADirectory, "use put -r");
    } else {
      s = PutTree(c, job, p[0], remote, a.Flag("force"), &err_path);
    }
  } else if (cmd == "get") {
    std::string local = p[1];
    struct stat ls;
    if (local != "-" && ::stat(local.c_str(), &ls) == 0 && S_ISDIR(ls.st_mode)) {
      local = Join(local, BaseName(p[0]));
    }
    s = GetTree(c, job, p[0], local, a.Flag("recursive"), a.Flag("force"), &err_path);
  } else if (cmd == "cat") {
    for (const std::string& path : p) {
      s = GetTree(c, job, path, "-", false, false, &err_path);
      if (!s.ok()) break;
    }
  } else if (cmd == "head" || cmd == "tail") {
    err_path = p[0];
    auto bytes = SizeValue(a, "bytes", 1024);
    s = bytes.status();
    if (s.ok() && cmd == "head") s = Head(c, p[0], *bytes);
    if (s.ok() && cmd == "tail") {
      const std::string* n = a.Value("lines");
      s = Tail(c, p[0], *bytes, n ? std::stoull(*n) : 0, n != nullptr);
    }
  } else if (cmd == "ls") {
    LsOptions o{a.Flag("recursive"), a.Flag("long"), a.Flag("human"), a.Flag("json"),
                a.Flag("all")};
    Json out = Json::array();
    for (const std::string& path : p.empty() ? std::vector<std::string>{"/"} : p) {
      err_path = path;
      s = Ls(c, path, o, &out);
      if (!s.ok()) break;
    }
    if (s.ok() && o.json) PrintJson(out);
  } else if (cmd == "stat") {
    err_path = p[0];
    auto st = c->Stat(p[0]);
    s = st.status();
    if (st.ok()) {
      FileStat f = *st;
      f.path = p[0];
      if (a.Flag("json")) {
        PrintJson(StatJson(f));
      } else {
        std::printf("path: %s\ntype: %s\nsize: %" PRIu64 "\n", Shown(f.path).c_str(),
                    f.is_dir ? "dir" : "file", f.size);
        if (!f.is_dir) {
          std::printf("replication: %u\nchunk_size: %" PRIu64 "\nchunks: %u\nmtime_ms: %" PRId64
                      "\n",
                      f.replication, f.chunk_size, f.chunks, f.mtime_ms);
        }
      }
    }
  } else if (cmd == "du" || cmd == "count") {
    const bool human = a.Flag("human"), json = a.Flag("json");
    Json out = Json::array();
    for (const std::string& path : p.empty() ? std::vector<std::string>{"/"} : p) {
      err_path = path;
      auto st = c->Stat(path);
      s = st.status();
      if (!s.ok()) break;
      std::vector<FileStat> items;
      if (cmd == "count" || a.Flag("summary") || !st->is_dir) {
        FileStat f = *st;
        f.path = path;
        items.push_back(f);
      } else {
        bool is_dir = false;
        auto e = Entries(c, path, &is_dir);
        s = e.status();
        if (!s.ok()) break;
        items = *e;
      }
      for (const FileStat& f : items) {
        Usage u;
        s = Walk(c, f, f.path, &u);
        if (!s.ok()) break;
        if (json && cmd == "du") {
          out.push_back(Json{{"path", f.path}, {"size", u.size}, {"space_consumed", u.space}});
        } else if (json) {
          out.push_back(Json{
              {"path", f.path}, {"directories", u.dirs}, {"files", u.files}, {"size", u.size}});
        } else if (cmd == "du") {
          std::printf("%-12s %-12s %s\n", Size(u.size, human).c_str(), Size(u.space, human).c_str(),
                      Shown(f.path).c_str());
        } else {
          std::printf("%12" PRIu64 " %12" PRIu64 " %12s %s\n", u.dirs, u.files,
                      Size(u.size, human).c_str(), Shown(f.path).c_str());
        }
      }
      if (!s.ok()) break;
      if (cmd == "du") {
        // What the trash holds of PATH (the deleted entries of the
        // directory, or deletions of the file): one more line, "(trash)".
        auto trash = TrashOf(c, path, st->is_dir, false);
        s = trash.status();
        if (!s.ok()) break;
        Usage u;
        for (const TrashEntry& t : *trash) {
          s = Walk(c, t.stat, t.trash_path, &u);
          if (!s.ok()) break;
        }
        if (!s.ok()) break;
        if (trash->empty()) continue;
        if (json) {
          out.push_back(
              Json{{"path", path}, {"size", u.size}, {"space_consumed", u.space}, {"trash", true}});
        } else {
          std::printf("%-12s %-12s %s (trash)\n", Size(u.size, human).c_str(),
                      Size(u.space, human).c_str(), Shown(path).c_str());
        }
      }
    }
    if (s.ok() && json) PrintJson(out);
  } else if (cmd == "df") {
    code = Df(c, job, a, &s);
  } else if (cmd == "test") {
    auto st = c->Stat(p[0]);
    if (!st.ok() &&
        (st.status().code() == Code::kNotFound || st.status().code() == Code::kNotADirectory)) {
      return 1;
    }
    err_path = p[0];
    s = st.status();
    if (s.ok()) {
      bool yes = a.Flag("exists") || (a.Flag("dir") && st->is_dir) ||
                 (a.Flag("file") && !st->is_dir) ||
                 (a.Flag("zero") && !st->is_dir && st->size == 0);
      return yes ? 0 : 1;
    }
  } else if (cmd == "mkdir") {
    for (const std::string& path : p) {
      err_path = path;
      s = c->Mkdir(path, a.Flag("parents"));
      if (!s.ok()) break;
    }
  } else if (cmd == "touchz") {
    for (const std::string& path : p) {
      err_path = path;
      auto st = c->Stat(path);
      if (st.ok()) {
        if (st->is_dir) s = Status(Code::kIsADirectory, path);
        if (!st->is_dir && st->size > 0) s = Status(Code::kAlreadyExists, "not a zero-length file");
      } else if (st.status().code() == Code::kNotFound) {
        CreateOptions opts;
        opts.replication = job.replication;
        auto f = c->Create(path, opts);
        s = f.status();
        if (s.ok()) s = c->Close(&*f);
      } else {
        s = st.status();
      }
      if (!s.ok()) break;
    }
  } else if (cmd == "rm") {
    for (const std::string& path : p) {
      err_path = path;
      s = c->Trash(path, a.Flag("recursive"), a.Flag("skip-trash")).status();
      if (s.code() == Code::kNotFound && a.Flag("force")) s = Status::OK();
      if (s.code() == Code::kNotEmpty) s = Status(Code::kNotEmpty, "use rm -r");
      if (!s.ok()) break;
    }
  } else if (cmd == "undelete") {
    for (const std::string& path : p) {
      err_path = path;
      auto r = c->Undelete(path);
      s = r.status();
      if (!s.ok()) break;
      std::printf("%s restored (deleted %s)\n", Shown(path).c_str(),
                  TimeText(r->deleted_ms).c_str());
    }
  } else if (cmd == "expunge") {
    auto r = c->Expunge(a.Flag("all"));
    s = r.status();
    if (s.ok() && a.Flag("json")) {
      PrintJson(Json{{"trash_removed", r->trash_removed},
                     {"temporaries_removed", r->temps_removed},
                     {"chunks_deleted", r->chunks_deleted},
                     {"orphans_deleted", r->orphans_deleted}});
    } else if (s.ok()) {
      std::printf("removed %" PRIu64 " trash directories and %" PRIu64
                  " left-over temporaries; chunkservers deleted %" PRIu64 " replicas (%" PRIu64
                  " known to no file)\n",
                  r->trash_removed, r->temps_removed, r->chunks_deleted, r->orphans_deleted);
    }
  } else if (cmd == "mv" || cmd == "cp") {
    std::string dst = p[1];
    auto st = c->Stat(dst);
    if (st.ok() && st->is_dir) dst = Join(dst, BaseName(p[0]));
    err_path = p[0];
    if (cmd == "mv") {
      s = c->Rename(p[0], dst);
    } else if (dst == p[0] || dst.rfind(p[0] + "/", 0) == 0) {
      s = Status::InvalidArgument("cannot copy " + p[0] + " into itself");
    } else {
      s = CopyTree(c, job, p[0], dst, a.Flag("force"), &err_path);
    }
  } else if (cmd == "snapshot") {
    err_path = p[0];
    if (c->Stat(p[1]).ok()) {
      err_path = p[1];
      s = Status::AlreadyExists("the snapshot's destination exists");
    } else {
      s = c->Snapshot(p[0], p[1]);
      if (s.code() == Code::kAlreadyExists) err_path = p[1];
    }
  } else if (cmd == "write") {
    err_path = p[0];
    auto off = ParseOffset(p[1]);
    std::vector<uint8_t> data;
    s = off.status();
    if (s.ok()) {
      s = ReadLocal(p[2], &data);
      if (!s.ok()) err_path = p[2];
    }
    if (s.ok()) {
      CreateOptions opts;
      opts.exclusive = false;
      auto f = c->Create(p[0], opts);
      s = f.status();
      if (s.ok()) s = c->Write(&*f, *off, data.data(), data.size());
      if (s.ok()) s = c->Close(&*f);
    }
  } else if (cmd == "append") {
    err_path = p[0];
    std::vector<uint8_t> data;
    s = ReadLocal(p[1], &data);
    if (!s.ok()) err_path = p[1];
    Result<File> f = Status::Internal("unset");
    if (s.ok()) {
      CreateOptions opts;
      opts.exclusive = false;
      f = c->Create(p[0], opts);
      s = f.status();
    }
    if (s.ok()) {
      RecordWriter w(c, &*f);
      auto off = w.Append(data.data(), data.size());
      s = off.status();
      if (s.ok()) s = c->Close(&*f);
      if (s.ok()) std::printf("%" PRIu64 "\n", *off);
    }
  } else if (cmd == "records") {
    err_path = p[0];
    auto f = c->Open(p[0]);
    s = f.status();
    if (s.ok()) {
      RecordReader reader(MaxRecordPayload(f->chunk_size));
      uint64_t n = 0;
      const bool json = a.Flag("json");
      // JSON: one array, written as the records come (a log may hold millions).
      if (json) std::printf("[");
      auto end = ReadRecordsOnce(
          c, &*f, &reader,
          [&n, json](const RecordView& r) {
            if (json) {
              std::printf("%s%s", n ? "," : "",
                          Json{{"producer", r.producer}, {"sequence", r.seq}, {"length", r.size}}
                              .dump()
                              .c_str());
            } else {
              std::printf("%" PRIu64 " %" PRIu64 " %" PRIu32 "\n", r.producer, r.seq, r.size);
            }
            ++n;
          },
          true);
      if (json) std::printf("]\n");
      s = end.status();
      if (s.ok() && n == 0) {
        s = Status::InvalidArgument("not a record log: no valid record in its " +
                                    std::to_string(*end) + " bytes");
      }
    }
  } else if (cmd == "format") {
    // The job started with every role's directory discarded (-f) or as it
    // was: either way the store must be empty now.
    auto r = c->Report();
    s = r.status();
    std::vector<FileStat> top;
    if (s.ok()) {
      auto l = c->List("/");
      s = l.status();
      if (s.ok()) top = *l;
    }
    if (s.ok() && (r->chunks > 0 || !top.empty())) {
      s = Status(Code::kAlreadyExists, "the store holds " + std::to_string(top.size()) +
                                           " entries under / and " + std::to_string(r->chunks) +
                                           " chunks; 'gfs format -f' discards them");
    }
    if (s.ok()) {
      std::printf("store %016" PRIx64 " in %s is empty and ready\n", r->store_id,
                  job.data_dir.c_str());
    }
  } else if (cmd == "report") {
    code = Report(c, job, a, &s);
  } else if (cmd == "setrep") {
    code = Setrep(c, a, &s, &err_path);
  } else if (cmd == "balance") {
    code = Balance(c, job, a, &s);
  } else if (cmd == "fsck") {
    std::string path = p.empty() ? "/" : p[0];
    err_path = path;
    uint64_t wait_s = 0;
    if (const std::string* w = a.Value("wait")) wait_s = std::stoull(*w);
    const uint64_t until = MonoMicros() + wait_s * 1000000;
    bool verify = a.Flag("verify");
    for (;;) {
      auto r = c->Fsck(path, verify);
      s = r.status();
      if (!s.ok()) break;
      verify = false;  // verified once; later rounds watch replication
      FsckTotals t = CountFsck(r->files);
      if ((t.under == 0 && t.missing == 0) || MonoMicros() >= until || Interrupted()) {
        std::map<int32_t, ServerReport> names;
        if (auto rep = c->Report(); rep.ok()) {
          for (const ServerReport& sv : rep->servers) names[sv.rank] = sv;
        }
        code = PrintFsck(*r, names, JobTopology(job), a.Flag("json"), a.Flag("locations"));
        std::fflush(stdout);
        return code;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  } else if (cmd == "h5export") {
    err_path = p[0];
    const std::string* ds = a.Value("dataset");
    h5::ExportSummary sum;
    s = h5::ExportPacketTable(c, p[0], p[1], ds ? *ds : h5::kDefaultExportDataset, &sum);
    if (s.ok()) {
      std::printf("%s: %" PRIu64 " packets of %" PRIu64 " bytes into %s\n", Shown(p[0]).c_str(),
                  sum.packets, sum.packet_size, Shown(p[1]).c_str());
    }
  } else {
    s = Status::InvalidArgument("unknown command");
  }
  std::fflush(stdout);
  if (s.ok()) return code;
  PrintError(cmd, err_path, s);
  if (Interrupted()) return 128 + Interrupted();
  return 1;
}

namespace {

Result<uint64_t> ParseCount(const std::string& name, const std::string& text, uint64_t min) {
  auto v = ParseInt(name, text, static_cast<int64_t>(min), INT64_MAX);
  if (!v.ok()) return v.status();
  return static_cast<uint64_t>(*v);
}

Result<jobs::ProducerConsumerOptions> PcOptions(const CommandArgs& a, const JobConfig& job,
                                                int clients) {
  jobs::ProducerConsumerOptions o;
  if (!a.Value("file"))
    return Status::InvalidArgument("producer-consumer: --file PATH is required");
  o.file = *a.Value("file");
  if (o.file.empty() || o.file[0] != '/') {
    return Status::InvalidArgument("producer-consumer: --file '" + OneLine(o.file, 200) +
                                   "': paths in the store are absolute (start with /)");
  }
  for (const char* req : {"producers", "records"}) {
    if (!a.Value(req)) {
      return Status::InvalidArgument(std::string("producer-consumer: --") + req + " is required");
    }
  }
  auto p = ParseInt("producers", *a.Value("producers"), 1, 1 << 20);
  if (!p.ok()) return p.status();
  o.producers = static_cast<int>(*p);
  auto m = ParseCount("records", *a.Value("records"), 1);
  if (!m.ok()) return m.status();
  o.records = *m;
  struct {
    const char* name;
    uint64_t* out;
  } optional[] = {{"min-size", &o.min_size},
                  {"max-size", &o.max_size},
                  {"seed", &o.seed},
                  {"sync-every", &o.sync_every}};
  for (const auto& opt : optional) {
    if (const std::string* v = a.Value(opt.name)) {
      auto n = ParseCount(opt.name, *v, 0);
      if (!n.ok()) return n.status();
      *opt.out = *n;
    }
  }
  o.json = a.Flag("json");
  if (o.min_size > o.max_size) {
    return Status::InvalidArgument("producer-consumer: --min-size is larger than --max-size");
  }
  uint64_t limit = MaxRecordPayload(job.chunk_size);
  if (o.max_size > limit) {
    return Status::InvalidArgument("producer-consumer: --max-size " + std::to_string(o.max_size) +
                                   " is over the largest record payload for " +
                                   std::to_string(job.chunk_size) + "-byte chunks (" +
                                   std::to_string(limit) + " bytes)");
  }
  if (clients > 0 && o.producers >= clients) {
    return Status::InvalidArgument("producer-consumer: --producers " + std::to_string(o.producers) +
                                   " leaves no consumer among " + std::to_string(clients) +
                                   " clients (use --clients " + std::to_string(o.producers + 1) +
                                   " or more)");
  }
  return o;
}

}  // namespace

Status ValidateCommand(const CommandSpec& spec, const CommandArgs& args, const JobConfig& job,
                       int clients) {
  std::string name = spec.name;
  if (name == "producer-consumer") return PcOptions(args, job, clients).status();
  if (name == "write") return ParseOffset(args.positional[1]).status();
  if (name == "setrep") {
    auto r = ParseInt("replication", args.positional[0], 1, 64);
    if (!r.ok()) {
      return Status::InvalidArgument("setrep: replication '" + OneLine(args.positional[0], 60) +
                                     "' is not a number 1..64");
    }
  }
  if (name == "balance" && args.Value("wait")) {
    return ParseInt("wait", *args.Value("wait"), 0, 86400).status();
  }
  if (name == "fsck" && args.Value("wait")) {
    return ParseInt("wait", *args.Value("wait"), 0, 86400).status();
  }
  if (name == "head" || name == "tail") {
    if (const std::string* b = args.Value("bytes")) {
      auto v = ParseSize("bytes", *b);
      if (!v.ok()) return Status::InvalidArgument(name + ": " + v.status().message());
    }
  }
  if (name == "tail") {
    if (args.Flag("follow")) {
      return Status::InvalidArgument(
          "tail: -f needs a running service to follow a file while another job writes it; "
          "each gfs command is a job of its own, so -f is not available yet");
    }
    if (args.Value("lines") && args.Value("bytes")) {
      return Status::InvalidArgument("tail: -n and -c contradict each other");
    }
    if (const std::string* n = args.Value("lines")) {
      auto v = ParseInt("lines", *n, 0, 1ll << 40);
      if (!v.ok()) return Status::InvalidArgument("tail: " + v.status().message());
    }
  }
  if (name == "test") {
    int n = args.Flag("exists") + args.Flag("dir") + args.Flag("file") + args.Flag("zero");
    if (n != 1) {
      return Status::InvalidArgument(
          "test: give exactly one of -e, -d, -f, -z (see gfs test --help)");
    }
  }
  return Status::OK();
}

int RunJob(Session* s, const JobConfig& job, const CommandSpec& spec, const CommandArgs& args) {
  auto o = PcOptions(args, job, s->num_clients());
  if (std::string(spec.name) != "producer-consumer" || !o.ok()) {
    if (s->client_index() == 0) {
      std::fprintf(stderr, "gfs: %s\n", o.ok() ? "unknown job" : o.status().message().c_str());
    }
    return 2;
  }
  return jobs::RunProducerConsumer(s, *o);
}

}  // namespace gfs::tool
