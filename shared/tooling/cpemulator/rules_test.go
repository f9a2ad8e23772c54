package cpemulator

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// step is one API call against a process; it returns the call's error.
type step func(f *fixture, name string) error

func claimAs(id string) step {
	return func(f *fixture, name string) error { return f.claim(name, id) }
}

func sign(data []byte, alg string) step {
	return func(f *fixture, name string) error {
		if alg == "" {
			alg = algOf(f.snap(name))
		}
		_, err := f.signData(name, data, alg)
		return err
	}
}

func uploadPEM(make func(f *fixture, s Snapshot) string) step {
	return func(f *fixture, name string) error { return f.upload(name, make(f, f.snap(name))) }
}

func failWith(msg string) step {
	return func(f *fixture, name string) error { return f.setFailure(name, msg) }
}

// goodCert is a certificate for the process's key.
func goodCert(f *fixture, s Snapshot) string { return certFor(f.t, s.PublicKey) }

// uploaded returns the certificate the process already holds.
func uploaded(_ *fixture, s Snapshot) string { return s.UploadedPEM }

var happy = []step{claimAs("adapter-1"), sign(sampleData, ""), uploadPEM(goodCert)}

type ruleCase struct {
	name       string
	spec       ClientSpec
	rsa        bool   // an RSA-2048 client; default EC P-256
	prep       []step // must succeed
	call       step
	wantCode   int // 0: success
	wantStatus string
	wantMsg    string // substring of the error message
	check      func(t *testing.T, s Snapshot)
	violation  ViolationKind
}

func runRules(t *testing.T, cases []ruleCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, Options{})
			spec := tc.spec
			if !tc.rsa {
				spec.Key = ECP256 // cheap to generate
			}
			name := f.add(spec)
			for i, s := range tc.prep {
				if err := s(f, name); err != nil {
					t.Fatalf("prep step %d: %v", i, err)
				}
			}
			err := tc.call(f, name)
			if tc.wantCode == 0 {
				if err != nil {
					t.Fatalf("call: %v, want success", err)
				}
			} else {
				code, status, msg := apiStatus(t, err)
				if code != tc.wantCode || status != tc.wantStatus {
					t.Errorf("call: %d %s (%s), want %d %s", code, status, msg, tc.wantCode, tc.wantStatus)
				}
				if !strings.Contains(msg, tc.wantMsg) {
					t.Errorf("message %q does not contain %q", msg, tc.wantMsg)
				}
			}
			if tc.check != nil {
				tc.check(t, f.snap(name))
			}
			var kinds []ViolationKind
			for _, v := range f.emu.Violations() {
				kinds = append(kinds, v.Kind)
				if v.Process != name {
					t.Errorf("violation %+v names another process", v)
				}
			}
			var want []ViolationKind
			if tc.violation != "" {
				want = []ViolationKind{tc.violation}
			}
			if diff := cmp.Diff(want, kinds); diff != "" {
				t.Errorf("violations (-want +got):\n%s", diff)
			}
		})
	}
}

func TestClaimRules(t *testing.T) {
	t.Parallel()
	claimedBy := func(id string) func(t *testing.T, s Snapshot) {
		return func(t *testing.T, s Snapshot) {
			if s.ClaimedBy != id {
				t.Errorf("claimedBy = %q, want %q", s.ClaimedBy, id)
			}
		}
	}
	runRules(t, []ruleCase{
		{name: "first caller wins", call: claimAs("a"), check: claimedBy("a")},
		{name: "same id again succeeds", prep: []step{claimAs("a")}, call: claimAs("a"), check: claimedBy("a")},
		{name: "another id is refused", prep: []step{claimAs("a")}, call: claimAs("b"), wantCode: 400, wantStatus: "FAILED_PRECONDITION", wantMsg: "claimed", check: claimedBy("a")},
		{name: "claimed elsewhere", spec: ClientSpec{ClaimedBy: "other-adapter"}, call: claimAs("a"), wantCode: 400, wantStatus: "FAILED_PRECONDITION", check: claimedBy("other-adapter")},
		{name: "claimed elsewhere, same id", spec: ClientSpec{ClaimedBy: "a"}, call: claimAs("a"), check: claimedBy("a")},
		{name: "empty caller id", call: claimAs(""), wantCode: 400, wantStatus: "INVALID_ARGUMENT", wantMsg: "callerInstanceId", check: claimedBy("")},
		{name: "failed process", prep: []step{claimAs("a"), failWith("CA down")}, call: claimAs("a"), wantCode: 400, wantStatus: "FAILED_PRECONDITION", wantMsg: "failed"},
		{name: "finished process", prep: happy, call: claimAs("adapter-1"), wantCode: 400, wantStatus: "FAILED_PRECONDITION", wantMsg: "finished"},
	})
}

