package cpemulator

import (
	"bytes"
	"crypto"
	"encoding/json"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// State is where a process stands, as the emulator sees it.
type State string

const (
	StateCreated  State = "created"  // not claimed
	StateClaimed  State = "claimed"  // claimed, no signData yet
	StateSigning  State = "signing"  // signData accepted, the client has not answered
	StateSigned   State = "signed"   // the client's signature is available
	StateUploaded State = "uploaded" // a certificate was uploaded
	StateFailed   State = "failed"   // failureMessage is set
)

// Snapshot is a copy of a process's state for tests and reports.
type Snapshot struct {
	Name      string
	Customer  string
	ID        string
	Kind      ClientKind
	Key       KeyType
	Behaviour Behaviour
	SignDelay time.Duration
	State     State
	PublicKey crypto.PublicKey
	SPKI      []byte // DER SubjectPublicKeyInfo
	Created   time.Time
	ClaimedBy string
	// RepeatClaimsRefused counts repeat claims by the holder that were
	// refused (Options.RefuseRepeatClaims, Options.RefuseRepeatClaim).
	RepeatClaimsRefused int
	IsSCEP              bool
	CARef               string
	ProfileRef          string // generic profiles only

	// SignDataCalls counts accepted signData requests: how many times the
	// client was asked to sign (a lost answer counts). More than one is a
	// violation.
	SignDataCalls int
	// SignDataRequests counts signData requests that reached the process,
	// refused ones included (injected faults excluded).
	SignDataRequests   int
	SignData           []byte
	SignatureAlgorithm string
	SignDataAt         time.Time
	Operations         []string // operation names, in order
	Signature          []byte
	// SignedAt is when the signature became available: the first signData
	// time plus SignDelay. Zero while it is not.
	SignedAt time.Time

	// UploadCalls counts accepted uploads, repeats of the same certificate
	// included; RepeatedUploads counts those repeats.
	UploadCalls     int
	RepeatedUploads int
	UploadedPEM     string
	UploadedAt      time.Time

	FailureMessage string
	FailedAt       time.Time
	// FailedBy is "adapter" (setFailure) or "client" (Reject, a second
	// signData); empty while not failed.
	FailedBy string
	// SetFailureCalls counts accepted setFailure requests.
	SetFailureCalls int

	// Requests counts every request addressed to this process by method
	// (same keys as Calls), injected faults included.
	Requests map[string]int
}

func (p *process) snapshot(now time.Time) Snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.advance(now)
	s := Snapshot{
		Name: p.name, Customer: p.customer, ID: p.id, Kind: p.kind, Key: p.keyType,
		Behaviour: p.behaviour, SignDelay: p.delay, PublicKey: p.signer.Public(),
		SPKI: bytes.Clone(p.spki), Created: p.created, ClaimedBy: p.claimedBy,
		RepeatClaimsRefused: p.repeatClaimsRefused,
		IsSCEP:              p.scep != nil, CARef: p.caConn.Ref, ProfileRef: p.profileRef,
		SignDataCalls: p.signDataOK, SignDataRequests: p.signDataSeen,
		SignData: bytes.Clone(p.signData), SignatureAlgorithm: p.algorithm, SignDataAt: p.signDataAt,
		Signature: bytes.Clone(p.signature), SignedAt: p.signedAt,
		UploadCalls: p.uploadOK, RepeatedUploads: p.repeatedUploads, UploadedPEM: p.uploadedPEM, UploadedAt: p.uploadedAt,
		FailureMessage: p.failure, FailedAt: p.failedAt, FailedBy: p.failedBy, SetFailureCalls: p.setFailures,
		Requests: make(map[string]int, numMethods),
	}
	if p.scep != nil {
		s.SignatureAlgorithm = p.keyType.algorithm()
	}
	for _, op := range p.ops {
		s.Operations = append(s.Operations, p.operationName(op))
	}
	for i, n := range methodNames {
		s.Requests[n] = int(p.requests[i].Load())
	}
	switch {
	case p.uploaded():
		s.State = StateUploaded
	case p.failed():
		s.State = StateFailed
	case p.signature != nil:
		s.State = StateSigned
	case len(p.ops) > 0:
		s.State = StateSigning
	case p.claimedBy != "":
		s.State = StateClaimed
	default:
		s.State = StateCreated
	}
	return s
}

