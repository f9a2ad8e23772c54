package scep_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	smallscep "github.com/smallstep/scep"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/ca/scep"
	"github.com/chromeos-certprov/adapter/shared/csr"
	"github.com/chromeos-certprov/adapter/shared/tooling/ca/sceptest"
	"github.com/chromeos-certprov/adapter/shared/tooling/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// realServer starts one of the real SCEP CAs.
type realServer struct {
	name  string
	start func(t *testing.T) *sceptest.Server
}

var realServers = []realServer{
	{"scepserver", func(t *testing.T) *sceptest.Server { return sceptest.StartSCEPServer(t, sceptest.SCEPServerOptions{}) }},
	{"step-ca", func(t *testing.T) *sceptest.Server { return sceptest.StartStepCA(t, sceptest.StepCAOptions{}) }},
}

func newConnector(t *testing.T, settings json.RawMessage, secrets func(string) (string, error)) *scep.Connector {
	t.Helper()
	c, err := scep.New(context.Background(), settings, secrets)
	if err != nil {
		t.Fatalf("New(%s): %v", settings, err)
	}
	return c
}

// request builds the CSR a process would send: subject, SANs and the
// challenge inside the signed body.
func request(t *testing.T, key crypto.Signer, cn, challenge, requestID string) ca.Request {
	t.Helper()
	der := sceptest.NewCSR(t, key, csr.Template{
		Subject:           pkix.Name{CommonName: cn, Organization: []string{"certprov"}},
		EmailAddresses:    []string{cn + "@example.com"},
		KeyUsage:          x509.KeyUsageDigitalSignature,
		ExtKeyUsage:       []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		ChallengePassword: challenge,
	})
	return ca.Request{CSR: der, RequestID: requestID}
}

// checkIssued checks what the pipeline checks: the leaf chains to Roots with
// Chain as intermediates, and its key is the CSR's.
func checkIssued(t *testing.T, c *scep.Connector, iss *ca.Issued, key crypto.Signer) {
	t.Helper()
	roots, err := c.Roots(context.Background())
	if err != nil {
		t.Fatalf("Roots: %v", err)
	}
	rp, ip := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range roots {
		rp.AddCert(r)
	}
	for _, i := range iss.Chain {
		ip.AddCert(i)
	}
	if _, err := iss.Leaf.Verify(x509.VerifyOptions{Roots: rp, Intermediates: ip, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("the leaf does not chain to Roots: %v", err)
	}
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	if string(iss.Leaf.RawSubjectPublicKeyInfo) != string(spki) {
		t.Errorf("the leaf's key is not the CSR's")
	}
}

// caErr asserts err is a *ca.Error and returns its kind and user message.
func caErr(t *testing.T, err error) (ca.Kind, string) {
	t.Helper()
	var e *ca.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *ca.Error", err, err)
	}
	return e.Kind, e.UserMessage
}

type outcome struct {
	Kind    ca.Kind
	Message string
}

