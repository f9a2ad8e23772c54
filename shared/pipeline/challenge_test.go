package pipeline_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"testing"
	"time"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/seal"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
)

// challengeCA is the dev CA with a SCEP-style challenge: it checks that the
// challenge password reached it inside the CSR.
type challengeCA struct {
	pipeline.Issuer
	h        *harness
	validity time.Duration
	seen     *[]byte
}

func (c challengeCA) Challenge(context.Context, string) (string, time.Time, error) {
	return "hunter2-secret", c.h.clk.Now().Add(c.validity), nil
}

func (c challengeCA) Issue(ctx context.Context, req ca.Request) (*ca.Issued, error) {
	*c.seen = req.CSR
	return c.Issuer.Issue(ctx, req)
}

var oidChallenge = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 7}

func TestChallengeIsSealedAndExpires(t *testing.T) {
	t.Parallel()
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	sealer, err := seal.New(key)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		sealer    *seal.Sealer
		signDelay time.Duration
		want      string // "" means uploaded
	}{
		{"sealed and issued", sealer, 5 * time.Second, ""},
		{"signed after the challenge expired", sealer, 90 * time.Minute, "challenge had expired"},
		{"no sealing key", nil, time.Second, "keep enrollment challenges safe"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, cpemulator.Options{})
			h.p.Schedule.Deadline = 3 * time.Hour
			var seen []byte
			h.p.CAs[cpemulator.DefaultCARef] = challengeCA{Issuer: h.ca, h: h, validity: time.Hour, seen: &seen}
			h.p.Sealer = tc.sealer
			name, note := h.add(cpemulator.ClientSpec{SignDelay: tc.signDelay})
			if err := h.claim(note, 1); err != nil {
				t.Fatal(err)
			}
			h.drain()
			if tc.want != "" {
				h.wantFailed(name, tc.want)
				if h.ca.Issued() != 0 {
					t.Error("issued with an expired or unsafe challenge")
				}
				return
			}
			h.wantUploaded(name)
			rec := h.record(name)
			if bytes.Contains(rec.SignData, []byte("hunter2")) || bytes.Contains(rec.CSR, []byte("hunter2")) || !seal.Sealed(rec.SignData) || !seal.Sealed(rec.CSR) {
				t.Error("the challenge password is stored in clear")
			}
			if !bytes.Contains(h.snap(name).SignData, []byte("hunter2-secret")) {
				t.Error("the client was not asked to sign the challenge password")
			}
			req, err := x509.ParseCertificateRequest(seen)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, a := range req.Attributes {
				found = found || a.Type.Equal(oidChallenge)
			}
			if !found && !bytes.Contains(req.RawTBSCertificateRequest, []byte("hunter2-secret")) {
				t.Error("the CA did not receive the challenge password in the CSR")
			}
		})
	}
}

// A record created with a sealed intent (a SCEP challenge) whose delivery
// died before the claim, resumed by an instance without the sealing key (a
// configuration change in between): the bytes cannot be opened, so the
// process fails with a message, the claim it just made recorded first (no
// second claim before setFailure), instead of a panic or a stuck record.
func TestSealedIntentWithoutTheKeyFails(t *testing.T) {
	t.Parallel()
	sealer, err := seal.New(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, cpemulator.Options{})
	var seen []byte
	h.p.CAs[cpemulator.DefaultCARef] = challengeCA{Issuer: h.ca, h: h, validity: time.Hour, seen: &seen}
	h.p.Sealer = sealer
	name, note := h.add(cpemulator.ClientSpec{SignDelay: time.Second})
	h.crashClaim("claim:before-claim", note)
	h.p.Crash, h.p.Sealer = nil, nil
	h.clk.advance(2 * h.p.Lease)
	if err := h.claim(note, 2); err != nil {
		t.Fatalf("redelivery: %v", err)
	}
	h.drain()
	h.wantFailed(name, "could not read its own request")
	if s := h.snap(name); s.SignDataCalls != 0 || s.SetFailureCalls != 1 {
		t.Errorf("signData %d, setFailure %d; want 0 and 1", s.SignDataCalls, s.SetFailureCalls)
	}
	h.noViolations()
}
