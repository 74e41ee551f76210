// The `python` plugin: runs a function of a Python module in a CPython
// interpreter embedded in the run's own process, with the host API as a
// built-in `jobhost` module (docs/languages.md#python).
//
//     [jobs.nightly]
//     plugin = "python"
//     params = { module = "nightly", function = "run", path = "/srv/jobs" }
//
// Every run is a fresh process (ABI rule 5), so every run gets a fresh
// interpreter: it is started in `run`, never at load time (rule 6: the fork
// server and the catalog's probe load this library, and must find it inert),
// and never finalised (the child _exits).
//
// Python.h comes first: it sets feature-test macros the C library reads.
#include <Python.h>
#include <dlfcn.h>
#include <signal.h>
#include <unistd.h>
#include <jobhost/plugin.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#ifndef JOBHOST_PYTHON_EXECUTABLE
#define JOBHOST_PYTHON_EXECUTABLE "/usr/bin/python3"
#endif

namespace {

// The host keeps the first 4 KiB of a message (exec/fork_executor.cpp); a
// traceback is trimmed below that by this plugin, keeping its end.
constexpr std::size_t kMaxMessage = 4000;

// The run's context, for the jobhost module's functions; set only while the
// job's function runs in a run's process. Constant-initialised: loading the
// library does no work.
const jobhost::Context* g_ctx = nullptr;
PyObject* g_retry = nullptr;  // jobhost.Retry
bool g_message_set = false;   // the job called set_message()

// --- text between Python and the host ----------------------------------------

// str(obj) as UTF-8; false with a Python error set. Lone surrogates are
// written back as the bytes they escape (secret() decodes with
// surrogateescape), or as \udXXX escapes when they escape no byte.
bool utf8_of(PyObject* obj, std::string& out) {
  PyObject* text = PyObject_Str(obj);
  if (text == nullptr) return false;
  PyObject* bytes = PyUnicode_AsEncodedString(text, "utf-8", "surrogateescape");
  if (bytes == nullptr && PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
    PyErr_Clear();
    bytes = PyUnicode_AsEncodedString(text, "utf-8", "backslashreplace");
  }
  Py_DECREF(text);
  if (bytes == nullptr) return false;
  out.assign(PyBytes_AS_STRING(bytes), static_cast<std::size_t>(PyBytes_GET_SIZE(bytes)));
  Py_DECREF(bytes);
  return true;
}

// A host string as a Python str; bytes that are not UTF-8 (a secret file may
// hold any) become surrogate escapes, so s.encode("utf-8", "surrogateescape")
// gives the exact bytes back.
PyObject* str_of(const std::string& text) {
  return PyUnicode_DecodeUTF8(text.data(), static_cast<Py_ssize_t>(text.size()), "surrogateescape");
}

PyObject* str_or_none(const std::optional<std::string>& text) {
  if (!text) Py_RETURN_NONE;
  return str_of(*text);
}

// The host API is valid only during the run (ABI): a thread the job left
// behind that calls it later gets an exception, not a dangling pointer.
const jobhost::Context* context() {
  if (g_ctx == nullptr) PyErr_SetString(PyExc_RuntimeError, "jobhost: the run is over");
  return g_ctx;
}

// --- the jobhost module ------------------------------------------------------

PyObject* py_log(PyObject*, PyObject* args, PyObject* kwargs) {
  static const char* keywords[] = {"message", "level", nullptr};
  PyObject* message = nullptr;
  const char* level = "info";
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|s:log", const_cast<char**>(keywords), &message,
                                   &level)) {
    return nullptr;
  }
  const std::string_view name = level;
  int32_t code = 0;
  if (name == "debug") {
    code = JOBHOST_LOG_DEBUG;
  } else if (name == "info") {
    code = JOBHOST_LOG_INFO;
  } else if (name == "warn" || name == "warning") {
    code = JOBHOST_LOG_WARN;
  } else if (name == "error") {
    code = JOBHOST_LOG_ERROR;
  } else {
    return PyErr_Format(PyExc_ValueError,
                        "jobhost.log: level must be \"debug\", \"info\", \"warn\" or \"error\", "
                        "not \"%s\"",
                        level);
  }
  std::string text;
  if (!utf8_of(message, text)) return nullptr;
  const auto* ctx = context();
  if (ctx == nullptr) return nullptr;
  ctx->api()->log(ctx->handle(), code, text.c_str());
  Py_RETURN_NONE;
}

