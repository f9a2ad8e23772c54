package ca

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// ParseChain reads the certificates of a PEM text in order (a CA's answer,
// a CA file): every CERTIFICATE block, other blocks skipped. A certificate
// that does not parse is an error, and so is a text with none.
func ParseChain(pemBytes []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for rest := pemBytes; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return certs, nil
}
