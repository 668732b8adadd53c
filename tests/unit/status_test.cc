// Status and Result: a Result's value asked for on an error stops the
// process with the error's text instead of reading an empty optional.
#include "common/status.h"

#include <gtest/gtest.h>

#include <string>

namespace gfs {
namespace {

TEST(Result, HoldsAValueOrAStatus) {
  Result<std::string> good(std::string("abc"));
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, "abc");
  EXPECT_EQ(good->size(), 3u);
  Result<std::string> bad(Status::NotFound("no such file"));
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kNotFound);
}

TEST(ResultDeathTest, UsingTheValueOfAnErrorStopsWithItsText) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Result<int> bad(Status::Timeout("no reply within the request deadline"));
  EXPECT_DEATH((void)*bad, "holds an error: .*no reply within the request deadline");
  Result<std::string> bad2(Status::IOError("disk"));
  EXPECT_DEATH((void)bad2->size(), "holds an error: .*disk");
}

}  // namespace
}  // namespace gfs
