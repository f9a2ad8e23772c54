package e2e

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromeos-certprov/adapter/shared/adapter"
	"github.com/chromeos-certprov/adapter/shared/config"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
	"github.com/chromeos-certprov/adapter/shared/tooling/simulation"
	"github.com/chromeos-certprov/adapter/shared/tooling/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// The messages the pipeline itself shows on the device (shared/pipeline).
const (
	msgCAUnreachable = "The certificate authority could not be reached. The device will try again later."
	msgCANotInTime   = "The certificate authority did not issue the certificate in time. Contact your administrator."
)

// loadExample reads testdata/name (an example adapter config of the README),
// replaces each old string of replace with its new one (the example's
// addresses and files by the test server's), and parses it as the adapter
// does.
func loadExample(t *testing.T, name string, replace ...string) *config.Adapter {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(replace); i += 2 {
		if !strings.Contains(s, replace[i]) {
			t.Fatalf("%s does not contain %q", name, replace[i])
		}
		s = strings.ReplaceAll(s, replace[i], replace[i+1])
	}
	a, err := config.ParseAdapter([]byte(s), adapter.ConnectorTypes())
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return &a
}

// setSetting sets one field of the settings of a's default CA connection,
// or deletes it when value is nil.
func setSetting(t *testing.T, a *config.Adapter, field string, value any) {
	t.Helper()
	conn := a.CAConnections[cpemulator.DefaultCARef]
	m := map[string]any{}
	if len(conn.Settings) > 0 {
		if err := json.Unmarshal(conn.Settings, &m); err != nil {
			t.Fatal(err)
		}
	}
	m[field] = value
	if value == nil {
		delete(m, field)
	}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	conn.Settings = raw
	a.CAConnections[cpemulator.DefaultCARef] = conn
}

// secrets resolves secret names from m, as adapter.EnvSecrets does from the
// environment.
func secrets(m map[string]string) func(string) (string, error) {
	return func(name string) (string, error) {
		if v := m[name]; v != "" {
			return v, nil
		}
		return "", fmt.Errorf("secret environment variable %s is not set", name)
	}
}

// options is a fast run: clients that sign within 50-200 ms, polls from
// 50 ms to 200 ms, a 1 s lease on steps with side effects, and task retries
// backing off to 1.5 s. The backoff must outgrow the lease, as the queues'
// maximum backoff outgrows the pipeline's lease in a deployment: a crash
// leaves its lease behind, and attempts that come before it ends are spent.
func options(clients int, a *config.Adapter, sec func(string) (string, error)) simulation.Options {
	return simulation.Options{
		Clients:        clients,
		Adapter:        a,
		Secrets:        sec,
		FastDelay:      simulation.Range{Min: 50 * time.Millisecond, Max: 200 * time.Millisecond},
		Schedule:       pipeline.PollSchedule{Initial: 50 * time.Millisecond, Multiplier: 1.5, Max: 200 * time.Millisecond, Jitter: 0.2, Deadline: 30 * time.Second},
		Lease:          time.Second,
		TaskMaxBackoff: 1500 * time.Millisecond,
		Timeout:        60 * time.Second,
		Seed:           1,
	}
}

// crashAfterCA is the crash point between the CA's answer and the record
// of the certificate: a CA without an idempotency key issues again after a
// crash there (see TestCrashAfterCAAnswered).
const crashAfterCA = "issue:after-ca"