PyObject* py_param(PyObject*, PyObject* args, PyObject* kwargs) {
  static const char* keywords[] = {"key", "default", nullptr};
  const char* key = nullptr;
  PyObject* fallback = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "s|O:param", const_cast<char**>(keywords), &key,
                                   &fallback)) {
    return nullptr;
  }
  const auto* ctx = context();
  if (ctx == nullptr) return nullptr;
  if (auto value = ctx->param(key)) return str_of(*value);
  return Py_NewRef(fallback);
}

PyObject* py_secret(PyObject*, PyObject* args) {
  const char* name = nullptr;
  if (!PyArg_ParseTuple(args, "s:secret", &name)) return nullptr;
  const auto* ctx = context();
  if (ctx == nullptr) return nullptr;
  return str_or_none(ctx->secret(name));
}

PyObject* py_heartbeat(PyObject*, PyObject* args, PyObject* kwargs) {
  static const char* keywords[] = {"progress", nullptr};
  double progress = -1.0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|d:heartbeat", const_cast<char**>(keywords),
                                   &progress)) {
    return nullptr;
  }
  const auto* ctx = context();
  if (ctx == nullptr) return nullptr;
  ctx->heartbeat(progress);
  Py_RETURN_NONE;
}

PyObject* py_cancelled(PyObject*, PyObject*) {
  const auto* ctx = context();
  if (ctx == nullptr) return nullptr;
  return PyBool_FromLong(ctx->cancelled() ? 1 : 0);
}

PyObject* py_metric(PyObject*, PyObject* args) {
  const char* name = nullptr;
  double value = 0;
  if (!PyArg_ParseTuple(args, "sd:metric", &name, &value)) return nullptr;
  const auto* ctx = context();
  if (ctx == nullptr) return nullptr;
  ctx->metric(name, value);
  Py_RETURN_NONE;
}

PyObject* py_set_message(PyObject*, PyObject* message) {
  std::string text;
  if (!utf8_of(message, text)) return nullptr;
  const auto* ctx = context();
  if (ctx == nullptr) return nullptr;
  ctx->set_message(text);
  g_message_set = true;
  Py_RETURN_NONE;
}

PyObject* py_run_id(PyObject*, PyObject*) {
  const auto* ctx = context();
  return ctx == nullptr ? nullptr : str_of(ctx->run_id());
}

PyObject* py_attempt(PyObject*, PyObject*) {
  const auto* ctx = context();
  return ctx == nullptr ? nullptr : PyLong_FromUnsignedLong(ctx->attempt());
}

PyObject* py_scheduled_for(PyObject*, PyObject*) {
  const auto* ctx = context();
  if (ctx == nullptr) return nullptr;
  return PyLong_FromLongLong(ctx->scheduled_for().time_since_epoch().count());
}

PyObject* py_trigger_kind(PyObject*, PyObject*) {
  const auto* ctx = context();
  return ctx == nullptr ? nullptr : str_of(ctx->trigger_kind());
}

PyObject* py_event(PyObject*, PyObject*) {
  const auto* ctx = context();
  return ctx == nullptr ? nullptr : str_or_none(ctx->event());
}

template <class F>
PyCFunction as_cfunction(F* f) {
  return reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(f));
}

