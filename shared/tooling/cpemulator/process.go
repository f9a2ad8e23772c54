package cpemulator

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// process is one certificate provisioning process and its simulated client.
type process struct {
	// Fixed at creation.
	name          string
	customer, id  string
	kind          ClientKind
	behaviour     Behaviour
	keyType       KeyType
	signer        crypto.Signer
	spki          []byte
	delay         time.Duration
	checkIns      []time.Duration // from created; none: the push reaches the client
	created       time.Time
	profileID     string
	device        *deviceJSON
	user          *userJSON
	caConn        *caConnectionJSON
	profileRef    string    // generic profile
	scep          *ScepSpec // SCEP profile
	rejectState   string
	rejectMessage string

	requests [numMethods]atomic.Int64

	mu sync.Mutex
	// claim
	claimedBy string
	// repeatClaimsRefused counts repeat claims by the holder that were
	// refused (Options.RefuseRepeatClaims, Options.RefuseRepeatClaim).
	repeatClaimsRefused int
	// signData
	signData     []byte
	algorithm    string
	signDataAt   time.Time
	ops          []*operation
	clientDue    time.Time // when the client acts on the first signData; zero: nothing pending
	pendingSig   []byte    // what it will answer
	signature    []byte    // visible once the client answered
	signedAt     time.Time
	signDataOK   int // signData requests accepted (the client was asked)
	signDataSeen int // signData requests that reached the process
	// upload
	uploadedDER     []byte
	uploadedPEM     string
	uploadedAt      time.Time
	uploadOK        int
	repeatedUploads int
	// failure
	failure     string
	failState   string
	failedAt    time.Time
	failedBy    string // "adapter" or "client"
	setFailures int
}

// operation is a signData operation. Its outcome follows the process: only
// the first one can be answered with a signature.
type operation struct {
	id      string
	started time.Time
}

// advance applies what the client has done by now: its signature or its
// rejection becomes visible once clientDue has passed.
func (p *process) advance(now time.Time) {
	if p.clientDue.IsZero() || now.Before(p.clientDue) {
		return
	}
	due := p.clientDue
	p.clientDue = time.Time{}
	if p.behaviour == Reject {
		p.fail(due, p.rejectState, p.rejectMessage, "client")
		return
	}
	p.signature, p.signedAt = p.pendingSig, due
	p.pendingSig = nil
}

// answersAt is when the client answers a signData asked at now: SignDelay
// later when the push reached it, else at its next check-in; ok false: never.
func (p *process) answersAt(now time.Time) (time.Time, bool) {
	if p.behaviour == Silent {
		return time.Time{}, false
	}
	if len(p.checkIns) == 0 {
		return now.Add(p.delay), true
	}
	for _, c := range p.checkIns {
		if t := p.created.Add(c); !t.Before(now) {
			return t, true
		}
	}
	return time.Time{}, false
}

func (p *process) fail(at time.Time, state, msg, by string) {
	p.failure, p.failState, p.failedAt, p.failedBy = msg, state, at, by
	p.clientDue, p.pendingSig = time.Time{}, nil
}

func (p *process) failed() bool   { return p.failure != "" }
func (p *process) uploaded() bool { return p.uploadedDER != nil }

// JSON shapes of the API's resources (field names and order as the service
// prints them; empty fields omitted, bytes as standard base64).
type processJSON struct {
	Name                  string              `json:"name"`
	ProvisioningProfileID string              `json:"provisioningProfileId,omitempty"`
	SubjectPublicKeyInfo  []byte              `json:"subjectPublicKeyInfo,omitempty"`
	ChromeOsDevice        *deviceJSON         `json:"chromeOsDevice,omitempty"`
	ChromeOsUserSession   *userJSON           `json:"chromeOsUserSession,omitempty"`
	StartTime             string              `json:"startTime,omitempty"`
	SignData              []byte              `json:"signData,omitempty"`
	SignatureAlgorithm    string              `json:"signatureAlgorithm,omitempty"`
	Signature             []byte              `json:"signature,omitempty"`
	GenericCaConnection   *caConnectionJSON   `json:"genericCaConnection,omitempty"`
	ScepCaConnection      *caConnectionJSON   `json:"scepCaConnection,omitempty"`
	GenericProfile        *genericProfileJSON `json:"genericProfile,omitempty"`
	ScepProfile           *scepProfileJSON    `json:"scepProfile,omitempty"`
	IssuedCertificate     string              `json:"issuedCertificate,omitempty"`
	FailureMessage        string              `json:"failureMessage,omitempty"`
}

