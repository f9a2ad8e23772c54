package scep

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/smallstep/pkcs7"
	"github.com/smallstep/scep"
)

// SCEP attribute OIDs (RFC 8894 section 3.2.1) that smallstep/scep keeps private.
var (
	oidMessageType    = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 2}
	oidSenderNonce    = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 5}
	oidTransactionID  = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 7}
	oidFailInfoText   = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 24, 1}
	digestOIDs        = map[string]asn1.ObjectIdentifier{"SHA-1": pkcs7.OIDDigestAlgorithmSHA1, "SHA-256": pkcs7.OIDDigestAlgorithmSHA256, "SHA-512": pkcs7.OIDDigestAlgorithmSHA512}
	signerCertSubject = pkix.Name{CommonName: "certprov SCEP client"}
)

// TransactionID is the SCEP transactionID for a request id: the same for
// every message about one process (PKCSReq, its re-sends and CertPolls), so
// the CA sees one transaction however often the pipeline asks.
func TransactionID(requestID string) string {
	sum := sha256.Sum256([]byte("certprov-scep-transaction:" + requestID))
	return hex.EncodeToString(sum[:20])
}

// issuerAndSubject is CertPoll's content (RFC 8894 section 3.3.3).
type issuerAndSubject struct {
	Issuer  asn1.RawValue
	Subject asn1.RawValue
}

// outgoing is one pkiMessage about to be sent.
type outgoing struct {
	raw        []byte
	nonce      []byte
	signerCert *x509.Certificate
}

// buildMessage returns a signed pkiMessage of type mt whose pkcsPKIEnvelope
// holds content, encrypted to info.recipient. It is signed with the adapter's
// own key and a self-signed certificate made for this message, with the
// request's subject (RFC 8894 section 2.3) where it has one.
func buildMessage(info *caInfo, key *rsa.PrivateKey, subject []byte, mt scep.MessageType, tid string, content []byte) (*outgoing, error) {
	env, err := envelope(content, info.recipient, info.cipher())
	if err != nil {
		return nil, err
	}
	cert, err := signerCertificate(key, subject)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	sd, err := pkcs7.NewSignedData(env)
	if err != nil {
		return nil, err
	}
	sd.SetDigestAlgorithm(digestOIDs[info.digest()])
	err = sd.AddSigner(cert, key, pkcs7.SignerInfoConfig{ExtraSignedAttributes: []pkcs7.Attribute{
		{Type: oidTransactionID, Value: scep.TransactionID(tid)},
		{Type: oidMessageType, Value: mt},
		{Type: oidSenderNonce, Value: scep.SenderNonce(nonce)},
	}})
	if err != nil {
		return nil, fmt.Errorf("sign the request: %w", err)
	}
	raw, err := sd.Finish()
	if err != nil {
		return nil, fmt.Errorf("sign the request: %w", err)
	}
	return &outgoing{raw: raw, nonce: nonce, signerCert: cert}, nil
}

func signerCertificate(key *rsa.PrivateKey, subject []byte) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      signerCertSubject,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	if len(subject) > 2 { // not an empty SEQUENCE
		tmpl.RawSubject = subject
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("make the signer certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

// certRep is a CA's answer, checked against the request it answers.
type certRep struct {
	status   scep.PKIStatus
	failInfo scep.FailInfo
	failText string
	certs    []*x509.Certificate // SUCCESS: the degenerate PKCS#7's certificates
}

// errUnverified marks a CertRep not signed by a certificate of GetCACert.
var errUnverified = errors.New("the answer is not signed by the CA")

// parseCertRep verifies the CertRep body against the CA's certificates,
// checks that it answers out (transactionID, recipientNonce) and decrypts a
// SUCCESS's certificates with the adapter's key.
func parseCertRep(body []byte, info *caInfo, out *outgoing, key *rsa.PrivateKey, tid string) (*certRep, error) {
	msg, err := scep.ParsePKIMessage(body, scep.WithCACerts(info.all))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUnverified, err)
	}
	if msg.MessageType != scep.CertRep || msg.CertRepMessage == nil {
		return nil, fmt.Errorf("the answer is a %q message, not a CertRep", string(msg.MessageType))
	}
	if string(msg.TransactionID) != tid {
		return nil, fmt.Errorf("the answer is for transaction %q, not %q", string(msg.TransactionID), tid)
	}
	if !bytes.Equal(msg.RecipientNonce, out.nonce) {
		return nil, errors.New("the answer's recipientNonce is not the request's senderNonce")
	}
	rep := &certRep{status: msg.PKIStatus, failInfo: msg.FailInfo}
	switch msg.PKIStatus {
	case scep.FAILURE:
		if p7, err := pkcs7.Parse(body); err == nil {
			var text string
			if p7.UnmarshalSignedAttribute(oidFailInfoText, &text) == nil {
				rep.failText = text
			}
		}
	case scep.SUCCESS:
		p7, err := pkcs7.Parse(body)
		if err != nil {
			return nil, err
		}
		inner, err := pkcs7.Parse(p7.Content)
		if err != nil {
			return nil, fmt.Errorf("parse the pkcsPKIEnvelope: %w", err)
		}
		degenerate, err := inner.Decrypt(out.signerCert, key)
		if err != nil {
			return nil, fmt.Errorf("decrypt the pkcsPKIEnvelope: %w", err)
		}
		if rep.certs, err = scep.CACerts(degenerate); err != nil {
			return nil, fmt.Errorf("parse the issued certificates: %w", err)
		}
		if len(rep.certs) == 0 {
			return nil, errors.New("SUCCESS without a certificate")
		}
	}
	return rep, nil
}