PyMethodDef g_methods[] = {
    {"log", as_cfunction(py_log), METH_VARARGS | METH_KEYWORDS,
     "log(message, level=\"info\"): one log line (level debug, info, warn or error)"},
    {"param", as_cfunction(py_param), METH_VARARGS | METH_KEYWORDS,
     "param(key, default=None): the job's params value for key (a str), else default"},
    {"secret", as_cfunction(py_secret), METH_VARARGS,
     "secret(name): the secret's value (a str), or None when the job may not read it"},
    {"heartbeat", as_cfunction(py_heartbeat), METH_VARARGS | METH_KEYWORDS,
     "heartbeat(progress=-1.0): says the run is alive; progress 0..1, negative when unknown"},
    {"cancelled", py_cancelled, METH_NOARGS,
     "cancelled(): True once the host asked the run to stop; return soon"},
    {"metric", py_metric, METH_VARARGS, "metric(name, value): records a named number for this run"},
    {"set_message", py_set_message, METH_O,
     "set_message(message): the human message recorded with the outcome"},
    {"run_id", py_run_id, METH_NOARGS, "run_id(): this run's id"},
    {"attempt", py_attempt, METH_NOARGS,
     "attempt(): 1 for a fire's first attempt, 2 for its retry"},
    {"scheduled_for", py_scheduled_for, METH_NOARGS,
     "scheduled_for(): the fire's slot, milliseconds since the Unix epoch (UTC)"},
    {"trigger_kind", py_trigger_kind, METH_NOARGS,
     "trigger_kind(): what made this run (schedule, manual, retry, webhook, ...)"},
    {"event", py_event, METH_NOARGS,
     "event(): the trigger's payload as a JSON str, or None when it has none"},
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef g_module = {PyModuleDef_HEAD_INIT,
                        "jobhost",
                        "The jobhost host API for a job run by the python plugin.",
                        -1,
                        g_methods,
                        nullptr,
                        nullptr,
                        nullptr,
                        nullptr};

PyObject* init_jobhost_module() {
  PyObject* module = PyModule_Create(&g_module);
  if (module == nullptr) return nullptr;
  g_retry = PyErr_NewExceptionWithDoc(
      "jobhost.Retry",
      "Raise it to end the run as a transient failure, retried per the job's retry policy; "
      "its str() is the run's message.",
      nullptr, nullptr);
  if (g_retry == nullptr || PyModule_AddObjectRef(module, "Retry", g_retry) < 0) {
    Py_DECREF(module);
    return nullptr;
  }
  return module;
}

// --- the interpreter ---------------------------------------------------------

std::string status_text(const char* what, const PyStatus& status) {
  std::string text = what;
  if (status.func != nullptr) text += std::string(": ") + status.func;
  if (status.err_msg != nullptr) text += std::string(": ") + status.err_msg;
  if (PyStatus_IsExit(status)) text += ": exit code " + std::to_string(status.exitcode);
  return text;
}

// Starts the interpreter of this run; the reason when it cannot.
std::optional<std::string> start_interpreter(const std::vector<std::string>& path) {
  // Extension modules of the standard library (lib-dynload: _json, _ssl,
  // _decimal, ...) take the Py* symbols from the global scope, as they would
  // from the python3 executable; the host loads this plugin, and so
  // libpython, with RTLD_LOCAL. Promote libpython to global in this process.
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&Py_InitializeFromConfig), &info) != 0 &&
      info.dli_fname != nullptr) {
    dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_GLOBAL);
  }
  // As a Python program: a write to a closed pipe raises BrokenPipeError
  // rather than killing the run. (The interpreter does this itself only
  // when it installs its signal handlers, which it must not: SIGTERM is the
  // host's cancel request, and SIGXFSZ must end the run at limits.file_size.)
  signal(SIGPIPE, SIG_IGN);

  // Isolated: no PYTHON* variables, no user site directory, no current
  // directory on sys.path. UTF-8 mode: the run's locale is "C".
  PyPreConfig preconfig;
  PyPreConfig_InitIsolatedConfig(&preconfig);
  preconfig.utf8_mode = 1;
  PyStatus status = Py_PreInitialize(&preconfig);
  if (PyStatus_Exception(status)) return status_text("cannot start Python", status);

  if (PyImport_AppendInittab("jobhost", init_jobhost_module) != 0) {
    return "cannot start Python: cannot add the jobhost module";
  }
  PyConfig config;
  PyConfig_InitIsolatedConfig(&config);
  config.buffered_stdio = 0;  // print() reaches the run's output as it happens
  config.write_bytecode = 0;  // no __pycache__ written next to the job's code
  // Found as Debian's python3 would be: sys.prefix /usr, the standard
  // library, dist-packages; and sys.executable names a Python, not the
  // fork server, for subprocess and multiprocessing.
  status = PyConfig_SetBytesString(&config, &config.program_name, JOBHOST_PYTHON_EXECUTABLE);
  if (!PyStatus_Exception(status)) status = Py_InitializeFromConfig(&config);
  PyConfig_Clear(&config);
  if (PyStatus_Exception(status)) return status_text("cannot start Python", status);

  // The job's directories, first on sys.path, in the order given.
  PyObject* sys_path = PySys_GetObject("path");  // borrowed
  if (sys_path == nullptr || !PyList_Check(sys_path)) return "cannot start Python: no sys.path";
  for (std::size_t i = 0; i < path.size(); ++i) {
    PyObject* entry = str_of(path[i]);
    if (entry == nullptr || PyList_Insert(sys_path, static_cast<Py_ssize_t>(i), entry) != 0) {
      Py_XDECREF(entry);
      PyErr_Clear();
      return "cannot start Python: cannot add \"" + path[i] + "\" to sys.path";
    }
    Py_DECREF(entry);
  }
  return std::nullopt;
}

