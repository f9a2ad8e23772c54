package scep

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/smallstep/scep"

	"github.com/chromeos-certprov/adapter/shared/ca"
)

// caInfo is what GetCACaps and GetCACert said about the CA.
type caInfo struct {
	caps map[string]bool
	// all is every certificate of GetCACert that may sign a CertRep (after
	// the pin check, only those that chain to the pinned CA).
	all []*x509.Certificate
	// cas are the CA certificates (basicConstraints CA); roots are what an
	// issued leaf must chain to (the pinned certificate, or every CA).
	cas, roots []*x509.Certificate
	// intermediates are the CA certificates that are not self-signed: they
	// complete an issued leaf's chain.
	intermediates []*x509.Certificate
	// recipient is the certificate a request is encrypted to: an RA
	// encryption certificate where there is one, else the CA.
	recipient *x509.Certificate
	// signer is the certificate expected to sign CertReps (an RA signing
	// certificate, else the CA); any of all is accepted.
	signer *x509.Certificate
	// issuer is the subject of the CA that issues (for CertPoll).
	issuer []byte
}

// usePOST says whether PKIOperation may be POSTed.
func (i *caInfo) usePOST() bool { return i.caps["POSTPKIOPERATION"] || i.caps["SCEPSTANDARD"] }

// cipher is the content encryption for requests: AES-128-CBC when the CA
// says so, else triple DES (single DES, the RFC's last resort, is not offered).
func (i *caInfo) cipher() contentCipher {
	if i.caps["AES"] || i.caps["SCEPSTANDARD"] {
		return cipherAES128CBC
	}
	return cipherDES3CBC
}

// digest is the message digest for the request signature.
func (i *caInfo) digest() string {
	switch {
	case i.caps["SHA-256"] || i.caps["SCEPSTANDARD"]:
		return "SHA-256"
	case i.caps["SHA-512"]:
		return "SHA-512"
	}
	return "SHA-1"
}

func parseCaps(body []byte) map[string]bool {
	caps := map[string]bool{}
	for _, f := range strings.Fields(string(body)) {
		caps[strings.ToUpper(f)] = true
	}
	return caps
}

// fetchCAInfo runs GetCACaps and GetCACert and picks the certificates.
func (c *Connector) fetchCAInfo(ctx context.Context) (*caInfo, error) {
	capsBody, err := c.get(ctx, "GetCACaps")
	var caps map[string]bool
	switch {
	case err == nil:
		caps = parseCaps(capsBody)
	case isTransient(err):
		return nil, err
	default:
		// RFC 8894 section 3.5.1: a CA without GetCACaps has no capabilities.
		caps = map[string]bool{}
	}
	body, err := c.get(ctx, "GetCACert")
	if err != nil {
		return nil, err
	}
	certs, err := parseCACert(body)
	if err != nil {
		return nil, configError("GetCACert: "+err.Error(), nil)
	}
	info, err := selectCerts(certs, c.cfg.fingerprint)
	if err != nil {
		return nil, err
	}
	info.caps = caps
	return info, nil
}

// parseCACert reads a GetCACert answer: one DER certificate
// (application/x-x509-ca-cert) or a degenerate PKCS#7 with the CA and RA
// certificates (application/x-x509-ca-ra-cert); PEM is tolerated.
func parseCACert(body []byte) ([]*x509.Certificate, error) {
	if blk, _ := pem.Decode(body); blk != nil {
		return ca.ParseChain(body)
	}
	if cert, err := x509.ParseCertificate(body); err == nil {
		return []*x509.Certificate{cert}, nil
	}
	certs, err := scep.CACerts(body)
	if err != nil {
		return nil, fmt.Errorf("the answer is neither a certificate nor a PKCS#7 certificate bundle: %w", err)
	}
	if len(certs) == 0 {
		return nil, errors.New("the PKCS#7 bundle holds no certificate")
	}
	return certs, nil
}

const encipherment = x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment

func isCA(c *x509.Certificate) bool { return c.BasicConstraintsValid && c.IsCA }

func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
}

// Fingerprint returns the SHA-256 of cert's DER in lower-case hex: the form
// of the caFingerprint setting.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// selectCerts checks the pin and picks the encryption recipient and the
// signer: NDES returns its RA certificates (one for key encipherment, one
// for digital signature) beside the CA's; other CAs return the CA alone.
func selectCerts(certs []*x509.Certificate, pin []byte) (*caInfo, error) {
	info := &caInfo{all: certs}
	if pin != nil {
		var pinned *x509.Certificate
		for _, cert := range certs {
			if sum := sha256.Sum256(cert.Raw); bytes.Equal(sum[:], pin) {
				pinned = cert
				break
			}
		}
		if pinned == nil {
			got := make([]string, len(certs))
			for i, cert := range certs {
				got[i] = fmt.Sprintf("%q %s", cert.Subject.String(), Fingerprint(cert))
			}
			return nil, &pinError{fmt.Sprintf("no certificate of GetCACert has the pinned SHA-256 fingerprint %x (got %s)", pin, strings.Join(got, ", "))}
		}
		// Keep only what the pinned certificate vouches for.
		anchor := x509.NewCertPool()
		anchor.AddCert(pinned)
		inter := x509.NewCertPool()
		for _, cert := range certs {
			if isCA(cert) {
				inter.AddCert(cert)
			}
		}
		var kept []*x509.Certificate
		for _, cert := range certs {
			if cert == pinned {
				kept = append(kept, cert)
				continue
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: anchor, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
				kept = append(kept, cert)
			}
		}
		info.all = kept
		info.roots = []*x509.Certificate{pinned}
	}
	for _, cert := range info.all {
		if isCA(cert) {
			info.cas = append(info.cas, cert)
			if !selfSigned(cert) {
				info.intermediates = append(info.intermediates, cert)
			}
		}
	}
	if len(info.cas) == 0 {
		// A CA certificate without basicConstraints (old, or hand-made): the
		// first certificate stands for the CA.
		info.cas = info.all[:1]
	}
	if info.roots == nil {
		info.roots = info.cas
	}

	// Recipient: an RA (non-CA) encryption certificate, else any certificate
	// allowing encipherment, else the first (the CA, or step-ca's decrypter).
	pick := func(usage x509.KeyUsage) *x509.Certificate {
		for _, cert := range info.all {
			if !isCA(cert) && cert.KeyUsage&usage != 0 {
				return cert
			}
		}
		for _, cert := range info.all {
			if cert.KeyUsage&usage != 0 {
				return cert
			}
		}
		return nil
	}
	info.recipient = pick(encipherment)
	if info.recipient == nil {
		info.recipient = info.all[0]
	}
	info.signer = pick(x509.KeyUsageDigitalSignature)
	if info.signer == nil {
		info.signer = info.cas[0]
	}
	// The issuing CA: the RA certificate's issuer, or the CA itself.
	info.issuer = info.recipient.RawSubject
	if !isCA(info.recipient) {
		info.issuer = info.recipient.RawIssuer
	}
	if !slices.ContainsFunc(info.cas, func(c *x509.Certificate) bool { return bytes.Equal(c.RawSubject, info.issuer) }) && len(info.intermediates) > 0 {
		info.issuer = info.intermediates[0].RawSubject
	}
	return info, nil
}

// pinError is a CA that does not match caFingerprint.
type pinError struct{ msg string }

func (e *pinError) Error() string { return e.msg }
