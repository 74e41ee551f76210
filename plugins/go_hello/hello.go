// A jobhost job in Go, built with -buildmode=c-shared (docs/languages.md).
//
// Params: `greeting` (what to say, default "hello") and `outcome` (`ok`,
// `retry`, `fail` or `panic`: what the run ends with, default `ok`). The run
// logs a line, sums a few numbers on goroutines (the runtime's threads work in
// the run's child), sets its message to "<greeting> from Go", records the
// metrics `greeting_bytes`, `goroutines` and `gomaxprocs` (the runtime's, from
// the job's env or the cores) and ends as `outcome` says.
package main

/*
#include <jobhost/plugin.h>
*/
import "C"

import (
	"fmt"
	"runtime"
	"sync"
)

func hello(h Host) C.int32_t {
	greeting, ok := h.Param("greeting")
	if !ok {
		greeting = "hello"
	}
	outcome, ok := h.Param("outcome")
	if !ok {
		outcome = "ok"
	}
	h.Log(logInfo, fmt.Sprintf("%s from Go, run %s (%s)", greeting, h.RunID(), h.TriggerKind()))

	const workers = 4
	var wg sync.WaitGroup
	sums := make([]int, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < 1000; i += workers {
				sums[w] += i
			}
		}(w)
	}
	wg.Wait()
	total := 0
	for _, s := range sums {
		total += s
	}
	if total != 999*1000/2 {
		h.SetMessage(fmt.Sprintf("goroutines summed %d, want %d", total, 999*1000/2))
		return C.JOBHOST_FAIL
	}
	h.Metric("greeting_bytes", float64(len(greeting)))
	h.Metric("goroutines", workers)
	h.Metric("gomaxprocs", float64(runtime.GOMAXPROCS(0)))
	h.SetMessage(greeting + " from Go")

	switch outcome {
	case "ok":
		return C.JOBHOST_OK
	case "retry":
		h.SetMessage(greeting + " from Go, asked to retry")
		return C.JOBHOST_RETRY
	case "fail":
		h.SetMessage(greeting + " from Go, asked to fail")
		return C.JOBHOST_FAIL
	case "panic":
		panic("asked to panic after saying " + greeting)
	default:
		h.Log(logWarn, fmt.Sprintf("unknown outcome param %q", outcome))
		h.SetMessage(fmt.Sprintf("unknown outcome param %q: use ok, retry, fail or panic", outcome))
		return C.JOBHOST_FAIL
	}
}

// goHelloRun is the descriptor's run (through descriptor.c). A panic must not
// cross into the host (an unrecovered one ends the whole process): it is
// recovered here and fails the run, its text the run's message.
//
//export goHelloRun
func goHelloRun(api *C.jobhost_host_api, run *C.jobhost_run) (result C.int32_t) {
	h := Host{api: api, run: run}
	defer func() {
		if r := recover(); r != nil {
			h.SetMessage(fmt.Sprintf("panicked: %v", r))
			result = C.JOBHOST_FAIL
		}
	}()
	return hello(h)
}

// A c-shared library needs a main package and a main function; it never runs.
func main() {}