// Writes all of `text` to the run's output (stderr).
void write_output(std::string_view text) {
  while (!text.empty()) {
    const ssize_t n = ::write(STDERR_FILENO, text.data(), text.size());
    if (n <= 0) return;
    text.remove_prefix(static_cast<std::size_t>(n));
  }
}

// sys.stdout and sys.stderr are unbuffered, but a job may have replaced
// them: flush what it printed before the process _exits.
void flush_std_streams() {
  for (const char* name : {"stdout", "stderr"}) {
    PyObject* stream = PySys_GetObject(name);  // borrowed
    if (stream == nullptr || stream == Py_None) continue;
    PyObject* result = PyObject_CallMethod(stream, "flush", nullptr);
    if (result == nullptr) PyErr_Clear();
    Py_XDECREF(result);
  }
}

// A message that fits the host's: a long traceback keeps its head (what
// was being done, "Traceback (most recent call last):") and its end (the
// exception and the innermost frames), cut at a line, and says where the
// whole of it is.
std::string trim_traceback(std::string text) {
  while (!text.empty() && text.back() == '\n') text.pop_back();
  if (text.size() <= kMaxMessage) return text;
  constexpr std::string_view kTraceback = "Traceback (most recent call last):\n";
  std::string head;
  if (const auto at = text.find(kTraceback); at < 512) {
    head = text.substr(0, at + kTraceback.size());
  }
  head += "  ... (cut; the whole traceback is in the run's output)\n";
  std::size_t start = text.size() - (kMaxMessage - head.size());
  if (const auto line = text.find('\n', start); line != std::string::npos) {
    start = line + 1;
  } else {
    while (start < text.size() && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) ++start;
  }
  return head + text.substr(start);
}

// traceback.format_exception of the exception, as one string.
std::string format_exception(PyObject* type, PyObject* value, PyObject* traceback) {
  std::string text;
  PyObject* module = PyImport_ImportModule("traceback");
  PyObject* lines = module == nullptr ? nullptr
                                      : PyObject_CallMethod(module, "format_exception", "OOO", type,
                                                            value ? value : Py_None,
                                                            traceback ? traceback : Py_None);
  PyObject* empty = lines == nullptr ? nullptr : PyUnicode_FromString("");
  PyObject* joined = empty == nullptr ? nullptr : PyUnicode_Join(empty, lines);
  if (joined == nullptr || !utf8_of(joined, text)) {
    PyErr_Clear();
    const char* name = PyExceptionClass_Check(type) ? PyExceptionClass_Name(type) : "exception";
    text = std::string(name) + " (the traceback module could not format it)";
  }
  Py_XDECREF(joined);
  Py_XDECREF(empty);
  Py_XDECREF(lines);
  Py_XDECREF(module);
  return text;
}

struct Verdict {
  jobhost::Result result;
  std::optional<std::string> message;  // set as the run's message when given
};

