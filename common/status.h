// Status and Result<T>: the error type returned by every fallible call in the
// storage path. A Status carries a code (also sent on the wire, see
// doc/wire-format.md) and a one-line human message.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

namespace gfs {

// Wire values: never renumber, only append.
enum class Code : uint16_t {
  kOk = 0,
  kNotFound = 1,
  kAlreadyExists = 2,
  kInvalidArgument = 3,
  kIOError = 4,
  kCorruption = 5,
  kTimeout = 6,
  kUnavailable = 7,
  kNotADirectory = 8,
  kIsADirectory = 9,
  kNotEmpty = 10,
  kNoSpace = 11,
  kStaleVersion = 12,
  kNotPrimary = 13,
  kDataMissing = 14,
  kProtocol = 15,
  kInternal = 16,
  kBusy = 17,
  kRetryNextChunk = 18,
  kTooLarge = 19,
  kNotMaster = 20,   // this master-group rank is not (or no longer) the master
  kStaleEpoch = 21,  // the sender's master epoch is older than the receiver's
  kWrongStore = 22,  // a data directory of another store (another store identity)
};

const char* CodeName(Code c);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string msg) : code_(code), msg_(std::move(msg)) {}

  static Status OK() { return Status(); }
  static Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
  static Status AlreadyExists(std::string m) { return {Code::kAlreadyExists, std::move(m)}; }
  static Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
  static Status IOError(std::string m) { return {Code::kIOError, std::move(m)}; }
  static Status Corruption(std::string m) { return {Code::kCorruption, std::move(m)}; }
  static Status Timeout(std::string m) { return {Code::kTimeout, std::move(m)}; }
  static Status Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
  static Status NoSpace(std::string m) { return {Code::kNoSpace, std::move(m)}; }
  static Status Protocol(std::string m) { return {Code::kProtocol, std::move(m)}; }
  static Status Internal(std::string m) { return {Code::kInternal, std::move(m)}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return msg_; }
  // "not found: /x" style; "ok" for success.
  std::string ToString() const;

 private:
  Code code_ = Code::kOk;
  std::string msg_;
};

// Result<T>: a value or a non-ok Status. Nothing in the API throws.
// Ends the process: a Result's value was asked for but it holds an error.
[[noreturn]] void ResultHasNoValue(const Status& s);

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}          // NOLINT(implicit)
  Result(Status status) : status_(std::move(status)) {}  // NOLINT(implicit)

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  // The value; asking for it on an error ends the process with the error's
  // text (a bug in the caller, never undefined behaviour).
  T& value() { return Checked(); }
  const T& value() const { return Checked(); }
  T& operator*() { return Checked(); }
  const T& operator*() const { return Checked(); }
  T* operator->() { return &Checked(); }
  const T* operator->() const { return &Checked(); }

 private:
  T& Checked() {
    if (!value_) ResultHasNoValue(status_);
    return *value_;
  }
  const T& Checked() const {
    if (!value_) ResultHasNoValue(status_);
    return *value_;
  }

  Status status_;
  std::optional<T> value_;
};

#define GFS_RETURN_IF_ERROR(expr) \
  do {                            \
    ::gfs::Status _st = (expr);   \
    if (!_st.ok()) return _st;    \
  } while (0)

}  // namespace gfs
