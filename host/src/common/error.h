// Errors a user can cause travel as values, never as exceptions.
#pragma once

#include <expected>
#include <string>
#include <utility>

namespace jobhost {

// A failure with a message a user can act on ("what failed: why: what to do").
struct Error {
  std::string message;
};

template <class T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> fail(std::string message) {
  return std::unexpected<Error>(Error{std::move(message)});
}

}  // namespace jobhost
