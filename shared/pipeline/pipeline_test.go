package pipeline_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/csr"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
)

func TestEnrollsEveryClientKind(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		spec cpemulator.ClientSpec
	}{
		{"device RSA", cpemulator.ClientSpec{Kind: cpemulator.Device, Key: cpemulator.RSA2048, SignDelay: 3 * time.Second}},
		{"device EC", cpemulator.ClientSpec{Kind: cpemulator.Device, Key: cpemulator.ECP256}},
		{"user RSA", cpemulator.ClientSpec{Kind: cpemulator.User, Key: cpemulator.RSA2048, SignDelay: 10 * time.Minute}},
		{"user EC affiliated", cpemulator.ClientSpec{Kind: cpemulator.User, Key: cpemulator.ECP256, Affiliated: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, cpemulator.Options{})
			name, note := h.add(tc.spec)
			if err := h.claim(note, 1); err != nil {
				t.Fatalf("Claim: %v", err)
			}
			h.drain()
			h.wantUploaded(name)
			h.noViolations()
			rec, s := h.record(name), h.snap(name)
			if string(rec.SignData) != string(s.SignData) {
				t.Error("the record does not hold the exact bytes sent to signData")
			}
			req, err := x509.ParseCertificateRequest(rec.CSR)
			if err != nil || req.CheckSignature() != nil {
				t.Fatalf("stored CSR: %v", err)
			}
			if string(req.RawSubjectPublicKeyInfo) != string(s.SPKI) {
				t.Error("the CSR does not embed the process's SPKI")
			}
			var states []progress.State
			for _, c := range rec.History {
				states = append(states, c.To)
				if c.At.IsZero() {
					t.Errorf("transition to %s has no timestamp", c.To)
				}
			}
			want := "RECEIVED CLAIMED SIGNING POLLING SIGNED ISSUING ISSUED UPLOADED"
			if got := strings.Trim(strings.Join(strings.Fields(strings.Trim(strings.ReplaceAll(strings.Join(toStrings(states), " "), "  ", " "), " ")), " "), " "); got != want {
				t.Errorf("history %q, want %q", got, want)
			}
			if tc.spec.SignDelay > time.Minute && rec.PollCount < 5 {
				t.Errorf("a client that signs after %s took %d polls; the schedule should have backed off but kept polling", tc.spec.SignDelay, rec.PollCount)
			}
		})
	}
}

func toStrings(s []progress.State) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = string(v)
	}
	return out
}

// Invariant 4: a duplicate Pub/Sub delivery is a no-op, sequential or concurrent.
func TestDuplicateNotification(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cpemulator.Options{})
	name, note := h.add(cpemulator.ClientSpec{})
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = h.p.Claim(context.Background(), pipeline.Delivery{Body: note}) }()
	}
	wg.Wait()
	// Deliveries that found another one mid-signData answer "retry later";
	// Pub/Sub redelivers them.
	for _, err := range errs {
		if err != nil {
			if err := h.claim(note, 3); err != nil {
				t.Fatalf("redelivery: %v", err)
			}
		}
	}
	h.drain()
	if err := h.claim(note, 1); err != nil { // once more, after the end
		t.Fatal(err)
	}
	h.drain()
	h.wantUploaded(name)
	if c := h.emu.Calls(); c["claim"] != 1 || c["signData"] != 1 {
		t.Errorf("calls %v: want one claim and one signData", c)
	}
	h.noViolations()
}

// Invariant 4: every task delivered twice at once still gives one issuance and one upload.
func TestDuplicateTaskDispatch(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cpemulator.Options{})
	h.dup = true
	names := []string{}
	for i := range 5 {
		name, note := h.add(cpemulator.ClientSpec{Key: cpemulator.KeyType(i % 2), SignDelay: time.Duration(i) * 5 * time.Second})
		names = append(names, name)
		if err := h.claim(note, 1); err != nil {
			t.Fatal(err)
		}
	}
	h.drain()
	for _, n := range names {
		h.wantUploaded(n)
	}
	if got := h.ca.Issued(); got != 5 {
		t.Errorf("issued %d certificates for 5 processes", got)
	}
	h.noViolations()
}

