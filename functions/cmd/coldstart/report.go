package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// dist summarises one measure over the runs, in milliseconds (sizes: MiB).
type dist struct {
	Median float64 `json:"median"`
	P90    float64 `json:"p90"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

// summarise returns the median (mean of the middle two for an even count),
// the 90th percentile (nearest rank), the minimum and the maximum.
func summarise(xs []float64) dist {
	if len(xs) == 0 {
		return dist{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	rank := int(math.Ceil(0.9*float64(n))) - 1
	return dist{Median: med, P90: s[max(rank, 0)], Min: s[0], Max: s[n-1]}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// result is one function built one way.
type result struct {
	Function     string   `json:"function"`
	Build        string   `json:"build"`
	SizeBytes    int64    `json:"size_bytes"`
	ListenMS     dist     `json:"listen_ms"`
	FirstAnswer  dist     `json:"first_answer_ms"`
	FirstRequest dist     `json:"first_request_ms"`
	WarmRequest  dist     `json:"warm_request_ms"`
	CPUMS        dist     `json:"cpu_ms"`
	MaxRSSMiB    dist     `json:"max_rss_mib"`
	Samples      []sample `json:"samples"`
}

func newResult(fn string, v variant, samples []sample) result {
	pick := func(f func(sample) float64) dist {
		xs := make([]float64, len(samples))
		for i, s := range samples {
			xs[i] = f(s)
		}
		return summarise(xs)
	}
	return result{
		Function: fn, Build: v.Name, SizeBytes: v.Size, Samples: samples,
		ListenMS:     pick(func(s sample) float64 { return ms(s.Listen) }),
		FirstAnswer:  pick(func(s sample) float64 { return ms(s.FirstAnswer) }),
		FirstRequest: pick(func(s sample) float64 { return ms(s.FirstRequest) }),
		WarmRequest:  pick(func(s sample) float64 { return ms(s.WarmRequest) }),
		CPUMS:        pick(func(s sample) float64 { return ms(s.CPU) }),
		MaxRSSMiB:    pick(func(s sample) float64 { return float64(s.MaxRSS) / (1 << 20) }),
	}
}

// machine describes where the numbers were taken.
type machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
}

func thisMachine(goVersion string) machine {
	m := machine{CPUs: runtime.NumCPU(), GoVersion: goVersion, OS: runtime.GOOS + "/" + runtime.GOARCH}
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// report is the JSON report.
type report struct {
	Machine   machine   `json:"machine"`
	Runs      int       `json:"runs"`
	Warmup    int       `json:"warmup"`
	PollEvery string    `json:"poll_every"`
	Builds    []variant `json:"builds"`
	Results   []result  `json:"results"`
}

// printTable writes one row per function and build: sizes in MiB, times in
// milliseconds as median / p90.
func printTable(w io.Writer, r report) error {
	fmt.Fprintf(w, "machine: %d CPUs, %s, %s, %s; %d starts per row (after %d discarded), times in ms as median / p90\n\n",
		r.Machine.CPUs, r.Machine.CPUModel, r.Machine.OS, r.Machine.GoVersion, r.Runs, r.Warmup)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "function\tbuild\tbinary MiB\tlisten\tfirst answer\tfirst request\twarm request\tCPU\tmax RSS MiB\t")
	pair := func(d dist) string { return fmt.Sprintf("%.1f / %.1f", d.Median, d.P90) }
	for _, res := range r.Results {
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%s\t%s\t%s\t%s\t%s\t%.1f\t\n",
			res.Function, res.Build, float64(res.SizeBytes)/(1<<20),
			pair(res.ListenMS), pair(res.FirstAnswer), pair(res.FirstRequest), pair(res.WarmRequest),
			pair(res.CPUMS), res.MaxRSSMiB.Median)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprint(w, `
builds: buildpack = go build as the Go buildpack runs it; stripped = -ldflags "-s -w"; no-cgo = CGO_ENABLED=0 (static)
listen: process start until the port accepts a connection (runtime and package init, funcframework.Start)
first answer: process start until the first request is answered (200)
first request: that request alone; it includes adapter.Lazy's configuration and client setup
warm request: the same request again on the same connection
CPU: the process's user+system time from start until it is killed after the warm request
`)
	return nil
}
