package cpapi_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/chromeos-certprov/adapter/shared/cpapi"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
)

func TestCallsAndErrorClasses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var fault cpemulator.Fault
	emu := cpemulator.New(cpemulator.Options{Fault: func(string, string) cpemulator.Fault { return fault }})
	srv := httptest.NewServer(emu)
	defer srv.Close()
	c, err := cpapi.New(ctx, cpapi.Options{EmulatorHost: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	mine, _ := emu.AddClient(ctx, cpemulator.ClientSpec{Customer: "C1", Key: cpemulator.ECP256})
	theirs, _ := emu.AddClient(ctx, cpemulator.ClientSpec{Customer: "C1", ClaimedBy: "other"})

	if err := c.Claim(ctx, theirs, "me"); !errors.Is(err, cpapi.ErrClaimRefused) || cpapi.Transient(err) {
		t.Errorf("claim of another's process: %v, want ErrClaimRefused, permanent", err)
	}
	if _, err := c.Get(ctx, "customers/C1/certificateProvisioningProcesses/nope"); !cpapi.IsNotFound(err) || cpapi.Transient(err) {
		t.Errorf("get missing: %v, want a permanent 404", err)
	}
	for _, f := range []cpemulator.Fault{cpemulator.FaultResourceExhausted, cpemulator.FaultUnavailable, cpemulator.FaultInternal} {
		fault = f
		if _, err := c.Get(ctx, mine); err == nil || !cpapi.Transient(err) {
			t.Errorf("fault %v: %v, want a transient error", f, err)
		}
	}
	fault = cpemulator.NoFault
	if _, err := c.SignData(ctx, mine, []byte("x"), cpemulator.AlgorithmECDSA); err == nil || cpapi.Transient(err) {
		t.Errorf("signData before claim: %v, want a permanent refusal", err)
	}
	if err := c.Claim(ctx, mine, "me"); err != nil {
		t.Fatal(err)
	}
	op, err := c.SignData(ctx, mine, []byte("data to sign"), cpemulator.AlgorithmECDSA)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.GetOperation(ctx, op)
	if err != nil || !got.Done || len(got.Signature) == 0 {
		t.Fatalf("operation: %+v, %v; want done with a signature", got, err)
	}
	if err := c.UploadCertificate(ctx, mine, "not a PEM"); err == nil || cpapi.Transient(err) {
		t.Errorf("upload of garbage: %v, want a permanent refusal", err)
	}
	if err := c.SetFailure(ctx, mine, "The CA refused."); err != nil {
		t.Fatal(err)
	}
	if s, _ := emu.Process(mine); s.FailureMessage != "The CA refused." {
		t.Errorf("failure message %q", s.FailureMessage)
	}
}