// Invariant 1: a crash right after signData returns, before its result is
// stored: the retry does not call signData again and the process completes.
func TestCrashAfterSignData(t *testing.T) {
	t.Parallel()
	for _, point := range []string{"sign:before-signData", "sign:after-signData"} {
		t.Run(point, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, cpemulator.Options{})
			name, note := h.add(cpemulator.ClientSpec{Key: cpemulator.ECP256})
			hits := h.crashOnce(point)
			if err := h.p.Claim(context.Background(), pipeline.Delivery{Body: note}); !pipeline.IsCrash(err) {
				t.Fatalf("Claim: %v, want the simulated crash", err)
			}
			if *hits != 1 {
				t.Fatal("the crash point was not reached")
			}
			// Pub/Sub redelivers; the first poll task was also enqueued.
			if err := h.claim(note, 3); err != nil {
				t.Fatal(err)
			}
			h.drain()
			h.wantUploaded(name)
			if s := h.snap(name); s.SignDataRequests != 1 {
				t.Errorf("signData requests %d, want 1", s.SignDataRequests)
			}
			h.noViolations()
		})
	}
}

// Invariant 1 again, when the API acted on signData but the answer was lost.
func TestSignDataAnswerLost(t *testing.T) {
	t.Parallel()
	var once sync.Once
	h := newHarness(t, cpemulator.Options{Fault: func(method, _ string) cpemulator.Fault {
		f := cpemulator.NoFault
		if method == cpemulator.MethodSignData {
			once.Do(func() { f = cpemulator.FaultLostResponse })
		}
		return f
	}})
	name, note := h.add(cpemulator.ClientSpec{SignDelay: 5 * time.Second})
	if err := h.p.Claim(context.Background(), pipeline.Delivery{Body: note}); err == nil {
		t.Fatal("Claim with a lost signData answer returned nil; want an error so Pub/Sub retries")
	}
	if err := h.claim(note, 3); err != nil {
		t.Fatal(err)
	}
	h.drain()
	h.wantUploaded(name)
	if rec := h.record(name); rec.OperationName != "" {
		t.Errorf("operation name %q: it was never returned, so polling should have used the process", rec.OperationName)
	}
	h.noViolations()
}

// Invariant 2: a crash after the certificate is issued and before the upload:
// no second issuance, the stored certificate is uploaded; a crash after the
// upload: no second upload.
func TestCrashAroundIssueAndUpload(t *testing.T) {
	t.Parallel()
	for _, point := range []string{"issue:before-ca", "issue:after-ca", "upload:before-upload", "upload:after-upload", "poll:after-signed"} {
		t.Run(point, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, cpemulator.Options{})
			name, note := h.add(cpemulator.ClientSpec{})
			hits := h.crashOnce(point)
			if err := h.claim(note, 1); err != nil {
				t.Fatal(err)
			}
			h.drain()
			if *hits != 1 {
				t.Fatal("the crash point was not reached")
			}
			h.wantUploaded(name)
			if h.ca.Issued() != 1 {
				t.Errorf("issued %d certificates, want 1", h.ca.Issued())
			}
			h.noViolations()
		})
	}
}

// Invariant 3: a claim lost to another adapter ends the process here, with
// nothing asked of the client.
func TestClaimedElsewhere(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cpemulator.Options{})
	name, note := h.add(cpemulator.ClientSpec{ClaimedBy: "other-adapter"})
	if err := h.claim(note, 1); err != nil {
		t.Fatal(err)
	}
	h.drain()
	if rec := h.record(name); rec.State != progress.StateClaimedElsewhere || rec.ExpireAt == nil {
		t.Errorf("state %s, want CLAIMED_ELSEWHERE with a TTL", rec.State)
	}
	if c := h.emu.Calls(); c["signData"]+c["setFailure"]+c["uploadCertificate"] != 0 {
		t.Errorf("calls %v after losing the claim", c)
	}
}

