// jobhost-forkserver: the fork server's executable (exec/fork_server.h). The
// daemon starts it with an empty environment; not meant to be run by hand.
#include "exec/fork_server.h"

int main(int argc, char** argv) {
  return jobhost::exec::fork_server_main(argc, argv);
}
