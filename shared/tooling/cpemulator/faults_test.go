package cpemulator

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// onceFault injects fault the first time method is called, then serves
// normally.
func onceFault(method string, fault Fault) func(string, string) Fault {
	var mu sync.Mutex
	done := false
	return func(m, _ string) Fault {
		mu.Lock()
		defer mu.Unlock()
		if m != method || done {
			return NoFault
		}
		done = true
		return fault
	}
}

func TestLostSignDataResponse(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{Fault: onceFault(MethodSignData, FaultLostResponse)})
	name := f.add(ClientSpec{Key: ECP256})
	f.must(f.claim(name, "adapter-1"))

	_, err := f.signData(name, sampleData, AlgorithmECDSA)
	if code, status, _ := apiStatus(t, err); code != 503 || status != "UNAVAILABLE" {
		t.Fatalf("lost signData: %d %s, want 503 UNAVAILABLE", code, status)
	}
	// The request was applied: the client was asked, and the process shows it,
	// which is how an adapter recovers without asking again.
	s := f.snap(name)
	if s.SignDataCalls != 1 || len(s.Operations) != 1 {
		t.Fatalf("after a lost answer: signDataCalls=%d ops=%v", s.SignDataCalls, s.Operations)
	}
	p, err := f.get(name)
	f.must(err)
	if string(b64(t, p.SignData)) != string(sampleData) || p.SignatureAlgorithm != AlgorithmECDSA {
		t.Errorf("GET after a lost signData: signData=%q algorithm=%q", p.SignData, p.SignatureAlgorithm)
	}
	if err := verify(b64(t, p.SubjectPublicKeyInfo), sampleData, b64(t, p.Signature)); err != nil {
		t.Errorf("the signature is reachable through GET: %v", err)
	}

	// Retrying signData is exactly what the adapter must not do.
	if _, err := f.signData(name, sampleData, AlgorithmECDSA); err != nil {
		t.Fatalf("retried signData: %v", err)
	}
	s = f.snap(name)
	if s.SignDataCalls != 2 || s.State != StateFailed || s.FailureMessage != RepeatedSignDataMessage {
		t.Errorf("after a retry: signDataCalls=%d state=%s failure=%q", s.SignDataCalls, s.State, s.FailureMessage)
	}
	if diff := cmp.Diff(map[ViolationKind]int{ViolationRepeatedSignData: 1}, f.emu.ViolationCounts()); diff != "" {
		t.Errorf("violations (-want +got):\n%s", diff)
	}
	if got := f.emu.Calls()[MethodSignData]; got != 2 {
		t.Errorf("signData calls = %d, want 2", got)
	}
}

func TestLostResponsesAreApplied(t *testing.T) {
	t.Parallel()
	tests := []struct {
		method string
		prep   []step
		call   step
		check  func(t *testing.T, s Snapshot)
		retry  bool // the same call again succeeds
	}{
		{MethodClaim, nil, claimAs("a"), func(t *testing.T, s Snapshot) {
			if s.ClaimedBy != "a" {
				t.Errorf("claimedBy %q", s.ClaimedBy)
			}
		}, true},
		{MethodUploadCertificate, []step{claimAs("a"), sign(sampleData, "")}, uploadPEM(goodCert), func(t *testing.T, s Snapshot) {
			if s.State != StateUploaded || s.UploadCalls != 1 {
				t.Errorf("state=%s uploadCalls=%d", s.State, s.UploadCalls)
			}
		}, false}, // a new certificate (new serial) is refused; the same one is tested below
		{MethodSetFailure, []step{claimAs("a")}, failWith("x"), func(t *testing.T, s Snapshot) {
			if s.State != StateFailed || s.FailureMessage != "x" {
				t.Errorf("state=%s failure=%q", s.State, s.FailureMessage)
			}
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.method, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, Options{Fault: onceFault(tc.method, FaultLostResponse)})
			name := f.add(ClientSpec{Key: ECP256})
			for _, s := range tc.prep {
				f.must(s(f, name))
			}
			if code, status, _ := apiStatus(t, tc.call(f, name)); code != 503 || status != "UNAVAILABLE" {
				t.Fatalf("lost %s: %d %s", tc.method, code, status)
			}
			tc.check(t, f.snap(name))
			if tc.retry {
				f.must(tc.call(f, name))
				tc.check(t, f.snap(name))
			}
		})
	}
}

func TestLostUploadRetriedWithTheSameCertificate(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{Fault: onceFault(MethodUploadCertificate, FaultLostResponse)})
	name := f.add(ClientSpec{Key: ECP256})
	f.claimAndSign(name, sampleData)
	cert := certFor(t, f.snap(name).PublicKey)
	if code, _, _ := apiStatus(t, f.upload(name, cert)); code != 503 {
		t.Fatalf("lost upload: %d", code)
	}
	f.must(f.upload(name, cert))
	if s := f.snap(name); s.UploadCalls != 2 || s.RepeatedUploads != 1 || s.UploadedPEM != cert {
		t.Errorf("uploadCalls=%d repeated=%d", s.UploadCalls, s.RepeatedUploads)
	}
}

