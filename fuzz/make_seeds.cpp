// Writes the binary seed inputs of fuzz/corpus/ with the real encoders, so
// the seeds follow the formats when they change:
//   fuzz_make_seeds fuzz/corpus     (built with the tests; docs/fuzzing.md)
// fork_plan/: spawn plans from exec::encode_plan (without the op byte, as
// the server's decoder gets them); control_record/: record streams from
// exec::encode_*_record, as a run's child writes them.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "exec/control_record.h"
#include "exec/fork_plan.h"

using namespace jobhost;

namespace {

void write(const std::filesystem::path& file, const std::string& bytes) {
  std::filesystem::create_directories(file.parent_path());
  std::ofstream(file, std::ios::binary) << bytes;
  std::printf("%s (%zu bytes)\n", file.c_str(), bytes.size());
}

std::string plan(const exec::RunRequest& request, const std::vector<std::string>& procs,
                 const exec::Credentials& credentials, bool preload) {
  return exec::encode_plan(request, procs, credentials, preload).substr(1);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  const std::filesystem::path corpus = argv[1];

  exec::RunRequest request;
  request.job = "backup";
  request.run_id = "01JABCDEF0123456789ABCDEFG";
  request.trace_id = "01JABCDEF0123456789ABCDEFH";
  request.attempt = 2;
  request.scheduled_for = TimePoint(std::chrono::seconds(1774744200));
  request.plugin_path = "/var/lib/jobhost/plugins/ab/abcdef0123.so";
  write(corpus / "fork_plan" / "plain", plan(request, {}, {}, false));
  request.params = {{"greeting", "hi"}, {"count", "3"}};
  request.secrets = {{"db", "hunter2"}};
  exec::Credentials nobody{65534, 65534, {65534, 100}, true};
  write(corpus / "fork_plan" / "full",
        plan(request,
             {"/sys/fs/cgroup/jobhost/runs/01JABCDEF0123456789ABCDEFG/cgroup.procs",
              "/sys/fs/cgroup/memory/jobhost/runs/x/cgroup.procs"},
             nobody, true));

  using exec::RecordType;
  write(corpus / "control_record" / "log", exec::encode_record(RecordType::log, 2, "hello"));
  write(corpus / "control_record" / "run",
        exec::encode_number_record(RecordType::heartbeat, 0.5, "") +
            exec::encode_number_record(RecordType::metric, 42.0, "rows") +
            exec::encode_record(RecordType::message, 0, "copied 42 rows") +
            exec::encode_record(RecordType::log, 3, "a warning") +
            exec::encode_code_record(RecordType::result, 0, ""));
  write(corpus / "control_record" / "failures",
        exec::encode_record(RecordType::limit, 0, "memory") +
            exec::encode_code_record(RecordType::setup_error, 13, "setuid") +
            exec::encode_code_record(RecordType::result, -1, ""));
  return 0;
}
