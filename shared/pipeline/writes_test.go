package pipeline_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/store"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
)

// What an enrollment costs the store (issue 15): five writes for a client
// that gets its certificate (the record created with the signing intent; the
// claim, signData's operation; the signature with the CA's lease; the
// certificate; the upload) and at most five reads, however many polls it
// took, and no more for one that fails at its deadline. Each step is one
// transaction (its read and its write); a poll that finds nothing touches no
// record; the claim's first read is the look-up that finds no record.
func TestStoreOperationsPerEnrollment(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		spec   cpemulator.ClientSpec
		failed bool
		want   store.Stats
	}{
		{"signs before the first poll", cpemulator.ClientSpec{SignDelay: time.Second}, false, store.Stats{Reads: 5, Writes: 5, Transactions: 4}},
		{"signs after 15 minutes of polls", cpemulator.ClientSpec{SignDelay: 15 * time.Minute}, false, store.Stats{Reads: 5, Writes: 5, Transactions: 4}},
		{"never signs", cpemulator.ClientSpec{Behaviour: cpemulator.Silent}, true, store.Stats{Reads: 5, Writes: 4, Transactions: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, cpemulator.Options{})
			name, note := h.add(tc.spec)
			if err := h.claim(note, 1); err != nil {
				t.Fatal(err)
			}
			polls := h.drain()
			got := h.store.Stats() // before the checks below read the record
			if tc.failed {
				h.wantFailed(name, "did not answer")
			} else {
				h.wantUploaded(name)
			}
			got.Aborted, got.Conflicts = 0, 0
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("store operations after %d tasks (-want +got):\n%s", polls, diff)
			}
			h.noViolations()
		})
	}
}

// The first poll counts from signData's answer, not from the record's
// creation: the record is created with the intent before the process is
// claimed, and a slow claim (here 5 s) must not make the first poll come
// before the client could have signed (the load benchmark saw it early).
func TestFirstPollCountsFromSignData(t *testing.T) {
	t.Parallel()
	var h *harness
	h = newHarness(t, cpemulator.Options{Fault: func(method, _ string) cpemulator.Fault {
		if method == cpemulator.MethodClaim {
			h.clk.advance(5 * time.Second)
		}
		return cpemulator.NoFault
	}})
	_, note := h.add(cpemulator.ClientSpec{SignDelay: time.Second})
	start := h.clk.Now()
	if err := h.claim(note, 1); err != nil {
		t.Fatal(err)
	}
	task, ok := h.q.next()
	if !ok {
		t.Fatal("no poll task")
	}
	earliest := start.Add(5*time.Second + time.Duration(float64(h.p.Schedule.Initial)*(1-h.p.Schedule.Jitter)))
	if task.ScheduleTime.Before(earliest) {
		t.Errorf("first poll at +%v, before signData's answer (+5s) and the schedule's first wait (%v less its jitter)",
			task.ScheduleTime.Sub(start), h.p.Schedule.Initial)
	}
}