type deviceJSON struct {
	DeviceDirectoryAPIID string `json:"deviceDirectoryApiId,omitempty"`
	SerialNumber         string `json:"serialNumber,omitempty"`
}

type userJSON struct {
	UserPrimaryEmail   string      `json:"userPrimaryEmail,omitempty"`
	UserDirectoryAPIID string      `json:"userDirectoryApiId,omitempty"`
	ChromeOsDevice     *deviceJSON `json:"chromeOsDevice,omitempty"`
}

type caConnectionJSON struct {
	Ref string `json:"caConnectionAdapterConfigReference,omitempty"`
}

type genericProfileJSON struct {
	Ref string `json:"profileAdapterConfigReference,omitempty"`
}

type scepProfileJSON struct {
	SubjectCommonName       string           `json:"subjectCommonName,omitempty"`
	Organization            string           `json:"organization,omitempty"`
	OrganizationalUnits     []string         `json:"organizationalUnits,omitempty"`
	Locality                string           `json:"locality,omitempty"`
	State                   string           `json:"state,omitempty"`
	Country                 string           `json:"country,omitempty"`
	SubjectAltNames         []SubjectAltName `json:"subjectAltNames,omitempty"`
	KeyUsages               []string         `json:"keyUsages,omitempty"`
	CertificateTemplateName string           `json:"certificateTemplateName,omitempty"`
}

const (
	typeSignDataMetadata = "type.googleapis.com/google.chrome.management.versions.v1.SignDataMetadata"
	typeSignDataResponse = "type.googleapis.com/google.chrome.management.versions.v1.SignDataResponse"
)

type operationJSON struct {
	Name     string            `json:"name"`
	Metadata *metadataJSON     `json:"metadata,omitempty"`
	Done     bool              `json:"done,omitempty"`
	Error    *statusJSON       `json:"error,omitempty"`
	Response *signResponseJSON `json:"response,omitempty"`
}

type metadataJSON struct {
	Type      string `json:"@type"`
	StartTime string `json:"startTime,omitempty"`
}

type signResponseJSON struct {
	Type    string       `json:"@type"`
	Process *processJSON `json:"certificateProvisioningProcess,omitempty"`
}

type statusJSON struct {
	Code    int    `json:"code"`
	Message string `json:"message,omitempty"`
}

// resource renders the process as the API shows it now. Call with p.mu held,
// after advance.
func (p *process) resource() *processJSON {
	r := &processJSON{
		Name:                  p.name,
		ProvisioningProfileID: p.profileID,
		SubjectPublicKeyInfo:  p.spki,
		ChromeOsDevice:        p.device,
		ChromeOsUserSession:   p.user,
		StartTime:             timestamp(p.created),
		SignData:              p.signData,
		SignatureAlgorithm:    p.algorithm,
		Signature:             p.signature,
		IssuedCertificate:     p.uploadedPEM,
		FailureMessage:        p.failure,
	}
	if p.scep != nil {
		s := p.scep
		r.ScepCaConnection = p.caConn
		r.ScepProfile = &scepProfileJSON{
			SubjectCommonName: s.SubjectCommonName, Organization: s.Organization,
			OrganizationalUnits: s.OrganizationalUnits, Locality: s.Locality, State: s.State,
			Country: s.Country, SubjectAltNames: s.SubjectAltNames, KeyUsages: s.KeyUsages,
			CertificateTemplateName: s.CertificateTemplateName,
		}
		// For SCEP profiles the algorithm is known from the start.
		r.SignatureAlgorithm = p.keyType.algorithm()
	} else {
		r.GenericCaConnection = p.caConn
		r.GenericProfile = &genericProfileJSON{Ref: p.profileRef}
	}
	return r
}

func (p *process) operationName(op *operation) string {
	return p.name + "/operations/" + op.id
}

// operationResource renders an operation. Call with p.mu held, after advance.
func (p *process) operationResource(op *operation) *operationJSON {
	o := &operationJSON{
		Name:     p.operationName(op),
		Metadata: &metadataJSON{Type: typeSignDataMetadata, StartTime: timestamp(op.started)},
	}
	switch {
	case op == p.ops[0] && p.signature != nil:
		// Only the first signData is ever signed; it stays answered even if
		// the process fails later.
		o.Done = true
		o.Response = &signResponseJSON{Type: typeSignDataResponse, Process: p.resource()}
	case p.failed():
		o.Done, o.Error = true, p.operationError(op, p.failState, p.failure)
	}
	return o
}

