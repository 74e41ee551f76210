// A plugin probe (catalog/probe.h) that does not block the event loop: the
// child's report pipe and its pidfd are waited on through the io_context,
// with a timer for the timeout. The verdict comes from the same pure
// interpret_probe_report() as the blocking probe().
#pragma once

#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <functional>
#include <string>

#include "catalog/probe.h"
#include "common/time.h"

namespace jobhost::reload {

// Probes `so` in a child and calls `done` once, from io's thread, with the
// result (reasons name `shown_name`). The child is always reaped (waitpid on
// its own pid only: the executor's children are not touched). If io stops
// first, the child dies with the host (PR_SET_PDEATHSIG).
void probe_async(boost::asio::io_context& io, const std::filesystem::path& so, Duration timeout,
                 std::string shown_name, std::function<void(catalog::ProbeResult)> done);

}  // namespace jobhost::reload