// Invariant 6: an invalid client signature: nothing reaches the CA, setFailure is called.
func TestInvalidSignature(t *testing.T) {
	t.Parallel()
	for _, b := range []cpemulator.Behaviour{cpemulator.Wrong, cpemulator.Garbage} {
		t.Run(b.String(), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, cpemulator.Options{})
			name, note := h.add(cpemulator.ClientSpec{Behaviour: b, Key: cpemulator.ECP256})
			if err := h.claim(note, 1); err != nil {
				t.Fatal(err)
			}
			h.drain()
			h.wantFailed(name, "signature did not verify")
			if h.ca.Issued() != 0 {
				t.Error("a certificate was issued for an unverified signature")
			}
			rec := h.record(name)
			if len(rec.CSR) != 0 {
				t.Error("a CSR was assembled from an invalid signature")
			}
			if rec.PollCount < 1 {
				// The signature is verified by the issue step, which the
				// poll that found it hands it to: that poll counts.
				t.Errorf("poll count %d, want the poll that found the signature counted", rec.PollCount)
			}
		})
	}
}

// Invariant 5: the client (through the API) failed the process: no setFailure on top.
func TestClientRejected(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cpemulator.Options{})
	name, note := h.add(cpemulator.ClientSpec{Behaviour: cpemulator.Reject})
	if err := h.claim(note, 1); err != nil {
		t.Fatal(err)
	}
	h.drain()
	rec, s := h.record(name), h.snap(name)
	if rec.State != progress.StateFailed || !rec.FailureReported || s.SetFailureCalls != 0 {
		t.Errorf("state %s reported %v setFailure calls %d: want FAILED as reported by the API, no setFailure", rec.State, rec.FailureReported, s.SetFailureCalls)
	}
}

// Configuration errors reach the device, naming the reference or field.
func TestConfigurationErrorsReachTheDevice(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		spec cpemulator.ClientSpec
		want string
	}{
		{"unknown profile", cpemulator.ClientSpec{ProfileRef: "wifi_profile_typo"}, `"wifi_profile_typo"`},
		{"unknown CA", cpemulator.ClientSpec{CARef: "old_ca"}, `"old_ca"`},
		{"empty template field", cpemulator.ClientSpec{Kind: cpemulator.Device, ProfileRef: "needs_user"}, "subject.commonName"},
		{"RSA-4096 key", cpemulator.ClientSpec{Key: cpemulator.RSA4096}, "RSA-4096"},
		{"RSA-1024 key", cpemulator.ClientSpec{Key: cpemulator.RSA1024}, "RSA-1024"},
		{"EC P-384 key", cpemulator.ClientSpec{Key: cpemulator.ECP384}, "P-384"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// An API that refuses a repeat claim by the same caller (it
			// may): the failure must still reach the device, so the claim
			// that setFailure needs is made once and recorded.
			h := newHarness(t, cpemulator.Options{RefuseRepeatClaims: true})
			name, note := h.add(tc.spec)
			if err := h.claim(note, 1); err != nil {
				t.Fatalf("Claim: %v (a permanent problem must be acknowledged)", err)
			}
			h.drain()
			h.wantFailed(name, tc.want)
			if s := h.snap(name); s.SignDataCalls != 0 {
				t.Error("signData was called for a process that cannot succeed")
			}
			if n := h.emu.Calls()["claim"]; n != 1 {
				t.Errorf("%d claims, want 1", n)
			}
		})
	}
}