// operationError words the error as the guide's sample does. Choice: every
// failure state gives code 3, as in the sample; the state names other than
// ..._INVALID_SIGNATURE are made up (the real ones are not documented).
func (p *process) operationError(op *operation, state, msg string) *statusJSON {
	if !strings.HasSuffix(msg, ".") {
		msg += "."
	}
	return &statusJSON{Code: 3, Message: fmt.Sprintf(
		"The requested SignData LRO failed because the corresponding certificate provisioning process is in failure state %s with the following error message: %s [operationId=%s, cppId=%s, customerId=%s]",
		state, msg, op.id, p.id, p.customer)}
}

var empty = struct{}{}

func (e *Emulator) get(p *process, now time.Time) (any, *apiError) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.advance(now)
	return p.resource(), nil
}

// claim: the first caller instance id wins. A repeat claim with the same id
// succeeds again ({}), or is refused like any other when
// Options.RefuseRepeatClaims is set (or Options.RefuseRepeatClaim says so for
// this process): the real API documents neither (the
// adapter must not rely on it). A claim on a failed or finished process is
// refused like a claim by another instance.
func (e *Emulator) claim(p *process, body []byte, now time.Time) (any, *apiError) {
	req, aerr := decodeRequest(body, claimRequest)
	if aerr != nil {
		return nil, aerr
	}
	caller := req.str("callerInstanceId")
	if caller == "" {
		return nil, errInvalid("callerInstanceId is required.")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.advance(now)
	switch {
	case p.failed():
		return nil, errPrecondition("The certificate provisioning process has already failed and cannot be claimed.")
	case p.uploaded():
		return nil, errPrecondition("The certificate provisioning process has already finished and cannot be claimed.")
	case p.claimedBy == "":
		p.claimedBy = caller
		return empty, nil
	case p.claimedBy == caller && !e.refusesRepeatClaim(p.name):
		return empty, nil
	case p.claimedBy == caller:
		p.repeatClaimsRefused++
	}
	return nil, errPrecondition("The certificate provisioning process has already been claimed by another caller instance.")
}

// refusesRepeatClaim reports whether a repeat claim on the named process by
// its holder is refused.
func (e *Emulator) refusesRepeatClaim(name string) bool {
	return e.opts.RefuseRepeatClaims || (e.opts.RefuseRepeatClaim != nil && e.opts.RefuseRepeatClaim(name))
}

// signData asks the client to sign, once. Choice: a second request is
// accepted (200, a new operation), as the API only relays it, and the client
// then fails the process with RepeatedSignDataMessage: every operation not yet
// answered ends with that error, and a violation is recorded (also when the
// process had already ended and the request is refused).
func (e *Emulator) signData(p *process, body []byte, now time.Time) (any, *apiError) {
	req, aerr := decodeRequest(body, signRequest)
	if aerr != nil {
		return nil, aerr
	}
	data, alg := req.bytes("signData"), req.str("signatureAlgorithm")
	if len(data) == 0 {
		return nil, errInvalid("signData is required.")
	}
	if alg == "" || alg == algUnspecified {
		return nil, errInvalid("signatureAlgorithm is required.")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.advance(now)
	p.signDataSeen++
	if p.claimedBy == "" {
		e.violate(p.name, ViolationSignDataUnclaimed, now, "signData before any claim")
		return nil, errPrecondition("The certificate provisioning process has not been claimed.")
	}
	repeated := len(p.ops) > 0
	if repeated {
		e.violate(p.name, ViolationRepeatedSignData, now, fmt.Sprintf("signData request %d", p.signDataSeen))
	}
	switch {
	case p.failed():
		return nil, errPrecondition("The certificate provisioning process has already failed.")
	case p.uploaded():
		return nil, errPrecondition("The certificate provisioning process has already finished.")
	case alg != p.keyType.algorithm():
		return nil, errInvalid(fmt.Sprintf("Signature algorithm %s does not match the client's %s key.", alg, p.keyType))
	}
	var sig []byte
	if !repeated {
		var err error
		if sig, err = p.sign(data); err != nil {
			return nil, &apiError{HTTP: 500, Status: "INTERNAL", Message: "emulated client failed to sign: " + err.Error()}
		}
	}
	p.signDataOK++
	op := &operation{id: uuid(), started: now}
	p.ops = append(p.ops, op)
	initial := &operationJSON{Name: p.operationName(op), Metadata: &metadataJSON{Type: typeSignDataMetadata, StartTime: timestamp(now)}}
	if repeated {
		// Chromium fails the process when asked for a second proof of
		// possession: this operation and any still pending end with that
		// error (the first stays answered if the client had signed).
		p.fail(now, repeatedSignDataState, RepeatedSignDataMessage, "client")
		return initial, nil
	}
	p.signData, p.algorithm, p.signDataAt = bytes.Clone(data), alg, now
	if due, ok := p.answersAt(now); ok {
		p.pendingSig, p.clientDue = sig, due
	}
	// The client never answers within the signData call itself.
	return initial, nil
}

func (e *Emulator) getOperation(p *process, opID string, now time.Time) (any, *apiError) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, op := range p.ops {
		if op.id == opID {
			p.advance(now)
			return p.operationResource(op), nil
		}
	}
	return nil, errNotFound(fmt.Sprintf("Operation %q not found.", p.name+"/operations/"+opID))
}

// uploadCertificate accepts exactly one PEM CERTIFICATE whose public key is the
// process's (byte for byte), as the ChromeOS client requires. Choice: it also
// needs a claimed, unfailed process whose client has signed; uploading the same
// certificate again succeeds (a retry after a lost answer) and is counted; a
// different one is refused.
func (e *Emulator) uploadCertificate(p *process, body []byte, now time.Time) (any, *apiError) {
	req, aerr := decodeRequest(body, uploadRequest)
	if aerr != nil {
		return nil, aerr
	}
	pemText := req.str("certificatePem")
	if pemText == "" {
		return nil, errInvalid("certificatePem is required.")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.advance(now)
	der, perr := parseOnePEMCertificate(pemText)
	if p.uploaded() {
		if perr == nil && bytes.Equal(der.Raw, p.uploadedDER) {
			p.uploadOK++
			p.repeatedUploads++
			return empty, nil
		}
		e.violate(p.name, ViolationUploadReplaced, now, "a different certificate after a successful upload")
		return nil, errPrecondition("A certificate has already been uploaded for this certificate provisioning process.")
	}
	switch {
	case p.claimedBy == "":
		return nil, errPrecondition("The certificate provisioning process has not been claimed.")
	case p.failed():
		return nil, errPrecondition("The certificate provisioning process has already failed.")
	case p.signature == nil:
		return nil, errPrecondition("The client has not provided the proof of possession signature yet.")
	case perr != nil:
		e.violate(p.name, ViolationUploadInvalid, now, perr.Error())
		return nil, errInvalid("certificatePem: " + perr.Error())
	case !bytes.Equal(der.RawSubjectPublicKeyInfo, p.spki):
		e.violate(p.name, ViolationUploadKeyMismatch, now, "certificate public key differs from the process's")
		return nil, errInvalid("The certificate's public key does not match the public key of the certificate provisioning process.")
	}
	p.uploadedDER, p.uploadedPEM, p.uploadedAt = der.Raw, pemText, now
	p.uploadOK++
	return empty, nil
}

// parseOnePEMCertificate requires exactly one PEM block, of type CERTIFICATE,
// holding an X.509 certificate.
func parseOnePEMCertificate(s string) (*x509.Certificate, error) {
	var blocks []*pem.Block
	rest := []byte(s)
	for {
		b, r := pem.Decode(rest)
		if b == nil {
			break
		}
		blocks = append(blocks, b)
		rest = r
	}
	switch {
	case len(blocks) == 0:
		return nil, fmt.Errorf("no PEM block")
	case len(blocks) > 1:
		return nil, fmt.Errorf("%d PEM blocks, want exactly one certificate", len(blocks))
	case blocks[0].Type != "CERTIFICATE":
		return nil, fmt.Errorf("PEM block of type %q, want CERTIFICATE", blocks[0].Type)
	}
	c, err := x509.ParseCertificate(blocks[0].Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	return c, nil
}

// setFailure fails the process with the adapter's message. Choice: it needs a
// claimed process (only the claimer should report), and the same
// message again on a process the adapter already failed succeeds (a retry);
// anything else on a failed process, and any call after an upload, is refused.
func (e *Emulator) setFailure(p *process, body []byte, now time.Time) (any, *apiError) {
	req, aerr := decodeRequest(body, failureRequest)
	if aerr != nil {
		return nil, aerr
	}
	msg := req.str("errorMessage")
	if msg == "" {
		return nil, errInvalid("errorMessage is required.")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.advance(now)
	switch {
	case p.uploaded():
		return nil, errPrecondition("The certificate provisioning process has already finished.")
	case p.claimedBy == "":
		return nil, errPrecondition("The certificate provisioning process has not been claimed.")
	case p.failed() && p.failedBy == "adapter" && p.failure == msg:
		p.setFailures++
		return empty, nil
	case p.failed():
		return nil, errPrecondition("The certificate provisioning process has already failed.")
	}
	p.setFailures++
	p.fail(now, adapterFailureState, msg, "adapter")
	return empty, nil
}
