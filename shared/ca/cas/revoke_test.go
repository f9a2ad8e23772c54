package cas

import (
	"context"
	"math/big"
	"testing"

	"cloud.google.com/go/security/privateca/apiv1/privatecapb"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/chromeos-certprov/adapter/shared/ca"
)

// TestRevokeThroughTheRealClient revokes an issued certificate through
// RevokeCertificate, against the fake served to Google's client: the reason
// reaches the service, a second revocation is not an error (the service's
// FailedPrecondition on an already revoked certificate), an unknown
// certificate is a permanent refusal, and an outage is transient.
func TestRevokeThroughTheRealClient(t *testing.T) {
	ctx := context.Background()
	c, fake := setup(t, nil)
	csr, _ := newCSR(t, "device-1")
	const id = "3f2a9c1e-aaaa-bbbb-cccc-0123456789ab"
	issued, err := c.Issue(ctx, ca.Request{CSR: csr, RequestID: id})
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	var r ca.Revoker = c
	rev := ca.Revocation{Serial: issued.Leaf.SerialNumber, RequestID: id, Reason: ca.ReasonCessationOfOperation}
	if err := r.Revoke(ctx, rev); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	got := fake.Certificate(pool + "/certificates/" + CertificateID(id)).GetRevocationDetails().GetRevocationState()
	if got != privatecapb.RevocationReason_CESSATION_OF_OPERATION {
		t.Errorf("revocation state %v, want CESSATION_OF_OPERATION", got)
	}
	// Again, after the request_id window: the service answers
	// FailedPrecondition; the connector reads the certificate and finds it revoked.
	rev.Reason = ca.ReasonKeyCompromise
	if err := r.Revoke(ctx, rev); err != nil {
		t.Fatalf("Revoke again: %v", err)
	}
	if got := fake.Certificate(pool + "/certificates/" + CertificateID(id)).GetRevocationDetails().GetRevocationState(); got != privatecapb.RevocationReason_CESSATION_OF_OPERATION {
		t.Errorf("a second revocation changed the reason to %v", got)
	}

	for _, tc := range []struct {
		name string
		rev  ca.Revocation
		prep func()
		want ca.Kind
	}{
		{"unknown certificate", ca.Revocation{Serial: big.NewInt(7), RequestID: "never-issued", Reason: ca.ReasonUnspecified}, func() {}, ca.Permanent},
		{"no request id", ca.Revocation{Serial: big.NewInt(7)}, func() {}, ca.Permanent},
		{"outage", ca.Revocation{RequestID: "x"}, func() { fake.SetOutage(true) }, ca.Transient},
		{"permission denied", ca.Revocation{RequestID: "x"}, func() { fake.SetOutage(false); fake.SetPermissionDenied(true) }, ca.Permanent},
	} {
		tc.prep()
		err := r.Revoke(ctx, tc.rev)
		if err == nil || ca.KindOf(err) != tc.want {
			t.Errorf("%s: Revoke = %v, want a %v error", tc.name, err, tc.want)
		}
	}
	fake.SetPermissionDenied(false)
}

// TestFakeRevokeAnswersAsTheService checks the fake's own answers, which the
// connector's idempotency relies on.
func TestFakeRevokeAnswersAsTheService(t *testing.T) {
	ctx := context.Background()
	c, _ := setup(t, nil)
	csr, _ := newCSR(t, "device-1")
	if _, err := c.Issue(ctx, ca.Request{CSR: csr, RequestID: "r1"}); err != nil {
		t.Fatal(err)
	}
	name := pool + "/certificates/" + CertificateID("r1")
	call := func(n, reqID string) codes.Code {
		_, err := c.client.RevokeCertificate(ctx, &privatecapb.RevokeCertificateRequest{Name: n, Reason: privatecapb.RevocationReason_SUPERSEDED, RequestId: reqID}, noRetry)
		return status.Code(err)
	}
	u1, u2 := RequestUUID(pool, "a"), RequestUUID(pool, "b")
	got := []codes.Code{
		call(pool+"/certificates/nope", u1), // unknown
		call("not-a-name", u1),              // malformed
		call(name, u1),                      // revoked
		call(name, u1),                      // same request_id: the same answer
		call(name, u2),                      // another request: already revoked
	}
	want := []codes.Code{codes.NotFound, codes.InvalidArgument, codes.OK, codes.OK, codes.FailedPrecondition}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("codes (-want +got):\n%s", diff)
	}
}
