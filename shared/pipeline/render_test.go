package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
)

// TestRenderIsWhatClaimSends: Render gives the very bytes the claim sends
// to signData for the same process (the operator CLI's "certprov render").
func TestRenderIsWhatClaimSends(t *testing.T) {
	for _, spec := range []cpemulator.ClientSpec{
		{Kind: cpemulator.Device, Key: cpemulator.ECP256, SignDelay: time.Hour},
		{Kind: cpemulator.User, SignDelay: time.Hour},
	} {
		h := newHarness(t, cpemulator.Options{})
		name, note := h.add(spec)
		if err := h.claim(note, 1); err != nil {
			t.Fatal(err)
		}
		rec := h.record(name)
		if rec.State != progress.StatePolling {
			t.Fatalf("%v: state %s after the claim, want POLLING", spec.Kind, rec.State)
		}
		proc, err := h.p.API.Get(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := h.p.Render(context.Background(), rec.Customer, rec.ProcessID, proc)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.RequestInfo, rec.SignData) {
			t.Errorf("%v: Render's CertificationRequestInfo is not the bytes the claim sent to signData", spec.Kind)
		}
		if got.CAConnectionRef != rec.CAConnectionRef || got.ProfileRef != rec.ProfileRef || got.SignatureAlgorithm != rec.SignatureAlgorithm || string(got.KeyType) != rec.KeyType {
			t.Errorf("%v: Render %+v, the claim recorded %s %s %s %s", spec.Kind, got, rec.CAConnectionRef, rec.ProfileRef, rec.SignatureAlgorithm, rec.KeyType)
		}
	}
}

// TestRenderRefuses: what the claim would fail is a *RefusedError with the
// message the device would be shown.
func TestRenderRefuses(t *testing.T) {
	h := newHarness(t, cpemulator.Options{})
	name, _ := h.add(cpemulator.ClientSpec{Kind: cpemulator.Device, ProfileRef: "needs_user"})
	proc, err := h.p.API.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.p.Render(context.Background(), customer, "p", proc)
	var refused *pipeline.RefusedError
	if !errors.As(err, &refused) || refused.Message == "" {
		t.Fatalf("Render of a profile the device cannot fill: %v, want a *RefusedError with a message", err)
	}
}