// The outcome of the exception that is set (and clears it). `context` says
// what was being done ("" for the job's function itself).
Verdict judge_exception(const std::string& context) {
  PyObject* type = nullptr;
  PyObject* value = nullptr;
  PyObject* traceback = nullptr;
  PyErr_Fetch(&type, &value, &traceback);
  PyErr_NormalizeException(&type, &value, &traceback);
  if (traceback != nullptr && value != nullptr) PyException_SetTraceback(value, traceback);
  Verdict verdict{jobhost::Result::fail, std::nullopt};

  if (g_retry != nullptr && PyErr_GivenExceptionMatches(type, g_retry)) {
    // Retry("why"): the message; Retry(): whatever set_message() said.
    std::string why;
    if (value == nullptr || !utf8_of(value, why)) PyErr_Clear();
    verdict.result = jobhost::Result::retry;
    if (!why.empty()) {
      verdict.message = context + why;
    } else if (!g_message_set) {
      verdict.message = context + "jobhost.Retry raised";
    }
  } else if (PyErr_GivenExceptionMatches(type, PyExc_SystemExit)) {
    // sys.exit() as the python3 command treats it: None or 0 succeed, an
    // int is the exit status, anything else is printed and fails.
    PyObject* code = value == nullptr ? nullptr : PyObject_GetAttrString(value, "code");
    if (code == nullptr) PyErr_Clear();
    int overflow = 0;
    if (code == nullptr || code == Py_None ||
        (PyLong_Check(code) && PyLong_AsLongAndOverflow(code, &overflow) == 0 && overflow == 0)) {
      verdict.result = jobhost::Result::ok;
    } else {
      std::string text;
      if (!utf8_of(code, text)) PyErr_Clear();
      verdict.message = context + "sys.exit(" + text + ")";
    }
    Py_XDECREF(code);
  } else {
    // Any other exception fails the run with its traceback: the message has
    // what fits, the run's output all of it.
    const std::string text = format_exception(type, value, traceback);
    write_output(text);
    verdict.message = trim_traceback(context + text);
  }
  Py_XDECREF(type);
  Py_XDECREF(value);
  Py_XDECREF(traceback);
  return verdict;
}

// "a, b, c" of sys.path, for a module that is not found.
std::string sys_path_text() {
  std::string text;
  PyObject* sys_path = PySys_GetObject("path");  // borrowed
  if (sys_path == nullptr || !PyList_Check(sys_path)) return text;
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(sys_path); ++i) {
    std::string entry;
    if (!utf8_of(PyList_GET_ITEM(sys_path, i), entry)) {
      PyErr_Clear();
      continue;
    }
    if (!text.empty()) text += ", ";
    text += entry;
  }
  return text;
}

// Imports `module`; nullptr with the verdict set when it cannot.
PyObject* import_module(const std::string& module, Verdict& verdict) {
  PyObject* imported = PyImport_ImportModule(module.c_str());
  if (imported != nullptr) return imported;
  // The module itself (or a package on its way) is not there: say where it
  // was looked for. An import inside it that fails is its traceback.
  if (PyErr_ExceptionMatches(PyExc_ModuleNotFoundError)) {
    PyObject *type = nullptr, *value = nullptr, *traceback = nullptr;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    PyObject* name = value == nullptr ? nullptr : PyObject_GetAttrString(value, "name");
    std::string missing;
    if (name == nullptr || name == Py_None || !utf8_of(name, missing)) PyErr_Clear();
    Py_XDECREF(name);
    const bool ours = !missing.empty() && (module == missing || module.starts_with(missing + "."));
    if (ours) {
      Py_XDECREF(type);
      Py_XDECREF(value);
      Py_XDECREF(traceback);
      verdict = {jobhost::Result::fail,
                 "cannot import module \"" + module + "\": no module named \"" + missing +
                     "\" on sys.path (params.path adds directories): " + sys_path_text()};
      return nullptr;
    }
    PyErr_Restore(type, value, traceback);
  }
  verdict = judge_exception("importing module \"" + module + "\" failed:\n");
  return nullptr;
}