func TestRealServers(t *testing.T) {
	for _, srv := range realServers {
		t.Run(srv.name, func(t *testing.T) {
			s := srv.start(t)
			ctx := context.Background()

			t.Run("success", func(t *testing.T) {
				c := newConnector(t, s.Settings(nil), s.Secrets)
				for _, k := range []struct {
					name string
					key  crypto.Signer
				}{{"RSA", sceptest.RSAKey(t)}, {"EC", sceptest.ECKey(t)}} {
					pw, exp, err := c.Challenge(ctx, "customer:process-"+k.name)
					if err != nil || pw != s.Challenge || !exp.IsZero() {
						t.Fatalf("Challenge = %q, %v, %v; want the static secret, zero expiry", pw, exp, err)
					}
					req := request(t, k.key, "success-"+k.name, pw, "req-success-"+k.name)
					iss, err := c.Issue(ctx, req)
					if err != nil {
						t.Fatalf("%s: Issue: %v", k.name, err)
					}
					checkIssued(t, c, iss, k.key)
					if got := iss.Leaf.Subject.CommonName; got != "success-"+k.name {
						t.Errorf("%s: leaf CN = %q", k.name, got)
					}
				}
			})

			t.Run("wrong challenge", func(t *testing.T) {
				c := newConnector(t, s.Settings(nil), s.Secrets)
				_, err := c.Issue(ctx, request(t, sceptest.RSAKey(t), "wrong-challenge", "not-the-challenge", "req-wrong"))
				kind, msg := caErr(t, err)
				if diff := cmp.Diff(outcome{ca.Permanent, scep.MsgChallengeRejected}, outcome{kind, msg}); diff != "" {
					t.Errorf("wrong challenge (-want +got):\n%s\nerror: %v", diff, err)
				}
			})

			t.Run("pinned", func(t *testing.T) {
				// GetCACert of step-ca returns the intermediate only: the pin names it.
				pin := scep.Fingerprint(s.CA)
				c := newConnector(t, s.Settings(map[string]any{"caFingerprint": strings.ToUpper(pin)}), s.Secrets)
				key := sceptest.RSAKey(t)
				iss, err := c.Issue(ctx, request(t, key, "pinned", s.Challenge, "req-pinned"))
				if err != nil {
					t.Fatalf("Issue: %v", err)
				}
				checkIssued(t, c, iss, key)
				roots, _ := c.Roots(ctx)
				if len(roots) != 1 || !roots[0].Equal(s.CA) {
					t.Errorf("Roots = %v, want only the pinned CA", subjects(roots))
				}
			})

			t.Run("pin mismatch", func(t *testing.T) {
				c := newConnector(t, s.Settings(map[string]any{"caFingerprint": strings.Repeat("ab", 32)}), s.Secrets)
				_, err := c.Issue(ctx, request(t, sceptest.RSAKey(t), "pin-mismatch", s.Challenge, "req-pin-mismatch"))
				kind, msg := caErr(t, err)
				if diff := cmp.Diff(outcome{ca.Permanent, scep.MsgCAIdentity}, outcome{kind, msg}); diff != "" {
					t.Errorf("Issue (-want +got):\n%s\nerror: %v", diff, err)
				}
				_, err = c.Roots(ctx)
				if kind, _ := caErr(t, err); kind != ca.Permanent {
					t.Errorf("Roots error kind = %v, want permanent", kind)
				}
			})

			t.Run("same request id", func(t *testing.T) {
				// Neither scepserver nor step-ca keeps SCEP transactions (both
				// answer CertPoll with HTTP 500), so a re-sent request is
				// enrolled again: a second certificate. The pipeline must not
				// re-send after a SUCCESS it recorded; the Responder test shows
				// a CA that dedupes.
				c := newConnector(t, s.Settings(nil), s.Secrets)
				key := sceptest.RSAKey(t)
				req := request(t, key, "same-id", s.Challenge, "req-same-id")
				first, err := c.Issue(ctx, req)
				if err != nil {
					t.Fatalf("first Issue: %v", err)
				}
				second, err := c.Issue(ctx, req)
				if err != nil {
					t.Fatalf("second Issue: %v", err)
				}
				if first.Leaf.SerialNumber.Cmp(second.Leaf.SerialNumber) == 0 {
					t.Errorf("%s returned the same certificate twice; update the documented behaviour", s.Kind)
				}
			})

			t.Run("outage", func(t *testing.T) {
				warm := newConnector(t, s.Settings(nil), s.Secrets)
				if _, err := warm.Roots(ctx); err != nil {
					t.Fatalf("Roots: %v", err)
				}
				s.Stop()
				cold := newConnector(t, s.Settings(nil), s.Secrets)
				for name, c := range map[string]*scep.Connector{"cached CA": warm, "cold": cold} {
					_, err := c.Issue(ctx, request(t, sceptest.RSAKey(t), "outage", s.Challenge, "req-outage"))
					kind, msg := caErr(t, err)
					if diff := cmp.Diff(outcome{ca.Transient, scep.MsgUnavailable}, outcome{kind, msg}); diff != "" {
						t.Errorf("%s: Issue (-want +got):\n%s\nerror: %v", name, diff, err)
					}
				}
			})
		})
	}
}

// TestSCEPServerRenewalPolicy documents scepserver's own default
// (-allowrenew 14): a subject that already holds a certificate is refused,
// so a re-sent request fails permanently as a rejected challenge.
func TestSCEPServerRenewalPolicy(t *testing.T) {
	s := sceptest.StartSCEPServer(t, sceptest.SCEPServerOptions{AllowRenew: "14"})
	c := newConnector(t, s.Settings(nil), s.Secrets)
	ctx := context.Background()
	req := request(t, sceptest.RSAKey(t), "renewal", s.Challenge, "req-renewal")
	if _, err := c.Issue(ctx, req); err != nil {
		t.Fatalf("first Issue: %v", err)
	}
	_, err := c.Issue(ctx, req)
	kind, msg := caErr(t, err)
	if diff := cmp.Diff(outcome{ca.Permanent, scep.MsgChallengeRejected}, outcome{kind, msg}); diff != "" {
		t.Errorf("second Issue (-want +got):\n%s\nerror: %v", diff, err)
	}
}

