package pipeline_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromeos-certprov/adapter/shared/adapter"
	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/cpapi"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/tasks"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
	"github.com/chromeos-certprov/adapter/shared/tooling/store/memory"
	"github.com/chromeos-certprov/adapter/shared/tooling/testlog"
)

// TestReleaseCompat finishes, with this code, what an earlier release left
// behind across a deploy (issue 12, "a deploy in the middle of enrollments"):
// each progress record of testdata/release-*, with the API and the CA as that
// release left them, gets the task body or push that release enqueued (or the
// scheduler's sweep request), through the functions' HTTP handlers; the
// process must end uploaded (or its failure reported) with one signData over
// its whole life and one certificate. This release's own cases, captured
// into a temporary directory first (captureRelease), run the same way.
func TestReleaseCompat(t *testing.T) {
	releases, err := filepath.Glob("testdata/release-*")
	if err != nil || len(releases) == 0 {
		t.Fatalf("no testdata/release-* (%v)", err)
	}
	names := map[string]string{}
	for _, dir := range releases {
		names[dir] = filepath.Base(dir)
	}
	this := t.TempDir()
	captureRelease(t, this)
	names[this] = "this-release"
	for _, dir := range append(releases, this) {
		var cases []compatCase
		if err := json.Unmarshal(readFile(t, dir, "cases.json"), &cases); err != nil {
			t.Fatalf("%s/cases.json: %v", dir, err)
		}
		if len(cases) == 0 {
			t.Fatalf("%s: no cases", dir)
		}
		for _, c := range cases {
			t.Run(names[dir]+"/"+c.Name, func(t *testing.T) { runCompatCase(t, dir, c) })
		}
	}
}

