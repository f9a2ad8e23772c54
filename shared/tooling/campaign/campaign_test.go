package campaign

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
	"github.com/chromeos-certprov/adapter/shared/tooling/simulation"
)

// TestCampaign runs the fault campaign of 2,000 enrollments on the virtual
// clock (about 10 s; the 10,000-enrollment one is `go run
// ./functions/cmd/campaign -enrollments 10000`): every kind of fault is
// injected, and no process breaks an invariant or ends otherwise than its
// scenario and its injected faults call for. It asserts invariants and
// counts that add up, not rates, which vary with the interleaving.
func TestCampaign(t *testing.T) {
	t.Parallel()
	co := Default(2000, 1)
	r, err := Run(context.Background(), co)
	if err != nil {
		t.Fatal(err)
	}
	// A violation is a process that broke an invariant (verify: signData
	// at most once, one certificate, no double upload, every failure
	// reported, ended as expected) or did not end.
	for _, v := range r.Violations {
		t.Errorf("%s", v)
	}
	if r.Outcomes.Unfinished != 0 {
		t.Errorf("%d processes unfinished", r.Outcomes.Unfinished)
	}
	for kind, n := range r.Faults.Kinds() {
		if n == 0 {
			t.Errorf("no %s was injected", kind)
		}
	}
	// Dropped tasks left processes with nothing to resume them: the sweep
	// found and re-drove them (and every process ended, checked above).
	if sw := r.Run.Sweep; sw == nil || sw.Redriven == 0 || sw.Failed != 0 || sw.Unreported != 0 {
		t.Errorf("sweeps %+v: want re-drives, and none failed or given up (every fault is bounded)", sw)
	}
	// Every ending is exercised, and the counts add up.
	for _, want := range []string{"UPLOADED", "CLAIMED_ELSEWHERE", "FAILED (" + reasonDeadline + ")", "FAILED (" + reasonBadSignature + ")", "FAILED (" + reasonCARefused + ")",
		"FAILED (" + reasonGarbageCert + ")", ownClaimRefused.String()} {
		if r.Expected[want] == 0 {
			t.Errorf("no process expected to end %s (%v)", want, r.Expected)
		}
	}
	o := r.Outcomes
	if got := o.Uploaded + o.Failed + o.ClaimedElsewhere + o.Unfinished; got != co.Enrollments {
		t.Errorf("outcomes add up to %d, want %d", got, co.Enrollments)
	}
	if o.Uploaded != r.Expected["UPLOADED"] || o.ClaimedElsewhere != r.Expected["CLAIMED_ELSEWHERE"]+r.Expected[ownClaimRefused.String()] {
		t.Errorf("outcomes %+v, expected %v", o, r.Expected)
	}
	if r.Faults.CARefusedProcesses != r.Expected["FAILED ("+reasonCARefused+")"] {
		t.Errorf("%d refused processes reach the CA, %d expected to fail for it", r.Faults.CARefusedProcesses, r.Expected["FAILED ("+reasonCARefused+")"])
	}
	// Our own refused repeat claims were logged at ERROR, one per process at
	// least; no failure went unreported.
	if r.OwnClaimRefused == 0 || r.OwnClaimRefusedErrors < int64(r.OwnClaimRefused) {
		t.Errorf("%d processes ended CLAIMED_ELSEWHERE after our own repeat claim was refused, %d ERROR logs", r.OwnClaimRefused, r.OwnClaimRefusedErrors)
	}
	if r.FailureUnreportedErrors != 0 {
		t.Errorf("%d failures unreported after every fresh task", r.FailureUnreportedErrors)
	}
	// The campaign ran on its clock: it simulated minutes.
	if r.ClockSeconds < 60 {
		t.Errorf("the campaign simulated %.1fs, want minutes of clock time", r.ClockSeconds)
	}
	t.Logf("%d enrollments in %.1fs (%.0fs on the clock); faults %v", r.Enrollments, r.WallSeconds, r.ClockSeconds, r.Faults.Kinds())
}

