// Dynamic users, as systemd's DynamicUser=: each job without a `user` gets a
// uid of its own from [host] dynamic_users when the host is root (its gid is
// the same number). Pure functions; load_config calls them with the account
// database as `known`.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "config/config.h"

namespace jobhost::config {

// "FIRST-LAST" (decimal, inclusive), 1 <= FIRST <= LAST <= 4294967294.
// Errors say what is wrong and show an example.
Result<UidRange> parse_uid_range(std::string_view text);

// Gives each of `jobs` a uid in `range`: the job's hash of its name picks
// where to start, then the next free uid (wrapping around) is taken. Free:
// not in `taken` (numeric users of other jobs), not given to another job,
// and `known(uid)` false (no user or group of the account database has that
// id). Jobs are served in name order, so the result depends only on the
// names, the range and the taken ids (stable across restarts and file
// order). Fails, naming the first job left without one, when the range runs out.
using IdKnown = std::function<bool(uint32_t id)>;
Result<std::map<std::string, uint32_t>> allocate_dynamic_uids(const UidRange& range,
                                                              std::vector<std::string> jobs,
                                                              const std::set<uint32_t>& taken,
                                                              const IdKnown& known);

// True when the account database has a user with uid `id` or a group with
// gid `id` (getpwuid_r / getgrgid_r).
bool account_id_known(uint32_t id);

// True when every source of the `passwd` and `group` databases in
// `nsswitch` (the text of /etc/nsswitch.conf) lists all its entries when
// enumerated: files, compat, systemd (its dynamic and userdb users), db.
// False for any other source (ldap, sss, winbind... may list only some, or
// none) and when either database has no line.
bool account_sources_enumerable(std::string_view nsswitch);

// The same question as account_id_known for many ids at once: one pass over
// the account database (getpwent, getgrent) when /etc/nsswitch.conf says
// that lists everything, else one lookup per id. For 100,000 jobs this is
// the difference between milliseconds and seconds.
IdKnown account_ids_known();

}  // namespace jobhost::config