func TestInjectedErrorsDoNotAct(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		opts       Options
		wantCodes  map[int]bool
		wantStatus map[string]bool
	}{
		{"error rate 1", Options{ErrorRate: 1, Seed: 7}, map[int]bool{429: true, 503: true}, map[string]bool{"RESOURCE_EXHAUSTED": true, "UNAVAILABLE": true}},
		{"hook unavailable", Options{Fault: func(string, string) Fault { return FaultUnavailable }}, map[int]bool{503: true}, map[string]bool{"UNAVAILABLE": true}},
		{"hook exhausted", Options{Fault: func(string, string) Fault { return FaultResourceExhausted }}, map[int]bool{429: true}, map[string]bool{"RESOURCE_EXHAUSTED": true}},
		{"hook internal", Options{Fault: func(string, string) Fault { return FaultInternal }}, map[int]bool{500: true}, map[string]bool{"INTERNAL": true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, tc.opts)
			name := f.add(ClientSpec{Key: ECP256})
			calls := []func() error{
				func() error { _, err := f.get(name); return err },
				func() error { return f.claim(name, "a") },
				func() error { _, err := f.signData(name, sampleData, AlgorithmECDSA); return err },
				func() error { _, err := f.op(name + "/operations/x"); return err },
				func() error { return f.upload(name, "x") },
				func() error { return f.setFailure(name, "x") },
			}
			seen := map[int]bool{}
			for i := 0; i < 10; i++ {
				for _, call := range calls {
					code, status, _ := apiStatus(t, call())
					seen[code] = true
					if !tc.wantCodes[code] || !tc.wantStatus[status] {
						t.Errorf("injected error %d %s", code, status)
					}
				}
			}
			if diff := cmp.Diff(tc.wantCodes, seen); diff != "" {
				t.Errorf("codes seen (-want +got):\n%s", diff)
			}
			s := f.snap(name)
			if s.State != StateCreated || s.ClaimedBy != "" || s.SignDataCalls != 0 {
				t.Errorf("a failed request acted: %+v", s)
			}
			want := map[string]int{"get": 10, "claim": 10, "signData": 10, "operations.get": 10, "uploadCertificate": 10, "setFailure": 10}
			if diff := cmp.Diff(want, f.emu.Calls()); diff != "" {
				t.Errorf("Calls (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(want, s.Requests); diff != "" {
				t.Errorf("per-process requests (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFaultHookPassOverridesRates(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{ErrorRate: 1, LostResponseRate: 1, Fault: func(m, _ string) Fault {
		if m == MethodGet {
			return FaultPass
		}
		return NoFault
	}})
	name := f.add(ClientSpec{Key: ECP256})
	if _, err := f.get(name); err != nil {
		t.Errorf("get with FaultPass: %v", err)
	}
	if code, _, _ := apiStatus(t, f.claim(name, "a")); code != 429 && code != 503 {
		t.Errorf("claim: %d", code)
	}
}

func TestFaultHookSeesProcessName(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got [][2]string
	f := newFixture(t, Options{Fault: func(m, p string) Fault {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, [2]string{m, p})
		return NoFault
	}})
	name := f.add(ClientSpec{Key: ECP256})
	op := f.claimAndSign(name, sampleData)
	_, err := f.op(op.Name)
	f.must(err)
	want := [][2]string{{MethodClaim, name}, {MethodSignData, name}, {MethodOperationsGet, name}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("hook calls (-want +got):\n%s", diff)
	}
}

// faultSequence returns the HTTP codes of n GETs against a fresh emulator.
func faultSequence(t *testing.T, opts Options, n int) []int {
	t.Helper()
	f := newFixture(t, opts)
	name := f.add(ClientSpec{Key: ECP256})
	out := make([]int, n)
	for i := range out {
		if _, err := f.get(name); err != nil {
			out[i], _, _ = apiStatus(t, err)
		} else {
			out[i] = 200
		}
	}
	return out
}

func TestErrorRatesAreSeededAndRoughlyRight(t *testing.T) {
	t.Parallel()
	opts := Options{ErrorRate: 0.3, LostResponseRate: 0.2, Seed: 42}
	a := faultSequence(t, opts, 400)
	if diff := cmp.Diff(a, faultSequence(t, opts, 400)); diff != "" {
		t.Errorf("same seed, different faults (-first +second):\n%s", diff)
	}
	counts := map[int]int{}
	for _, c := range a {
		counts[c]++
	}
	// Expected: 30% errors (429+503 before acting), then 20% of the rest lost
	// (503): 200s about 56%. Loose bounds: the dice are seeded, this only
	// catches a broken rate.
	if ok := counts[200]; ok < 160 || ok > 290 {
		t.Errorf("successes %d of 400, want about 224 (%v)", ok, counts)
	}
	if counts[429] == 0 || counts[503] == 0 {
		t.Errorf("codes %v, want both 429 and 503", counts)
	}
	if diff := cmp.Diff(a, faultSequence(t, Options{ErrorRate: 0.3, LostResponseRate: 0.2, Seed: 43}, 400)); diff == "" {
		t.Error("different seeds gave the same faults")
	}
}

func TestLostResponseRateStillApplies(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{LostResponseRate: 1})
	name := f.add(ClientSpec{Key: ECP256})
	if code, _, _ := apiStatus(t, f.claim(name, "a")); code != 503 {
		t.Fatalf("claim: %d", code)
	}
	if code, _, _ := apiStatus(t, func() error { _, err := f.signData(name, sampleData, AlgorithmECDSA); return err }()); code != 503 {
		t.Fatalf("signData: %d", code)
	}
	f.clock.Advance(time.Second)
	s := f.snap(name)
	if s.ClaimedBy != "a" || s.SignDataCalls != 1 || s.State != StateSigned {
		t.Errorf("lost requests did not act: claimedBy=%q signDataCalls=%d state=%s", s.ClaimedBy, s.SignDataCalls, s.State)
	}
	if !strings.HasPrefix(s.Operations[0], name+"/operations/") {
		t.Errorf("operations %v", s.Operations)
	}
}