// TestCampaignCatchesAStalledInstance breaks the pipeline on purpose: an
// instance stalls past its lease right before signData, another delivery
// takes over and asks the client, then the stalled one wakes and asks again.
// The campaign must report the second signData, with the process's history.
func TestCampaignCatchesAStalledInstance(t *testing.T) {
	t.Parallel()
	co := Options{Enrollments: 1, Seed: 3, TimeScale: 40, RealClock: true}
	var hits atomic.Int32
	takeover := make(chan struct{})
	co.stall = func(point string) {
		if point != "sign:before-signData" {
			return
		}
		switch hits.Add(1) {
		case 1: // stalled until another delivery is about to call signData
			select {
			case <-takeover:
				time.Sleep(20 * time.Millisecond) // its call goes first
			case <-time.After(time.Minute):
			}
		case 2:
			close(takeover)
		}
	}
	r, err := Run(context.Background(), co)
	if err != nil {
		t.Fatal(err)
	}
	if n := hits.Load(); n < 2 {
		t.Fatalf("%d deliveries reached signData, want a stalled one and one that took over", n)
	}
	var found []string
	for _, v := range r.Violations {
		for _, p := range v.Problems {
			if strings.Contains(p, "signData reached the client 2 times") {
				found = append(found, v.Process)
			}
		}
	}
	if len(found) != 1 || r.OK() {
		t.Errorf("processes with two signData calls: %v, want one; violations:\n%v", found, r.Violations)
	}
	for _, v := range r.Violations {
		if len(v.History) == 0 {
			t.Errorf("violation of %s printed without history", v.Process)
		}
		t.Logf("caught:\n%s", v)
	}
}

// TestCampaignCatchesAnUnreportedFailure breaks the pipeline on purpose: every
// delivery that is about to report a failure stalls until the run is over, so
// the device is never told. The campaign must report "every failure
// reported" for the process, with its history.
func TestCampaignCatchesAnUnreportedFailure(t *testing.T) {
	t.Parallel()
	co := Options{Enrollments: 1, Wrong: 1, Seed: 5, TimeScale: 40, Timeout: 5 * time.Second, RealClock: true}
	over := time.Now().Add(co.Timeout + time.Second)
	var hits atomic.Int32
	co.stall = func(point string) {
		if point == "fail:before-setFailure" {
			hits.Add(1)
			time.Sleep(time.Until(over)) // past the run's end: its context is cancelled by then
		}
	}
	r, err := Run(context.Background(), co)
	if err != nil {
		t.Fatal(err)
	}
	if hits.Load() == 0 {
		t.Fatal("no delivery reached setFailure")
	}
	var found []string
	for _, v := range r.Violations {
		for _, p := range v.Problems {
			if strings.HasPrefix(p, "every failure reported") {
				found = append(found, p)
			}
		}
		if len(v.History) == 0 {
			t.Errorf("violation of %s printed without history", v.Process)
		}
		t.Logf("caught:\n%s", v)
	}
	if len(found) != 1 || r.OK() {
		t.Errorf("'every failure reported' problems %q, want one; violations:\n%v", found, r.Violations)
	}
}

// Fabricated processes for verify.
var (
	uploadedPEM = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"
	certFP      = simulation.PEMFingerprint(uploadedPEM)
)

func record(state progress.State, mutate func(r *progress.Record)) *progress.Record {
	r := &progress.Record{Key: "C:p", State: state, FailureReported: state == progress.StateFailed}
	if state == progress.StateUploaded {
		r.CertificatePEM = uploadedPEM
	}
	if mutate != nil {
		mutate(r)
	}
	return r
}

func snapshot(mutate func(s *cpemulator.Snapshot)) cpemulator.Snapshot {
	s := cpemulator.Snapshot{SignDataCalls: 1, SignDataRequests: 1}
	if mutate != nil {
		mutate(&s)
	}
	return s
}

func uploadedSnap(s *cpemulator.Snapshot) {
	s.State, s.UploadCalls, s.UploadedPEM = cpemulator.StateUploaded, 1, uploadedPEM
}

