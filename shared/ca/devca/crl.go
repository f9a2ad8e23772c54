package devca

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"maps"
	"math/big"
	"net/http"
	"slices"
	"time"

	"github.com/chromeos-certprov/adapter/shared/ca"
)

// CRLValidity is the nextUpdate of the CRLs the development CA signs, from
// their thisUpdate.
const CRLValidity = time.Hour

// Revoke records the certificate of r.Serial, which this CA must have issued,
// as revoked for r.Reason; it then appears in every CRL signed after. A
// certificate already revoked keeps its first revocation. The revocations
// live as long as the connector (as the issued certificates do): a local
// run's, a test's.
func (c *Connector) Revoke(ctx context.Context, r ca.Revocation) (err error) {
	defer ca.Recover(ctx, "dev: Revoke", &err)
	if r.Serial == nil {
		return &ca.Error{Kind: ca.Permanent, Reason: "revocation without a serial number"}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	key := r.Serial.Text(16)
	if _, ok := c.revoked[key]; ok {
		return nil
	}
	known := false
	for _, cert := range c.issued {
		if cert.SerialNumber.Cmp(r.Serial) == 0 {
			known = true
			break
		}
	}
	if !known {
		return &ca.Error{Kind: ca.Permanent, Reason: fmt.Sprintf("the development CA did not issue serial %X", r.Serial)}
	}
	c.revoked[key] = x509.RevocationListEntry{SerialNumber: new(big.Int).Set(r.Serial), RevocationTime: time.Now().UTC(), ReasonCode: int(r.Reason)}
	return nil
}

// CRL signs and returns the CA's current CRL (DER): every revoked
// certificate, a CRL number one higher than the last, valid for CRLValidity.
func (c *Connector) CRL() ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.crlNumber++
	entries := make([]x509.RevocationListEntry, 0, len(c.revoked))
	for _, k := range slices.Sorted(maps.Keys(c.revoked)) {
		entries = append(entries, c.revoked[k])
	}
	now := time.Now().UTC()
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(c.crlNumber),
		ThisUpdate:                now,
		NextUpdate:                now.Add(CRLValidity),
		RevokedCertificateEntries: entries,
	}, c.cert, c.key)
	if err != nil {
		return nil, fmt.Errorf("dev CA: sign the CRL: %w", err)
	}
	return der, nil
}

// CRLHandler serves the CA's current CRL (GET, application/pkix-crl), as a
// CRL distribution point would.
func (c *Connector) CRLHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "GET only", http.StatusMethodNotAllowed)
			return
		}
		der, err := c.CRL()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/pkix-crl")
		_, _ = w.Write(der)
	})
}