// withFaults adds duplicate deliveries (Pub/Sub and tasks), API errors before
// acting and answers lost after acting, and crashes at every crash point of
// the pipeline except those in skip.
func withFaults(o simulation.Options, skip ...string) simulation.Options {
	o.DuplicateRate = 0.3
	o.ErrorRate = 0.05
	o.LostRate = 0.05
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(o.Seed, 0xc4a54))
	o.Crash = func(_ context.Context, _, point string) error {
		for _, s := range skip {
			if point == s {
				return nil
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if rng.Float64() < 0.05 {
			return errors.New("crash")
		}
		return nil
	}
	return o
}

// run runs the simulation and returns its report and every process's end,
// in creation order.
func run(t *testing.T, ctx context.Context, o simulation.Options) (*simulation.Report, []cpemulator.Snapshot) {
	t.Helper()
	// For debugging: E2E_LOG_DIR=dir writes the adapter's JSON logs of each
	// run (that does not read them itself) to dir/<test name>.log.
	if dir := os.Getenv("E2E_LOG_DIR"); dir != "" && o.Log == nil {
		f, err := os.Create(filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".log"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		o.Log = slog.New(slog.NewJSONHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	rep, emu, err := simulation.RunWithEmulator(ctx, o)
	if err != nil {
		t.Fatalf("simulation: %v", err)
	}
	procs := emu.Processes()
	if len(procs) != o.Clients {
		t.Fatalf("%d processes, want %d", len(procs), o.Clients)
	}
	return rep, procs
}

// chain is what an uploaded leaf must chain to.
type chain struct {
	roots, intermediates []*x509.Certificate
}

// checkUploaded checks that every process ended UPLOADED with one PEM
// certificate that holds the client's key and chains to want, that the
// client was asked to sign once and the certificate uploaded once, and that
// the CA issued one certificate per process. It returns the leaves, in
// process order.
func checkUploaded(t *testing.T, rep *simulation.Report, procs []cpemulator.Snapshot, want chain) []*x509.Certificate {
	t.Helper()
	if !rep.OK() {
		t.Errorf("report not OK:\nunexpected: %s\nviolations: %s", strings.Join(rep.Unexpected, "\n  "), strings.Join(rep.Violations, "\n  "))
	}
	n := len(procs)
	if rep.Outcomes.Uploaded != n || rep.CertificatesIssued != int64(n) {
		t.Errorf("uploaded %d, CA issued %d certificates; want %d and %d", rep.Outcomes.Uploaded, rep.CertificatesIssued, n, n)
	}
	opts := x509.VerifyOptions{Roots: x509.NewCertPool(), Intermediates: x509.NewCertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
	for _, c := range want.roots {
		opts.Roots.AddCert(c)
	}
	for _, c := range want.intermediates {
		opts.Intermediates.AddCert(c)
	}
	var leaves []*x509.Certificate
	signData := 0
	for _, p := range procs {
		signData += p.SignDataCalls
		if p.State != cpemulator.StateUploaded || p.SignDataCalls != 1 || p.UploadCalls != 1 {
			t.Errorf("%s: %s, asked to sign %d times, %d uploads; want uploaded, 1, 1", p.Name, p.State, p.SignDataCalls, p.UploadCalls)
			leaves = append(leaves, nil)
			continue
		}
		leaf, err := onlyCertificate(p.UploadedPEM)
		if err != nil {
			t.Errorf("%s: uploaded certificate: %v", p.Name, err)
			leaves = append(leaves, nil)
			continue
		}
		if string(leaf.RawSubjectPublicKeyInfo) != string(p.SPKI) {
			t.Errorf("%s: the certificate holds another key than the client's", p.Name)
		}
		if _, err := leaf.Verify(opts); err != nil {
			t.Errorf("%s: the certificate does not chain to the CA: %v", p.Name, err)
		}
		leaves = append(leaves, leaf)
	}
	if signData != n || rep.APICalls["uploadCertificate"] < n {
		t.Errorf("clients asked to sign %d times, uploadCertificate called %d times; want %d and at least %d", signData, rep.APICalls["uploadCertificate"], n, n)
	}
	return leaves
}

// onlyCertificate parses a PEM text that must hold exactly one certificate.
func onlyCertificate(p string) (*x509.Certificate, error) {
	b, rest := pem.Decode([]byte(p))
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	if strings.TrimSpace(string(rest)) != "" {
		return nil, errors.New("more than one PEM block")
	}
	return x509.ParseCertificate(b.Bytes)
}

// checkFailed checks that every process ended FAILED by the adapter with
// message on the device, after the client was asked to sign signData times
// (1 when the CA refused the signed request), and that nothing was uploaded.
func checkFailed(t *testing.T, rep *simulation.Report, procs []cpemulator.Snapshot, message string, signData int) {
	t.Helper()
	if len(rep.Violations) > 0 {
		t.Errorf("violations:\n  %s", strings.Join(rep.Violations, "\n  "))
	}
	if rep.Outcomes.Failed != len(procs) || rep.CertificatesIssued != 0 {
		t.Errorf("failed %d, CA issued %d certificates; want %d and 0", rep.Outcomes.Failed, rep.CertificatesIssued, len(procs))
	}
	for _, p := range procs {
		if p.State != cpemulator.StateFailed || p.FailedBy != "adapter" || p.FailureMessage != message {
			t.Errorf("%s: %s by %q with message %q; want failed by the adapter with %q", p.Name, p.State, p.FailedBy, p.FailureMessage, message)
		}
		if p.SignDataCalls != signData || p.UploadCalls != 0 {
			t.Errorf("%s: asked to sign %d times, %d uploads; want %d and 0", p.Name, p.SignDataCalls, p.UploadCalls, signData)
		}
	}
}

// logs records the adapter's log records (simulation.Options.Log) so that a
// test can read what the log says about a failure, and act when a record
// arrives (onRecord, called without locks held).
type logs struct {
	mu       sync.Mutex
	records  []logRecord
	onRecord func(logRecord)
}

// logRecord is one log record with its attributes, those of With included,
// as text.
type logRecord struct {
	Message string
	Attrs   map[string]string
}

func newLogs(onRecord func(logRecord)) *logs { return &logs{onRecord: onRecord} }

// Logger returns a logger that records into l.
func (l *logs) Logger() *slog.Logger { return slog.New(&logHandler{logs: l}) }

// Reasons returns the "reason" of every record with message msg.
func (l *logs) Reasons(msg string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.records {
		if r.Message == msg {
			out = append(out, r.Attrs["reason"])
		}
	}
	return out
}

type logHandler struct {
	logs  *logs
	attrs []slog.Attr
}

func (h *logHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *logHandler) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{Message: r.Message, Attrs: map[string]string{}}
	for _, a := range h.attrs {
		rec.Attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.Attrs[a.Key] = a.Value.String()
		return true
	})
	h.logs.mu.Lock()
	h.logs.records = append(h.logs.records, rec)
	h.logs.mu.Unlock()
	if h.logs.onRecord != nil {
		h.logs.onRecord(rec)
	}
	return nil
}

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &logHandler{logs: h.logs, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h *logHandler) WithGroup(string) slog.Handler { return h }

// checkReasons checks that every log record with message msg has a reason
// containing want, and that there are n of them.
func checkReasons(t *testing.T, l *logs, msg string, n int, want string) {
	t.Helper()
	reasons := l.Reasons(msg)
	if len(reasons) < n {
		t.Errorf("%d %q log records, want at least %d", len(reasons), msg, n)
	}
	for _, r := range reasons {
		if !strings.Contains(r, want) {
			t.Errorf("%q log reason %q does not say %q", msg, r, want)
		}
	}
}

// Outage ends an outage from the log: once the issue step has failed
// transiently (the CA unreachable) after times records, restart runs, once,
// in its own goroutine.
type outage struct {
	times    int64
	restart  func() error
	failures atomic.Int64
	done     chan error
}

func newOutage(times int, restart func() error) *outage {
	return &outage{times: int64(times), restart: restart, done: make(chan error, 1)}
}

// observe is a logs onRecord hook.
func (o *outage) observe(r logRecord) {
	if r.Message != "issue step will be retried" || !strings.Contains(r.Attrs["reason"], "ca transient") {
		return
	}
	if o.failures.Add(1) == o.times {
		go func() { o.done <- o.restart() }()
	}
}

// check checks that the outage was seen and ended.
func (o *outage) check(t *testing.T) {
	t.Helper()
	select {
	case err := <-o.done:
		if err != nil {
			t.Fatalf("ending the outage: %v", err)
		}
	default:
		t.Fatalf("the outage was not seen: %d transient CA failures, want %d", o.failures.Load(), o.times)
	}
}

// hostPort is the host:port of a URL.
func hostPort(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// startAgain starts a stopped server again on addr with the same files, and
// stops it when t ends.
func startAgain(t *testing.T, name, addr, bin string, args ...string) func() error {
	return func() error {
		s, err := testenv.Start(context.Background(), name, addr, 30*time.Second, bin, args...)
		if err != nil {
			return err
		}
		t.Cleanup(s.Stop)
		return nil
	}
}