func TestSignDataRules(t *testing.T) {
	t.Parallel()
	signing := func(t *testing.T, s Snapshot) {
		if s.State != StateSigning && s.State != StateSigned || s.SignDataCalls != 1 {
			t.Errorf("state=%s signDataCalls=%d", s.State, s.SignDataCalls)
		}
	}
	notAsked := func(t *testing.T, s Snapshot) {
		if s.SignDataCalls != 0 || s.SignData != nil || len(s.Operations) != 0 {
			t.Errorf("client was asked: signDataCalls=%d signData=%q ops=%v", s.SignDataCalls, s.SignData, s.Operations)
		}
	}
	runRules(t, []ruleCase{
		{name: "after claim", prep: []step{claimAs("a")}, call: sign(sampleData, ""), check: signing},
		{name: "RSA after claim", rsa: true, prep: []step{claimAs("a")}, call: sign(sampleData, AlgorithmRSA), check: signing},
		{name: "before claim", call: sign(sampleData, ""), wantCode: 400, wantStatus: "FAILED_PRECONDITION", wantMsg: "not been claimed", check: notAsked, violation: ViolationSignDataUnclaimed},
		{name: "empty data", prep: []step{claimAs("a")}, call: sign(nil, ""), wantCode: 400, wantStatus: "INVALID_ARGUMENT", wantMsg: "signData", check: notAsked},
		{name: "unspecified algorithm", prep: []step{claimAs("a")}, call: sign(sampleData, "SIGNATURE_ALGORITHM_UNSPECIFIED"), wantCode: 400, wantStatus: "INVALID_ARGUMENT", check: notAsked},
		{name: "unknown algorithm", prep: []step{claimAs("a")}, call: sign(sampleData, "SIGNATURE_ALGORITHM_MD5"), wantCode: 400, wantStatus: "INVALID_ARGUMENT", wantMsg: "Invalid value at 'signature_algorithm'", check: notAsked},
		{name: "EC key, RSA algorithm", prep: []step{claimAs("a")}, call: sign(sampleData, AlgorithmRSA), wantCode: 400, wantStatus: "INVALID_ARGUMENT", wantMsg: "does not match", check: notAsked},
		{name: "RSA key, ECDSA algorithm", rsa: true, prep: []step{claimAs("a")}, call: sign(sampleData, AlgorithmECDSA), wantCode: 400, wantStatus: "INVALID_ARGUMENT", wantMsg: "does not match", check: notAsked},
		{name: "failed process", prep: []step{claimAs("a"), failWith("no")}, call: sign(sampleData, ""), wantCode: 400, wantStatus: "FAILED_PRECONDITION", check: notAsked},
		{name: "repeated after upload", prep: happy, call: sign(sampleData, ""), wantCode: 400, wantStatus: "FAILED_PRECONDITION", violation: ViolationRepeatedSignData,
			check: func(t *testing.T, s Snapshot) {
				if s.SignDataCalls != 1 || s.State != StateUploaded {
					t.Errorf("signDataCalls=%d state=%s", s.SignDataCalls, s.State)
				}
			}},
	})
}

