// Fuzz target: a control-socket request line (daemon/control_request.h),
// parsed and answered as the server does, with a handler that reads the
// request's fields as the daemon's does (daemon.cpp: op, job, run_id, peer)
// but acts on nothing. Every request gets exactly one reply, and the reply
// serializes as the server sends it.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "daemon/control_request.h"

using namespace jobhost;
using nlohmann::json;

namespace {

void fake_daemon(const json& request, const daemon::ControlServer::Respond& respond) {
  const std::string op = request.value("op", "");
  const auto& peer = request["peer"];
  const std::string who = peer.is_object() ? std::to_string(peer.value("uid", -1)) : "socket";
  if (op == "ping" || op == "status" || op == "plugins" || op == "next_fires" || op == "reload") {
    return respond({{"ok", true}, {"op", op}});
  }
  if (op == "trigger" || op == "pause" || op == "resume") {
    const std::string job = request.value("job", "");
    if (job.empty()) return respond({{"ok", false}, {"error", "no job \"" + job + "\""}});
    return respond({{"ok", true}, {"job", job}, {"who", who}});
  }
  if (op == "cancel") {
    const std::string run_id = request.value("run_id", "");
    return respond({{"ok", false}, {"error", "no run \"" + run_id + "\" in flight"}});
  }
  respond({{"ok", false}, {"error", "unknown op \"" + op + "\""}});
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  // The server reads up to the first newline.
  std::string_view line(reinterpret_cast<const char*>(data), size);
  line = line.substr(0, line.find('\n'));
  int replies = 0;
  daemon::answer_request(line, json{{"uid", 0}, {"pid", 1}}, fake_daemon, [&](json reply) {
    ++replies;
    const std::string text = daemon::reply_line(reply);
    if (text.empty() || text.back() != '\n') std::abort();
  });
  if (replies != 1) std::abort();
  return 0;
}
