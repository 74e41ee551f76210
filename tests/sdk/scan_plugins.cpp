// scan_plugins PLUGIN_DIR SHADOW_DIR [--expect NAME VERSION]
// Scans PLUGIN_DIR with the catalog and prints every accepted and rejected
// file. With --expect, exits 0 only if a plugin NAME with VERSION was accepted
// and nothing was rejected. Used by the out-of-tree SDK check (sdk_external_plugin).
#include <fmt/core.h>

#include <cstring>
#include <string>

#include "catalog/catalog.h"

int main(int argc, char** argv) {
  if (argc != 3 && !(argc == 6 && std::strcmp(argv[3], "--expect") == 0)) {
    fmt::print(stderr, "usage: {} PLUGIN_DIR SHADOW_DIR [--expect NAME VERSION]\n", argv[0]);
    return 2;
  }
  jobhost::catalog::Catalog catalog(argv[1], argv[2]);
  const auto result = catalog.scan();
  for (const auto& p : result.accepted) {
    fmt::print("accepted {} {} (ABI {}.{}) sha256 {} {} -> {}\n", p.name, p.version, p.abi_major,
               p.abi_minor, p.sha256, p.path.string(), p.shadow_path.string());
  }
  for (const auto& r : result.rejected) fmt::print("rejected {}: {}\n", r.path.string(), r.reason);
  if (argc == 3) return 0;

  const auto* found = result.find(argv[4]);
  if (!found) {
    fmt::print(stderr, "FAIL: no plugin named \"{}\" was accepted\n", argv[4]);
    return 1;
  }
  if (found->version != argv[5]) {
    fmt::print(stderr, "FAIL: \"{}\" has version {}, expected {}\n", argv[4], found->version,
               argv[5]);
    return 1;
  }
  if (!result.rejected.empty()) {
    fmt::print(stderr, "FAIL: {} file(s) rejected\n", result.rejected.size());
    return 1;
  }
  return 0;
}
