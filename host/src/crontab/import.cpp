// Crontab import. The grammar is cronie's (src/entry.c load_entry, get_list,
// get_range; src/env.c load_env; src/do_command.c for '%'), followed
// character by character so that a line imports exactly when cronie would
// load it, and means what it meant there.
#include "crontab/import.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <expected>
#include <set>

#include "schedule/schedule.h"

namespace jobhost::crontab {
namespace {

// cronie's _PATH_STDPATH and _PATH_BSHELL: what a job gets unless the
// crontab sets PATH or SHELL.
constexpr std::string_view kCronPath = "/usr/bin:/bin:/usr/sbin:/sbin";
constexpr std::string_view kCronShell = "/bin/sh";
// The most stdin the exec plugin writes (docs/config.md, `stdin`).
constexpr std::size_t kMaxStdin = 64 * 1024;

bool is_blank(char c) {
  return c == ' ' || c == '\t';
}
// C-locale isspace, as env.c uses.
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}
bool is_alnum(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0;
}
char lower(char c) {
  return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
}

// Well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing
// above U+10FFFF), as a TOML document must be.
bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t more = 0;
    unsigned char lo = 0x80;  // the bounds of the second byte
    unsigned char hi = 0xBF;
    if (c < 0x80) {
      more = 0;
    } else if (c >= 0xC2 && c <= 0xDF) {
      more = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      more = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      more = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (more > s.size() - i - 1) return false;
    for (std::size_t k = 1; k <= more; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if (k == 1 ? (b < lo || b > hi) : (b & 0xC0) != 0x80) return false;
    }
    i += more + 1;
  }
  return true;
}

// Control characters as \xNN (and every non-ASCII byte, unless the text is
// valid UTF-8), so a line can be quoted in a TOML comment.
std::string printable(std::string_view s) {
  const bool utf8 = valid_utf8(s);
  std::string out;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F || (u >= 0x80 && !utf8)) {
      out += fmt::format("\\x{:02x}", u);
    } else {
      out += c;
    }
  }
  return out;
}

// --- environment lines (env.c load_env) ------------------------------------

struct EnvSetting {
  std::string name;
  std::string value;
};

// `line` starts at its first non-blank character. nullopt: not an
// environment setting (then cron reads the line as an entry).
std::optional<EnvSetting> parse_env(std::string_view line) {
  enum State { kNameI, kName, kEq1, kEq2, kValueI, kValue, kFini, kError };
  State state = kNameI;
  char quote = '\0';
  EnvSetting env;
  std::size_t i = 0;
  while (state != kError && i < line.size()) {
    const char c = line[i];
    switch (state) {
      case kNameI:
      case kValueI:
        if (c == '\'' || c == '"') {
          quote = c;
          ++i;
        }
        state = state == kNameI ? kName : kValue;
        break;
      case kName:
      case kValue: {
        if (quote != '\0') {
          if (c == quote) {
            state = state == kName ? kEq1 : kFini;
            ++i;
            break;
          }
          if (state == kName && c == '=') {
            state = kError;
            break;
          }
        } else if (state == kName) {
          if (is_space(c)) {
            ++i;
            state = kEq1;
            break;
          }
          if (c == '=') {
            state = kEq1;
            break;
          }
        }
        (state == kName ? env.name : env.value) += c;
        ++i;
        break;
      }
      case kEq1:
        if (c == '=') {
          state = kEq2;
          quote = '\0';
        } else if (!is_space(c)) {
          state = kError;
        }
        ++i;
        break;
      case kEq2:
      case kFini:
        if (is_space(c)) {
          ++i;
        } else {
          state = state == kEq2 ? kValueI : kError;
        }
        break;
      case kError:
        break;
    }
  }
  if (state != kFini && state != kEq2 && !(state == kValue && quote == '\0')) return std::nullopt;
  if (state == kValue) {
    while (!env.value.empty() && is_space(env.value.back())) env.value.pop_back();
  }
  return env;
}

// [A-Za-z_][A-Za-z0-9_]*, what a job's env accepts (config/load.cpp).
bool valid_env_name(std::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  const auto word = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  };
  if (!word(name.front())) return false;
  return std::all_of(name.begin(), name.end(),
                     [&](char c) { return word(c) || (c >= '0' && c <= '9'); });
}

// --- time fields (entry.c get_list, get_range, get_number) -----------------

struct FieldSpec {
  const char* name;
  int low;
  int high;  // day-of-week: 7, Sunday again
  const std::array<const char*, 8>* names;
};

constexpr std::array<const char*, 8> kNoNames{};
constexpr std::array<const char*, 12> kMonthNames = {"jan", "feb", "mar", "apr", "may", "jun",
                                                     "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr std::array<const char*, 8> kDowNames = {"sun", "mon", "tue", "wed",
                                                  "thu", "fri", "sat", "sun"};

enum FieldIndex { kMinute = 0, kHour, kDom, kMonth, kDow };
constexpr std::array<const char*, 5> kFieldNames = {"minute", "hour", "day-of-month", "month",
                                                    "day-of-week"};
