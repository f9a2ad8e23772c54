package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/store/firestore"
	"github.com/chromeos-certprov/adapter/shared/tooling/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var (
	envOnce sync.Once
	seq     atomic.Int64
	project = fmt.Sprintf("certprov-cli-test-%d", os.Getpid())
)

// t0 is when the seeded processes start.
var t0 = time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)

// seeded returns the environment of a collection of the Firestore emulator
// holding the processes of seed, as the functions left them.
func seeded(t *testing.T) map[string]string {
	t.Helper()
	addr := testenv.Firestore(t)
	envOnce.Do(func() { os.Setenv("FIRESTORE_EMULATOR_HOST", addr) })
	ctx := context.Background()
	c, err := firestore.Open(ctx, project, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	coll := fmt.Sprintf("progress-%d", seq.Add(1))
	s := firestore.New(c, coll)
	for _, r := range seed(t) {
		if _, err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	return map[string]string{"GOOGLE_CLOUD_PROJECT": project, "FIRESTORE_COLLECTION": coll}
}

// certificatePEM is a certificate with a fixed serial, subject and validity.
func certificatePEM(t *testing.T) string {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(0x1234abcd), Subject: pkix.Name{CommonName: "5CD1234XYZ", Organization: []string{"Example Corp"}},
		NotBefore: t0.Add(time.Minute), NotAfter: t0.Add(time.Minute + 720*time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func history(at time.Time, steps ...any) []progress.Change {
	var out []progress.Change
	var from progress.State
	for i := 0; i < len(steps); i += 2 {
		at = at.Add(steps[i].(time.Duration))
		to := steps[i+1].(progress.State)
		out = append(out, progress.Change{From: from, To: to, At: at})
		from = to
	}
	return out
}

const didNotAnswer = "The device did not answer in time. It will try again when it is online."

func seed(t *testing.T) []*progress.Record {
	s := time.Second
	exp := t0.Add(30 * 24 * time.Hour)
	rec := func(customer, id string, created time.Time, state progress.State) *progress.Record {
		return &progress.Record{Key: progress.Key(customer, id), Customer: customer, ProcessID: id,
			ProcessName: "customers/" + customer + "/certificateProvisioningProcesses/" + id, State: state,
			CreatedAt: created, ProfileRef: "device_profile", CAConnectionRef: "default_ca_config", KeyType: "EC-P256"}
	}
	ok := rec("C0local", "p-ok", t0, progress.StateUploaded)
	ok.History = history(t0, time.Duration(0), progress.StateReceived, s, progress.StateClaimed, s, progress.StateSigning, s, progress.StatePolling,
		20*s, progress.StateSigned, s, progress.StateIssuing, s, progress.StateIssued, s, progress.StateUploaded)
	ok.UpdatedAt, ok.SignedAt, ok.IssuedAt, ok.UploadedAt = t0.Add(26*s), t0.Add(23*s), t0.Add(25*s), t0.Add(26*s)
	ok.PollCount, ok.Attempts, ok.SignDataCalls, ok.IssueAttempts, ok.CADuration = 3, 1, 1, 1, 800*time.Millisecond
	ok.CertificatePEM, ok.ExpireAt = certificatePEM(t), &exp
	ok.DeviceID, ok.DeviceSerial = "dev-0a1b", "5CD1234XYZ"

	failed := rec("C0local", "p-late", t0.Add(time.Hour), progress.StateFailed)
	failed.History = history(failed.CreatedAt, time.Duration(0), progress.StateReceived, s, progress.StateClaimed, s, progress.StateSigning, s, progress.StatePolling,
		4*time.Hour, progress.StateFailing, s, progress.StateFailed)
	failed.UpdatedAt = failed.CreatedAt.Add(4*time.Hour + 5*s)
	failed.PollCount, failed.Attempts, failed.SignDataCalls, failed.Sweeps = 40, 2, 1, 1
	failed.LastError, failed.FailureMessage, failed.FailureReported = "the client did not sign by the deadline", didNotAnswer, true
	failed.ExpireAt = &exp
	failed.DeviceID, failed.DeviceSerial = "dev-0a1b", "5CD1234XYZ"

	failed2 := rec("C0other", "p-late2", t0.Add(2*time.Hour), progress.StateFailed)
	failed2.UpdatedAt, failed2.FailureMessage, failed2.FailureReported = failed2.CreatedAt.Add(4*time.Hour), didNotAnswer, true
	failed2.UserEmail = "ada@example.com"

	failing := rec("C0local", "p-failing", t0.Add(3*time.Hour), progress.StateFailing)
	failing.UpdatedAt, failing.Attempts = failing.CreatedAt.Add(time.Minute), 5
	failing.LastError, failing.FailureMessage = "setFailure: 503 Service Unavailable", "The certificate authority refused the request."
	failing.Deadline = failing.CreatedAt.Add(24 * time.Hour)
	failing.UserEmail, failing.DeviceID, failing.DeviceSerial = "ada@example.com", "dev-9z8y", "SER9" // an affiliated user

	polling := rec("C0local", "p-poll", t0.Add(4*time.Hour), progress.StatePolling)
	polling.UpdatedAt, polling.PollCount = polling.CreatedAt.Add(10*time.Minute), 7
	polling.Deadline, polling.NextPollAt = polling.CreatedAt.Add(24*time.Hour), polling.CreatedAt.Add(15*time.Minute)
	return []*progress.Record{ok, failed, failed2, failing, polling}
}

// merge returns a copy of base with more.
func merge(base map[string]string, more map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range more {
		out[k] = v
	}
	return out
}

func mustContain(t *testing.T, what, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, got)
		}
	}
}