// Process returns a snapshot of the named process.
func (e *Emulator) Process(name string) (Snapshot, bool) {
	p := e.lookup(name)
	if p == nil {
		return Snapshot{}, false
	}
	return p.snapshot(e.now()), true
}

// Processes returns snapshots of every process, in creation order.
func (e *Emulator) Processes() []Snapshot {
	e.mu.RLock()
	procs := append([]*process(nil), e.order...)
	e.mu.RUnlock()
	now := e.now()
	out := make([]Snapshot, len(procs))
	for i, p := range procs {
		out[i] = p.snapshot(now)
	}
	return out
}

// Len returns the number of processes.
func (e *Emulator) Len() int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return len(e.order)
}

// ViolationKind names a misuse of the API by the adapter.
type ViolationKind string

const (
	// ViolationRepeatedSignData: signData accepted a second time for a
	// process; the client failed the process.
	ViolationRepeatedSignData ViolationKind = "signData.repeated"
	// ViolationSignDataUnclaimed: signData on a process nobody claimed.
	ViolationSignDataUnclaimed ViolationKind = "signData.unclaimed"
	// ViolationUploadInvalid: the PEM was not exactly one X.509 certificate.
	ViolationUploadInvalid ViolationKind = "uploadCertificate.invalid"
	// ViolationUploadKeyMismatch: the certificate's key is not the process's.
	ViolationUploadKeyMismatch ViolationKind = "uploadCertificate.keyMismatch"
	// ViolationUploadReplaced: a different certificate after a successful upload.
	ViolationUploadReplaced ViolationKind = "uploadCertificate.replaced"
)

// Violation is one recorded misuse.
type Violation struct {
	Kind    ViolationKind
	Process string
	At      time.Time
	Detail  string
}

func (e *Emulator) violate(name string, kind ViolationKind, at time.Time, detail string) {
	e.vmu.Lock()
	defer e.vmu.Unlock()
	e.violations = append(e.violations, Violation{Kind: kind, Process: name, At: at, Detail: detail})
}

// Violations returns every recorded violation, oldest first.
func (e *Emulator) Violations() []Violation {
	e.vmu.Lock()
	defer e.vmu.Unlock()
	return append([]Violation(nil), e.violations...)
}

// ViolationCounts returns the number of violations by kind.
func (e *Emulator) ViolationCounts() map[ViolationKind]int {
	e.vmu.Lock()
	defer e.vmu.Unlock()
	m := map[ViolationKind]int{}
	for _, v := range e.violations {
		m[v.Kind]++
	}
	return m
}

// Field numbers of CertificateProvisioningPubsubNotification and
// CertificateProvisioningProcessCreatedEventData.
const (
	fieldCreatedEvent = 1
	fieldProcessID    = 1
	fieldCustomerID   = 2
)

// EncodeNotificationBinary returns a binary protobuf
// CertificateProvisioningPubsubNotification announcing a new process.
func EncodeNotificationBinary(customerID, processID string) []byte {
	var inner []byte
	if processID != "" {
		inner = protowire.AppendTag(inner, fieldProcessID, protowire.BytesType)
		inner = protowire.AppendString(inner, processID)
	}
	if customerID != "" {
		inner = protowire.AppendTag(inner, fieldCustomerID, protowire.BytesType)
		inner = protowire.AppendString(inner, customerID)
	}
	b := protowire.AppendTag(nil, fieldCreatedEvent, protowire.BytesType)
	return protowire.AppendBytes(b, inner)
}

// EncodeNotificationJSON returns the same notification as proto3 JSON:
// {"certificateProvisioningProcessCreatedEventData":{"certificateProvisioningProcessId":...,"customerId":...}}.
func EncodeNotificationJSON(customerID, processID string) []byte {
	type eventData struct {
		ProcessID  string `json:"certificateProvisioningProcessId,omitempty"`
		CustomerID string `json:"customerId,omitempty"`
	}
	b, _ := json.Marshal(struct {
		Event eventData `json:"certificateProvisioningProcessCreatedEventData"`
	}{eventData{ProcessID: processID, CustomerID: customerID}})
	return b
}