func TestUploadRules(t *testing.T) {
	t.Parallel()
	signed := []step{claimAs("a"), sign(sampleData, "")}
	twoCerts := func(f *fixture, s Snapshot) string { return goodCert(f, s) + goodCert(f, s) }
	withKey := func(f *fixture, s Snapshot) string {
		return goodCert(f, s) + "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
	}
	keyBlock := func(*fixture, Snapshot) string {
		return "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
	}
	notPEM := func(*fixture, Snapshot) string { return "MIIB...not pem" }
	badDER := func(*fixture, Snapshot) string {
		return "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
	}
	wrongKey := func(f *fixture, _ Snapshot) string { return certFor(f.t, otherKey(f.t)) }
	notUploaded := func(t *testing.T, s Snapshot) {
		if s.UploadCalls != 0 || s.UploadedPEM != "" || s.State == StateUploaded {
			t.Errorf("uploadCalls=%d state=%s", s.UploadCalls, s.State)
		}
	}
	runRules(t, []ruleCase{
		{name: "after signing", prep: signed, call: uploadPEM(goodCert), check: func(t *testing.T, s Snapshot) {
			if s.State != StateUploaded || s.UploadCalls != 1 || s.RepeatedUploads != 0 || !strings.Contains(s.UploadedPEM, "BEGIN CERTIFICATE") {
				t.Errorf("state=%s uploadCalls=%d repeated=%d", s.State, s.UploadCalls, s.RepeatedUploads)
			}
		}},
		{name: "not claimed", call: uploadPEM(goodCert), wantCode: 400, wantStatus: "FAILED_PRECONDITION", check: notUploaded},
		{name: "not signed yet", spec: ClientSpec{SignDelay: time.Minute}, prep: signed, call: uploadPEM(goodCert), wantCode: 400, wantStatus: "FAILED_PRECONDITION", wantMsg: "not provided", check: notUploaded},
		{name: "silent client", spec: ClientSpec{Behaviour: Silent}, prep: signed, call: uploadPEM(goodCert), wantCode: 400, wantStatus: "FAILED_PRECONDITION", check: notUploaded},
		{name: "empty", prep: signed, call: uploadPEM(func(*fixture, Snapshot) string { return "" }), wantCode: 400, wantStatus: "INVALID_ARGUMENT", check: notUploaded},
		{name: "two certificates", prep: signed, call: uploadPEM(twoCerts), wantCode: 400, wantStatus: "INVALID_ARGUMENT", wantMsg: "exactly one", check: notUploaded, violation: ViolationUploadInvalid},
		{name: "certificate and key", prep: signed, call: uploadPEM(withKey), wantCode: 400, wantStatus: "INVALID_ARGUMENT", check: notUploaded, violation: ViolationUploadInvalid},
		{name: "not a certificate block", prep: signed, call: uploadPEM(keyBlock), wantCode: 400, wantStatus: "INVALID_ARGUMENT", wantMsg: "CERTIFICATE", check: notUploaded, violation: ViolationUploadInvalid},
		{name: "not PEM", prep: signed, call: uploadPEM(notPEM), wantCode: 400, wantStatus: "INVALID_ARGUMENT", check: notUploaded, violation: ViolationUploadInvalid},
		{name: "not X.509", prep: signed, call: uploadPEM(badDER), wantCode: 400, wantStatus: "INVALID_ARGUMENT", check: notUploaded, violation: ViolationUploadInvalid},
		{name: "another key", prep: signed, call: uploadPEM(wrongKey), wantCode: 400, wantStatus: "INVALID_ARGUMENT", wantMsg: "public key", check: notUploaded, violation: ViolationUploadKeyMismatch},
		{name: "same certificate again", prep: happy, call: uploadPEM(uploaded), check: func(t *testing.T, s Snapshot) {
			if s.State != StateUploaded || s.UploadCalls != 2 || s.RepeatedUploads != 1 {
				t.Errorf("state=%s uploadCalls=%d repeated=%d", s.State, s.UploadCalls, s.RepeatedUploads)
			}
		}},
		{name: "different certificate after success", prep: happy, call: uploadPEM(goodCert), wantCode: 400, wantStatus: "FAILED_PRECONDITION", wantMsg: "already been uploaded", violation: ViolationUploadReplaced,
			check: func(t *testing.T, s Snapshot) {
				if s.UploadCalls != 1 {
					t.Errorf("uploadCalls=%d", s.UploadCalls)
				}
			}},
		{name: "failed process", prep: append(append([]step{}, signed...), failWith("no")), call: uploadPEM(goodCert), wantCode: 400, wantStatus: "FAILED_PRECONDITION", check: notUploaded},
		{name: "rejected by the client", spec: ClientSpec{Behaviour: Reject}, prep: signed, call: uploadPEM(goodCert), wantCode: 400, wantStatus: "FAILED_PRECONDITION", check: notUploaded},
	})
}

