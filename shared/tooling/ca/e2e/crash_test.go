package e2e

import (
	"context"
	"crypto/x509"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/chromeos-certprov/adapter/shared/tooling/ca/esttest"
	"github.com/chromeos-certprov/adapter/shared/tooling/ca/sceptest"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
	"github.com/chromeos-certprov/adapter/shared/tooling/simulation"
)

// TestCrashAfterCAAnswered shows what the pipeline can promise when an
// instance dies after the CA answered and before the certificate was
// recorded: the retry asks the CA again with the same request. A CA with an
// idempotency key (CAS's request_id; a SCEP CA that keeps transactions and
// answers CertPoll, as NDES does) returns the same certificate: one
// issuance. A CA without one (scepserver and step-ca keep no SCEP
// transactions; EST has no such key) issues a second certificate. Either
// way the device gets one certificate, uploaded once, after one signData.
func TestCrashAfterCAAnswered(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		start func(t *testing.T) (*simulation.Options, func([]cpemulator.Snapshot) chain)
		// idempotent: the retry gets the first certificate again.
		idempotent bool
	}{
		{"scepserver", func(t *testing.T) (*simulation.Options, func([]cpemulator.Snapshot) chain) {
			s := sceptest.StartSCEPServer(t, sceptest.SCEPServerOptions{})
			return scepServerConfig(t, s), func([]cpemulator.Snapshot) chain { return chain{roots: []*x509.Certificate{s.Root}} }
		}, false},
		{"estserver", func(t *testing.T) (*simulation.Options, func([]cpemulator.Snapshot) chain) {
			srv := esttest.Start(t)
			return estConfig(t, srv), func([]cpemulator.Snapshot) chain { return estChain(srv) }
		}, false},
		{"NDES stand-in", func(t *testing.T) (*simulation.Options, func([]cpemulator.Snapshot) chain) {
			n := sceptest.StartNDES(t, sceptest.ResponderOptions{})
			return ndesConfig(t, n, 3, "1s"), func([]cpemulator.Snapshot) chain { return chain{roots: []*x509.Certificate{n.CA}} }
		}, true},
		{"CAS", func(t *testing.T) (*simulation.Options, func([]cpemulator.Snapshot) chain) {
			f, o := startCAS(t, true)
			return o, func(procs []cpemulator.Snapshot) chain { return casChain(t, f, procs) }
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o, want := tc.start(t)
			o.Clients = 3
			// Die after the CA's answer, as many times as there are processes.
			var mu sync.Mutex
			crashes := 0
			o.Crash = func(_ context.Context, _, point string) error {
				mu.Lock()
				defer mu.Unlock()
				if point == crashAfterCA && crashes < o.Clients {
					crashes++
					return errors.New("crash")
				}
				return nil
			}
			rep, procs := run(t, context.Background(), *o)
			if crashes != o.Clients {
				t.Fatalf("%d crashes after the CA answered, want %d", crashes, o.Clients)
			}
			if tc.idempotent {
				checkUploaded(t, rep, procs, want(procs))
				return
			}
			for _, p := range procs {
				if p.State != cpemulator.StateUploaded || p.SignDataCalls != 1 || p.UploadCalls != 1 {
					t.Errorf("%s: %s, asked to sign %d times, %d uploads; want uploaded, 1, 1", p.Name, p.State, p.SignDataCalls, p.UploadCalls)
				}
			}
			if want := int64(o.Clients + crashes); rep.CertificatesIssued != want {
				t.Errorf("the CA issued %d certificates, want %d: one more per crash", rep.CertificatesIssued, want)
			}
			if len(rep.Violations) == 0 {
				t.Error("no violation reported for the second issuance")
			}
			for _, v := range rep.Violations {
				if !strings.Contains(v, "the CA issued") {
					t.Errorf("unexpected violation: %s", v)
				}
			}
			if len(rep.Unexpected) > 0 {
				t.Errorf("unexpected ends:\n%s", strings.Join(rep.Unexpected, "\n"))
			}
		})
	}
}
