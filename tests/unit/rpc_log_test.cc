// The RPC log (mpi/protocol/rpc_log.h): one line per message with its
// envelope and size, never its body; rolled by size; the latest in memory.
#include "mpi/protocol/rpc_log.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "mpi/protocol/messages.h"
#include "mpi/protocol/wire.h"

namespace gfs {
namespace {

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class RpcLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/gfs-rpclog-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

Buffer Encoded(const MkdirReq& r, uint64_t id) {
  Header h;
  h.type = static_cast<uint16_t>(MsgType::kMkdir);
  h.id = id;
  h.deadline_ms = 500;
  return EncodeMessage(h, r);
}

TEST_F(RpcLogTest, OneLinePerMessageWithItsEnvelopeAndNoBody) {
  {
    RpcLog log(dir_, 1 << 20);
    MkdirReq r;
    r.path = "/secret-name-in-the-body";
    Buffer b = Encoded(r, 42);
    log.Note(false, 7, b->data(), b->size());
    log.Note(true, 7, b->data(), b->size());
    const uint8_t junk[3] = {1, 2, 3};
    log.Note(false, 9, junk, sizeof junk);
    auto recent = log.Recent();
    ASSERT_EQ(recent.size(), 3u);
    EXPECT_NE(recent[0].find("in  req   mkdir from 7 id=42"), std::string::npos) << recent[0];
    EXPECT_NE(recent[0].find("deadline_ms=500"), std::string::npos) << recent[0];
    EXPECT_NE(recent[1].find("out req   mkdir to 7 id=42"), std::string::npos) << recent[1];
    EXPECT_NE(recent[2].find("3 bytes, not a message"), std::string::npos) << recent[2];
  }  // the destructor writes what is queued
  const std::string text = Slurp(dir_ + "/rpc.log");
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 3);
  EXPECT_EQ(text.find("secret-name"), std::string::npos) << "a body reached the log";
}

TEST_F(RpcLogTest, RollsBySizeAndKeepsTheLatestInMemory) {
  MkdirReq r;
  r.path = "/d";
  Buffer b = Encoded(r, 1);
  {
    RpcLog log(dir_, 8192, 4);  // rolls past 4 KiB
    for (int i = 0; i < 400; ++i) log.Note(false, 1, b->data(), b->size());
    EXPECT_EQ(log.Recent().size(), 4u);
  }
  const auto size = [&](const std::string& f) {
    std::error_code ec;
    auto n = std::filesystem::file_size(dir_ + "/" + f, ec);
    return ec ? 0 : n;
  };
  EXPECT_GT(size("rpc.log.1"), 0u) << "it never rolled";
  EXPECT_LE(size("rpc.log") + size("rpc.log.1"), 8192u + 4096u);
}

TEST_F(RpcLogTest, OffWritesNoFile) {
  MkdirReq r;
  Buffer b = Encoded(r, 1);
  {
    RpcLog log(dir_, 0);
    log.Note(false, 1, b->data(), b->size());
    EXPECT_EQ(log.Recent().size(), 1u);
  }
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/rpc.log"));
}

}  // namespace
}  // namespace gfs
