// Command coldstart measures each function's cold start and binary size. It
// renders the source bundle as terraform does, builds it as the Cloud
// Functions Go buildpack does (and, for comparison, stripped with -ldflags
// "-s -w", and static with CGO_ENABLED=0), then starts the binary again and again for each entry point with the
// environment terraform gives it. For every start it times process start
// until the port listens and until the first request is answered, the first
// request alone (the functions configure themselves and create their clients
// on it) and a second, warm one; it prints medians and 90th percentiles.
//
// The requests get a definite answer without a cloud call: ClaimProcess
// acknowledges a Pub/Sub push delivery that is not a notification, and the
// task functions acknowledge a task body without a process key. The cloud
// endpoints point to a closed local port, so no credentials are looked up.
//
//	go run ./functions/cmd/coldstart -runs 20 -json coldstart.json
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/chromeos-certprov/adapter/shared/tooling/sourcebundle"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	code, err := realMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "coldstart:", err)
	}
	os.Exit(code)
}

func realMain(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("coldstart", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		runs      = fs.Int("runs", 20, "measured starts per function and build")
		warmup    = fs.Int("warmup", 1, "starts per function and build before measuring, discarded")
		jsonFile  = fs.String("json", "", "write the JSON report (with every sample) to this file")
		pollEvery = fs.Duration("poll", time.Millisecond, "how often to try connecting while a process starts")
		timeout   = fs.Duration("timeout", time.Minute, "longest wait for one start to answer")
		keep      = fs.Bool("keep", false, "keep the work directory (bundle source and binaries) and print its path")
	)
	if err := fs.Parse(args); err != nil {
		return 2, nil
	}
	if fs.NArg() > 0 {
		return 2, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *runs < 1 || *warmup < 0 || *pollEvery <= 0 || *timeout <= 0 {
		return 2, errors.New("-runs must be at least 1, -warmup at least 0, -poll and -timeout positive")
	}
	wd, err := os.Getwd()
	if err != nil {
		return 1, err
	}
	root, err := sourcebundle.FindRoot(wd)
	if err != nil {
		return 1, err
	}
	work, err := os.MkdirTemp("", "coldstart-")
	if err != nil {
		return 1, err
	}
	if *keep {
		fmt.Fprintln(stderr, "work directory:", work)
	} else {
		defer os.RemoveAll(work)
	}
	src := filepath.Join(work, "serverless_function_source_code")
	if err := os.Mkdir(src, 0o755); err != nil {
		return 1, err
	}

	builds := variants()
	t := time.Now()
	if err := build(ctx, root, src, work, builds); err != nil {
		return 1, fmt.Errorf("build: %w", err)
	}
	fmt.Fprintf(stderr, "built the bundle in %v\n", time.Since(t).Round(time.Second))
	goVersion, err := goCmd(ctx, src, "env", "GOVERSION")
	if err != nil {
		return 1, err
	}
	d, err := newDeployment(work)
	if err != nil {
		return 1, err
	}

	type key struct{ fn, build string }
	samples := map[key][]sample{}
	// Round-robin over functions and builds, so that other load on the
	// machine spreads over all of them alike.
	for i := -*warmup; i < *runs; i++ {
		for _, v := range builds {
			for _, ep := range entryPoints {
				s, err := measure(ctx, v.Path, functionEnv(ep, d), probeFor(ep), *pollEvery, *timeout)
				if err != nil {
					return 1, fmt.Errorf("%s (%s build): %w", ep.Name, v.Name, err)
				}
				if i >= 0 {
					k := key{ep.Name, v.Name}
					samples[k] = append(samples[k], s)
				}
			}
		}
		if i >= 0 {
			fmt.Fprintf(stderr, "\rrun %d/%d", i+1, *runs)
		}
	}
	fmt.Fprintln(stderr)

	rep := report{
		Machine: thisMachine(strings.TrimSpace(goVersion)), Runs: *runs, Warmup: *warmup,
		PollEvery: pollEvery.String(), Builds: builds,
	}
	for _, v := range builds {
		for _, ep := range entryPoints {
			rep.Results = append(rep.Results, newResult(ep.Name, v, samples[key{ep.Name, v.Name}]))
		}
	}
	if err := printTable(stdout, rep); err != nil {
		return 1, err
	}
	if *jsonFile != "" {
		raw, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return 1, err
		}
		if err := os.WriteFile(*jsonFile, append(raw, '\n'), 0o644); err != nil {
			return 1, fmt.Errorf("write report: %w", err)
		}
	}
	return 0, nil
}

func probeFor(ep entryPoint) prober {
	return func(addr string) (*http.Request, error) { return newRequest(ep, addr) }
}