func readFile(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func runCompatCase(t *testing.T, dir string, c compatCase) {
	ctx := context.Background()
	var rec progress.Record
	if err := json.Unmarshal(readFile(t, dir, c.Record), &rec); err != nil {
		t.Fatalf("%s: %v", c.Record, err)
	}
	// The replayed calls happen when the release made them: signData when
	// the record entered SIGNING, so the client signs on the same schedule.
	clk := &clock{t: c.Now}
	renamed := strings.NewReplacer()
	if c.Replay.SignData {
		for _, ch := range rec.History {
			if ch.To == progress.StateSigning {
				clk.t = ch.At
			}
		}
	}

	// The API as the release left it: the same client (its key), then the
	// calls the release had made.
	emu := cpemulator.New(cpemulator.Options{Now: clk.Now})
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	api, err := cpapi.New(ctx, cpapi.Options{EmulatorHost: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := pem.Decode(readFile(t, dir, "client-key.pem"))
	if kb == nil {
		t.Fatal("client-key.pem: no PEM block")
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatalf("client-key.pem: %v", err)
	}
	name, err := emu.AddClient(ctx, cpemulator.ClientSpec{Customer: rec.Customer, ProcessID: c.ProcessID, Signer: key.(crypto.Signer), SignDelay: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if name != rec.ProcessName {
		t.Fatalf("emulated process %s, record's %s", name, rec.ProcessName)
	}
	authority, err := loadClockedCA(readFile(t, dir, "ca.pem"), readFile(t, dir, "ca-key.pem"), clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	const callerID = "certprov-test"
	if c.Replay.Claimed {
		if err := api.Claim(ctx, name, callerID); err != nil {
			t.Fatalf("replay claim: %v", err)
		}
	}
	if c.Replay.SignData {
		op, err := api.SignData(ctx, name, rec.SignData, rec.SignatureAlgorithm)
		if err != nil {
			t.Fatalf("replay signData: %v", err)
		}
		if rec.OperationName != "" {
			// The emulator names operations at random: the record's
			// operation is the one just started (and so is the one a task
			// body carries).
			renamed = strings.NewReplacer(rec.OperationName, op)
			rec.OperationName = op
		}
	}
	clk.advanceTo(c.Now)
	if c.Replay.CAIssued {
		if rec.CertificatePEM != "" {
			// The CA remembers the certificate the record holds.
			b, _ := pem.Decode([]byte(rec.CertificatePEM))
			if b == nil {
				t.Fatal("record's certificatePEM: no PEM block")
			}
			leaf, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			authority.issued[rec.RequestID] = leaf
		} else if _, err := authority.Issue(ctx, ca.Request{CSR: rec.CSR, RequestID: rec.RequestID}); err != nil {
			t.Fatalf("replay CA: %v", err)
		}
	}
	if c.Replay.Uploaded {
		if err := api.UploadCertificate(ctx, name, rec.CertificatePEM); err != nil {
			t.Fatalf("replay upload: %v", err)
		}
	}

	st := memory.New()
	if _, err := st.Create(ctx, &rec); err != nil {
		t.Fatal(err)
	}
	q := &queue{names: map[string]bool{}}
	log := testlog.New(t)
	p := &pipeline.Pipeline{
		Store: st, Tasks: q, API: api,
		CAs:         map[string]pipeline.Issuer{cpemulator.DefaultCARef: authority},
		Profiles:    testProfiles(),
		Allowed:     func(cust string) bool { return cust == customer },
		CallerID:    callerID,
		Schedule:    pipeline.PollSchedule{Initial: 2 * time.Second, Multiplier: 1.5, Max: time.Minute, Jitter: 0.2, Deadline: 24 * time.Hour},
		MaxAttempts: 5,
		Lease:       time.Minute,
		SweepAfter:  time.Hour,
		Now:         clk.Now,
		Log:         log,
	}
	get := func(context.Context) (*pipeline.Pipeline, *slog.Logger, error) { return p, log, nil }
	handlers := map[string]http.Handler{"claim": adapter.Claim(get), "poll": adapter.Poll(get), "issue": adapter.Issue(get)}

	// deliver sends one request like the platform: again after a non-2xx,
	// with the retry count, up to MaxAttempts.
	deliver := func(route, path, task string, body []byte) {
		t.Helper()
		h, ok := handlers[route]
		if !ok {
			t.Fatalf("unknown route %q", route)
		}
		for retry := range p.MaxAttempts {
			req := httptest.NewRequest(http.MethodPost, "http://function"+path, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			if task != "" {
				req.Header.Set(tasks.HeaderTaskName, task)
				req.Header.Set(tasks.HeaderRetryCount, strconv.Itoa(retry))
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code/100 == 2 {
				return
			}
			clk.advance(90 * time.Second)
		}
	}
	path := c.Deliver.Path
	if path == "" {
		path = "/"
	}
	deliver(c.Deliver.Route, path, c.Deliver.Task, []byte(renamed.Replace(string(readFile(t, dir, c.Deliver.Body)))))
	for n := 0; ; n++ {
		task, ok := q.next()
		if !ok {
			break
		}
		if n > 1000 {
			t.Fatal("more than 1000 tasks")
		}
		clk.advanceTo(task.ScheduleTime)
		deliver(string(task.Queue), "/", task.Name, task.Body)
	}

	got, err := st.Get(ctx, rec.Key)
	if err != nil {
		t.Fatal(err)
	}
	snap, _ := emu.Process(name)
	type outcome struct {
		State                                      progress.State
		Reported                                   bool
		SignDataCalls, Uploads, Repeats, CertsByCA int
		DeviceToldFailure                          bool
	}
	want := outcome{State: c.Want, SignDataCalls: 1, Uploads: 1, CertsByCA: 1}
	if c.Want == progress.StateFailed {
		want = outcome{State: c.Want, Reported: true, SignDataCalls: 1, DeviceToldFailure: true}
	}
	gotOutcome := outcome{
		State: got.State, Reported: got.FailureReported, SignDataCalls: snap.SignDataCalls, Uploads: snap.UploadCalls,
		Repeats: snap.RepeatedUploads, CertsByCA: authority.count(), DeviceToldFailure: snap.FailureMessage != "",
	}
	if gotOutcome != want {
		t.Errorf("%s: got %+v, want %+v (last error %q)", c.About, gotOutcome, want, got.LastError)
	}
	if want.Uploads == 1 && snap.UploadedPEM != got.CertificatePEM {
		t.Errorf("uploaded certificate is not the record's")
	}
	if v := emu.Violations(); len(v) > 0 {
		t.Errorf("API misuse: %s", fmt.Sprint(v))
	}
}
