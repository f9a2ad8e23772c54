package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/adapter"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
)

const sweepAfter = 10 * time.Minute

// drop discards every pending task, as Cloud Tasks does with a task whose
// every attempt failed. It returns how many it dropped.
func (q *queue) drop() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := len(q.pending)
	q.pending = nil
	return n
}

// crashClaim delivers the notification once, dying at point.
func (h *harness) crashClaim(point string, note []byte) {
	h.t.Helper()
	h.crashOnce(point)
	if err := h.p.Claim(context.Background(), pipeline.Delivery{Body: note}); err == nil {
		h.t.Fatalf("claim did not crash at %s", point)
	}
}

// sweep moves the clock past SweepAfter and posts the scheduler's request,
// as the Cloud Scheduler job does.
func (h *harness) sweep() {
	h.t.Helper()
	h.clk.advance(h.p.SweepAfter + time.Second)
	if err := h.postSweep(); err != nil {
		h.t.Fatalf("sweep: %v", err)
	}
}

// postSweep posts the scheduler's request to PollSignature's sweep route.
func (h *harness) postSweep() error {
	get := func(context.Context) (*pipeline.Pipeline, *slog.Logger, error) { return h.p, h.p.Log, nil }
	w := httptest.NewRecorder()
	adapter.Poll(get).ServeHTTP(w, httptest.NewRequest(http.MethodPost, adapter.SweepPath, nil))
	if w.Code != http.StatusOK {
		return fmt.Errorf("POST %s: %d %s", adapter.SweepPath, w.Code, w.Body)
	}
	return nil
}

// TestSweepResumesStrandedProcesses strands a process at each point where a
// dropped task leaves nothing to resume it (invariant 3: every process ends),
// then checks that one sweep finishes it, without a second signData or
// certificate (invariants 1 and 2).
func TestSweepResumesStrandedProcesses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		strand func(h *harness, note []byte)
		state  progress.State // where the process was stranded
	}{
		{"poll task dropped while polling", func(h *harness, note []byte) {
			if err := h.claim(note, 1); err != nil {
				h.t.Fatal(err)
			}
			h.q.drop()
		}, progress.StatePolling},
		{"crash after signData, then the first poll task dropped", func(h *harness, note []byte) {
			h.crashClaim("sign:after-signData", note)
			h.q.drop() // and Pub/Sub gave up on the notification
		}, progress.StateReceived}, // created with the signing intent: the process tells that signData started
		{"claim died after creating the record, notification dead-lettered", func(h *harness, note []byte) {
			h.crashClaim("claim:after-create", note)
		}, progress.StateReceived},
		{"claim died after the API claim, before recording it, notification dead-lettered", func(h *harness, note []byte) {
			h.crashClaim("claim:after-claim", note)
		}, progress.StateReceived},
		{"claim died before signData, notification dead-lettered", func(h *harness, note []byte) {
			h.crashClaim("sign:before-signData", note)
			h.q.drop()
		}, progress.StateReceived}, // created with the signing intent: the process tells that signData never started
		{"issue task dropped (it carried the signature: the record is still POLLING)", func(h *harness, note []byte) {
			if err := h.claim(note, 1); err != nil {
				h.t.Fatal(err)
			}
			h.nextIssue() // and dropped
		}, progress.StatePolling},
		{"crash after the CA answered, then the issue task dropped", func(h *harness, note []byte) {
			if err := h.claim(note, 1); err != nil {
				h.t.Fatal(err)
			}
			t := h.nextIssue()
			h.crashOnce("issue:after-ca")
			if err := h.deliver(t, 1); err == nil {
				h.t.Fatal("issue did not crash")
			}
		}, progress.StateIssuing},
		{"crash before the upload, then the issue task dropped", func(h *harness, note []byte) {
			if err := h.claim(note, 1); err != nil {
				h.t.Fatal(err)
			}
			t := h.nextIssue()
			h.crashOnce("upload:before-upload")
			if err := h.deliver(t, 1); err == nil {
				h.t.Fatal("issue did not crash")
			}
		}, progress.StateIssued},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, cpemulator.Options{})
			h.p.SweepAfter = sweepAfter
			name, note := h.add(cpemulator.ClientSpec{SignDelay: 5 * time.Second})
			tc.strand(h, note)
			h.p.Crash = nil
			h.drain() // nothing left to deliver: the process is stranded
			if got := h.record(name).State; got != tc.state {
				t.Fatalf("stranded in %s, want %s", got, tc.state)
			}
			h.sweep()
			h.drain()
			h.wantUploaded(name)
			if got := h.ca.Issued(); got != 1 {
				t.Errorf("the CA issued %d certificates, want 1", got)
			}
			if rec := h.record(name); rec.Sweeps != 1 {
				t.Errorf("sweeps %d, want 1", rec.Sweeps)
			}
			h.noViolations()
		})
	}
}

