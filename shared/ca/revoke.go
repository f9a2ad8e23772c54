package ca

import (
	"context"
	"fmt"
	"math/big"
	"slices"
	"strings"
)

// Reason is why a certificate is revoked: an RFC 5280 CRLReason code.
type Reason int

// The reasons the adapter uses (RFC 5280, section 5.3.1).
const (
	ReasonUnspecified          Reason = 0
	ReasonKeyCompromise        Reason = 1
	ReasonCACompromise         Reason = 2
	ReasonAffiliationChanged   Reason = 3
	ReasonSuperseded           Reason = 4
	ReasonCessationOfOperation Reason = 5
	ReasonCertificateHold      Reason = 6
	ReasonPrivilegeWithdrawn   Reason = 9
)

var reasonNames = map[Reason]string{
	ReasonUnspecified:          "unspecified",
	ReasonKeyCompromise:        "keyCompromise",
	ReasonCACompromise:         "cACompromise",
	ReasonAffiliationChanged:   "affiliationChanged",
	ReasonSuperseded:           "superseded",
	ReasonCessationOfOperation: "cessationOfOperation",
	ReasonCertificateHold:      "certificateHold",
	ReasonPrivilegeWithdrawn:   "privilegeWithdrawn",
}

func (r Reason) String() string {
	if s, ok := reasonNames[r]; ok {
		return s
	}
	return fmt.Sprintf("Reason(%d)", int(r))
}

// ReasonNames lists the names ParseReason accepts.
func ReasonNames() []string {
	var names []string
	for _, n := range reasonNames {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ParseReason reads a reason by its RFC 5280 name, case-insensitively, with
// or without underscores (keyCompromise, key_compromise, KEY_COMPROMISE).
func ParseReason(s string) (Reason, error) {
	norm := strings.ToLower(strings.ReplaceAll(s, "_", ""))
	for r, n := range reasonNames {
		if strings.ToLower(n) == norm {
			return r, nil
		}
	}
	return 0, fmt.Errorf("unknown revocation reason %q (one of %s)", s, strings.Join(ReasonNames(), ", "))
}

// Revocation names one certificate to revoke.
type Revocation struct {
	// Serial is the certificate's serial number.
	Serial *big.Int
	// RequestID is the ca.Request.RequestID the certificate was issued
	// under (a connector that named the certificate after it finds it so).
	RequestID string
	Reason    Reason
}

// Revoker is the optional capability of an Issuer whose CA revokes through
// the adapter (Google CAS, the development CA); SCEP and EST have no
// revocation in their protocols. Callers check for it with a type
// assertion. Revoking a certificate already revoked is not an error.
// Errors are *Error with a kind, as Issue's.
type Revoker interface {
	Revoke(ctx context.Context, r Revocation) error
}
