// HTTP as the rest of observe/ sees it: a parsed request in, a response out,
// and a route table from method + path to a handler. No socket here: the
// server (observe/http_server.h) parses, bounds and times out connections and
// calls the routes; handlers are plain functions that tests call directly.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace jobhost::observe {

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string path;    // decoded path without the query: "/api/v1/jobs/backup"
  std::map<std::string, std::string, std::less<>> query;  // decoded; last value of a repeated key
  std::string body;
  std::string authorization;  // the Authorization header, as sent ("" if none)
  std::string peer;           // "127.0.0.1:53122"
  // Path parameters filled by the router: "/api/v1/jobs/{name}" gives "name".
  std::map<std::string, std::string, std::less<>> params;

  // The query value of `key`, or nullopt.
  std::optional<std::string_view> arg(std::string_view key) const {
    auto it = query.find(key);
    if (it == query.end()) return std::nullopt;
    return std::string_view(it->second);
  }
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers

  // {"error": message} with `status` (4xx/5xx), as every error of the API is shaped.
  static Response error(int status, std::string_view message);
  static Response json(int status, std::string body) {
    return Response{status, "application/json", std::move(body), {}};
  }
  static Response text(int status, std::string body,
                       std::string content_type = "text/plain; charset=utf-8") {
    return Response{status, std::move(content_type), std::move(body), {}};
  }
};

// Answers once, from the loop's thread, now or later (an action waiting for
// a reload answers when the reload ends). Calling it more than once is ignored.
using Respond = std::function<void(Response)>;
using Handler = std::function<void(const Request&, const Respond&)>;

// Method + path pattern to handler. A pattern is literal segments and
// `{name}` segments that match one non-empty segment ("/api/v1/runs/{id}").
// dispatch() answers 404 (no pattern matches the path) or 405 with an Allow
// header (the path matches, the method does not), both as JSON errors.
class Router {
 public:
  void add(std::string method, std::string pattern, Handler handler);
  void dispatch(Request request, const Respond& respond) const;
  // (method, pattern) of every route, in the order added (the OpenAPI test).
  std::vector<std::pair<std::string, std::string>> routes() const;

 private:
  struct Route {
    std::string method;
    std::vector<std::string> segments;
    Handler handler;
  };
  std::vector<Route> routes_;
};

}  // namespace jobhost::observe
