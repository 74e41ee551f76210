"""A nightly job for the jobhost python plugin: removes the files of a
directory that are older than a number of days.

    [jobs.nightly]
    plugin = "python"
    schedule = "30 2 * * *"
    params = { module = "nightly", path = "/srv/jobs", dir = "/srv/exports", days = "14" }

jobhost calls run() with no arguments in a fresh interpreter, in the run's
own process. Returning ends the run as succeeded (a returned str is its
message); raising jobhost.Retry asks for a retry; any other exception fails
the run with its traceback as the message. See docs/languages.md.
"""

import errno
import os
import time

import jobhost


def run():
    directory = jobhost.param("dir")
    if directory is None:
        raise ValueError('params.dir is not set: name the directory to prune')
    days = float(jobhost.param("days", "14"))
    cutoff = time.time() - days * 86400

    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EBUSY, errno.ETIMEDOUT):
            raise jobhost.Retry(f"{directory}: {e.strerror}, trying again later")
        raise
    jobhost.log(f"pruning {len(entries)} entries of {directory} older than {days:g} days")

    removed = freed = 0
    for done, entry in enumerate(entries, 1):
        if jobhost.cancelled():  # timeout or shutdown: stop cleanly
            jobhost.log(f"stopped after {done - 1} of {len(entries)} entries", level="warn")
            break
        stat = entry.stat(follow_symlinks=False)
        if entry.is_file(follow_symlinks=False) and stat.st_mtime < cutoff:
            os.unlink(entry.path)
            removed += 1
            freed += stat.st_size
        jobhost.heartbeat(done / len(entries))

    jobhost.metric("files_removed", removed)
    jobhost.metric("bytes_freed", freed)
    return f"removed {removed} files ({freed} bytes) from {directory}"