// Malformed notifications and unknown customers are acknowledged, with no API call.
func TestRejectedNotifications(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cpemulator.Options{})
	for _, data := range [][]byte{nil, []byte("not a notification"), []byte(`{"x":1}`), cpemulator.EncodeNotificationJSON("C0other", "p1"), cpemulator.EncodeNotificationBinary(customer, "bad/id")} {
		if err := h.p.Claim(context.Background(), pipeline.Delivery{Body: data}); err != nil {
			t.Errorf("Claim(%q) = %v, want nil (acknowledged)", data, err)
		}
	}
	for m, n := range h.emu.Calls() {
		if n != 0 {
			t.Errorf("%d %s calls for rejected notifications", n, m)
		}
	}
}

// Invariant 3: an operation that never completes gets setFailure at the deadline.
func TestSilentClientFailsAtDeadline(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cpemulator.Options{})
	start := h.clk.Now()
	name, note := h.add(cpemulator.ClientSpec{Behaviour: cpemulator.Silent})
	if err := h.claim(note, 1); err != nil {
		t.Fatal(err)
	}
	h.drain()
	h.wantFailed(name, "did not answer")
	if elapsed := h.clk.Now().Sub(start); elapsed < h.p.Schedule.Deadline {
		t.Errorf("failed after %s, before the %s deadline", elapsed, h.p.Schedule.Deadline)
	}
	// With a 1 h deadline and a 60 s cap the poller makes about 60+ polls, not
	// thousands. (A poll that finds nothing writes no record: count the calls.)
	polls := h.emu.Calls()[cpemulator.MethodOperationsGet]
	if polls < 30 || polls > 120 {
		t.Errorf("%d polls in an hour: the schedule is off", polls)
	}
	// The record counts every poll, the deadline's included, as its reason
	// says (certprov status shows both): polls that wrote nothing count too.
	rec := h.record(name)
	if want := fmt.Sprintf("no signature after %d polls", polls); rec.PollCount != polls || !strings.Contains(rec.LastError, want) {
		t.Errorf("record: pollCount %d, last error %q; want %d and %q", rec.PollCount, rec.LastError, polls, want)
	}
}

// Invariant 5: API 429/5xx are retried, then the process finishes.
func TestTransientAPIErrors(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	seen := map[string]int{}
	h := newHarness(t, cpemulator.Options{Fault: func(method, _ string) cpemulator.Fault {
		mu.Lock()
		defer mu.Unlock()
		seen[method]++
		if seen[method] <= 2 { // the first two calls of every method fail
			if seen[method] == 1 {
				return cpemulator.FaultResourceExhausted
			}
			return cpemulator.FaultUnavailable
		}
		return cpemulator.NoFault
	}})
	name, note := h.add(cpemulator.ClientSpec{})
	if err := h.claim(note, 10); err != nil {
		t.Fatal(err)
	}
	h.drain()
	h.wantUploaded(name)
	h.noViolations()
}

// A CA outage is retried; on the queue's last attempt the failure is reported.
// A CA refusal is reported at once with the CA's message for the user.
func TestCAFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		fault      func(n int) error
		wantState  progress.State
		wantDevice string
	}{
		{"outage then recovery", func(n int) error {
			if n < 3 {
				return &ca.Error{Kind: ca.Transient, Reason: "connection refused"}
			}
			return nil
		}, progress.StateUploaded, ""},
		{"outage to the last attempt", func(int) error { return &ca.Error{Kind: ca.Transient, Reason: "down"} }, progress.StateFailed, "could not be reached"},
		{"refusal", func(int) error {
			return &ca.Error{Kind: ca.Permanent, Reason: "template denied", UserMessage: "Your account may not enroll this certificate."}
		}, progress.StateFailed, "may not enroll"},
		{"pending then issued", func(n int) error {
			if n < 2 {
				return &ca.Error{Kind: ca.Pending, RetryAfter: 10 * time.Minute}
			}
			return nil
		}, progress.StateUploaded, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, cpemulator.Options{})
			n := 0
			h.ca.SetFault(func(ca.Request) error { n++; return tc.fault(n) })
			name, note := h.add(cpemulator.ClientSpec{})
			if err := h.claim(note, 1); err != nil {
				t.Fatal(err)
			}
			h.drain()
			if tc.wantState == progress.StateUploaded {
				h.wantUploaded(name)
				if s := h.snap(name); s.SignDataCalls != 1 {
					t.Errorf("signData %d times", s.SignDataCalls)
				}
				return
			}
			h.wantFailed(name, tc.wantDevice)
		})
	}
}

