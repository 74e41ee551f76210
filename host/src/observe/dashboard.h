// The dashboard in the browser: static HTML, CSS and JavaScript kept under
// observe/dashboard/ and embedded in the binary at build time. The page reads
// everything it shows from the JSON API (/api/v1/...); nothing here touches
// the engine or the ledger.
#pragma once

#include <span>
#include <string_view>

#include "observe/http.h"

namespace jobhost::observe {

// One embedded file: its base name ("app.js") and its bytes. Both point into
// static storage of the binary.
struct EmbeddedFile {
  std::string_view name;
  std::string_view data;
};

// The dashboard's files, generated from observe/dashboard/ by
// cmake/embed_files.cmake.
std::span<const EmbeddedFile> dashboard_files();

// Adds GET `/` (index.html) and GET `/assets/{file}` (the other files) to
// `router`. Every answer carries a Content-Security-Policy that allows only
// same-origin scripts, styles and API calls (no inline script), nosniff and
// no framing. index.html is revalidated on every load; the assets it links
// carry a content hash in their query string and are cached for a year.
void add_dashboard_routes(Router& router);

}  // namespace jobhost::observe
