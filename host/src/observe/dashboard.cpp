#include "observe/dashboard.h"

#include <fmt/format.h>

#include <cstdint>
#include <memory>
#include <string>

namespace jobhost::observe {
namespace {

// Same-origin only, no inline script or style, no plugins, no framing. Inline
// SVG built by the script is DOM, not markup, and needs no exception.
constexpr std::string_view kContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

// The placeholder index.html carries where an asset's version goes:
// `/assets/app.js?v={{version}}`.
constexpr std::string_view kVersionMark = "{{version}}";

std::string_view content_type_of(std::string_view name) {
  const auto dot = name.rfind('.');
  const std::string_view ext = dot == std::string_view::npos ? "" : name.substr(dot + 1);
  if (ext == "html") return "text/html; charset=utf-8";
  if (ext == "css") return "text/css; charset=utf-8";
  if (ext == "js") return "text/javascript; charset=utf-8";
  if (ext == "svg") return "image/svg+xml";
  if (ext == "png") return "image/png";
  return "application/octet-stream";
}

// FNV-1a over every asset: changes whenever one of them does, so a browser
// never mixes a new index.html with a cached old app.js.
std::string assets_version() {
  std::uint64_t hash = 14695981039346656037ull;
  for (const auto& file : dashboard_files()) {
    for (const char c : file.data) {
      hash = (hash ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    }
  }
  return fmt::format("{:016x}", hash);
}

Response file_response(std::string_view name, std::string body, std::string_view cache) {
  Response response = Response::text(200, std::move(body), std::string(content_type_of(name)));
  response.headers = {
      {"Cache-Control", std::string(cache)},
      {"Content-Security-Policy", std::string(kContentSecurityPolicy)},
      {"X-Content-Type-Options", "nosniff"},
      {"X-Frame-Options", "DENY"},
      {"Referrer-Policy", "no-referrer"},
  };
  return response;
}

}  // namespace

void add_dashboard_routes(Router& router) {
  // Built once here, when the daemon sets up its routes, not per request.
  std::string index;
  for (const auto& file : dashboard_files()) {
    if (file.name == "index.html") index = std::string(file.data);
  }
  const std::string version = assets_version();
  for (auto at = index.find(kVersionMark); at != std::string::npos;
       at = index.find(kVersionMark, at + version.size())) {
    index.replace(at, kVersionMark.size(), version);
  }
  auto page = std::make_shared<const std::string>(std::move(index));

  router.add("GET", "/", [page](const Request&, const Respond& respond) {
    respond(file_response("index.html", *page, "no-cache"));
  });
  router.add("GET", "/assets/{file}", [](const Request& request, const Respond& respond) {
    // Not `cond ? "" : it->second`: that makes a temporary std::string.
    std::string_view name;
    if (const auto it = request.params.find("file"); it != request.params.end()) name = it->second;
    for (const auto& file : dashboard_files()) {
      if (file.name == name && name != "index.html") {
        return respond(
            file_response(name, std::string(file.data), "public, max-age=31536000, immutable"));
      }
    }
    respond(Response::error(404, fmt::format("no such asset: {}", name)));
  });
}

}  // namespace jobhost::observe
