// Errors a user can cause travel as values, never as exceptions.
#pragma once

#include <expected>
#include <string>
#include <utility>

namespace jobhost {

// A failure with a message a user can act on ("what failed: why: what to do").
// Code that must tell failures apart decides by `kind`, never by the text.
struct Error {
  enum class Kind {
    other,
    symbolic_link,  // the path is a symbolic link where only a real file or folder will do
    busy,           // another holder has it now: try again later (not a failure to log)
  };
  std::string message;
  Kind kind = Kind::other;
};

template <class T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> fail(std::string message) {
  return std::unexpected<Error>(Error{std::move(message)});
}

inline std::unexpected<Error> fail(Error::Kind kind, std::string message) {
  return std::unexpected<Error>(Error{std::move(message), kind});
}

}  // namespace jobhost
