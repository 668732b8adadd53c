#include "common/status.h"

#include <cstdio>
#include <cstdlib>

namespace gfs {

const char* CodeName(Code c) {
  switch (c) {
    case Code::kOk:
      return "ok";
    case Code::kNotFound:
      return "no such file or directory";
    case Code::kAlreadyExists:
      return "already exists";
    case Code::kInvalidArgument:
      return "invalid argument";
    case Code::kIOError:
      return "I/O error";
    case Code::kCorruption:
      return "corruption";
    case Code::kTimeout:
      return "timed out";
    case Code::kUnavailable:
      return "unavailable";
    case Code::kNotADirectory:
      return "not a directory";
    case Code::kIsADirectory:
      return "is a directory";
    case Code::kNotEmpty:
      return "directory not empty";
    case Code::kNoSpace:
      return "no space";
    case Code::kStaleVersion:
      return "stale chunk version";
    case Code::kNotPrimary:
      return "not the primary";
    case Code::kDataMissing:
      return "pushed data missing";
    case Code::kProtocol:
      return "protocol error";
    case Code::kInternal:
      return "internal error";
    case Code::kBusy:
      return "busy";
    case Code::kRetryNextChunk:
      return "retry on next chunk";
    case Code::kTooLarge:
      return "too large";
    case Code::kNotMaster:
      return "not the master";
    case Code::kStaleEpoch:
      return "stale master epoch";
    case Code::kWrongStore:
      return "wrong store";
  }
  return "unknown error";
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  if (msg_.empty()) return CodeName(code_);
  return std::string(CodeName(code_)) + ": " + msg_;
}

void ResultHasNoValue(const Status& s) {
  std::fprintf(stderr, "gfs: a Result's value was used, but it holds an error: %s\n",
               s.ToString().c_str());
  std::abort();
}

}  // namespace gfs
