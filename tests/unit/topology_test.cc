// The topology file: `HOST RACK` lines, comments, errors naming the line, and
// a host not listed being a rack of its own.
#include "common/topology.h"

#include <gtest/gtest.h>

namespace gfs {
namespace {

TEST(Topology, ParsesPairsCommentsAndBlankLines) {
  auto t = Topology::Parse("# racks\nh0 rack0\n\n  h1\track1  # second\nh2 rack0\n", "f");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->hosts(), 3u);
  EXPECT_EQ(t->RackOf("h0"), "rack0");
  EXPECT_EQ(t->RackOf("h1"), "rack1");
  EXPECT_EQ(t->RackOf("h2"), "rack0");
}

TEST(Topology, AHostNotListedIsARackOfItsOwn) {
  Topology none;
  EXPECT_EQ(none.RackOf("node7"), "node7");
  EXPECT_EQ(none.RackOf(""), "");
  auto t = Topology::Parse("h0 r0\n", "f");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->RackOf("h9"), "h9");
}

TEST(Topology, BadLinesAreNamed) {
  auto one = Topology::Parse("h0 r0\nh1\n", "topo");
  ASSERT_FALSE(one.ok());
  EXPECT_NE(one.status().message().find("topo:2"), std::string::npos) << one.status().ToString();
  auto three = Topology::Parse("h0 r0 extra\n", "topo");
  EXPECT_FALSE(three.ok());
  auto twice = Topology::Parse("h0 r0\nh0 r1\n", "topo");
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.status().message().find("h0"), std::string::npos);
  // The same pair twice is harmless.
  EXPECT_TRUE(Topology::Parse("h0 r0\nh0 r0\n", "topo").ok());
}

TEST(Topology, AMissingFileIsAnIoError) {
  auto t = Topology::Load("/nonexistent/topology");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), Code::kIOError);
}

}  // namespace
}  // namespace gfs
