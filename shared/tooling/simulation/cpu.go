package simulation

import (
	"bytes"
	"compress/gzip"
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

	"google.golang.org/protobuf/encoding/protowire"
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

// heapMiB is the heap held by objects (live and not yet swept) now.
func heapMiB() float64 {
	metrics.Read(heapSample)
	if heapSample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return float64(heapSample[0].Value.Uint64()) / (1 << 20)
}

// profiling is set while a run samples a CPU profile; only then are the
// functions' goroutines labelled.
var profiling atomic.Bool

const labelKey = "certprov_function"

// labelled runs f with the pprof label naming the function, while profiling.
func labelled(ctx context.Context, function string, f func(ctx context.Context)) {
	if !profiling.Load() {
		f(ctx)
		return
	}
	pprof.Do(ctx, pprof.Labels(labelKey, function), f)
}

// startCPUProfile starts the CPU profiler; the returned stop ends it and
// returns the CPU seconds sampled per function label ("other" for the rest:
// the API emulator, the clients, the dispatcher, the runtime).
func startCPUProfile() (func() map[string]float64, error) {
	var buf bytes.Buffer
	if err := pprof.StartCPUProfile(&buf); err != nil {
		return nil, fmt.Errorf("CPU profile: %w", err)
	}
	profiling.Store(true)
	return func() map[string]float64 {
		pprof.StopCPUProfile()
		profiling.Store(false)
		m, err := cpuByLabel(buf.Bytes(), labelKey)
		if err != nil {
			return map[string]float64{"error": 0}
		}
		return m
	}, nil
}

// cpuByLabel sums the cpu/nanoseconds of a gzipped pprof CPU profile by the
// value of one label, in seconds. It reads profile.proto with protowire (no
// pprof dependency): Profile{1 sample_type, 2 sample, 6 string_table},
// Sample{2 value, 3 label}, Label{1 key, 2 str}, ValueType{1 type, 2 unit}.
func cpuByLabel(gz []byte, key string) (map[string]float64, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		return nil, err
	}
	var strs []string
	var types [][2]int64
	type label struct{ key, str int64 }
	type sample struct {
		values []int64
		labels []label
	}
	var samples []sample
	err = eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch num {
		case 1:
			var vt [2]int64
			err := eachField(v, func(n protowire.Number, _ protowire.Type, _ []byte, x uint64) error {
				if n == 1 || n == 2 {
					vt[n-1] = int64(x)
				}
				return nil
			})
			types = append(types, vt)
			return err
		case 2:
			var s sample
			err := eachField(v, func(n protowire.Number, t protowire.Type, vb []byte, x uint64) error {
				switch n {
				case 2:
					if t == protowire.BytesType {
						for len(vb) > 0 {
							u, k := protowire.ConsumeVarint(vb)
							if k < 0 {
								return errors.New("bad packed value")
							}
							s.values = append(s.values, int64(u))
							vb = vb[k:]
						}
					} else {
						s.values = append(s.values, int64(x))
					}
				case 3:
					var l label
					err := eachField(vb, func(n protowire.Number, _ protowire.Type, _ []byte, x uint64) error {
						switch n {
						case 1:
							l.key = int64(x)
						case 2:
							l.str = int64(x)
						}
						return nil
					})
					s.labels = append(s.labels, l)
					return err
				}
				return nil
			})
			samples = append(samples, s)
			return err
		case 6:
			strs = append(strs, string(v))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	str := func(i int64) string {
		if i < 0 || int(i) >= len(strs) {
			return ""
		}
		return strs[i]
	}
	idx := -1
	for i, t := range types {
		if str(t[0]) == "cpu" {
			idx = i
		}
	}
	if idx < 0 {
		return nil, errors.New("no cpu sample type")
	}
	out := map[string]float64{}
	for _, s := range samples {
		if idx >= len(s.values) {
			continue
		}
		name := "other"
		for _, l := range s.labels {
			if str(l.key) == key {
				name = str(l.str)
			}
		}
		out[name] += float64(s.values[idx]) / 1e9
	}
	return out, nil
}

// eachField calls f for every field of a protobuf message: v is the payload of
// a length-delimited field, x the value of a varint or fixed field.
func eachField(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.Fixed64Type:
			x, n = protowire.ConsumeFixed64(b)
		case protowire.Fixed32Type:
			var y uint32
			y, n = protowire.ConsumeFixed32(b)
			x = uint64(y)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := f(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}
