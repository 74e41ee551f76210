// Internal: turns an SQLite result code into words a user can act on.
#pragma once

#include <string>
#include <string_view>

namespace jobhost::ledger {

// "<what the problem is>: <what to do>" for SQLite (extended) result `code`;
// `sqlite_message` is kept for codes without a better explanation.
std::string explain_sqlite_error(int code, std::string_view sqlite_message);

}  // namespace jobhost::ledger