func TestSetFailureRules(t *testing.T) {
	t.Parallel()
	failedBy := func(msg, by string, calls int) func(t *testing.T, s Snapshot) {
		return func(t *testing.T, s Snapshot) {
			if s.FailureMessage != msg || s.FailedBy != by || s.SetFailureCalls != calls {
				t.Errorf("failureMessage=%q failedBy=%q setFailureCalls=%d, want %q %q %d", s.FailureMessage, s.FailedBy, s.SetFailureCalls, msg, by, calls)
			}
		}
	}
	runRules(t, []ruleCase{
		{name: "after claim", prep: []step{claimAs("a")}, call: failWith("CA down"), check: failedBy("CA down", "adapter", 1)},
		{name: "while signing", spec: ClientSpec{Behaviour: Silent}, prep: []step{claimAs("a"), sign(sampleData, "")}, call: failWith("timeout"), check: failedBy("timeout", "adapter", 1)},
		{name: "empty message", prep: []step{claimAs("a")}, call: failWith(""), wantCode: 400, wantStatus: "INVALID_ARGUMENT", wantMsg: "errorMessage", check: failedBy("", "", 0)},
		{name: "not claimed", call: failWith("x"), wantCode: 400, wantStatus: "FAILED_PRECONDITION", check: failedBy("", "", 0)},
		{name: "same message again", prep: []step{claimAs("a"), failWith("x")}, call: failWith("x"), check: failedBy("x", "adapter", 2)},
		{name: "another message", prep: []step{claimAs("a"), failWith("x")}, call: failWith("y"), wantCode: 400, wantStatus: "FAILED_PRECONDITION", check: failedBy("x", "adapter", 1)},
		{name: "after upload", prep: happy, call: failWith("x"), wantCode: 400, wantStatus: "FAILED_PRECONDITION", wantMsg: "finished", check: failedBy("", "", 0)},
		{name: "after the client failed it", spec: ClientSpec{Behaviour: Reject}, prep: []step{claimAs("a"), sign(sampleData, "")}, call: failWith("x"), wantCode: 400, wantStatus: "FAILED_PRECONDITION",
			check: failedBy(DefaultRejectMessage, "client", 0)},
	})
}

func TestSetFailureEndsPendingOperation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	name := f.add(ClientSpec{Key: ECP256, Behaviour: Silent})
	op := f.claimAndSign(name, sampleData)
	f.must(f.setFailure(name, "The CA is unreachable; it will retry in a day."))
	o, err := f.op(op.Name)
	f.must(err)
	if !o.Done || o.Error == nil || o.Error.Code != 3 || !strings.Contains(o.Error.Message, "The CA is unreachable") {
		t.Errorf("operation after setFailure: %+v %+v", o, o.Error)
	}
	p, err := f.get(name)
	f.must(err)
	if p.FailureMessage != "The CA is unreachable; it will retry in a day." {
		t.Errorf("failureMessage = %q", p.FailureMessage)
	}
}

