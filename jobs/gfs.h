// gfs-mpi public API, embedding: installed as <gfs/gfs.h> (and
// <gfs/jobs/gfs.h>); link gfs::gfs_client. The role split itself is in
// jobs/roles.h, over Transport and Collective; Init (jobs/session.cc) does
// the MPI set-up around it.
//
// A user's MPI program hosts the whole store: after MPI_Init it calls
// gfs::Init, which splits MPI_COMM_WORLD into storage ranks and application
// ranks. Storage ranks (master, shadows, chunkservers) serve inside Init until
// every application rank has called gfs::Finalize; application ranks get a
// Client and their own communicator (like dedicated I/O ranks):
//
//   MPI_Init(&argc, &argv);
//   gfs::JobConfig cfg;            // data_dir, chunkservers, replication, ...
//   gfs::Session s;
//   gfs::Status st = gfs::Init(MPI_COMM_WORLD, cfg, &s);
//   if (st.ok() && s.is_client()) {
//     auto f = s.client()->Create("/out/data.bin");
//     st = f.status();
//     if (st.ok()) st = s.client()->Write(&*f, 0, buf, n);
//     if (st.ok()) st = s.client()->Close(&*f);
//     MPI_Barrier(s.app_comm());
//   }
//   gfs::Status done = gfs::Finalize(&s, st.ok() ? 0 : 1);
//   MPI_Finalize();
//
// Rank layout: rank 0 master, ranks 1..S shadows, then K chunkservers, then
// the clients (see JobConfig and doc/options.md). Every call returns a Status
// or Result, both [[nodiscard]]; nothing throws through the API.
#pragma once

#include <mpi.h>

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "io/client.h"
#include "mpi/protocol/config.h"

namespace gfs {

enum class Role { kMaster, kShadow, kChunkserver, kClient };
const char* RoleName(Role r);

class MpiTransport;

class Session {
 public:
  Session();
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  Role role() const { return role_; }
  bool is_client() const { return role_ == Role::kClient; }
  // For clients: the Client and this rank's index among clients (0-based).
  Client* client() { return client_.get(); }
  int client_index() const { return client_index_; }
  int num_clients() const { return layout_.clients; }
  // For clients: a communicator of the client ranks only.
  MPI_Comm app_comm() const { return app_comm_; }
  const RoleLayout& layout() const { return layout_; }
  int world_rank() const { return world_rank_; }

 private:
  friend Status Init(MPI_Comm, const JobConfig&, Session*);
  friend Status Finalize(Session*, int);
  Role role_ = Role::kClient;
  RoleLayout layout_;
  int world_rank_ = -1;
  int client_index_ = -1;
  MPI_Comm app_comm_ = MPI_COMM_NULL;
  JobConfig cfg_;
  std::unique_ptr<MpiTransport> transport_;
  std::unique_ptr<Client> client_;
  bool finalized_ = false;
};

// Works out the rank layout for a job of `world` ranks. Unset (-1) counts
// are derived: chunkservers = world - 2 - shadows (one client), clients =
// the rest. Errors name the problem in one line.
Result<RoleLayout> ComputeLayout(int world, const JobConfig& cfg);

// Splits `world` into roles. Collective over `world`. Storage ranks return
// when the job ends (their Status says whether they served cleanly); client
// ranks return at once with a ready Client. A failure that every rank sees
// (bad layout, data directory locked by another job) returns the same error
// on every rank.
Status Init(MPI_Comm world, const JobConfig& cfg, Session* s);

// Clients: tells the master this client is done (the storage ranks stop once
// all clients are), then frees the client's resources. Storage ranks: frees
// resources. Call before MPI_Finalize.
Status Finalize(Session* s, int status);

}  // namespace gfs
