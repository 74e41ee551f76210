// One control-socket request as the server answers it (control.h), without
// the socket: for the server itself, its tests and the fuzz target
// (fuzz/targets/control_request.cpp).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "daemon/control.h"

namespace jobhost::daemon {

// The line the server sends back for `reply`: its JSON and a newline; bytes
// that are not UTF-8 in its strings are sent as U+FFFD. Never throws.
std::string reply_line(const nlohmann::json& reply);

// Parses `line` (one JSON object, without its newline), sets its "peer" to
// `peer` (replacing what the client sent) and hands it to `handler`. A line
// that is not a JSON object, or a handler that throws (e.g. a field of the
// wrong type), is answered {"ok":false,"error":"bad request: ..."} through
// `respond`. Never throws but what `respond` throws.
void answer_request(std::string_view line, nlohmann::json peer,
                    const ControlServer::AsyncHandler& handler,
                    const ControlServer::Respond& respond);

}  // namespace jobhost::daemon