constexpr std::array<std::pair<int, int>, 5> kFieldRanges = {
    {{0, 59}, {0, 23}, {1, 31}, {1, 12}, {0, 7}}};

// The field as cron loaded it, and how to write it for jobhost's parser.
struct Field {
  uint64_t bits = 0;  // bit v: value v selected (day-of-week 7 folded into 0)
  bool star = false;  // the field starts with '*' (cronie's DOM_STAR / DOW_STAR)
  std::string text;   // for jobhost; empty: selects nothing
};

struct FieldResult {
  Field field;
  std::vector<std::string> notes;     // comments for the job
  std::vector<std::string> warnings;  // for stderr too
};

class FieldReader {
 public:
  FieldReader(FieldIndex index, std::string_view token) : index_(index), token_(token) {
    low_ = kFieldRanges[index].first;
    high_ = kFieldRanges[index].second;
  }

  std::expected<FieldResult, std::string> read() {
    result_.field.star = !token_.empty() && token_.front() == '*';
    std::size_t start = 0;
    std::vector<std::string> items;
    while (true) {
      const std::size_t comma = token_.find(',', start);
      const std::size_t end = comma == std::string_view::npos ? token_.size() : comma;
      auto item = read_item(token_.substr(start, end - start));
      if (!item) return std::unexpected(item.error());
      if (!item->empty()) items.push_back(*item);
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (i > 0) result_.field.text += ',';
      result_.field.text += items[i];
    }
    return result_;
  }

 private:
  std::string field_name() const { return kFieldNames[index_]; }

  std::unexpected<std::string> bad(std::string_view item, std::string_view why) const {
    return std::unexpected(fmt::format("bad {} field '{}': {}", field_name(), item, why));
  }