// TestStepCALegacyCaps makes step-ca advertise neither AES nor
// POSTPKIOperation (as old NDES): the request goes by GET, triple DES.
func TestStepCALegacyCaps(t *testing.T) {
	s := sceptest.StartStepCA(t, sceptest.StepCAOptions{Capabilities: []string{"SHA-256", "DES3"}, IncludeRoot: true})
	c := newConnector(t, s.Settings(map[string]any{"caFingerprint": s.Fingerprint()}), s.Secrets)
	key := sceptest.ECKey(t)
	iss, err := c.Issue(context.Background(), request(t, key, "legacy-caps", s.Challenge, "req-legacy"))
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	checkIssued(t, c, iss, key)
	if len(iss.Chain) != 1 || !iss.Chain[0].Equal(s.CA) {
		t.Errorf("Chain = %v, want the intermediate", subjects(iss.Chain))
	}
}

func subjects(certs []*x509.Certificate) []string {
	var out []string
	for _, c := range certs {
		out = append(out, c.Subject.String())
	}
	return out
}

// TestPendingThenSuccess: the Responder answers PENDING to the PKCSReq and
// the first CertPoll, then SUCCESS. Each Issue runs on a new Connector (a
// new signer key, as on another function instance); the PKCSReq is sent
// once, the certificate issued once.
func TestPendingThenSuccess(t *testing.T) {
	r := sceptest.StartResponder(t, sceptest.ResponderOptions{PendingAnswers: 2, Challenge: "pw"})
	settings := json.RawMessage(fmt.Sprintf(`{"url": %q, "challenge": {"type": "none"}, "pollInterval": "45s"}`, r.URL))
	ctx := context.Background()
	key := sceptest.RSAKey(t)
	req := request(t, key, "pending", "pw", "req-pending")

	for i := range 2 {
		c := newConnector(t, settings, nil)
		_, err := c.Issue(ctx, req)
		var e *ca.Error
		if !errors.As(err, &e) || e.Kind != ca.Pending || e.RetryAfter != 45*time.Second {
			t.Fatalf("Issue #%d = %v, want Pending with RetryAfter 45s", i+1, err)
		}
	}
	c := newConnector(t, settings, nil)
	iss, err := c.Issue(ctx, req)
	if err != nil {
		t.Fatalf("Issue #3: %v", err)
	}
	checkIssued(t, c, iss, key)
	// The first Issue's CertPoll finds nothing (badCertID), then PKCSReq;
	// the next two ask with CertPoll only.
	pkcsReqs, certPolls, issued := r.Counts()
	if diff := cmp.Diff([3]int{1, 3, 1}, [3]int{pkcsReqs, certPolls, issued}); diff != "" {
		t.Errorf("PKCSReqs, CertPolls, issued (-want +got):\n%s", diff)
	}
}

// TestLostAnswer: the CA issued but the answer was lost (the function
// crashed): the same request id fetches the same certificate by CertPoll.
func TestLostAnswer(t *testing.T) {
	r := sceptest.StartResponder(t, sceptest.ResponderOptions{})
	settings := json.RawMessage(fmt.Sprintf(`{"url": %q, "challenge": {"type": "none"}}`, r.URL))
	ctx := context.Background()
	req := request(t, sceptest.RSAKey(t), "lost", "", "req-lost")
	first, err := newConnector(t, settings, nil).Issue(ctx, req)
	if err != nil {
		t.Fatalf("first Issue: %v", err)
	}
	second, err := newConnector(t, settings, nil).Issue(ctx, req)
	if err != nil {
		t.Fatalf("second Issue: %v", err)
	}
	if !first.Leaf.Equal(second.Leaf) {
		t.Errorf("the re-sent request got another certificate")
	}
	if pkcsReqs, _, issued := r.Counts(); pkcsReqs != 1 || issued != 1 {
		t.Errorf("PKCSReqs = %d, issued = %d; want 1, 1", pkcsReqs, issued)
	}
}

