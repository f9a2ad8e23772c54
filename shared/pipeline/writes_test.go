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