func TestRepeatedSignDataFailsTheProcess(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		spec ClientSpec
		// firstSigned: the first operation had been answered before the
		// second request, so it keeps its response.
		firstSigned bool
	}{
		{"first pending", ClientSpec{Key: ECP256, Behaviour: Silent}, false},
		{"first pending with delay", ClientSpec{Key: ECP256, SignDelay: time.Hour}, false},
		{"first signed", ClientSpec{Key: ECP256}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, Options{})
			name := f.add(tc.spec)
			op1 := f.claimAndSign(name, sampleData)
			f.clock.Advance(time.Second)
			op2, err := f.signData(name, []byte("other"), AlgorithmECDSA)
			if err != nil {
				t.Fatalf("second signData: %v (the API accepts it; the client fails it)", err)
			}
			if op2.Name == op1.Name || op2.Done {
				t.Errorf("second operation %+v", op2)
			}
			f.clock.Advance(2 * time.Hour)
			for _, o := range []string{op1.Name, op2.Name} {
				got, err := f.op(o)
				f.must(err)
				if o == op1.Name && tc.firstSigned {
					signResponse(t, got)
					continue
				}
				if !got.Done || got.Error == nil || got.Error.Code != 3 || !strings.Contains(got.Error.Message, RepeatedSignDataMessage) {
					t.Errorf("operation %s: done=%v error=%+v", o, got.Done, got.Error)
				}
			}
			p, err := f.get(name)
			f.must(err)
			if p.FailureMessage != RepeatedSignDataMessage || string(b64(t, p.SignData)) != string(sampleData) {
				t.Errorf("process: failureMessage=%q signData=%q (the first request's bytes stay)", p.FailureMessage, p.SignData)
			}
			s := f.snap(name)
			if s.State != StateFailed || s.FailedBy != "client" || s.SignDataCalls != 2 || len(s.Operations) != 2 {
				t.Errorf("snapshot: state=%s failedBy=%q signDataCalls=%d ops=%d", s.State, s.FailedBy, s.SignDataCalls, len(s.Operations))
			}
			if diff := cmp.Diff(map[ViolationKind]int{ViolationRepeatedSignData: 1}, f.emu.ViolationCounts()); diff != "" {
				t.Errorf("violations (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOperationsGetRules(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	name := f.add(ClientSpec{Key: ECP256})
	other := f.add(ClientSpec{Key: ECP256})
	op := f.claimAndSign(name, sampleData)
	opID := op.Name[strings.LastIndex(op.Name, "/")+1:]
	for _, n := range []string{
		name + "/operations/nope",
		other + "/operations/" + opID, // an operation of another process
		"customers/C0123abc/certificateProvisioningProcesses/missing/operations/" + opID,
	} {
		_, err := f.op(n)
		if code, status, _ := apiStatus(t, err); code != 404 || status != "NOT_FOUND" {
			t.Errorf("operations.get %s: %d %s, want 404 NOT_FOUND", n, code, status)
		}
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	name := f.add(ClientSpec{Customer: "Cknown", Key: ECP256})
	id := name[strings.LastIndex(name, "/")+1:]
	for _, n := range []string{
		"customers/Cknown/certificateProvisioningProcesses/unknown",
		"customers/Cother/certificateProvisioningProcesses/" + id,
		"customers/my_customer/certificateProvisioningProcesses/" + id, // no MyCustomer configured
	} {
		calls := map[string]func() error{
			"get":               func() error { _, err := f.get(n); return err },
			"claim":             func() error { return f.claim(n, "a") },
			"signData":          func() error { _, err := f.signData(n, sampleData, AlgorithmECDSA); return err },
			"uploadCertificate": func() error { return f.upload(n, "x") },
			"setFailure":        func() error { return f.setFailure(n, "x") },
		}
		for m, call := range calls {
			if code, status, _ := apiStatus(t, call()); code != 404 || status != "NOT_FOUND" {
				t.Errorf("%s %s: %d %s, want 404 NOT_FOUND", m, n, code, status)
			}
		}
	}
}

func TestMyCustomer(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{MyCustomer: "C0123abc"})
	name := f.add(ClientSpec{Key: ECP256})
	alias := strings.Replace(name, "C0123abc", "my_customer", 1)
	f.must(f.claim(alias, "a"))
	p, err := f.get(alias)
	f.must(err)
	if p.Name != name {
		t.Errorf("name = %q, want the real customer's %q", p.Name, name)
	}
}

func TestConcurrentClaims(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	name := f.add(ClientSpec{Key: ECP256})
	const n = 16
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = f.claim(name, fmt.Sprintf("adapter-%d", i)) })
	}
	wg.Wait()
	winners := 0
	for i, err := range errs {
		if err == nil {
			winners++
			if got := f.snap(name).ClaimedBy; got != fmt.Sprintf("adapter-%d", i) {
				t.Errorf("winner adapter-%d, claimedBy %q", i, got)
			}
			continue
		}
		if code, status, _ := apiStatus(t, err); code != 400 || status != "FAILED_PRECONDITION" {
			t.Errorf("loser %d: %d %s", i, code, status)
		}
	}
	if winners != 1 {
		t.Errorf("%d claims won, want 1", winners)
	}
}

// A repeat claim by the holder is refused for every process
// (RefuseRepeatClaims) or for the processes RefuseRepeatClaim names, and
// counted; a first claim and other processes are not affected.
func TestRepeatClaimRefusal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts func(refused *string) Options
		// wantOther: the second claim on the process not named by the
		// per-process option is refused too.
		wantOther bool
	}{
		{"accepted by default", func(*string) Options { return Options{} }, false},
		{"refused for every process", func(*string) Options { return Options{RefuseRepeatClaims: true} }, true},
		{"refused for one process", func(refused *string) Options {
			return Options{RefuseRepeatClaim: func(name string) bool { return name == *refused }}
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var refusedName string
			f := newFixture(t, tc.opts(&refusedName))
			one, other := f.add(ClientSpec{}), f.add(ClientSpec{})
			refusedName = one
			for _, name := range []string{one, other} {
				if err := f.claim(name, "a"); err != nil {
					t.Fatalf("first claim of %s: %v", name, err)
				}
			}
			wantRefused := map[string]bool{one: tc.name != "accepted by default", other: tc.wantOther}
			for _, name := range []string{one, other} {
				err := f.claim(name, "a")
				if wantRefused[name] {
					if code, status, _ := apiStatus(t, err); code != 400 || status != "FAILED_PRECONDITION" {
						t.Errorf("repeat claim of %s: %d %s, want 400 FAILED_PRECONDITION", name, code, status)
					}
				} else if err != nil {
					t.Errorf("repeat claim of %s: %v, want accepted", name, err)
				}
				s := f.snap(name)
				want := 0
				if wantRefused[name] {
					want = 1
				}
				if s.RepeatClaimsRefused != want || s.ClaimedBy != "a" {
					t.Errorf("%s: repeat claims refused %d, claimed by %q; want %d, %q", name, s.RepeatClaimsRefused, s.ClaimedBy, want, "a")
				}
			}
		})
	}
}
