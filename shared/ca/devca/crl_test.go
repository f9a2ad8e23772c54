package devca

import (
	"context"
	"crypto/x509"
	"io"
	"math/big"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/ca"
)

// TestRevokeAppearsInServedCRL revokes one of two issued certificates, fetches
// the CRL over HTTP and reads it with x509.ParseRevocationList: signed by the
// CA, listing exactly the revoked serial with its reason; a second
// revocation of the same serial changes nothing, an unknown serial is refused.
func TestRevokeAppearsInServedCRL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, err := New(ctx, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var leaves []*x509.Certificate
	for _, id := range []string{"r1", "r2"} {
		csr, _ := newCSR(t, "device-"+id)
		issued, err := c.Issue(ctx, ca.Request{CSR: csr, RequestID: id})
		if err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, issued.Leaf)
	}
	var r ca.Revoker = c // the capability the revoke command checks for
	if err := r.Revoke(ctx, ca.Revocation{Serial: leaves[0].SerialNumber, Reason: ca.ReasonCessationOfOperation}); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if err := r.Revoke(ctx, ca.Revocation{Serial: leaves[0].SerialNumber, Reason: ca.ReasonKeyCompromise}); err != nil {
		t.Fatalf("Revoke again: %v", err)
	}
	err = r.Revoke(ctx, ca.Revocation{Serial: big.NewInt(42), Reason: ca.ReasonUnspecified})
	if ca.KindOf(err) != ca.Permanent {
		t.Errorf("Revoke of a serial the CA never issued: %v, want a permanent error", err)
	}

	srv := httptest.NewServer(c.CRLHandler())
	defer srv.Close()
	fetch := func() *x509.RevocationList {
		t.Helper()
		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "application/pkix-crl" {
			t.Errorf("Content-Type %q", ct)
		}
		der, _ := io.ReadAll(resp.Body)
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			t.Fatalf("ParseRevocationList: %v", err)
		}
		if err := crl.CheckSignatureFrom(c.Certificate()); err != nil {
			t.Errorf("CRL not signed by the CA: %v", err)
		}
		return crl
	}
	crl := fetch()
	type entry struct {
		Serial string
		Reason int
	}
	var got []entry
	for _, e := range crl.RevokedCertificateEntries {
		got = append(got, entry{e.SerialNumber.Text(16), e.ReasonCode})
	}
	want := []entry{{leaves[0].SerialNumber.Text(16), int(ca.ReasonCessationOfOperation)}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CRL entries (-want +got):\n%s", diff)
	}
	if next := fetch(); next.Number.Cmp(crl.Number) <= 0 {
		t.Errorf("CRL number did not grow: %v then %v", crl.Number, next.Number)
	}
}

func TestParseReason(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want ca.Reason
		ok   bool
	}{
		{"keyCompromise", ca.ReasonKeyCompromise, true},
		{"KEY_COMPROMISE", ca.ReasonKeyCompromise, true},
		{"cessation_of_operation", ca.ReasonCessationOfOperation, true},
		{"privilegeWithdrawn", ca.ReasonPrivilegeWithdrawn, true},
		{"stolen", 0, false},
	} {
		got, err := ca.ParseReason(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseReason(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