// Invariant 6: an issued certificate whose key is not the process's is never uploaded.
func TestIssuedCertificateIsChecked(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cpemulator.Options{})
	other := newHarness(t, cpemulator.Options{})
	h.p.CAs[cpemulator.DefaultCARef] = swapKey{Issuer: h.ca, other: other}
	name, note := h.add(cpemulator.ClientSpec{})
	if err := h.claim(note, 1); err != nil {
		t.Fatal(err)
	}
	h.drain()
	h.wantFailed(name, "does not match this device")
}

// swapKey issues for a different key than asked, as a broken CA might.
type swapKey struct {
	pipeline.Issuer
	other *harness
}

func (s swapKey) Issue(ctx context.Context, req ca.Request) (*ca.Issued, error) {
	name, note := s.other.add(cpemulator.ClientSpec{Key: cpemulator.ECP256})
	if err := s.other.claim(note, 1); err != nil {
		return nil, err
	}
	s.other.drain()
	block, _ := pem.Decode([]byte(s.other.snap(name).UploadedPEM))
	if block == nil {
		return nil, errors.New("no certificate from the other harness")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, err
	}
	return &ca.Issued{Leaf: cert}, nil
}

// The signature check uses the same code as the api.md test vector (shared/csr).
func TestSignatureAlgorithmMatchesKey(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cpemulator.Options{})
	name, note := h.add(cpemulator.ClientSpec{Key: cpemulator.ECP256})
	if err := h.claim(note, 1); err != nil {
		t.Fatal(err)
	}
	if s := h.snap(name); s.SignatureAlgorithm != csr.AlgorithmECDSASHA256 {
		t.Errorf("signData algorithm %s for an EC key", s.SignatureAlgorithm)
	}
}

// Invariant 3: a notification whose every delivery meets an outage is
// reported on its last delivery, not left to the dead-letter topic.
func TestLastDeliveryReportsOutage(t *testing.T) {
	t.Parallel()
	claims := 0
	h := newHarness(t, cpemulator.Options{Fault: func(method, _ string) cpemulator.Fault {
		if method == cpemulator.MethodClaim {
			claims++
			if claims <= 6 {
				return cpemulator.FaultUnavailable
			}
		}
		return cpemulator.NoFault
	}})
	name, note := h.add(cpemulator.ClientSpec{})
	for attempt := 1; attempt < h.p.MaxAttempts; attempt++ {
		if err := h.p.Claim(context.Background(), pipeline.Delivery{Body: note, Attempt: attempt}); err == nil {
			t.Fatalf("delivery %d succeeded during the outage", attempt)
		}
		h.clk.advance(90 * time.Second)
	}
	// The last delivery: the API is still down, so the process is failed. The
	// API takes setFailure only from the claimer, and the claim is still
	// down: the record stays FAILING (the device was not told) and a fresh
	// task takes the report over.
	err := h.p.Claim(context.Background(), pipeline.Delivery{Body: note, Attempt: h.p.MaxAttempts})
	rec := h.record(name)
	if rec.State != progress.StateFailing || err != nil {
		t.Fatalf("after the last delivery: state %s, err %v; want FAILING and acknowledged", rec.State, err)
	}
	if len(h.q.pending) == 0 {
		t.Fatal("no task takes the report over")
	}
	// Once the API is back, the fresh task claims the process and reports.
	h.drain()
	h.wantFailed(name, "service was unavailable")
	if s := h.snap(name); s.SignDataCalls != 0 {
		t.Errorf("signData %d on a failed claim", s.SignDataCalls)
	}
	h.noViolations()
}
