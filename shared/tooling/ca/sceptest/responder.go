package sceptest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"
	"github.com/smallstep/scep"
)

// Responder is a small SCEP CA of our own for what the real servers here
// cannot do: neither scepserver nor step-ca ever answers PENDING or
// implements CertPoll (both answer HTTP 500 to it). It answers PENDING a
// configurable number of times per transaction, then SUCCESS, to PKCSReq
// and CertPoll; remembers transactions (a CertPoll or re-sent PKCSReq for an
// issued one gets the same certificate); can act like NDES with separate RA
// signing and encryption certificates; and can fail with any failInfo.
// PKCSReq is parsed, decrypted and failed with smallstep/scep's server-side
// helpers; PENDING and CertPoll, which that library does not build or
// parse, are done with smallstep/pkcs7.
type Responder struct {
	// URL is the SCEP endpoint.
	URL string
	// CA issues the certificates. RASigner and RAEncrypter are NDES-style
	// RA certificates (nil unless ResponderOptions.RA).
	CA, RASigner, RAEncrypter *x509.Certificate

	opts                  ResponderOptions
	caKey, signKey, encKy *rsa.PrivateKey

	mu        sync.Mutex
	txs       map[string]*transaction
	pkcsReqs  int
	certPolls int
	issued    int
}

// ResponderOptions configure StartResponder.
type ResponderOptions struct {
	// PendingAnswers is how many PENDING answers a transaction gets (its
	// PKCSReq's first, then CertPolls') before it is issued.
	PendingAnswers int
	// CheckChallenge decides on a PKCSReq's challengePassword (e.g.
	// NDESAdmin.Use); nil accepts Challenge only ("" accepts any).
	CheckChallenge func(string) bool
	Challenge      string
	// FailWith, when set, answers every new PKCSReq FAILURE with this
	// failInfo (also values outside RFC 8894).
	FailWith scep.FailInfo
	// RA serves NDES-style RA certificates: GetCACert returns a degenerate
	// PKCS#7 [RA signer, RA encrypter, CA], requests must be encrypted to
	// the RA encrypter and CertReps are signed by the RA signer.
	RA bool
	// Caps is the GetCACaps answer; default "POSTPKIOperation\nSHA-256\nAES\nSCEPStandard".
	// NDES answers "POSTPKIOperation\nRenewal\nSHA-512\nSHA-256\nSHA-1\nDES3".
	Caps string
}

type transaction struct {
	csr     *x509.CertificateRequest
	pending int
	cert    *x509.Certificate
}

// StartResponder starts the responder and stops it when t ends.
func StartResponder(t testing.TB, opts ResponderOptions) *Responder {
	t.Helper()
	if opts.Caps == "" {
		opts.Caps = "POSTPKIOperation\nSHA-256\nAES\nSCEPStandard"
	}
	r := &Responder{opts: opts, txs: map[string]*transaction{}}
	r.CA, r.caKey = newCA(t, "certprov test SCEP responder CA", nil, nil)
	r.signKey, r.encKy = r.caKey, r.caKey
	if opts.RA {
		r.RASigner, r.signKey = newRA(t, "RA signer", x509.KeyUsageDigitalSignature, r.CA, r.caKey)
		r.RAEncrypter, r.encKy = newRA(t, "RA encrypter", x509.KeyUsageKeyEncipherment, r.CA, r.caKey)
	}
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(srv.Close)
	r.URL = srv.URL + "/scep"
	return r
}

func newRA(t testing.TB, cn string, usage x509.KeyUsage, ca *x509.Certificate, caKey *rsa.PrivateKey) (*x509.Certificate, *rsa.PrivateKey) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 100))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "certprov test NDES " + cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     usage,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// Counts returns the PKCSReq and CertPoll messages received and the
// certificates issued.
func (r *Responder) Counts() (pkcsReqs, certPolls, issued int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pkcsReqs, r.certPolls, r.issued
}

func (r *Responder) signer() (*x509.Certificate, *rsa.PrivateKey) {
	if r.RASigner != nil {
		return r.RASigner, r.signKey
	}
	return r.CA, r.caKey
}

func (r *Responder) encrypter() (*x509.Certificate, *rsa.PrivateKey) {
	if r.RAEncrypter != nil {
		return r.RAEncrypter, r.encKy
	}
	return r.CA, r.caKey
}

func (r *Responder) serve(w http.ResponseWriter, req *http.Request) {
	switch op := req.URL.Query().Get("operation"); op {
	case "GetCACaps":
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, r.opts.Caps)
	case "GetCACert":
		if r.RASigner == nil {
			w.Header().Set("Content-Type", "application/x-x509-ca-cert")
			_, _ = w.Write(r.CA.Raw)
			return
		}
		deg, err := scep.DegenerateCertificates([]*x509.Certificate{r.RASigner, r.RAEncrypter, r.CA})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/x-x509-ca-ra-cert")
		_, _ = w.Write(deg)
	case "PKIOperation":
		var body []byte
		var err error
		if req.Method == http.MethodPost {
			body, err = io.ReadAll(req.Body)
		} else {
			body, err = decodeGETMessage(req.URL.Query().Get("message"))
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rep, err := r.pkiOperation(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/x-pki-message")
		_, _ = w.Write(rep)
	default:
		http.Error(w, "unknown operation "+op, http.StatusBadRequest)
	}
}

var (
	oidMessageType    = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 2}
	oidPKIStatus      = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 3}
	oidFailInfo       = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 4}
	oidSenderNonce    = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 5}
	oidRecipientNonce = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 6}
	oidTransactionID  = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 7}
)

