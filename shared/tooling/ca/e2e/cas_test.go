package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/security/privateca/apiv1/privatecapb"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/ca/cas"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/tooling/ca/castest"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
	"github.com/chromeos-certprov/adapter/shared/tooling/simulation"
)

// The CAS example's resources.
const (
	casPool     = "projects/my-project/locations/us-central1/caPools/certprov-pool"
	casCA       = "certprov-issuing-ca"
	casTemplate = "projects/my-project/locations/us-central1/certificateTemplates/chromeos-client"
)

// The CAS connector's device messages (shared/ca/cas).
const (
	msgCASDenied   = "The certificate authority refused the request (permission denied). Ask your administrator to check the adapter's CA settings."
	msgCASNotFound = "The certificate authority refused the request (CA pool, certificate authority or template not found). Ask your administrator to check the adapter's CA settings."
	msgCASInvalid  = "The certificate authority refused the request as invalid. Ask your administrator to check the certificate profile and the adapter's CA settings."
)

// startCAS starts the CAS fake with the example's pool (a root and the
// issuing CA below it) and, if template, its certificate template; it
// returns the fake and the CAS example config pointed at it.
func startCAS(t *testing.T, template bool) (*castest.Fake, *simulation.Options) {
	t.Helper()
	addr, f := castest.Start(t)
	f.AddPool(casPool, castest.CA{ID: casCA, Subordinate: true})
	if template {
		f.AddTemplate(&privatecapb.CertificateTemplate{Name: casTemplate, MaximumLifetime: durationpb.New(720 * time.Hour)})
	}
	a := loadExample(t, "cas.json")
	setSetting(t, a, "endpoint", addr) // tests only: the fake, no TLS or credentials
	o := options(8, a, nil)
	return f, &o
}

// casChain is what the pool's leaves chain to: the root, with the issuing
// CA from a stored certificate's chain.
func casChain(t *testing.T, f *castest.Fake, procs []cpemulator.Snapshot) chain {
	t.Helper()
	c := chain{roots: f.Roots(casPool)}
	for _, p := range procs {
		if stored := casCertificate(f, p); stored != nil {
			c.intermediates, _ = ca.ParseChain([]byte(strings.Join(stored.GetPemCertificateChain(), "\n")))
			break
		}
	}
	return c
}

// casCertificate is the certificate CAS stored for process p: its id comes
// from the process's request id.
func casCertificate(f *castest.Fake, p cpemulator.Snapshot) *privatecapb.Certificate {
	id := pipeline.RequestID(progress.Key(simulation.Customer, p.ID))
	return f.Certificate(casPool + "/certificates/" + cas.CertificateID(id))
}

func TestCAS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("enrolls once under faults", func(t *testing.T) {
		f, o := startCAS(t, true)
		// CAS dedupes by request_id: crashes after its answer too, and
		// answers lost after the certificate was issued.
		f.DropResponses(3)
		fo := withFaults(*o)
		rep, procs := run(t, ctx, fo)
		checkUploaded(t, rep, procs, casChain(t, f, procs))
		if f.Issued() != fo.Clients || f.Calls("CreateCertificate") < fo.Clients+3 {
			t.Errorf("CAS signed %d certificates in %d CreateCertificate calls; want %d, in at least %d", f.Issued(), f.Calls("CreateCertificate"), fo.Clients, fo.Clients+3)
		}
		for _, p := range procs {
			if stored := casCertificate(f, p); stored == nil || stored.GetPemCertificate() != p.UploadedPEM {
				t.Errorf("%s: the uploaded certificate is not the one CAS stored for its request id", p.Name)
			}
			if stored := casCertificate(f, p); stored != nil && stored.GetCertificateTemplate() != casTemplate {
				t.Errorf("%s: issued with template %q, want %q", p.Name, stored.GetCertificateTemplate(), casTemplate)
			}
		}
	})

	for _, tc := range []struct {
		name    string
		fault   func(f *castest.Fake)
		message string
		reason  string
	}{
		{"permission denied", func(f *castest.Fake) { f.SetPermissionDenied(true) }, msgCASDenied, "The caller does not have permission"},
		{"template not found", nil, msgCASNotFound, "certificateTemplates/chromeos-client' was not found"},
		{"invalid argument", func(f *castest.Fake) { f.FailNext(codes.InvalidArgument, 1000) }, msgCASInvalid, "injected InvalidArgument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, o := startCAS(t, tc.fault != nil)
			if tc.fault != nil {
				tc.fault(f)
			}
			o.Clients = 3
			l := newLogs(nil)
			o.Log = l.Logger()
			rep, procs := run(t, ctx, *o)
			checkFailed(t, rep, procs, tc.message, 1)
			checkReasons(t, l, "process failing", o.Clients, tc.reason)
			if f.Issued() != 0 {
				t.Errorf("CAS signed %d certificates", f.Issued())
			}
		})
	}

	t.Run("outage ends", func(t *testing.T) {
		f, o := startCAS(t, true)
		o.Clients = 6
		out := newOutage(o.Clients, func() error { f.SetOutage(false); return nil })
		o.Log = newLogs(out.observe).Logger()
		f.SetOutage(true)
		rep, procs := run(t, ctx, *o)
		out.check(t)
		checkUploaded(t, rep, procs, casChain(t, f, procs))
	})

	t.Run("outage outlasts the retries", func(t *testing.T) {
		f, o := startCAS(t, true)
		o.Clients = 3
		o.TaskMaxBackoff = 200 * time.Millisecond
		l := newLogs(nil)
		o.Log = l.Logger()
		f.SetOutage(true)
		rep, procs := run(t, ctx, *o)
		checkFailed(t, rep, procs, msgCAUnreachable, 1)
		checkReasons(t, l, "process failing", o.Clients, "CA unavailable on the last attempt: ca transient: The service is currently unavailable.")
	})
}