  // An alnum run at `pos`: a number (every character a digit) or, where the
  // field has them, a three-letter name. Advances `pos`.
  std::optional<int> number(std::string_view item, std::size_t& pos, bool names) const {
    const std::size_t start = pos;
    while (pos < item.size() && is_alnum(item[pos])) ++pos;
    const std::string_view word = item.substr(start, pos - start);
    if (word.empty()) return std::nullopt;
    if (std::all_of(word.begin(), word.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      long value = 0;
      for (char c : word) value = std::min<long>(value * 10 + (c - '0'), 1000000);
      return static_cast<int>(value);
    }
    if (!names) return std::nullopt;
    std::string folded;
    for (char c : word) folded += lower(c);
    if (index_ == kMonth) {
      for (std::size_t i = 0; i < kMonthNames.size(); ++i) {
        if (folded == kMonthNames[i]) return static_cast<int>(i) + 1;
      }
    } else if (index_ == kDow) {
      for (std::size_t i = 0; i < kDowNames.size(); ++i) {
        if (folded == kDowNames[i]) return static_cast<int>(i);
      }
    }
    return std::nullopt;
  }

  bool has_names() const { return index_ == kMonth || index_ == kDow; }

  // One list item; returns its text for jobhost, empty when it selects
  // nothing (cron accepts a reversed range and sets no value from it).
  std::expected<std::string, std::string> read_item(std::string_view item) {
    if (item.empty()) return bad(token_, "an empty list item");
    int lo = 0;
    int hi = 0;
    int step = 1;
    std::size_t p = 0;
    std::string text(item);
    if (item[0] == '*') {
      lo = low_;
      hi = high_;
      p = 1;
      if (p < item.size()) {
        if (item[p] != '/') return bad(item, "'*' may only be followed by '/STEP'");
        ++p;
        auto s = number(item, p, false);
        if (!s || *s == 0 || p != item.size()) return bad(item, "'/' needs a step of 1 or more");
        step = *s;
      }
    } else if (item[0] == '~' || item.find('~') != std::string_view::npos) {
      return read_random(item);
    } else {
      auto first = number(item, p, has_names());
      if (!first) return bad(item, not_a_value(item));
      lo = hi = *first;
      if (p < item.size()) {
        if (item[p] != '-') {
          return bad(item, item[p] == '/' ? "a step needs a range or '*' before it, e.g. 0-59/5"
                                          : "unexpected character");
        }
        ++p;
        const std::size_t hi_pos = p;
        auto second = number(item, p, has_names());
        if (!second) return bad(item, not_a_value(item.substr(hi_pos)));
        hi = *second;
        if (p < item.size()) {
          if (item[p] != '/') return bad(item, "unexpected character after the range");
          ++p;
          auto s = number(item, p, false);
          if (!s || *s == 0 || p != item.size()) return bad(item, "'/' needs a step of 1 or more");
          step = *s;
        } else if (lo > hi && hi == 0) {
          // cronie reads "N-0" as "N-7", for "fri-sun" in the day-of-week.
          hi = 7;
          text = fmt::format("{}-7", item.substr(0, item.find('-')));
          if (index_ != kDow) {
            warn(fmt::format("{} field '{}': cron reads it as {}-7 (a range ending at 0 ends at 7)",
                             field_name(), item, lo));
          }
        }
      }
    }
    if (lo > hi) {
      warn(
          fmt::format("{} field '{}': a reversed range selects nothing in cron, so it is left "
                      "out; write it as two ranges if both ends were meant",
                      field_name(), item));
      return std::string();
    }
    for (int v = lo; v <= hi; v += step) {
      if (v < low_ || v > high_) {
        return bad(item, fmt::format("{} is out of range ({}-{})", v, low_, high_));
      }
      set(v);
    }
    return text;
  }

  std::string not_a_value(std::string_view rest) const {
    std::string_view word = rest.substr(0, std::min<std::size_t>(rest.size(), 16));
    if (index_ == kMonth)
      return fmt::format("'{}' is not a number or a month name (jan-dec)", word);
    if (index_ == kDow) return fmt::format("'{}' is not a number or a day name (sun-sat)", word);
    return fmt::format("'{}' is not a number", word);
  }

  // "~", "N~", "~M", "N~M": one value picked at random when cron loads the
  // crontab. jobhost's H(N-M) picks one from the job's name instead.
  std::expected<std::string, std::string> read_random(std::string_view item) {
    std::size_t p = 0;
    int lo = low_;
    int hi = high_;
    if (item[0] != '~') {
      auto first = number(item, p, has_names());
      if (!first) return bad(item, not_a_value(item));
      lo = *first;
      if (p >= item.size() || item[p] != '~') return bad(item, "unexpected character");
    }
    ++p;  // the '~'
    if (p < item.size()) {
      auto second = number(item, p, has_names());
      if (!second || p != item.size()) return bad(item, "'~' takes a value or nothing after it");
      hi = *second;
    }
    if (lo > hi) return bad(item, "the random range is reversed");
    if (lo < low_ || hi > high_) {
      return bad(item, fmt::format("out of range ({}-{})", low_, high_));
    }
    set(lo);  // one value, which is never every value: all the day rule needs to know
    result_.notes.push_back(
        fmt::format("{} field '{}': cron picks a random value each time it loads the crontab; "
                    "H({}-{}) picks one from the job's name, the same on every start",
                    field_name(), item, lo, hi));
    return fmt::format("H({}-{})", lo, hi);
  }

  void set(int v) {
    if (index_ == kDow && v == 7) v = 0;
    result_.field.bits |= uint64_t{1} << v;
  }

  void warn(std::string message) {
    result_.notes.push_back(message);
    result_.warnings.push_back(std::move(message));
  }

  FieldIndex index_;
  std::string_view token_;
  int low_ = 0;
  int high_ = 0;
  FieldResult result_;
};

// --- commands ---------------------------------------------------------------

// The command before the first unescaped '%', with "\%" made '%'
// (do_command.c), and the text after it, raw.
std::pair<std::string, std::optional<std::string>> split_percent(std::string_view rest) {
  std::string command;
  bool escaped = false;
  for (std::size_t i = 0; i < rest.size(); ++i) {
    const char ch = rest[i];
    if (escaped) {
      if (ch == '%') {
        command.back() = '%';
      } else {
        command += ch;
      }
      escaped = false;
      continue;
    }
    if (ch == '\\') {
      escaped = true;
      command += ch;
      continue;
    }
    if (ch == '%') return {command, std::string(rest.substr(i + 1))};
    command += ch;
  }
  return {command, std::nullopt};
}

// What cron writes to the command's stdin from the text after the first '%':
// '%' is a newline, "\%" a '%', any other backslash stays, and a newline
// ends it (do_command.c).
std::string stdin_of(std::string_view input) {
  std::string out;
  bool need_newline = false;
  bool escaped = false;
  for (char ch : input) {
    if (escaped) {
      if (ch != '%') out += '\\';
    } else if (ch == '%') {
      ch = '\n';
    }
    escaped = ch == '\\';
    if (!escaped) {
      out += ch;
      need_newline = ch != '\n';
    }
  }
  if (escaped) out += '\\';
  if (need_newline) out += '\n';
  return out;
}

// Words /bin/sh gives a meaning of its own as a command's first word: the
// reserved words and dash's builtins. Run as argv they would not be found,
// or would behave otherwise (dash's echo reads backslashes, /bin/echo not).
constexpr std::array<std::string_view, 47> kShellWords = {
    "!",       "{",        "}",      "case",  "do",    "done",  "elif",   "else",
    "esac",    "fi",       "for",    "if",    "in",    "then",  "until",  "while",
    ".",       ":",        "[",      "alias", "bg",    "break", "cd",     "chdir",
    "command", "continue", "echo",   "eval",  "exec",  "exit",  "export", "false",
    "fg",      "getopts",  "hash",   "jobs",  "kill",  "local", "printf", "pwd",
    "read",    "readonly", "return", "set",   "shift", "test",  "true"};
constexpr std::array<std::string_view, 9> kMoreShellWords = {
    "times", "trap", "type", "ulimit", "umask", "unalias", "unset", "wait", "source"};

bool is_shell_word(std::string_view word) {
  return std::find(kShellWords.begin(), kShellWords.end(), word) != kShellWords.end() ||
         std::find(kMoreShellWords.begin(), kMoreShellWords.end(), word) != kMoreShellWords.end();
}

// Characters that mean nothing to /bin/sh inside a word.
bool plain_char(char c) {
  if (static_cast<unsigned char>(c) >= 0x80) return true;
  if (is_alnum(c)) return true;
  return std::string_view("_@%+=:,./-").find(c) != std::string_view::npos;
}

// The words of `command` when /bin/sh would run it as a plain argv: no
// quoting, expansion, globbing, redirection, operator, assignment or
// builtin. nullopt: it needs the shell.
std::optional<std::vector<std::string>> plain_argv(std::string_view command) {
  std::vector<std::string> words;
  std::size_t i = 0;
  while (i < command.size()) {
    while (i < command.size() && is_blank(command[i])) ++i;
    if (i >= command.size()) break;
    std::string word;
    while (i < command.size() && !is_blank(command[i])) {
      if (!plain_char(command[i])) return std::nullopt;
      word += command[i++];
    }
    words.push_back(std::move(word));
  }
  if (words.empty()) return std::nullopt;
  if (words.front().find('=') != std::string::npos) return std::nullopt;  // an assignment
  if (is_shell_word(words.front())) return std::nullopt;
  return words;
}

// Trailing blanks, unless the last one is escaped.
std::string trim_trailing_blanks(std::string s) {
  while (!s.empty() && is_blank(s.back()) && !(s.size() >= 2 && s[s.size() - 2] == '\\')) {
    s.pop_back();
  }
  return s;
}

// --- job names --------------------------------------------------------------

// Words that run another command, or only prepare one: the job is named
// after what follows them.
bool is_wrapper(std::string_view word) {
  constexpr std::array<std::string_view, 10> kWrappers = {
      "exec", "nohup", "nice", "ionice", "time", "command", "env", "chronic", "sudo", "!"};
  return std::find(kWrappers.begin(), kWrappers.end(), word) != kWrappers.end();
}
bool is_helper(std::string_view word) {
  constexpr std::array<std::string_view, 12> kHelpers = {
      "cd", "test", "[", "true", "false", ":", "sleep", ".", "source", "export", "umask", "set"};
  return std::find(kHelpers.begin(), kHelpers.end(), word) != kHelpers.end();
}

// The program a command runs, roughly as the shell splits it: the first word
// of the first simple command that is not a helper (cd, test, sleep, ...),
// past assignments, wrappers (nice, nohup, ...) and their options.
std::string program_of(std::string_view command) {
  struct Token {
    std::string text;
    bool op = false;
  };
  std::vector<Token> tokens;
  std::size_t i = 0;
  while (i < command.size()) {
    const char c = command[i];
    if (is_blank(c)) {
      ++i;
      continue;
    }
    if (std::string_view(";&|(){}<>").find(c) != std::string_view::npos) {
      tokens.push_back({std::string(1, c), true});
      ++i;
      continue;
    }
    Token word;
    char quote = '\0';
    while (i < command.size()) {
      const char d = command[i];
      if (quote != '\0') {
        if (d == quote) {
          quote = '\0';
        } else {
          word.text += d;
        }
        ++i;
        continue;
      }
      if (is_blank(d) || std::string_view(";&|(){}<>").find(d) != std::string_view::npos) break;
      if (d == '\'' || d == '"') {
        quote = d;
      } else if (d == '\\' && i + 1 < command.size()) {
        word.text += command[++i];
      } else {
        word.text += d;
      }
      ++i;
    }
    tokens.push_back(std::move(word));
  }

  std::string first;
  bool after_redirect = false;
  bool skipping = false;  // the rest of a helper's simple command
  for (const Token& t : tokens) {
    if (t.op) {
      if (t.text == "<" || t.text == ">") {
        after_redirect = true;
      } else {
        after_redirect = false;
        skipping = false;
      }
      continue;
    }
    if (after_redirect) {
      after_redirect = false;
      continue;
    }
    if (skipping) continue;
    const std::string& w = t.text;
    const std::size_t eq = w.find('=');
    if (eq != std::string::npos && eq > 0 && valid_env_name(w.substr(0, eq))) continue;
    if (is_wrapper(w) || w.starts_with('-') ||
        std::all_of(w.begin(), w.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      continue;
    }
    if (w == "if" || w == "then" || w == "do" || w == "else" || w == "while") continue;
    if (first.empty()) first = w;
    if (is_helper(w)) {
      skipping = true;
      continue;
    }
    return w;
  }
  return first;
}

// A job name from a program: its base name without a script suffix, lower
// case, other characters as '-'; "job" when nothing is left.
std::string name_from_program(std::string_view program) {
  if (const std::size_t slash = program.rfind('/'); slash != std::string_view::npos) {
    program = program.substr(slash + 1);
  }
  for (std::string_view suffix : {".sh", ".bash", ".py", ".pl", ".rb", ".php", ".js"}) {
    if (program.size() > suffix.size() && program.ends_with(suffix)) {
      program.remove_suffix(suffix.size());
      break;
    }
  }
  std::string name;
  for (char c : program) {
    const char l = lower(c);
    const bool ok = (l >= 'a' && l <= 'z') || (l >= '0' && l <= '9') || l == '_' || l == '-';
    if (ok) {
      name += l;
    } else if (!name.empty() && name.back() != '-') {
      name += '-';
    }
  }
  while (!name.empty() && !is_alnum(name.front())) name.erase(name.begin());
  while (!name.empty() && (name.back() == '-' || name.back() == '_')) name.pop_back();
  if (name.size() > 56) name.resize(56);
  while (!name.empty() && (name.back() == '-' || name.back() == '_')) name.pop_back();
  return name.empty() ? "job" : name;
}

// --- the crontab --------------------------------------------------------------

// cron's own settings: read by cron, never meant for the command.
struct CronSetting {
  std::string_view name;
  std::string_view why;  // why it is not carried, and what to use instead
};
constexpr std::array<CronSetting, 6> kDropped = {{
    {"MAILTO",
     "jobhost sends no mail: each run's output and outcome are kept in the ledger (jobhost "
     "history); to hear of failures set alert_after and an [alerts.NAME] notifier"},
    {"MAILFROM", "jobhost sends no mail (see alerts in docs/config.md)"},
    {"CONTENT_TYPE", "a header of cron's mail; jobhost sends no mail"},
    {"CONTENT_TRANSFER_ENCODING", "a header of cron's mail; jobhost sends no mail"},
    {"MLS_LEVEL", "jobhost does not set SELinux contexts"},
    {"XDG_SESSION_CLASS", "jobhost opens no PAM session for a run"},
}};

class Importer {
 public:
  explicit Importer(const ImportOptions& options) : options_(options) {}

  ImportResult run(std::string_view text) {
    std::size_t line_no = 0;
    std::size_t pos = 0;
    while (pos < text.size()) {
      const std::size_t nl = text.find('\n', pos);
      const bool has_newline = nl != std::string_view::npos;
      const std::string_view line =
          text.substr(pos, has_newline ? nl - pos : std::string_view::npos);
      pos = has_newline ? nl + 1 : text.size();
      ++line_no;
      read_line(line_no, line, has_newline);
    }
    return std::move(result_);
  }

 private:
  void read_line(std::size_t line_no, std::string_view line, bool has_newline) {
    std::size_t first = 0;
    while (first < line.size() && is_blank(line[first])) ++first;
    const std::string_view rest = line.substr(first);
    if (rest.empty() || rest.front() == '#') return;
    line_ = line_no;
    source_line_ = std::string(rest);
    if (!valid_utf8(rest)) {
      fail("the line is not valid UTF-8; convert the file (e.g. iconv -f latin1 -t utf-8)");
      return;
    }
    if (rest.find('\0') != std::string_view::npos) {
      fail("the line holds a NUL byte");
      return;
    }
    if (!has_newline) {
      warn("the last line has no newline at its end, so cron ignores it; imported anyway");
    }
    if (auto env = parse_env(rest)) {
      read_env(*env);
      return;
    }
    read_entry(rest);
  }

  Item& item() {
    if (result_.items.empty() || result_.items.back().line != line_) {
      result_.items.push_back(Item{line_, {}, std::nullopt});
    }
    return result_.items.back();
  }

  void comment(std::string text) { item().comments.push_back(std::move(text)); }

  // Messages quote what the line holds, control characters too: escaped.
  void warn(const std::string& message) {
    result_.problems.push_back(Problem{line_, printable(message), false});
  }

  void fail(const std::string& message) {
    comment(fmt::format("line {} not imported: {}", line_, printable(message)));
    comment(fmt::format("  {}", printable(source_line_)));
    result_.problems.push_back(Problem{line_, printable(message), true});
  }

  void read_env(const EnvSetting& env) {
    const std::string shown = printable(fmt::format("{}={}", env.name, env.value));
    for (const CronSetting& s : kDropped) {
      if (env.name == s.name) {
        comment(fmt::format("line {}: {}: not carried: {}", line_, shown, s.why));
        return;
      }
    }
    if (env.name == "CRON_TZ") {
      cron_tz_.clear();
      if (env.value.empty()) return;  // cron: an empty CRON_TZ is no CRON_TZ
      if (auto zone = schedule::find_zone(env.value); !zone) {
        fail(fmt::format("CRON_TZ: {}", zone.error().message));
        return;
      }
      cron_tz_ = env.value;
      return;
    }
    if (env.name == "RANDOM_DELAY") {
      read_random_delay(env.value, shown);
      return;
    }
    if (env.name == "LOGNAME" || env.name == "USER") {
      comment(
          fmt::format("line {}: {}: not carried: cron sets {} to the job's user whatever the "
                      "crontab says",
                      line_, shown, env.name));
      return;
    }
    if (!valid_env_name(env.name) || env.name.starts_with("JOBHOST_")) {
      const std::string why = env.name.starts_with("JOBHOST_")
                                  ? "JOBHOST_* names are set by jobhost itself"
                                  : "jobhost's env takes names of letters, digits and '_' only";
      comment(fmt::format("line {}: {}: not carried: {}", line_, shown, why));
      warn(fmt::format("{}: not carried: {}", shown, why));
      return;
    }
    if (env.name == "SHELL") {
      shell_ = env.value;
      if (env.value != kCronShell) {
        comment(
            fmt::format("line {}: SHELL={}: the jobs below run as {} -c COMMAND, as cron runs "
                        "them",
                        line_, printable(env.value), printable(env.value)));
      }
    }
    env_[env.name] = env.value;
  }

  // cronie: strtol of the value, 0-1440 minutes, else "bad value" and no
  // delay. Each job is delayed by that many minutes times one random factor
  // in [0, 1) drawn when crond starts.
  void read_random_delay(const std::string& value, const std::string& shown) {
    std::size_t i = 0;
    while (i < value.size() && is_space(value[i])) ++i;
    bool negative = false;
    if (i < value.size() && (value[i] == '+' || value[i] == '-')) negative = value[i++] == '-';
    long minutes = 0;
    bool big = false;
    while (i < value.size() && value[i] >= '0' && value[i] <= '9') {
      minutes = minutes * 10 + (value[i++] - '0');
      if (minutes > 100000) big = true, minutes = 100000;
    }
    if (negative) minutes = -minutes;
    if (big || minutes < 0 || minutes > 24 * 60) {
      jitter_.clear();
      comment(
          fmt::format("line {}: {}: not carried: cron rejects a RANDOM_DELAY outside 0-1440 "
                      "minutes and delays nothing",
                      line_, shown));
      return;
    }
    jitter_ = minutes == 0 ? std::string() : fmt::format("{}m", minutes);
    if (minutes != 0) {
      comment(
          fmt::format("line {}: {}: the jobs below get jitter = \"{}\": cron delays each job by "
                      "one random share of {} minutes, drawn when crond starts; jitter delays "
                      "each fire by its own random time under {} minutes",
                      line_, shown, jitter_, minutes, minutes));
    }
  }

  void read_entry(std::string_view line) {
    if (!line.empty() && line.back() == '\r') {
      fail(
          "the line ends with a carriage return (DOS line ends): cron would pass it to the "
          "shell as part of the command; convert the file with dos2unix");
      return;
    }
    std::vector<std::string> notes;
    std::vector<std::string> warnings;
    std::size_t p = 0;
    auto skip_blanks = [&] {
      while (p < line.size() && is_blank(line[p])) ++p;
    };
    auto next_word = [&] {
      const std::size_t start = p;
      while (p < line.size() && !is_blank(line[p])) ++p;
      return line.substr(start, p - start);
    };

    if (line[p] == '-') {
      ++p;
      notes.push_back(
          "'-' before the time fields only kept cron from logging the command to syslog; "
          "jobhost records every run in its ledger");
    }
    std::string schedule;
    if (p < line.size() && line[p] == '@') {
      const std::string_view macro = next_word();
      constexpr std::array<std::string_view, 8> kMacros = {"@reboot",   "@yearly", "@annually",
                                                           "@monthly",  "@weekly", "@daily",
                                                           "@midnight", "@hourly"};
      if (std::find(kMacros.begin(), kMacros.end(), macro) == kMacros.end()) {
        fail(
            fmt::format("bad time specifier '{}': cron knows @reboot, @yearly, @annually, "
                        "@monthly, @weekly, @daily, @midnight and @hourly, in lower case",
                        macro));
        return;
      }
      schedule = std::string(macro);
      skip_blanks();
    } else {
      std::array<Field, 5> fields;
      for (int i = 0; i < 5; ++i) {
        const std::string_view token = next_word();
        if (token.empty()) {
          fail(
              fmt::format("bad {} field: the line ends before it (a cron entry has five time "
                          "fields{}, then the command)",
                          kFieldNames[i], options_.system ? ", the user" : ""));
          return;
        }
        auto read = FieldReader(static_cast<FieldIndex>(i), token).read();
        if (!read) {
          fail(read.error());
          return;
        }
        if (read->field.text.empty()) {
          fail(
              fmt::format("cron accepts this line but never runs it: the {} field '{}' selects "
                          "nothing (a reversed range)",
                          kFieldNames[i], token));
          return;
        }
        fields[i] = read->field;
        notes.insert(notes.end(), read->notes.begin(), read->notes.end());
        warnings.insert(warnings.end(), read->warnings.begin(), read->warnings.end());
        skip_blanks();
      }
      day_rule(fields, notes, warnings);
      schedule = fmt::format("{} {} {} {} {}", fields[0].text, fields[1].text, fields[2].text,
                             fields[3].text, fields[4].text);
    }

    if (p >= line.size()) {
      fail(fmt::format("no command after the {}", options_.system ? "user" : "time fields"));
      return;
    }
    if (line[p] == '*') {
      fail("the command starts with '*': cron refuses this line (six time fields?)");
      return;
    }
    std::string user = options_.user;
    if (options_.system) {
      user = std::string(next_word());
      skip_blanks();
      if (p >= line.size()) {
        fail(
            fmt::format("no command after the user '{}' (a system crontab names the user "
                        "after the time fields; for a user crontab leave out --system)",
                        user));
        return;
      }
    }
    bool mail_option = false;
    while (p < line.size() && line[p] == '-') {
      const char option = p + 1 < line.size() ? line[p + 1] : '\0';
      if (option != 'n' || mail_option) {
        fail(mail_option ? "bad option: -n given twice"
                         : "bad option: a command starting with '-' is a cron option, and cron "
                           "knows only -n");
        return;
      }
      mail_option = true;
      p += 2;
      if (p >= line.size() || !is_blank(line[p])) {
        fail("bad option: -n must be followed by a blank and the command");
        return;
      }
      skip_blanks();
      if (p >= line.size()) {
        fail("no command after -n");
        return;
      }
      notes.push_back(
          "-n (mail only when the command fails): not carried: jobhost sends no mail; "
          "see alert_after");
    }

    Job job;
    job.line = line_;
    job.schedule = schedule;
    job.user = user;
    job.timezone = cron_tz_.empty() ? options_.timezone : cron_tz_;
    job.jitter = jitter_;
    auto [command, input] = split_percent(line.substr(p));
    if (input && !input->empty()) job.stdin_text = stdin_of(*input);
    if (job.stdin_text && job.stdin_text->size() > kMaxStdin) {
      fail(
          fmt::format("the text after '%' is {} bytes of stdin, more than the {} the exec plugin "
                      "takes; put it in a file and redirect the command's stdin from it",
                      job.stdin_text->size(), kMaxStdin));
      return;
    }
    command = trim_trailing_blanks(std::move(command));
    if (command.empty()) {
      command = ":";
      notes.push_back(
          "the command is empty (cron runs sh -c \"\", which does nothing): written as "
          "\":\"");
    }
    const std::string& shell = shell_.empty() ? std::string(kCronShell) : shell_;
    if (shell != kCronShell) {
      job.argv = {shell, "-c", command};
    } else if (auto argv = plain_argv(command)) {
      job.argv = std::move(*argv);
    } else {
      job.shell_command = command;
      job.shell = true;
    }
    job.env = env_;
    if (!job.env.contains("PATH")) job.env["PATH"] = std::string(kCronPath);
    if (!user.empty()) {
      job.env["LOGNAME"] = user;
      job.env["USER"] = user;
    }
    job.name = unique_name(name_from_program(program_of(command)));

    // The schedule must mean the same to jobhost's parser: a schedule that
    // parses there but never fires (0 0 30 2 *) is one cron never runs.
    if (auto parsed = schedule::CronExpr::parse(job.schedule, job.name); !parsed) {
      used_names_.erase(job.name);
      fail(fmt::format("schedule \"{}\": {}{}", job.schedule, parsed.error().message,
                       parsed.error().message.find("never fires") != std::string::npos
                           ? " (cron accepts the line and never runs it)"
                           : ""));
      return;
    }

    Item& it = item();
    it.comments.push_back(fmt::format("line {}: {}", line_, printable(source_line_)));
    for (std::string& n : notes) it.comments.push_back(std::move(n));
    it.job = std::move(job);
    for (const std::string& w : warnings) warn(w);
  }

  // Day-of-month and day-of-week. cron: if either field starts with '*',
  // a day must match both; otherwise either is enough. jobhost: a field
  // that matches every day is left out, and two that do not are ORed unless
  // the day-of-week field starts with '&' (both needed). They agree except
  // in two cases, both rewritten here.
  void day_rule(std::array<Field, 5>& f, std::vector<std::string>& notes,
                std::vector<std::string>& warnings) {
    constexpr uint64_t kAllDays = 0xFFFFFFFEull;  // bits 1-31
    constexpr uint64_t kAllWeekdays = 0x7Full;    // bits 0-6
    const bool dom_all = f[kDom].bits == kAllDays;
    const bool dow_all = f[kDow].bits == kAllWeekdays;
    if (f[kDom].star || f[kDow].star) {
      if (dom_all || dow_all) return;  // AND with everything: the other decides, as here
      // Both restricted and cron needs both: jobhost's '&'.
      notes.push_back(fmt::format(
          "day-of-month '{}' and day-of-week '{}': cron runs this only on days that match both (a "
          "day field starting with '*' makes cron need both); written with '&' before the "
          "day-of-week field",
          f[kDom].text, f[kDow].text));
      f[kDow].text = "&" + f[kDow].text;
      return;
    }
    if (dom_all == dow_all) return;  // both every day, or both restricted: OR either way
    const std::string message = fmt::format(
        "day-of-month '{}' and day-of-week '{}': cron runs this every day (neither starts with "
        "'*', so either matching is enough, and '{}' matches every day); written as '* *'",
        f[kDom].text, f[kDow].text, dom_all ? f[kDom].text : f[kDow].text);
    notes.push_back(message);
    warnings.push_back(message);
    f[kDom].text = "*";
    f[kDow].text = "*";
  }

  std::string unique_name(const std::string& base) {
    std::string name = base;
    for (int n = 2; used_names_.contains(name); ++n) name = fmt::format("{}-{}", base, n);
    used_names_.insert(name);
    return name;
  }

  const ImportOptions& options_;
  ImportResult result_;
  std::size_t line_ = 0;
  std::string source_line_;
  std::map<std::string, std::string> env_;
  std::string shell_;
  std::string cron_tz_;
  std::string jitter_;
  std::set<std::string> used_names_;
};

// --- TOML ---------------------------------------------------------------------

// A TOML string: a literal string when that needs no escape and saves some
// (commands with quotes and backslashes read as written), else a basic one.
std::string toml_string(std::string_view s) {
  const bool control = std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7F;
  });
  const bool needs_escape = s.find_first_of("\"\\") != std::string_view::npos;
  if (needs_escape && !control && s.find('\'') == std::string_view::npos) {
    return fmt::format("'{}'", s);
  }
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default: {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7F) {
          out += fmt::format("\\u{:04X}", u);
        } else {
          out += c;
        }
      }
    }
  }
  out += '"';
  return out;
}

}  // namespace