func (r *Responder) pkiOperation(body []byte) ([]byte, error) {
	p7, err := pkcs7.Parse(body)
	if err != nil {
		return nil, err
	}
	if err := p7.Verify(); err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	var mt scep.MessageType
	if err := p7.UnmarshalSignedAttribute(oidMessageType, &mt); err != nil {
		return nil, err
	}
	switch mt {
	case scep.PKCSReq:
		return r.pkcsReq(body)
	case scep.CertPoll:
		return r.certPoll(p7)
	}
	return nil, fmt.Errorf("message type %q not implemented", string(mt))
}

func (r *Responder) pkcsReq(body []byte) ([]byte, error) {
	msg, err := scep.ParsePKIMessage(body)
	if err != nil {
		return nil, err
	}
	encCert, encKey := r.encrypter()
	if err := msg.DecryptPKIEnvelope(encCert, encKey); err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	p7, err := pkcs7.Parse(body)
	if err != nil {
		return nil, err
	}
	requester := p7.GetOnlySigner()
	tid := string(msg.TransactionID)
	signCert, signKey := r.signer()

	r.mu.Lock()
	defer r.mu.Unlock()
	r.pkcsReqs++
	if tx, ok := r.txs[tid]; ok {
		return r.advance(tx, tid, msg.SenderNonce, requester)
	}
	ok := msg.ChallengePassword == r.opts.Challenge || r.opts.Challenge == ""
	if r.opts.CheckChallenge != nil {
		ok = r.opts.CheckChallenge(msg.ChallengePassword)
	}
	fail := r.opts.FailWith
	if !ok {
		fail = scep.BadRequest
	}
	if fail != "" {
		rep, err := msg.Fail(signCert, signKey, fail)
		if err != nil {
			return nil, err
		}
		return rep.Raw, nil
	}
	tx := &transaction{csr: msg.CSRReqMessage.CSR}
	r.txs[tid] = tx
	return r.advance(tx, tid, msg.SenderNonce, requester)
}

func (r *Responder) certPoll(p7 *pkcs7.PKCS7) ([]byte, error) {
	var tid scep.TransactionID
	if err := p7.UnmarshalSignedAttribute(oidTransactionID, &tid); err != nil {
		return nil, err
	}
	var nonce scep.SenderNonce
	if err := p7.UnmarshalSignedAttribute(oidSenderNonce, &nonce); err != nil {
		return nil, err
	}
	inner, err := pkcs7.Parse(p7.Content)
	if err != nil {
		return nil, err
	}
	encCert, encKey := r.encrypter()
	content, err := inner.Decrypt(encCert, encKey)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	var ias struct{ Issuer, Subject asn1.RawValue }
	if _, err := asn1.Unmarshal(content, &ias); err != nil {
		return nil, fmt.Errorf("CertPoll content: %w", err)
	}
	requester := p7.GetOnlySigner()

	r.mu.Lock()
	defer r.mu.Unlock()
	r.certPolls++
	tx, ok := r.txs[string(tid)]
	if !ok {
		return r.certRep(string(tid), nonce, scep.FAILURE, scep.BadCertID, nil)
	}
	if string(ias.Subject.FullBytes) != string(tx.csr.RawSubject) {
		return r.certRep(string(tid), nonce, scep.FAILURE, scep.BadCertID, nil)
	}
	return r.advance(tx, string(tid), nonce, requester)
}

// advance answers about a known transaction: PENDING while it has answers
// left, then the (one) certificate.
func (r *Responder) advance(tx *transaction, tid string, nonce []byte, requester *x509.Certificate) ([]byte, error) {
	if tx.cert == nil && tx.pending < r.opts.PendingAnswers {
		tx.pending++
		return r.certRep(tid, nonce, scep.PENDING, "", nil)
	}
	if tx.cert == nil {
		cert, err := r.issue(tx.csr)
		if err != nil {
			return nil, err
		}
		tx.cert = cert
		r.issued++
	}
	deg, err := scep.DegenerateCertificates([]*x509.Certificate{tx.cert})
	if err != nil {
		return nil, err
	}
	env, err := encryptAES(deg, requester)
	if err != nil {
		return nil, err
	}
	return r.certRep(tid, nonce, scep.SUCCESS, "", env)
}

