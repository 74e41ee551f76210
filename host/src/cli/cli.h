// The `jobhost` command line: one binary, one subcommand per verb (docs/cli.md).
#pragma once

namespace jobhost::cli {

// Exit codes every subcommand follows.
inline constexpr int kExitOk = 0;           // ok
inline constexpr int kExitFailed = 1;       // the thing asked about failed or is invalid
inline constexpr int kExitUsage = 2;        // usage error
inline constexpr int kExitUnreachable = 3;  // the daemon is not reachable
inline constexpr int kExitNoAnswer = 4;  // the daemon took the request but did not answer in time

// Parses argv, runs the subcommand, returns the process exit code.
int run_cli(int argc, char** argv);

}  // namespace jobhost::cli
