#include "observe/http.h"

#include <nlohmann/json.hpp>

namespace jobhost::observe {
namespace {

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      ++i;
      continue;
    }
    std::size_t end = path.find('/', i);
    if (end == std::string_view::npos) end = path.size();
    out.emplace_back(path.substr(i, end - i));
    i = end;
  }
  return out;
}

bool is_param(const std::string& segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

}  // namespace

Response Response::error(int status, std::string_view message) {
  nlohmann::json body = {{"error", std::string(message)}};
  return json(status, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

void Router::add(std::string method, std::string pattern, Handler handler) {
  routes_.push_back(Route{std::move(method), split_path(pattern), std::move(handler)});
}

std::vector<std::pair<std::string, std::string>> Router::routes() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& route : routes_) {
    std::string pattern;
    for (const auto& segment : route.segments) pattern += "/" + segment;
    out.emplace_back(route.method, pattern.empty() ? "/" : pattern);
  }
  return out;
}

void Router::dispatch(Request request, const Respond& respond) const {
  const auto segments = split_path(request.path);
  std::string allow;
  for (const auto& route : routes_) {
    if (route.segments.size() != segments.size()) continue;
    std::map<std::string, std::string, std::less<>> params;
    bool match = true;
    for (std::size_t i = 0; i < segments.size() && match; ++i) {
      if (is_param(route.segments[i])) {
        params[route.segments[i].substr(1, route.segments[i].size() - 2)] = segments[i];
      } else {
        match = route.segments[i] == segments[i];
      }
    }
    if (!match) continue;
    if (route.method != request.method && !(request.method == "HEAD" && route.method == "GET")) {
      if (allow.find(route.method) == std::string::npos) {
        allow += allow.empty() ? route.method : ", " + route.method;
      }
      continue;
    }
    request.params = std::move(params);
    return route.handler(request, respond);
  }
  if (allow.empty()) return respond(Response::error(404, "no such resource: " + request.path));
  Response r = Response::error(405, request.method + " is not allowed here; use " + allow);
  r.headers.emplace_back("Allow", allow);
  respond(std::move(r));
}

}  // namespace jobhost::observe
