// Package cpuprofile measures the CPU and memory of an in-process run: the
// process's CPU time and peak RSS, and, while a CPU profile is sampled, the
// CPU time spent in each of the three functions (the goroutines running them
// carry a pprof label, read back with github.com/google/pprof/profile).
package cpuprofile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/pprof/profile"
)

// ProcessCPU is the user and system CPU time this process has used.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// PeakRSSMiB is the process's peak resident set size so far.
func PeakRSSMiB() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return float64(m.Sys) / (1 << 20)
	}
	return float64(ru.Maxrss) / 1024 // KiB on Linux
}

var heapSample = []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}

// HeapMiB is the heap held by objects (live and not yet swept) now.
func HeapMiB() float64 {
	metrics.Read(heapSample)
	if heapSample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return float64(heapSample[0].Value.Uint64()) / (1 << 20)
}

// profiling is set while a CPU profile is sampled; only then are the
// functions' goroutines labelled.
var profiling atomic.Bool

// LabelKey is the pprof label that names the function a goroutine runs.
const LabelKey = "certprov_function"

// InFunction runs f as part of function (one of ClaimProcess, PollSignature,
// IssueCertificate) for Start's attribution; without a running profile it
// just calls f.
func InFunction(ctx context.Context, function string, f func(ctx context.Context)) {
	if !profiling.Load() {
		f(ctx)
		return
	}
	pprof.Do(ctx, pprof.Labels(LabelKey, function), f)
}

// Start starts sampling a CPU profile; the returned stop ends it and returns
// the CPU seconds sampled per function (InFunction; "other" for the rest: the
// API emulator, the clients, the dispatcher, the runtime). Only one profile
// per process may run at a time.
func Start() (stop func() map[string]float64, err error) {
	var buf bytes.Buffer
	if err := pprof.StartCPUProfile(&buf); err != nil {
		return nil, fmt.Errorf("CPU profile: %w", err)
	}
	profiling.Store(true)
	return func() map[string]float64 {
		pprof.StopCPUProfile()
		profiling.Store(false)
		m, err := ByLabel(&buf, LabelKey)
		if err != nil {
			return map[string]float64{"error": 0}
		}
		return m
	}, nil
}

// ByLabel reads a pprof CPU profile (gzipped, as runtime/pprof writes it)
// and sums its CPU time by the value of the label key, in seconds; samples
// without the label count as "other".
func ByLabel(r io.Reader, key string) (map[string]float64, error) {
	p, err := profile.Parse(r)
	if err != nil {
		return nil, fmt.Errorf("CPU profile: %w", err)
	}
	idx := -1
	for i, t := range p.SampleType {
		if t.Type == "cpu" {
			idx = i
		}
	}
	if idx < 0 {
		return nil, errors.New("CPU profile: no cpu sample type")
	}
	scale := 1.0 / 1e9
	if u := p.SampleType[idx].Unit; u != "nanoseconds" {
		return nil, fmt.Errorf("CPU profile: cpu in %s, want nanoseconds", u)
	}
	out := map[string]float64{}
	for _, s := range p.Sample {
		if idx >= len(s.Value) {
			continue
		}
		name := "other"
		if v := s.Label[key]; len(v) > 0 {
			name = v[0]
		}
		out[name] += float64(s.Value[idx]) * scale
	}
	return out, nil
}