func failedByAdapter(msg string) func(s *cpemulator.Snapshot) {
	return func(s *cpemulator.Snapshot) {
		s.State, s.FailedBy, s.FailureMessage, s.SetFailureCalls = cpemulator.StateFailed, "adapter", msg, 1
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	oneCert := simulation.Issuance{Calls: 1, Certs: []string{certFP}}
	uploaded := expectation{State: progress.StateUploaded}
	refused := expectation{State: progress.StateFailed, Reason: reasonCARefused}
	tests := []struct {
		name string
		rec  *progress.Record
		snap cpemulator.Snapshot
		is   simulation.Issuance
		want expectation
		emu  []cpemulator.Violation
		// problems: a substring of each problem, in order.
		problems []string
	}{
		{"uploaded as expected", record(progress.StateUploaded, nil), snapshot(uploadedSnap), oneCert, uploaded, nil, nil},
		{"signData twice", record(progress.StateUploaded, nil), snapshot(func(s *cpemulator.Snapshot) {
			uploadedSnap(s)
			s.SignDataCalls, s.SignDataRequests = 2, 2
		}), oneCert, uploaded, nil, []string{"signData reached the client 2 times"}},
		{"signData requested twice, refused the second time", record(progress.StateUploaded, nil), snapshot(func(s *cpemulator.Snapshot) {
			uploadedSnap(s)
			s.SignDataRequests = 2
		}), oneCert, uploaded, nil, []string{"signData requested 2 times"}},
		{"two certificates", record(progress.StateUploaded, nil), snapshot(uploadedSnap), simulation.Issuance{Calls: 2, Certs: []string{certFP, "other"}}, uploaded, nil,
			[]string{"the CA issued 2 different certificates"}},
		{"double upload", record(progress.StateUploaded, nil), snapshot(func(s *cpemulator.Snapshot) {
			uploadedSnap(s)
			s.UploadCalls, s.RepeatedUploads = 2, 1
		}), oneCert, uploaded, nil, []string{"2 uploads (1 repeats"}},
		{"uploaded a certificate the CA did not issue", record(progress.StateUploaded, nil), snapshot(uploadedSnap), simulation.Issuance{Calls: 1, Certs: []string{"other"}}, uploaded, nil,
			[]string{"not the one the CA issued"}},
		{"recorded uploaded, the API holds none", record(progress.StateUploaded, nil), snapshot(nil), oneCert, uploaded, nil,
			[]string{"the API holds a different certificate"}},
		{"failed without setFailure", record(progress.StateFailed, func(r *progress.Record) {
			r.LastError, r.FailureReported = reasonCARefused+": no", false
		}), snapshot(nil), oneCert, refused, nil,
			[]string{"setFailure missing", "every failure reported: FAILED with failureReported=false"}},
		{"failed, reported, but the record says unreported", record(progress.StateFailed, func(r *progress.Record) {
			r.LastError, r.FailureMessage, r.FailureReported = reasonCARefused+": no", "m", false
		}), snapshot(failedByAdapter("m")), simulation.Issuance{Calls: 1, Errors: 1}, refused, nil,
			[]string{"every failure reported: FAILED with failureReported=false"}},
		{"failed by the API itself, unreported by us", record(progress.StateFailed, func(r *progress.Record) {
			r.LastError, r.FailureReported = "the API failed the process: x", false
		}), snapshot(func(s *cpemulator.Snapshot) {
			s.State, s.FailedBy, s.FailureMessage = cpemulator.StateFailed, "client", "x"
		}), simulation.Issuance{}, expectation{State: progress.StateFailed, Reason: "the API failed the process"}, nil, nil},
		{"still failing at the end", record(progress.StateFailing, func(r *progress.Record) {
			r.LastError, r.FailureMessage = reasonCARefused+": no", "m"
		}), snapshot(nil), simulation.Issuance{Calls: 1, Errors: 1}, refused, nil,
			[]string{"every failure reported: still FAILING at the end"}},
		{"garbage certificate refused", record(progress.StateFailed, func(r *progress.Record) {
			r.LastError, r.FailureMessage = reasonGarbageCert+": its public key is not the device's key", "m"
		}), snapshot(failedByAdapter("m")), simulation.Issuance{Calls: 1, Certs: []string{"garbage"}}, expectation{State: progress.StateFailed, Reason: reasonGarbageCert}, nil, nil},
		{"own repeat claim refused", record(progress.StateClaimedElsewhere, func(r *progress.Record) {
			r.LastError = "claim refused"
		}), snapshot(func(s *cpemulator.Snapshot) {
			s.SignDataCalls, s.SignDataRequests, s.ClaimedBy, s.RepeatClaimsRefused = 0, 0, "certprov-local", 1
		}), simulation.Issuance{}, ownClaimRefused, nil, nil},
		{"failed, the API failed by someone else's setFailure", record(progress.StateFailed, func(r *progress.Record) {
			r.LastError = reasonCARefused + ": no"
		}), snapshot(func(s *cpemulator.Snapshot) {
			s.State, s.FailedBy, s.FailureMessage = cpemulator.StateFailed, "adapter", "x"
		}), oneCert, refused, nil, []string{"failed without setFailure, and the API had not failed it"}},
		{"failed by the API itself needs no setFailure", record(progress.StateFailed, func(r *progress.Record) {
			r.LastError = "the API failed the process: x"
		}), snapshot(func(s *cpemulator.Snapshot) {
			s.State, s.FailedBy, s.FailureMessage = cpemulator.StateFailed, "client", "x"
		}), simulation.Issuance{}, expectation{State: progress.StateFailed, Reason: "the API failed the process"}, nil, nil},
		{"refused as expected", record(progress.StateFailed, func(r *progress.Record) {
			r.LastError, r.FailureMessage = reasonCARefused+": no", "m"
		}), snapshot(failedByAdapter("m")), simulation.Issuance{Calls: 1, Errors: 1}, refused, nil, nil},
		{"failed for another reason than its refusal", record(progress.StateFailed, func(r *progress.Record) {
			r.LastError, r.FailureMessage = "CA unavailable on the last attempt", "m"
		}), snapshot(failedByAdapter("m")), simulation.Issuance{Calls: 10, Errors: 10}, refused, nil,
			[]string{"ended FAILED (CA unavailable on the last attempt), want FAILED (CA refused)"}},
		{"failed although not refused", record(progress.StateFailed, func(r *progress.Record) {
			r.LastError, r.FailureMessage = reasonCARefused+": no", "m"
		}), snapshot(failedByAdapter("m")), simulation.Issuance{Calls: 1, Errors: 1}, uploaded, nil,
			[]string{"want UPLOADED"}},
		{"device message differs from the record", record(progress.StateFailed, func(r *progress.Record) {
			r.LastError, r.FailureMessage = reasonCARefused+": no", "recorded"
		}), snapshot(failedByAdapter("shown")), simulation.Issuance{Calls: 1, Errors: 1}, refused, nil,
			[]string{`the device shows "shown", the record says "recorded"`}},
		{"unfinished", record(progress.StatePolling, nil), snapshot(nil), simulation.Issuance{}, uploaded, nil,
			[]string{"unfinished: the process is still POLLING"}},
		{"no record", nil, snapshot(func(s *cpemulator.Snapshot) { s.SignDataCalls, s.SignDataRequests = 0, 0 }), simulation.Issuance{}, uploaded, nil,
			[]string{"unfinished: the process is still NO RECORD"}},
		{"claimed elsewhere, yet acted on", record(progress.StateClaimedElsewhere, nil), snapshot(nil), simulation.Issuance{}, expectation{State: progress.StateClaimedElsewhere}, nil,
			[]string{"claimed elsewhere, yet the adapter acted on it"}},
		{"uploaded but recorded failed", record(progress.StateFailed, func(r *progress.Record) {
			r.LastError = reasonCARefused
		}), snapshot(func(s *cpemulator.Snapshot) {
			uploadedSnap(s)
			s.FailureMessage, s.FailedBy, s.SetFailureCalls = "x", "adapter", 1
		}), oneCert, refused, nil, []string{`the device shows "x"`, "uploaded to the API but recorded FAILED"}},
		{"misuse recorded by the API", record(progress.StateUploaded, nil), snapshot(uploadedSnap), oneCert, uploaded,
			[]cpemulator.Violation{{Kind: cpemulator.ViolationUploadReplaced, Detail: "d"}}, []string{"the API recorded uploadCertificate.replaced: d"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := verify(tc.rec, tc.snap, tc.is, tc.want, tc.emu)
			ok := len(got) == len(tc.problems)
			for i := 0; ok && i < len(got); i++ {
				ok = strings.Contains(got[i], tc.problems[i])
			}
			if !ok {
				t.Errorf("problems:\n  %s\nwant (substrings):\n  %s", strings.Join(got, "\n  "), strings.Join(tc.problems, "\n  "))
			}
		})
	}
}

func TestExpect(t *testing.T) {
	t.Parallel()
	got := map[string]string{}
	for _, s := range []simulation.Scenario{simulation.Online, simulation.Slow, simulation.Silent, simulation.Wrong, simulation.Elsewhere} {
		for _, refused := range []bool{false, true} {
			got[fmt.Sprintf("%s refused=%t", s, refused)] = expect(s, refused, false).String()
		}
		got[fmt.Sprintf("%s garbage", s)] = expect(s, false, true).String()
	}
	want := map[string]string{
		"online refused=false":            "UPLOADED",
		"online refused=true":             "FAILED (CA refused)",
		"slow refused=false":              "UPLOADED",
		"slow refused=true":               "FAILED (CA refused)",
		"silent refused=false":            "FAILED (no signature after)",
		"silent refused=true":             "FAILED (no signature after)",
		"wrong refused=false":             "FAILED (the client's signature does not verify)",
		"wrong refused=true":              "FAILED (the client's signature does not verify)",
		"claimed_elsewhere refused=false": "CLAIMED_ELSEWHERE",
		"claimed_elsewhere refused=true":  "CLAIMED_ELSEWHERE",
		"online garbage":                  "FAILED (the issued certificate failed its check)",
		"slow garbage":                    "FAILED (the issued certificate failed its check)",
		"silent garbage":                  "FAILED (no signature after)",
		"wrong garbage":                   "FAILED (the client's signature does not verify)",
		"claimed_elsewhere garbage":       "CLAIMED_ELSEWHERE",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("expectations (-want +got):\n%s", diff)
	}
}

// The plans depend on the seed and the creation order only.
func TestInjectorIsSeeded(t *testing.T) {
	t.Parallel()
	type trace struct {
		Refused []bool
		Outages []window
		Faults  []cpemulator.Fault
	}
	play := func(seed uint64) trace {
		co := Default(200, seed)
		co.RefusalRate, co.APIErrorRate = 0.3, 0.3
		inj := newInjector(co)
		var tr trace
		for i := range 200 {
			inj.published(cpemulator.EncodeNotificationBinary("C0", fmt.Sprintf("p%03d", i)))
		}
		for i, p := range inj.plans {
			tr.Refused = append(tr.Refused, p.refused)
			tr.Faults = append(tr.Faults, inj.apiFault(cpemulator.MethodGet, fmt.Sprintf("customers/C0/certificateProvisioningProcesses/p%03d", i)))
		}
		tr.Outages = inj.outages[:10]
		return tr
	}
	a := play(1)
	if diff := cmp.Diff(a, play(1), cmp.AllowUnexported(window{})); diff != "" {
		t.Errorf("same seed, different plans (-first +second):\n%s", diff)
	}
	if cmp.Equal(a, play(2), cmp.AllowUnexported(window{})) {
		t.Error("different seeds, same plans")
	}
	refused, faults := 0, 0
	for i := range a.Refused {
		if a.Refused[i] {
			refused++
		}
		if a.Faults[i] != cpemulator.FaultPass {
			faults++
		}
	}
	if refused == 0 || refused == 200 || faults == 0 || faults == 200 {
		t.Errorf("%d of 200 refused, %d of 200 requests faulted: the rates are not applied", refused, faults)
	}
}

func TestFaultBound(t *testing.T) {
	t.Parallel()
	co := Default(1, 1)
	co.MaxFaultsPerProcess = 2
	inj := newInjector(co)
	inj.published(cpemulator.EncodeNotificationBinary("C0", "p"))
	p := inj.plans[0]
	var got []bool
	for range 4 {
		got = append(got, inj.take(p, "x"))
	}
	if diff := cmp.Diff([]bool{true, true, false, false}, got); diff != "" {
		t.Errorf("takes (-want +got):\n%s", diff)
	}
	if n := inj.suppressed.Load(); n != 2 {
		t.Errorf("suppressed %d, want 2", n)
	}
}

// TestScheduleOnTheCampaignsClock: the campaign runs production's poll
// schedule on its time scale, every duration of it divided alike (the fast
// phase and the check-ins too, not only the intervals and the deadline).
func TestScheduleOnTheCampaignsClock(t *testing.T) {
	t.Parallel()
	co := Default(10, 1)
	o := co.options(newInjector(co))
	want, got := reflect.ValueOf(campaignTiming.poll), reflect.ValueOf(o.Schedule)
	durations := 0
	for i := range want.NumField() {
		name := want.Type().Field(i).Name
		switch w := want.Field(i).Interface().(type) {
		case time.Duration:
			durations++
			if g := got.Field(i).Interface().(time.Duration); g != time.Duration(float64(w)/co.TimeScale) {
				t.Errorf("Schedule.%s = %s, want %s / %g", name, g, w, co.TimeScale)
			}
		case []time.Duration:
			g := got.Field(i).Interface().([]time.Duration)
			if len(g) != len(w) || len(w) == 0 {
				t.Fatalf("Schedule.%s = %v, want %v scaled", name, g, w)
			}
			for k := range w {
				if g[k] != time.Duration(float64(w[k])/co.TimeScale) {
					t.Errorf("Schedule.%s[%d] = %s, want %s / %g", name, k, g[k], w[k], co.TimeScale)
				}
			}
		}
	}
	if durations < 7 {
		t.Errorf("checked %d duration fields of the schedule; the schedule has more", durations)
	}
}