// TestSweepLeavesLiveAndFinishedProcessesAlone checks that the sweep touches
// neither a process that is moving (its polls write a checkpoint often
// enough) nor a finished one, with SWEEP_AFTER as set here and at the least
// the configuration allows (twice the longest gap between polls), a sweep
// running after every poll.
func TestSweepLeavesLiveAndFinishedProcessesAlone(t *testing.T) {
	t.Parallel()
	for _, after := range []time.Duration{sweepAfter, 0} {
		t.Run(fmt.Sprint(after), func(t *testing.T) {
			t.Parallel()
			sweepLeavesLiveAlone(t, after)
		})
	}
}

func sweepLeavesLiveAlone(t *testing.T, after time.Duration) {
	h := newHarness(t, cpemulator.Options{})
	if after == 0 {
		after = 2 * h.p.Schedule.QuietestGap()
	}
	h.p.SweepAfter = after
	done, note := h.add(cpemulator.ClientSpec{})
	if err := h.claim(note, 1); err != nil {
		t.Fatal(err)
	}
	h.drain()
	h.wantUploaded(done)

	live, note := h.add(cpemulator.ClientSpec{Behaviour: cpemulator.Silent})
	if err := h.claim(note, 1); err != nil {
		t.Fatal(err)
	}
	// Poll for several SweepAfter, sweeping just before each poll (when the
	// record is oldest): it is never idle that long.
	for h.clk.Now().Before(h.record(live).CreatedAt.Add(4 * after)) {
		task, ok := h.q.next()
		if !ok {
			t.Fatal("the silent client's polls stopped")
		}
		h.clk.advanceTo(task.ScheduleTime)
		pending := len(h.q.pending)
		res, err := h.p.Sweep(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(pipeline.SweepResult{}, res); diff != "" {
			t.Fatalf("sweep at %s (-want +got):\n%s", h.clk.Now().Sub(h.record(live).CreatedAt), diff)
		}
		if len(h.q.pending) != pending {
			t.Errorf("the sweep enqueued %d tasks for live and finished processes", len(h.q.pending)-pending)
		}
		if err := h.deliver(task, 1); err != nil {
			t.Fatal(err)
		}
	}
	if h.record(live).Sweeps != 0 || h.record(done).Sweeps != 0 {
		t.Error("the sweep marked a live or finished record")
	}
}

// TestSweepEndsWhatNeverRecovers drops every re-drive: after MaxRedrives the
// sweep fails the process (the device is told), and if even that is dropped
// the next sweep ends the record, logged as an ERROR.
func TestSweepEndsWhatNeverRecovers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		dropFailure  bool
		want         progress.State
		wantReported bool
		wantResult   pipeline.SweepResult // of the last sweep
	}{
		{"failed and reported", false, progress.StateFailed, true, pipeline.SweepResult{Found: 1, Failed: 1}},
		// The failure's tasks are dropped too: the record stays FAILING, is
		// re-driven with an ERROR, and ends once setFailure goes through.
		{"re-driven while setFailure does not go through", true, progress.StateFailed, true, pipeline.SweepResult{Found: 1, Redriven: 1, Unreported: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, cpemulator.Options{})
			h.p.SweepAfter = sweepAfter
			var logs bytes.Buffer
			h.p.Log = slog.New(slog.NewJSONHandler(&logs, nil))
			name, note := h.add(cpemulator.ClientSpec{SignDelay: 5 * time.Second})
			if err := h.claim(note, 1); err != nil {
				t.Fatal(err)
			}
			h.q.drop()
			for i := 1; i <= pipeline.MaxRedrives; i++ {
				h.sweep()
				if n := h.q.drop(); n != 1 {
					t.Fatalf("re-drive %d: %d tasks enqueued, want 1", i, n)
				}
			}
			h.clk.advance(h.p.SweepAfter + time.Second)
			res, err := h.p.Sweep(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if tc.dropFailure {
				h.q.drop()
				if rec := h.record(name); rec.State != progress.StateFailing {
					t.Fatalf("state %s with its report dropped, want FAILING", rec.State)
				}
				h.clk.advance(h.p.SweepAfter + time.Second)
				if res, err = h.p.Sweep(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			if diff := cmp.Diff(tc.wantResult, res); diff != "" {
				t.Errorf("last sweep (-want +got):\n%s", diff)
			}
			h.drain()
			rec := h.record(name)
			if rec.State != tc.want || rec.FailureReported != tc.wantReported {
				t.Fatalf("state %s reported %v, want %s reported %v (last error %q)", rec.State, rec.FailureReported, tc.want, tc.wantReported, rec.LastError)
			}
			if !strings.Contains(rec.LastError, "re-drives by the sweep") {
				t.Errorf("last error %q does not say the sweep gave up", rec.LastError)
			}
			if s := h.snap(name); tc.wantReported && !strings.Contains(s.FailureMessage, "could not finish this enrollment") {
				t.Errorf("device message %q", s.FailureMessage)
			}
			if s := h.snap(name); s.SignDataCalls != 1 || s.UploadCalls != 0 {
				t.Errorf("signData %d, uploads %d; want 1 and 0", s.SignDataCalls, s.UploadCalls)
			}
			redriven, gaveUp := countLogs(t, logs.Bytes())
			if redriven != pipeline.MaxRedrives {
				t.Errorf("%d \"stale process re-driven\" logs, want %d", redriven, pipeline.MaxRedrives)
			}
			if want := map[bool]int{true: 1, false: 0}[tc.dropFailure]; gaveUp != want {
				t.Errorf("%d %q ERROR logs, want %d", gaveUp, pipeline.MsgFailureUnreported, want)
			}
			h.noViolations()
		})
	}
}

func countLogs(t *testing.T, b []byte) (redriven, gaveUp int) {
	t.Helper()
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var e struct {
			Msg   string `json:"msg"`
			Level string `json:"level"`
		}
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		switch {
		case e.Msg == "stale process re-driven" && e.Level == "WARN":
			redriven++
		case e.Msg == pipeline.MsgFailureUnreported && e.Level == "ERROR":
			gaveUp++
		}
	}
	return redriven, gaveUp
}

