// Package inventory records every certificate the adapter uploaded, once, in
// its own Firestore collection (one document per certificate, keyed by a hash
// of its issuer and serial), kept until the certificate's not-after plus a
// grace period through a Firestore TTL field, independently of the progress
// records. The operator's certprov certs commands read it, and revocations
// (by the operator or the reconciliation) are recorded in it.
package inventory

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"
)

// DefaultGrace is how long an entry is kept after its certificate's
// not-after (INVENTORY_GRACE).
const DefaultGrace = 90 * 24 * time.Hour

// DefaultCollection is the inventory's Firestore collection (INVENTORY_COLLECTION).
const DefaultCollection = "certprovCertificates"

// ErrNotFound is returned for an entry that does not exist.
var ErrNotFound = errors.New("inventory: certificate not found")

// Entry is one issued and uploaded certificate.
type Entry struct {
	// ID is the document id: ID(issuer DER, serial).
	ID string `firestore:"-" json:"id"`
	// Serial is the serial number in upper-case hex, as the progress record
	// and certprov show it.
	Serial      string    `firestore:"serial" json:"serial"`
	Issuer      string    `firestore:"issuer" json:"issuer"`
	Fingerprint string    `firestore:"sha256" json:"sha256"`
	Subject     string    `firestore:"subject" json:"subject"`
	SANs        []string  `firestore:"sans,omitempty" json:"sans,omitempty"`
	NotBefore   time.Time `firestore:"notBefore" json:"notBefore"`
	NotAfter    time.Time `firestore:"notAfter" json:"notAfter"`

	Customer     string `firestore:"customer" json:"customer"`
	ProcessID    string `firestore:"processId" json:"processId"`
	DeviceID     string `firestore:"deviceId,omitempty" json:"deviceId,omitempty"`
	DeviceSerial string `firestore:"deviceSerial,omitempty" json:"deviceSerial,omitempty"`
	UserEmail    string `firestore:"userEmail,omitempty" json:"userEmail,omitempty"`
	ProfileRef   string `firestore:"profileRef,omitempty" json:"profileRef,omitempty"`
	CARef        string `firestore:"caConnectionRef" json:"caConnectionRef"`
	// RequestID is the CA request id the certificate was issued under (the
	// CAS connector names the certificate after it).
	RequestID  string    `firestore:"requestId,omitempty" json:"requestId,omitempty"`
	RecordedAt time.Time `firestore:"recordedAt" json:"recordedAt"`
	// ExpireAt is the Firestore TTL field: NotAfter plus the grace period.
	ExpireAt time.Time `firestore:"expireAt" json:"expireAt"`

	Revocation *Revocation `firestore:"revocation,omitempty" json:"revocation,omitempty"`
}

// Revocation records a revocation: when, why and by whom ("reconciler" for
// the daily reconciliation). ReportedOnly marks a certificate whose CA
// cannot revoke through the adapter (SCEP, EST): the administrator was told
// to revoke it in the CA.
type Revocation struct {
	At           time.Time `firestore:"at" json:"at"`
	Reason       string    `firestore:"reason" json:"reason"`
	By           string    `firestore:"by" json:"by"`
	ReportedOnly bool      `firestore:"reportedOnly,omitempty" json:"reportedOnly,omitempty"`
}

// ID is the document id of the certificate of issuer (its raw DER subject, as
// x509.Certificate.RawIssuer) and serial: 32 hex digits of SHA-256 over both.
func ID(rawIssuer []byte, serial *big.Int) string {
	h := sha256.New()
	h.Write(rawIssuer)
	h.Write([]byte{0})
	h.Write(serial.Bytes())
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Serial formats a serial number as entries hold it.
func Serial(n *big.Int) string { return fmt.Sprintf("%X", n) }

// ParseSerial reads a serial number in hex, with or without colons or a 0x.
func ParseSerial(s string) (*big.Int, error) {
	t := strings.TrimPrefix(strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), ":", "")), "0x")
	n, ok := new(big.Int).SetString(t, 16)
	if !ok || t == "" {
		return nil, fmt.Errorf("serial %q is not a hex number", s)
	}
	return n, nil
}

// Subject is who a certificate was issued for, as the progress record holds it.
type Subject struct {
	Customer, ProcessID, DeviceID, DeviceSerial, UserEmail, ProfileRef, CARef, RequestID string
}

// NewEntry is the entry of leaf issued for s, recorded at now and kept until
// leaf's not-after plus grace (DefaultGrace when grace <= 0).
func NewEntry(leaf *x509.Certificate, s Subject, now time.Time, grace time.Duration) Entry {
	if grace <= 0 {
		grace = DefaultGrace
	}
	sum := sha256.Sum256(leaf.Raw)
	var sans []string
	sans = append(sans, prefixed("DNS:", leaf.DNSNames)...)
	sans = append(sans, prefixed("email:", leaf.EmailAddresses)...)
	for _, ip := range leaf.IPAddresses {
		sans = append(sans, "IP:"+ip.String())
	}
	for _, u := range leaf.URIs {
		sans = append(sans, "URI:"+u.String())
	}
	return Entry{
		ID: ID(leaf.RawIssuer, leaf.SerialNumber), Serial: Serial(leaf.SerialNumber), Issuer: leaf.Issuer.String(),
		Fingerprint: hex.EncodeToString(sum[:]), Subject: leaf.Subject.String(), SANs: sans,
		NotBefore: leaf.NotBefore.UTC(), NotAfter: leaf.NotAfter.UTC(),
		Customer: s.Customer, ProcessID: s.ProcessID, DeviceID: s.DeviceID, DeviceSerial: s.DeviceSerial,
		UserEmail: s.UserEmail, ProfileRef: s.ProfileRef, CARef: s.CARef, RequestID: s.RequestID,
		RecordedAt: now.UTC(), ExpireAt: leaf.NotAfter.Add(grace).UTC(),
	}
}

func prefixed(p string, vs []string) []string {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		out = append(out, p+v)
	}
	return out
}

// Filter selects entries; zero fields select all.
type Filter struct {
	DeviceID, UserEmail, CARef, Serial string
	// ExpiringBefore keeps the entries whose not-after is before it.
	ExpiringBefore time.Time
	// Active keeps the entries not revoked.
	Active bool
}

// Match reports whether e passes f.
func (f Filter) Match(e *Entry) bool {
	switch {
	case f.DeviceID != "" && e.DeviceID != f.DeviceID,
		f.UserEmail != "" && !strings.EqualFold(e.UserEmail, f.UserEmail),
		f.CARef != "" && e.CARef != f.CARef,
		f.Serial != "" && !sameSerial(e.Serial, f.Serial),
		!f.ExpiringBefore.IsZero() && !e.NotAfter.Before(f.ExpiringBefore),
		f.Active && e.Revocation != nil:
		return false
	}
	return true
}

func sameSerial(a, b string) bool {
	x, err1 := ParseSerial(a)
	y, err2 := ParseSerial(b)
	return err1 == nil && err2 == nil && x.Cmp(y) == 0
}

// Sort orders entries by not-after, then id: what list shows.
func Sort(es []*Entry) {
	slices.SortFunc(es, func(a, b *Entry) int {
		if c := a.NotAfter.Compare(b.NotAfter); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}