// module.function (function may be dotted: "Job.run"); nullptr with the
// verdict set when it is not there or not callable.
PyObject* find_function(PyObject* module, const std::string& module_name,
                        const std::string& function, Verdict& verdict) {
  PyObject* object = Py_NewRef(module);
  std::size_t start = 0;
  while (object != nullptr) {
    const std::size_t dot = function.find('.', start);
    const std::string part = function.substr(start, dot - start);
    PyObject* next = PyObject_GetAttrString(object, part.c_str());
    Py_DECREF(object);
    object = next;
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  if (object == nullptr && !PyErr_ExceptionMatches(PyExc_AttributeError)) {
    verdict = judge_exception("looking up \"" + function + "\" failed: ");
    return nullptr;
  }
  PyErr_Clear();
  std::string where = "module \"" + module_name + "\"";
  PyObject* file = PyModule_GetFilenameObject(module);
  std::string file_name;
  if (file != nullptr && utf8_of(file, file_name)) where += " (" + file_name + ")";
  Py_XDECREF(file);
  PyErr_Clear();  // a module without a file (a namespace package) has no name to show
  if (object == nullptr) {
    verdict = {jobhost::Result::fail, where + " has no function \"" + function + "\""};
    return nullptr;
  }
  if (!PyCallable_Check(object)) {
    verdict = {jobhost::Result::fail, module_name + "." + function + " in " + where +
                                          " is not a function (it is a " +
                                          Py_TYPE(object)->tp_name + ")"};
    Py_DECREF(object);
    return nullptr;
  }
  return object;
}

// Imports the module and calls the function with no arguments.
Verdict call_job(const std::string& module_name, const std::string& function) {
  Verdict verdict{jobhost::Result::ok, std::nullopt};
  PyObject* module = import_module(module_name, verdict);
  if (module == nullptr) return verdict;
  PyObject* callable = find_function(module, module_name, function, verdict);
  Py_DECREF(module);
  if (callable == nullptr) return verdict;
  PyObject* returned = PyObject_CallNoArgs(callable);
  Py_DECREF(callable);
  // An `async def` function: run its coroutine to the end, as asyncio.run
  // does for a program's main (not calling it would silently succeed).
  if (returned != nullptr && PyCoro_CheckExact(returned)) {
    PyObject* asyncio = PyImport_ImportModule("asyncio");
    PyObject* coroutine = returned;
    returned = asyncio == nullptr ? nullptr : PyObject_CallMethod(asyncio, "run", "O", coroutine);
    Py_DECREF(coroutine);
    Py_XDECREF(asyncio);
  }
  if (returned == nullptr) return judge_exception("");
  // A str returned is the message; any other value is ignored.
  if (PyUnicode_Check(returned)) {
    std::string text;
    if (utf8_of(returned, text)) {
      verdict.message = text;
    } else {
      PyErr_Clear();
    }
  }
  Py_DECREF(returned);
  return verdict;
}

// The job's `path` param: directories separated by ':', each absolute.
std::optional<std::string> split_path(const std::string& text, std::vector<std::string>& out) {
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find(':', start);
    if (end == std::string::npos) end = text.size();
    std::string entry = text.substr(start, end - start);
    if (!entry.empty()) {
      if (entry.front() != '/') {
        return "params.path: \"" + entry +
               "\" is not an absolute directory (a run's working directory is its state "
               "directory, not the config's)";
      }
      out.push_back(std::move(entry));
    }
    start = end + 1;
  }
  return std::nullopt;
}

class PythonJob {
 public:
  jobhost::Result run(jobhost::Context& ctx) {
    const auto module = ctx.param("module");
    if (!module || module->empty()) {
      ctx.set_message(
          "the job has no params.module: set params = { module = \"name\", function = \"run\" }");
      return jobhost::Result::fail;
    }
    const std::string function = ctx.param_or("function", "run");
    if (function.empty()) {
      ctx.set_message("params.function is empty: name the function of \"" + *module + "\" to call");
      return jobhost::Result::fail;
    }
    std::vector<std::string> path;
    if (auto error = split_path(ctx.param_or("path", ""), path)) {
      ctx.set_message(*error);
      return jobhost::Result::fail;
    }
    if (auto error = start_interpreter(path)) {
      ctx.set_message(*error);
      return jobhost::Result::fail;
    }
    g_ctx = &ctx;
    const Verdict verdict = call_job(*module, function);
    flush_std_streams();
    g_ctx = nullptr;
    if (verdict.message) ctx.set_message(*verdict.message);
    return verdict.result;
  }
};

}  // namespace

JOBHOST_PLUGIN(PythonJob, "python", "1.0.0",
               "Runs a function of a Python module in embedded CPython " PY_VERSION)
