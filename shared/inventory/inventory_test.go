package inventory_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	gfirestore "cloud.google.com/go/firestore"
	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/inventory"
	"github.com/chromeos-certprov/adapter/shared/tooling/store/memory"
	"github.com/chromeos-certprov/adapter/shared/tooling/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// store is what both implementations offer.
type store interface {
	Record(ctx context.Context, e inventory.Entry) (bool, error)
	Get(ctx context.Context, id string) (*inventory.Entry, error)
	List(ctx context.Context, f inventory.Filter, limit int) ([]*inventory.Entry, error)
	MarkRevoked(ctx context.Context, id string, r inventory.Revocation) (*inventory.Entry, bool, error)
}

var (
	envOnce sync.Once
	project = fmt.Sprintf("inventory-test-%d", os.Getpid())
)

func firestoreStore(t *testing.T) store {
	t.Helper()
	addr := testenv.Firestore(t)
	envOnce.Do(func() { os.Setenv("FIRESTORE_EMULATOR_HOST", addr) })
	c, err := gfirestore.NewClient(context.Background(), project)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		testenv.WipeFirestore(t, addr, project)
	})
	return inventory.NewFirestore(c, "inv-"+strings.ReplaceAll(t.Name(), "/", "-"))
}

// leaf issues a certificate for cn with serial, valid for life.
func leaf(t *testing.T, serial int64, cn string, life time.Duration) *x509.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour * 400)}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn}, DNSNames: []string{cn + ".example.com"},
		EmailAddresses: []string{"u@example.com"}, NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(life),
	}, caTmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestStores(t *testing.T) {
	for name, open := range map[string]func(*testing.T) store{
		"firestore": firestoreStore,
		"memory":    func(*testing.T) store { return memory.NewInventory() },
	} {
		t.Run(name, func(t *testing.T) { conformance(t, open(t)) })
	}
}

// conformance: an entry is recorded once (a second Record keeps the first),
// reads back as written (with its TTL field), lists by device, user, CA,
// serial and expiry, and a revocation is recorded once (a report-only one is
// superseded by a real one).
func conformance(t *testing.T, s store) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	l1, l2 := leaf(t, 0x1A2B, "dev1", 10*24*time.Hour), leaf(t, 0x3C4D, "dev2", 60*24*time.Hour)
	e1 := inventory.NewEntry(l1, inventory.Subject{Customer: "C0", ProcessID: "p1", DeviceID: "D1", DeviceSerial: "S1", CARef: "cas", ProfileRef: "dev", RequestID: "r1"}, now, 0)
	e2 := inventory.NewEntry(l2, inventory.Subject{Customer: "C0", ProcessID: "p2", UserEmail: "u@example.com", CARef: "scep", ProfileRef: "user", RequestID: "r2"}, now, 24*time.Hour)
	if got, want := e1.ExpireAt, l1.NotAfter.UTC().Add(inventory.DefaultGrace); !got.Equal(want) {
		t.Errorf("expireAt %v, want not-after + 90d %v", got, want)
	}
	if e1.ID != inventory.ID(l1.RawIssuer, l1.SerialNumber) || e1.ID == e2.ID {
		t.Errorf("ids %s %s", e1.ID, e2.ID)
	}
	for _, e := range []inventory.Entry{e1, e2} {
		if created, err := s.Record(ctx, e); err != nil || !created {
			t.Fatalf("Record: %v, created %v", err, created)
		}
	}
	again := e1
	again.ProcessID = "other"
	if created, err := s.Record(ctx, again); err != nil || created {
		t.Fatalf("Record again: %v, created %v; want kept", err, created)
	}
	got, err := s.Get(ctx, e1.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := e1
	want.NotBefore, want.NotAfter = want.NotBefore.Truncate(time.Microsecond), want.NotAfter.Truncate(time.Microsecond)
	want.ExpireAt = want.ExpireAt.Truncate(time.Microsecond)
	if diff := cmp.Diff(&want, got); diff != "" {
		t.Errorf("Get (-want +got):\n%s", diff)
	}
	if _, err := s.Get(ctx, "nope"); !errors.Is(err, inventory.ErrNotFound) {
		t.Errorf("Get unknown: %v", err)
	}

	ids := func(f inventory.Filter) []string {
		es, err := s.List(ctx, f, 0)
		if err != nil {
			t.Fatalf("List %+v: %v", f, err)
		}
		var out []string
		for _, e := range es {
			out = append(out, e.ProcessID)
		}
		return out
	}
	for _, tc := range []struct {
		f    inventory.Filter
		want []string
	}{
		{inventory.Filter{}, []string{"p1", "p2"}},
		{inventory.Filter{DeviceID: "D1"}, []string{"p1"}},
		{inventory.Filter{UserEmail: "u@example.com"}, []string{"p2"}},
		{inventory.Filter{CARef: "scep"}, []string{"p2"}},
		{inventory.Filter{Serial: "1a:2b"}, []string{"p1"}},
		{inventory.Filter{ExpiringBefore: now.Add(30 * 24 * time.Hour)}, []string{"p1"}},
		{inventory.Filter{DeviceID: "D1", CARef: "scep"}, nil},
	} {
		if diff := cmp.Diff(tc.want, ids(tc.f)); diff != "" {
			t.Errorf("List %+v (-want +got):\n%s", tc.f, diff)
		}
	}

	report := inventory.Revocation{At: now, Reason: "cessationOfOperation", By: "reconciler", ReportedOnly: true}
	if _, changed, err := s.MarkRevoked(ctx, e2.ID, report); err != nil || !changed {
		t.Fatalf("MarkRevoked (report): %v %v", changed, err)
	}
	real := inventory.Revocation{At: now.Add(time.Minute), Reason: "keyCompromise", By: "ops@example.com"}
	if e, changed, err := s.MarkRevoked(ctx, e2.ID, real); err != nil || !changed || e.Revocation.By != "ops@example.com" {
		t.Fatalf("MarkRevoked (real after report): %+v %v %v", e, changed, err)
	}
	if e, changed, err := s.MarkRevoked(ctx, e2.ID, inventory.Revocation{At: now, Reason: "superseded", By: "x"}); err != nil || changed || e.Revocation.Reason != "keyCompromise" {
		t.Errorf("MarkRevoked again: %+v %v %v; want the first kept", e.Revocation, changed, err)
	}
	if _, _, err := s.MarkRevoked(ctx, "nope", real); !errors.Is(err, inventory.ErrNotFound) {
		t.Errorf("MarkRevoked unknown: %v", err)
	}
	if diff := cmp.Diff([]string{"p1"}, ids(inventory.Filter{Active: true})); diff != "" {
		t.Errorf("active (-want +got):\n%s", diff)
	}
}
