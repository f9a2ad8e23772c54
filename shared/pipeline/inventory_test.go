package pipeline_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/inventory"
	"github.com/chromeos-certprov/adapter/shared/logging"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
	"github.com/chromeos-certprov/adapter/shared/tooling/store/memory"
)

// Every uploaded certificate is recorded once in the inventory, with the
// process's subject from its record, even when every task is delivered twice.
func TestUploadedCertificatesAreInventoried(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cpemulator.Options{})
	inv := memory.NewInventory()
	h.p.Inventory = inv
	h.dup = true
	dev, devNote := h.add(cpemulator.ClientSpec{Key: cpemulator.ECP256})
	usr, usrNote := h.add(cpemulator.ClientSpec{Key: cpemulator.ECP256, Kind: cpemulator.User})
	for _, n := range [][]byte{devNote, usrNote} {
		if err := h.claim(n, 3); err != nil {
			t.Fatal(err)
		}
	}
	h.drain()
	h.wantUploaded(dev)
	h.wantUploaded(usr)
	h.noViolations()
	entries, _ := inv.List(context.Background(), inventory.Filter{}, 0)
	type row struct{ Process, Serial, Device, DeviceSerial, User, CA, Profile string }
	var got []row
	for _, e := range entries {
		got = append(got, row{e.ProcessID, e.Serial, e.DeviceID, e.DeviceSerial, e.UserEmail, e.CARef, e.ProfileRef})
	}
	var want []row
	for _, name := range []string{dev, usr} {
		r := h.record(name)
		if r.CertificateSerial == "" {
			t.Fatalf("%s: no certificate serial on the record", name)
		}
		want = append(want, row{r.ProcessID, r.CertificateSerial, r.DeviceID, r.DeviceSerial, r.UserEmail, r.CAConnectionRef, r.ProfileRef})
	}
	byProcess := func(a, b row) int { return strings.Compare(a.Process, b.Process) }
	slices.SortFunc(got, byProcess)
	slices.SortFunc(want, byProcess)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("inventory (-want +got):\n%s", diff)
	}
	if len(got) != 2 || (got[0].User == "" && got[1].User == "") || (got[0].Device == "" && got[1].Device == "") {
		t.Errorf("want one entry with a device id and one with a user email: %+v", got)
	}
}

// An inventory that cannot be written is logged at WARNING and never fails
// the process nor makes the task retry.
func TestInventoryFailureDoesNotFailTheProcess(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cpemulator.Options{})
	var logs syncBuffer
	h.p.Log = logging.New(&logs, slog.LevelInfo, "test")
	h.p.Inventory = failingInventory{}
	name, note := h.add(cpemulator.ClientSpec{Key: cpemulator.ECP256})
	if err := h.claim(note, 1); err != nil {
		t.Fatal(err)
	}
	h.drain()
	h.wantUploaded(name)
	if r := h.record(name); r.IssueAttempts != 1 {
		t.Errorf("issue attempts %d, want 1: the inventory made the device try again", r.IssueAttempts)
	}
	warned := 0
	for _, e := range logs.entries(t) {
		if e["message"] == pipeline.MsgInventoryFailed && e["severity"] == "WARNING" {
			warned++
		}
	}
	if warned != 1 {
		t.Errorf("%d %q warnings, want 1", warned, pipeline.MsgInventoryFailed)
	}
}

type failingInventory struct{}

func (failingInventory) Record(context.Context, inventory.Entry) (bool, error) {
	return false, errors.New("firestore unavailable")
}
