#include "cli/cli.h"

int main(int argc, char** argv) {
  return jobhost::cli::run_cli(argc, argv);
}