// TestNDESLike: RA certificates (the request must be encrypted to the RA
// encryption certificate, the answer is signed by the RA signing
// certificate), NDES's capabilities (triple DES, no AES), the CA pinned,
// and one-time challenges fetched from the mscep_admin fake.
func TestNDESLike(t *testing.T) {
	n := sceptest.StartNDES(t, sceptest.ResponderOptions{})
	c := newConnector(t, n.Settings(map[string]any{"timeout": "10s"}), n.Secrets)
	ctx := context.Background()

	before := time.Now()
	pw, exp, err := c.Challenge(ctx, "customer:p1")
	after := time.Now()
	if err != nil {
		t.Fatalf("Challenge: %v", err)
	}
	if got := n.Admin.Passwords(); len(got) != 1 || got[0] != pw {
		t.Fatalf("Challenge = %q, NDES handed out %q", pw, got)
	}
	if exp.Before(before.Add(60*time.Minute)) || exp.After(after.Add(60*time.Minute)) {
		t.Errorf("expiry %v is not 60m after the fetch (%v..%v)", exp, before, after)
	}
	key := sceptest.RSAKey(t)
	iss, err := c.Issue(ctx, request(t, key, "ndes-like", pw, "req-ndes-1"))
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	checkIssued(t, c, iss, key)
	roots, _ := c.Roots(ctx)
	if len(roots) != 1 || !roots[0].Equal(n.CA) {
		t.Errorf("Roots = %v, want the CA (not the RA certificates)", subjects(roots))
	}

	// A used one-time password is refused: another process reusing it fails.
	_, err = c.Issue(ctx, request(t, sceptest.RSAKey(t), "ndes-reuse", pw, "req-ndes-2"))
	kind, msg := caErr(t, err)
	if diff := cmp.Diff(outcome{ca.Permanent, scep.MsgChallengeRejected}, outcome{kind, msg}); diff != "" {
		t.Errorf("reused challenge (-want +got):\n%s\nerror: %v", diff, err)
	}
}

func TestFailInfoMessages(t *testing.T) {
	for _, tc := range []struct {
		failInfo smallscep.FailInfo
		want     string
	}{
		{smallscep.BadAlg, scep.MsgBadAlg},
		{smallscep.BadMessageCheck, scep.MsgBadMessageCheck},
		{smallscep.BadRequest, scep.MsgChallengeRejected},
		{smallscep.BadTime, scep.MsgBadTime},
		{smallscep.BadCertID, scep.MsgBadCertID},
		{"99", scep.MsgRefused}, // outside RFC 8894: FailInfo.String would panic
	} {
		t.Run(string(tc.failInfo), func(t *testing.T) {
			r := sceptest.StartResponder(t, sceptest.ResponderOptions{FailWith: tc.failInfo})
			c := newConnector(t, json.RawMessage(fmt.Sprintf(`{"url": %q, "challenge": {"type": "none"}}`, r.URL)), nil)
			_, err := c.Issue(context.Background(), request(t, sceptest.ECKey(t), "fail", "", "req-fail"))
			kind, msg := caErr(t, err)
			if diff := cmp.Diff(outcome{ca.Permanent, tc.want}, outcome{kind, msg}); diff != "" {
				t.Errorf("(-want +got):\n%s\nerror: %v", diff, err)
			}
		})
	}
}

// TestProfileExtensions: a SCEP profile's UPN SAN and certificate template
// name reach the certificate through a CA that copies the request's
// extensions (step-ca with such a template; the Responder, as AD CS would).
func TestProfileExtensions(t *testing.T) {
	s := sceptest.StartStepCA(t, sceptest.StepCAOptions{CopyExtensions: true})
	r := sceptest.StartResponder(t, sceptest.ResponderOptions{RA: true, Challenge: "pw"})
	for _, tc := range []struct {
		name      string
		settings  json.RawMessage
		secrets   func(string) (string, error)
		challenge string
	}{
		{"step-ca", s.Settings(nil), s.Secrets, s.Challenge},
		{"responder", r.Settings(nil), r.Secrets, "pw"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newConnector(t, tc.settings, tc.secrets)
			key := sceptest.ECKey(t)
			der := sceptest.NewCSR(t, key, csr.Template{
				Subject:            pkix.Name{CommonName: "Jane Doe"},
				EmailAddresses:     []string{"jane@corp.example"},
				UserPrincipalNames: []string{"jane@corp.example"},
				KeyUsage:           x509.KeyUsageDigitalSignature,
				MSTemplateName:     "ChromeOSUser",
				ChallengePassword:  tc.challenge,
			})
			iss, err := c.Issue(context.Background(), ca.Request{CSR: der, RequestID: "req-profile"})
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			checkIssued(t, c, iss, key)
			got := []string{sceptest.MSTemplateName(iss.Leaf)}
			got = append(got, sceptest.UserPrincipalNames(iss.Leaf)...)
			if diff := cmp.Diff([]string{"ChromeOSUser", "jane@corp.example"}, got); diff != "" {
				t.Errorf("template name, UPNs (-want +got):\n%s", diff)
			}
		})
	}
}