// TestSweepDisabled: SweepAfter 0 turns the scheduler's request into a no-op.
func TestSweepDisabled(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cpemulator.Options{})
	name, note := h.add(cpemulator.ClientSpec{})
	if err := h.claim(note, 1); err != nil {
		t.Fatal(err)
	}
	h.q.drop()
	h.clk.advance(24 * time.Hour)
	if err := h.postSweep(); err != nil {
		t.Fatal(err)
	}
	if n := len(h.q.pending); n != 0 || h.record(name).Sweeps != 0 {
		t.Errorf("a disabled sweep enqueued %d tasks", n)
	}
}

// TestLateSignDataGetsItsWholeDeadline: a process stranded before signData
// reached the client, and resumed after its poll deadline had passed, gives
// the client the whole deadline from the call that reaches it (the fault
// campaign failed such processes at their first poll).
func TestLateSignDataGetsItsWholeDeadline(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cpemulator.Options{})
	h.p.SweepAfter = sweepAfter
	name, note := h.add(cpemulator.ClientSpec{SignDelay: 30 * time.Second})
	h.crashClaim("sign:before-signData", note)
	h.p.Crash = nil
	h.q.drop()
	h.clk.advance(2 * h.p.Schedule.Deadline) // the sweep ran late, or was off
	h.sweep()
	h.drain()
	h.wantUploaded(name)
	h.noViolations()
}

// TestSweepStopsBeforeItsDeadline: a sweep whose request is about to time out
// leaves the rest to the next sweep instead of being cut off mid-record.
func TestSweepStopsBeforeItsDeadline(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cpemulator.Options{})
	h.p.SweepAfter = sweepAfter
	var names []string
	for range 3 {
		name, note := h.add(cpemulator.ClientSpec{SignDelay: 5 * time.Second})
		if err := h.claim(note, 1); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	h.q.drop()
	// A minute past SweepAfter, not a second: the memory store stamps the
	// real time on a write that leaves UpdatedAt as it was (the claim's
	// transitions all happen at one virtual instant), and the harness clock
	// starts at the real time truncated to the second, so a record's
	// UpdatedAt may be up to a second (plus the test's own run time) later.
	h.clk.advance(h.p.SweepAfter + time.Minute)
	h.p.SweepBudget = time.Second // inside the margin
	res, err := h.p.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(pipeline.SweepResult{Found: 3, Deferred: 3}, res); diff != "" {
		t.Errorf("sweep near its deadline (-want +got):\n%s", diff)
	}
	h.p.SweepBudget = time.Minute
	res, err = h.p.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Redriven != 3 {
		t.Errorf("the next sweep re-drove %d, want 3 (%+v)", res.Redriven, res)
	}
	h.drain()
	for _, name := range names {
		h.wantUploaded(name)
	}
}
