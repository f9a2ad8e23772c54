package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/tooling/sourcebundle"
)

// helperEnv makes the test binary act as a function binary (see TestMain).
const helperEnv = "COLDSTART_TEST_SERVER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		helperServer(mode)
		return
	}
	os.Exit(m.Run())
}

// helperServer stands in for a function binary: it listens on PORT and
// answers like a configured function, or misbehaves as mode says.
func helperServer(mode string) {
	if mode == "exit" {
		fmt.Println("failing to start")
		os.Exit(3)
	}
	configured := false
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if !configured && mode != "unconfigured" {
			configured = true
			fmt.Println(`{"severity":"INFO","message":"adapter configured"}`)
		}
		if mode == "unavailable" {
			http.Error(w, "adapter not configured", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	if err := http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
}

func TestMeasure(t *testing.T) {
	t.Parallel()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	probe := func(addr string) (*http.Request, error) {
		return http.NewRequest(http.MethodPost, "http://"+addr+"/", strings.NewReader("{}"))
	}
	tests := []struct {
		mode    string
		wantErr string
	}{
		{mode: "ok"},
		{mode: "exit", wantErr: "exited before listening"},
		{mode: "unavailable", wantErr: "answered 500"},
		{mode: "unconfigured", wantErr: "did not configure the function"},
	}
	for _, tc := range tests {
		t.Run(tc.mode, func(t *testing.T) {
			t.Parallel()
			env := append(os.Environ(), helperEnv+"="+tc.mode)
			s, err := measure(context.Background(), self, env, probe, time.Millisecond, time.Minute)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("measure() error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("measure() error = %v", err)
			}
			if s.Listen <= 0 || s.FirstAnswer < s.Listen || s.FirstRequest <= 0 || s.FirstAnswer < s.FirstRequest || s.WarmRequest <= 0 {
				t.Errorf("measure() = %+v: want 0 < listen <= first answer, 0 < first request <= first answer, warm request > 0", s)
			}
			if s.CPU <= 0 || s.MaxRSS <= 0 {
				t.Errorf("measure() = %+v: want the process's CPU time and peak RSS", s)
			}
		})
	}
}

func TestSummarise(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []float64
		want dist
	}{
		{name: "none", in: nil, want: dist{}},
		{name: "one", in: []float64{4}, want: dist{Median: 4, P90: 4, Min: 4, Max: 4}},
		{name: "odd", in: []float64{3, 1, 2}, want: dist{Median: 2, P90: 3, Min: 1, Max: 3}},
		{name: "even", in: []float64{4, 1, 3, 2}, want: dist{Median: 2.5, P90: 4, Min: 1, Max: 4}},
		{name: "twenty", in: []float64{20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1},
			want: dist{Median: 10.5, P90: 18, Min: 1, Max: 20}},
	}
	for _, tc := range tests {
		in := slices.Clone(tc.in)
		if diff := cmp.Diff(tc.want, summarise(tc.in)); diff != "" {
			t.Errorf("%s: summarise (-want +got):\n%s", tc.name, diff)
		}
		if !slices.Equal(in, tc.in) {
			t.Errorf("%s: summarise changed its input", tc.name)
		}
	}
}

// TestBundle renders the repository's bundle: the three function packages and
// the module files, no tests, no commands, and a root package importing them.
func TestBundle(t *testing.T) {
	t.Parallel()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := sourcebundle.FindRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	b, err := sourcebundle.Render(root)
	if err != nil {
		t.Fatal(err)
	}
	files, content := b.Files, b.RootContent
	for _, want := range []string{"go.mod", "go.sum", "functions/claim/claim.go", "functions/poll/poll.go", "functions/issue/issue.go"} {
		if !slices.Contains(files, want) {
			t.Errorf("bundle lacks %s", want)
		}
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || strings.HasPrefix(f, "functions/cmd/") {
			t.Errorf("bundle holds %s", f)
		}
	}
	for _, pkg := range []string{"/functions/claim", "/functions/poll", "/functions/issue", "functions-framework-go/functions"} {
		if !strings.Contains(content, pkg+`"`) {
			t.Errorf("root package does not import …%s:\n%s", pkg, content)
		}
	}
}

// TestColdStart builds the bundle each way and starts each entry point once
// per build.
func TestColdStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the bundle three times; skipped with -short")
	}
	t.Parallel()
	file := filepath.Join(t.TempDir(), "coldstart.json")
	var stdout, stderr bytes.Buffer
	code, err := realMain(context.Background(), []string{"-runs", "1", "-warmup", "0", "-json", file}, &stdout, &stderr)
	if err != nil || code != 0 {
		t.Fatalf("coldstart exited %d: %v\n%s", code, err, stderr.String())
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	var got []string
	sizes := map[string]int64{}
	for _, r := range rep.Results {
		got = append(got, r.Function+"/"+r.Build)
		sizes[r.Build] = r.SizeBytes
		if len(r.Samples) != 1 || r.FirstAnswer.Median <= 0 {
			t.Errorf("%s/%s: %d samples, first answer %v ms; want one sample", r.Function, r.Build, len(r.Samples), r.FirstAnswer.Median)
		}
		if !strings.Contains(stdout.String(), r.Function) {
			t.Errorf("table does not show %s:\n%s", r.Function, stdout.String())
		}
	}
	want := []string{
		"ClaimProcess/buildpack", "PollSignature/buildpack", "IssueCertificate/buildpack",
		"ClaimProcess/stripped", "PollSignature/stripped", "IssueCertificate/stripped",
		"ClaimProcess/no-cgo", "PollSignature/no-cgo", "IssueCertificate/no-cgo",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	if sizes["stripped"] <= 0 || sizes["stripped"] >= sizes["buildpack"] {
		t.Errorf("binary sizes %v: want the stripped build smaller than the buildpack's", sizes)
	}
}