func (r *Responder) issue(csr *x509.CertificateRequest) (*x509.Certificate, error) {
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 100))
	tmpl := &x509.Certificate{
		SerialNumber:    serial,
		Subject:         csr.Subject,
		NotBefore:       time.Now().Add(-time.Minute),
		NotAfter:        time.Now().Add(24 * time.Hour),
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		ExtraExtensions: csr.Extensions, // SANs, key usage, template name as requested
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, r.CA, csr.PublicKey, r.caKey)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func (r *Responder) certRep(tid string, nonce []byte, status scep.PKIStatus, fi scep.FailInfo, content []byte) ([]byte, error) {
	sn := make([]byte, 16)
	_, _ = rand.Read(sn)
	attrs := []pkcs7.Attribute{
		{Type: oidTransactionID, Value: scep.TransactionID(tid)},
		{Type: oidMessageType, Value: scep.CertRep},
		{Type: oidPKIStatus, Value: status},
		{Type: oidSenderNonce, Value: scep.SenderNonce(sn)},
		{Type: oidRecipientNonce, Value: scep.RecipientNonce(nonce)},
	}
	if status == scep.FAILURE {
		attrs = append(attrs, pkcs7.Attribute{Type: oidFailInfo, Value: fi})
	}
	sd, err := pkcs7.NewSignedData(content)
	if err != nil {
		return nil, err
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	cert, key := r.signer()
	if err := sd.AddSigner(cert, key, pkcs7.SignerInfoConfig{ExtraSignedAttributes: attrs}); err != nil {
		return nil, err
	}
	return sd.Finish()
}

// pkcs7.Encrypt reads its cipher from a package variable: set and restore
// it under a lock, as step-ca does.
var encryptMu sync.Mutex

func encryptAES(content []byte, to *x509.Certificate) ([]byte, error) {
	encryptMu.Lock()
	defer encryptMu.Unlock()
	prev := pkcs7.ContentEncryptionAlgorithm
	defer func() { pkcs7.ContentEncryptionAlgorithm = prev }()
	pkcs7.ContentEncryptionAlgorithm = pkcs7.EncryptionAlgorithmAES128CBC
	return pkcs7.Encrypt(content, []*x509.Certificate{to})
}

func decodeGETMessage(m string) ([]byte, error) {
	return base64.StdEncoding.DecodeString(m)
}

// Settings returns connector settings for the responder: a static
// challenge named ChallengeEnv when ResponderOptions.Challenge is set (see
// Secrets), else type "none". extra fields are merged in.
func (r *Responder) Settings(extra map[string]any) json.RawMessage {
	challenge := map[string]any{"type": "none"}
	if r.opts.Challenge != "" {
		challenge = map[string]any{"type": "static", "secretEnv": ChallengeEnv}
	}
	return settingsJSON(r.URL, challenge, extra)
}

// Secrets resolves ChallengeEnv to ResponderOptions.Challenge.
func (r *Responder) Secrets(name string) (string, error) {
	if name == ChallengeEnv && r.opts.Challenge != "" {
		return r.opts.Challenge, nil
	}
	return "", fmt.Errorf("no secret %s", name)
}

// NDES environment variable names used by StartNDES's settings.
const (
	NDESUserEnv     = "NDES_USER"
	NDESPasswordEnv = "NDES_PASSWORD"
)

// NDES is a stand-in for Microsoft NDES: a Responder with RA certificates
// and NDES's capabilities (triple DES, no AES) that accepts only one-time
// passwords handed out by the NDESAdmin page.
type NDES struct {
	*Responder
	Admin *NDESAdmin
}

// StartNDES starts the pair; opts.RA, opts.Caps and opts.CheckChallenge are
// set for NDES.
func StartNDES(t testing.TB, opts ResponderOptions) *NDES {
	t.Helper()
	admin := StartNDESAdmin(t)
	opts.RA = true
	opts.Caps = "POSTPKIOperation\nRenewal\nSHA-512\nSHA-256\nSHA-1\nDES3"
	opts.CheckChallenge = admin.Use
	return &NDES{Responder: StartResponder(t, opts), Admin: admin}
}

// Settings returns connector settings with challenge type "ndes", the CA
// pinned; extra fields are merged in.
func (n *NDES) Settings(extra map[string]any) json.RawMessage {
	sum := sha256.Sum256(n.CA.Raw)
	m := map[string]any{"caFingerprint": hex.EncodeToString(sum[:])}
	for k, v := range extra {
		m[k] = v
	}
	return settingsJSON(n.URL, map[string]any{
		"type": "ndes", "adminUrl": n.Admin.URL, "usernameEnv": NDESUserEnv, "passwordEnv": NDESPasswordEnv,
	}, m)
}

// Secrets resolves NDESUserEnv and NDESPasswordEnv to the admin account.
func (n *NDES) Secrets(name string) (string, error) {
	switch name {
	case NDESUserEnv:
		return n.Admin.Username, nil
	case NDESPasswordEnv:
		return n.Admin.Password, nil
	}
	return "", fmt.Errorf("no secret %s", name)
}