bool ImportResult::ok() const {
  return std::none_of(problems.begin(), problems.end(), [](const Problem& p) { return p.error; });
}

ImportResult import_crontab(std::string_view text, const ImportOptions& options) {
  return Importer(options).run(text);
}

std::string render_toml(const ImportResult& result, const ImportOptions& options) {
  const std::string source = options.source == "-" ? "<stdin>" : options.source;
  std::string out;
  out += fmt::format("# Jobs imported by `jobhost import-crontab` from {} ({} crontab).\n",
                     printable(source), options.system ? "a system" : "a user");
  out +=
      "# Each runs its command with the exec plugin: as an argv when the command has no shell\n"
      "# syntax, else with /bin/sh -c (shell = true), as cron does. PATH is cron's unless the\n"
      "# crontab sets it. Output goes to the ledger (jobhost history), not to mail.\n"
      "# Unlike cron, jobhost stops a run after its timeout (5m unless set), skips a fire while\n"
      "# the job's previous run goes on (concurrency), retries a failed run (retry) and runs a\n"
      "# fire missed while it was down once at start (misfire): see docs/migrating.md.\n";
  const bool zoneless = std::any_of(result.items.begin(), result.items.end(),
                                    [](const Item& i) { return i.job && i.job->timezone.empty(); });
  if (zoneless) {
    out +=
        "# Jobs without `timezone` (no CRON_TZ) follow [host] timezone (UTC by default); cron\n"
        "# ran them in the system's local time zone: set [host] timezone, or import with\n"
        "# --timezone ZONE.\n";
  }
  if (!result.ok()) {
    out += "# Some lines were not imported: see the comments below that say so.\n";
  }
  for (const Item& item : result.items) {
    out += '\n';
    for (const std::string& c : item.comments) out += fmt::format("# {}\n", printable(c));
    if (!item.job) continue;
    const Job& job = *item.job;
    out += fmt::format("[jobs.{}]\n", job.name);
    out += fmt::format("schedule = {}\n", toml_string(job.schedule));
    if (job.shell) {
      out += fmt::format("command = {}\nshell = true\n", toml_string(job.shell_command));
    } else {
      out += "command = [";
      for (std::size_t i = 0; i < job.argv.size(); ++i) {
        out += fmt::format("{}{}", i > 0 ? ", " : "", toml_string(job.argv[i]));
      }
      out += "]\n";
    }
    if (job.stdin_text) out += fmt::format("stdin = {}\n", toml_string(*job.stdin_text));
    if (!job.env.empty()) {
      out += "env = { ";
      bool first = true;
      for (const auto& [k, v] : job.env) {
        out += fmt::format("{}{} = {}", first ? "" : ", ", k, toml_string(v));
        first = false;
      }
      out += " }\n";
    }
    if (!job.user.empty()) out += fmt::format("user = {}\n", toml_string(job.user));
    if (!job.timezone.empty()) out += fmt::format("timezone = {}\n", toml_string(job.timezone));
    if (!job.jitter.empty()) out += fmt::format("jitter = {}\n", toml_string(job.jitter));
  }
  return out;
}

}  // namespace jobhost::crontab
