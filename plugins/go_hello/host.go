package main

/*
#include <stdlib.h>
#include <jobhost/plugin.h>

// Go cannot call a C function pointer: these call the host's for it. A
// function past the host's struct_size (an older host, ABI rule 2) or NULL is
// treated as absent.
#define HAS(h, field) \
  ((h) != NULL && (h)->struct_size >= offsetof(jobhost_host_api, field) + sizeof((h)->field) && \
   (h)->field != NULL)

static void host_log(const jobhost_host_api* h, jobhost_run* r, int32_t level, const char* m) {
  if (HAS(h, log)) h->log(r, level, m);
}
static const char* host_param(const jobhost_host_api* h, jobhost_run* r, const char* key) {
  return HAS(h, param) ? h->param(r, key) : NULL;
}
static void host_metric(const jobhost_host_api* h, jobhost_run* r, const char* name, double v) {
  if (HAS(h, metric)) h->metric(r, name, v);
}
static void host_set_message(const jobhost_host_api* h, jobhost_run* r, const char* m) {
  if (HAS(h, set_message)) h->set_message(r, m);
}
static const char* host_run_id(const jobhost_host_api* h, jobhost_run* r) {
  return HAS(h, run_id) ? h->run_id(r) : NULL;
}
static const char* host_trigger_kind(const jobhost_host_api* h, jobhost_run* r) {
  return HAS(h, trigger_kind) ? h->trigger_kind(r) : NULL;
}
*/
import "C"

import (
	"strings"
	"unsafe"
)

// Host is the host API of one run. Strings going in are copied to C memory
// for the call (the host copies them in turn); strings coming back are copied
// into Go strings, so nothing of the host's outlives the run.
type Host struct {
	api *C.jobhost_host_api
	run *C.jobhost_run
}

const (
	logInfo = C.JOBHOST_LOG_INFO
	logWarn = C.JOBHOST_LOG_WARN
)

// cString copies s to C memory, cut at an interior NUL; free it with C.free.
func cString(s string) *C.char {
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	return C.CString(s)
}

func goString(p *C.char) (string, bool) {
	if p == nil {
		return "", false
	}
	return C.GoString(p), true
}

func (h Host) Log(level int, message string) {
	m := cString(message)
	defer C.free(unsafe.Pointer(m))
	C.host_log(h.api, h.run, C.int32_t(level), m)
}

// Param is the job's params value for key, and whether it is set.
func (h Host) Param(key string) (string, bool) {
	k := cString(key)
	defer C.free(unsafe.Pointer(k))
	return goString(C.host_param(h.api, h.run, k))
}

func (h Host) Metric(name string, value float64) {
	n := cString(name)
	defer C.free(unsafe.Pointer(n))
	C.host_metric(h.api, h.run, n, C.double(value))
}

func (h Host) SetMessage(message string) {
	m := cString(message)
	defer C.free(unsafe.Pointer(m))
	C.host_set_message(h.api, h.run, m)
}

func (h Host) RunID() string {
	s, _ := goString(C.host_run_id(h.api, h.run))
	return s
}

func (h Host) TriggerKind() string {
	s, _ := goString(C.host_trigger_kind(h.api, h.run))
	return s
}
