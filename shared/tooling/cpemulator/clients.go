package cpemulator

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// Signature algorithm names of the API.
const (
	AlgorithmRSA   = "SIGNATURE_ALGORITHM_RSA_PKCS1_V1_5_SHA256"
	AlgorithmECDSA = "SIGNATURE_ALGORITHM_ECDSA_SHA256"
	algUnspecified = "SIGNATURE_ALGORITHM_UNSPECIFIED"
)

// ClientKind says whether a process belongs to a device or a user session.
type ClientKind int

const (
	// Device is a ChromeOS device (chromeOsDevice).
	Device ClientKind = iota
	// User is a ChromeOS user session (chromeOsUserSession).
	User
)

func (k ClientKind) String() string {
	if k == User {
		return "user"
	}
	return "device"
}

// KeyType is the key pair a simulated client holds. ChromeOS uses RSA-2048
// and EC P-256; the others exist to test the adapter's refusal of keys it does
// not support.
type KeyType int

const (
	RSA2048 KeyType = iota
	ECP256
	RSA1024
	RSA4096
	ECP384
)

func (k KeyType) String() string {
	switch k {
	case RSA2048:
		return "RSA-2048"
	case ECP256:
		return "EC-P256"
	case RSA1024:
		return "RSA-1024"
	case RSA4096:
		return "RSA-4096"
	case ECP384:
		return "EC-P384"
	}
	return "KeyType(" + strconv.Itoa(int(k)) + ")"
}

func (k KeyType) isRSA() bool { return k == RSA2048 || k == RSA1024 || k == RSA4096 }

// algorithm is the API's signature algorithm for the key.
func (k KeyType) algorithm() string {
	if k.isRSA() {
		return AlgorithmRSA
	}
	return AlgorithmECDSA
}

// Behaviour is what a simulated client does when asked to sign.
type Behaviour int

const (
	// Honest signs the signData bytes with its key after SignDelay
	// (RSASSA-PKCS1-v1_5 SHA-256, or ECDSA SHA-256 ASN.1 DER).
	Honest Behaviour = iota
	// Silent never signs: the operation is never done (an offline device).
	Silent
	// Wrong signs with another key of the same kind: the operation completes
	// with a signature that does not verify against the process's key (the
	// API cannot know; the adapter must check).
	Wrong
	// Garbage returns random bytes as the signature.
	Garbage
	// Reject fails the process after SignDelay, as in the guide's sample: the
	// operation ends with error code 3 naming RejectState, and the process
	// gets failureMessage RejectMessage.
	Reject
)

func (b Behaviour) String() string {
	switch b {
	case Honest:
		return "honest"
	case Silent:
		return "silent"
	case Wrong:
		return "wrong"
	case Garbage:
		return "garbage"
	case Reject:
		return "reject"
	}
	return "Behaviour(" + strconv.Itoa(int(b)) + ")"
}

// Default adapter config references, as in the guide's samples.
const (
	DefaultCARef             = "default_ca_config"
	DefaultDeviceProfileRef  = "device_profile"
	DefaultUserProfileRef    = "user_profile"
	DefaultRejectState       = "CERTIFICATE_PROVISIONING_RESULT_ERROR_INVALID_SIGNATURE"
	DefaultRejectMessage     = "The proof of possession signature is invalid."
	RepeatedSignDataMessage  = "proof of possession requested more than once"
	repeatedSignDataState    = "CERTIFICATE_PROVISIONING_RESULT_ERROR_CLIENT_FAILURE"
	adapterFailureState      = "CERTIFICATE_PROVISIONING_RESULT_ERROR_ADAPTER_FAILURE"
	defaultUserEmailTemplate = "user-%d@example.com"
)

// A client that misses the push of its signData (asleep, offline, behind a
// network that drops it) checks in about 30 s, 2 min and 8 min after its
// process started, then every 8 hours (the handbook's api.md). Chromium's
// back-off jitter brings each check-in up to CheckInJitter earlier, never
// later. CheckInsFrom builds a ClientSpec.CheckIns from them.
var (
	DocumentedCheckIns = []time.Duration{30 * time.Second, 2 * time.Minute, 8 * time.Minute}
	CheckInEvery       = 8 * time.Hour
)

// CheckInJitter is the most by which a check-in comes early, as a fraction.
const CheckInJitter = 0.1

// CheckInsFrom is the check-ins of a client that is first online at
// documented check-in k (0: 30 s) and then at every later one, up to and
// including horizon after its start, each brought forward by CheckInJitter
// times a draw of early (values in [0,1)); all divided by scale (a
// time-scaled run; 0 or 1: real time).
func CheckInsFrom(k int, horizon time.Duration, early func() float64, scale float64) []time.Duration {
	if scale <= 0 {
		scale = 1
	}
	var out []time.Duration
	at := func(d time.Duration) {
		d = time.Duration(float64(d) * (1 - CheckInJitter*early()) / scale)
		out = append(out, d)
	}
	last := DocumentedCheckIns[len(DocumentedCheckIns)-1]
	for _, c := range DocumentedCheckIns[min(max(k, 0), len(DocumentedCheckIns)):] {
		at(c)
	}
	for d := last + CheckInEvery; d <= horizon; d += CheckInEvery {
		at(d)
	}
	return out
}

// ClientSpec describes a simulated client and the process it starts.
type ClientSpec struct {
	// Customer is the obfuscated customer id. Required.
	Customer string
	// ProcessID is the process id; default a random UUID-like id.
	ProcessID string
	Kind      ClientKind
	// Key is the key pair the client generates; default RSA-2048.
	Key KeyType
	// Signer, when set, is the client's key instead of a generated one (Key is
	// then ignored). It must be *rsa.PrivateKey or *ecdsa.PrivateKey.
	Signer crypto.Signer
	// Behaviour when asked to sign; default Honest.
	Behaviour Behaviour
	// SignDelay is how long after signData the client answers (its
	// check-in delay). 0: the signature is there at the next read.
	SignDelay time.Duration
	// CheckIns, when set, make a client that missed the push of signData:
	// it answers at the first of these times (counted from the process's
	// start) that is not before signData, and never when none is left
	// (SignDelay is then not used). See DocumentedCheckIns.
	CheckIns []time.Duration
	// ClaimedBy pre-claims the process for another caller instance id
	// ("claimed elsewhere").
	ClaimedBy string
	// CARef is the caConnectionAdapterConfigReference; default
	// DefaultCARef.
	CARef string
	// ProfileRef is the profileAdapterConfigReference of a generic profile;
	// default DefaultDeviceProfileRef or DefaultUserProfileRef.
	ProfileRef string
	// SCEP, when set, makes the process a SCEP one (scepCaConnection with
	// CARef, and this scepProfile) instead of a generic one.
	SCEP *ScepSpec
	// ProvisioningProfileID; default a random UUID.
	ProvisioningProfileID string

	// DeviceID and Serial of the device (devices and affiliated users);
	// defaults random.
	DeviceID, Serial string
	// Email and UserID of a user session; defaults user-N@example.com and a
	// random numeric id.
	Email, UserID string
	// Affiliated adds the device to a user session (chromeOsUserSession.chromeOsDevice).
	Affiliated bool

	// RejectState and RejectMessage are used by the Reject behaviour;
	// defaults DefaultRejectState and DefaultRejectMessage.
	RejectState, RejectMessage string
}

// ScepSpec is the scepProfile of a SCEP process.
type ScepSpec struct {
	SubjectCommonName       string
	Organization            string
	OrganizationalUnits     []string
	Locality                string
	State                   string
	Country                 string
	SubjectAltNames         []SubjectAltName
	KeyUsages               []string // KEY_USAGE_SIGNING, KEY_USAGE_KEY_ENCIPHERMENT
	CertificateTemplateName string
}

// SubjectAltName is one SAN of a SCEP profile. Type is RFC822_NAME, DNS_NAME,
// OTHER_NAME_USER_PRINCIPAL_NAME or UNIFORM_RESOURCE_IDENTIFIER.
type SubjectAltName struct {
	Type  string `json:"type,omitempty"`
	Value string `json:"value,omitempty"`
}

// AddClient creates a process for a new simulated client and publishes its
// notification (Options.Publish). When publishing fails the process exists
// anyway: the name is returned with the error, and Notify can publish again.
func (e *Emulator) AddClient(ctx context.Context, spec ClientSpec) (string, error) {
	if spec.Customer == "" {
		return "", errors.New("cpemulator: add client: Customer is required")
	}
	p, err := e.newProcess(spec)
	if err != nil {
		return "", fmt.Errorf("cpemulator: add client: %w", err)
	}
	e.mu.Lock()
	if _, dup := e.procs[p.name]; dup {
		e.mu.Unlock()
		return "", fmt.Errorf("cpemulator: add client: process %s already exists", p.name)
	}
	e.procs[p.name] = p
	e.order = append(e.order, p)
	e.mu.Unlock()
	return p.name, e.Notify(ctx, p.name)
}

// Notify publishes the creation notification of an existing process again
// (a duplicate delivery). It does nothing when Options.Publish is nil.
func (e *Emulator) Notify(ctx context.Context, name string) error {
	p := e.lookup(name)
	if p == nil {
		return fmt.Errorf("cpemulator: notify: no process %s", name)
	}
	if e.opts.Publish == nil {
		return nil
	}
	var data []byte
	switch e.opts.Encoding {
	case NotifyJSON:
		data = EncodeNotificationJSON(p.customer, p.id)
	case NotifyAlternate:
		if e.notifyN.Add(1)%2 == 0 {
			data = EncodeNotificationJSON(p.customer, p.id)
		} else {
			data = EncodeNotificationBinary(p.customer, p.id)
		}
	default:
		data = EncodeNotificationBinary(p.customer, p.id)
	}
	if err := e.opts.Publish(ctx, data, nil); err != nil {
		return fmt.Errorf("cpemulator: publish notification for %s: %w", name, err)
	}
	return nil
}

func (e *Emulator) newProcess(spec ClientSpec) (*process, error) {
	p := &process{
		customer:  spec.Customer,
		id:        spec.ProcessID,
		kind:      spec.Kind,
		behaviour: spec.Behaviour,
		delay:     spec.SignDelay,
		checkIns:  append([]time.Duration(nil), spec.CheckIns...),
		claimedBy: spec.ClaimedBy,
		created:   e.now(),
		profileID: spec.ProvisioningProfileID,
	}
	if p.id == "" {
		p.id = uuid()
	}
	p.name = processName(p.customer, p.id)
	if p.profileID == "" {
		p.profileID = uuid()
	}
	if p.delay < 0 {
		p.delay = 0
	}

	if spec.Signer != nil {
		kt, err := keyTypeOf(spec.Signer.Public())
		if err != nil {
			return nil, err
		}
		spki, err := x509.MarshalPKIXPublicKey(spec.Signer.Public())
		if err != nil {
			return nil, fmt.Errorf("marshal public key: %w", err)
		}
		p.keyType, p.signer, p.spki = kt, spec.Signer, spki
	} else {
		k, err := e.clientKey(spec.Key)
		if err != nil {
			return nil, err
		}
		p.keyType, p.signer, p.spki = spec.Key, k.signer, k.spki
	}

	device := &deviceJSON{DeviceDirectoryAPIID: spec.DeviceID, SerialNumber: spec.Serial}
	if device.DeviceDirectoryAPIID == "" {
		device.DeviceDirectoryAPIID = uuid()
	}
	if device.SerialNumber == "" {
		device.SerialNumber = serial()
	}
	switch spec.Kind {
	case Device:
		p.device = device
	case User:
		u := &userJSON{UserPrimaryEmail: spec.Email, UserDirectoryAPIID: spec.UserID}
		if u.UserPrimaryEmail == "" {
			u.UserPrimaryEmail = fmt.Sprintf(defaultUserEmailTemplate, e.userN.Add(1))
		}
		if u.UserDirectoryAPIID == "" {
			u.UserDirectoryAPIID = digits(21)
		}
		if spec.Affiliated {
			u.ChromeOsDevice = device
		}
		p.user = u
	default:
		return nil, fmt.Errorf("unknown client kind %d", spec.Kind)
	}

	caRef := spec.CARef
	if caRef == "" {
		caRef = DefaultCARef
	}
	p.caConn = &caConnectionJSON{Ref: caRef}
	if spec.SCEP != nil {
		s := *spec.SCEP
		p.scep = &s
	} else {
		p.profileRef = spec.ProfileRef
		if p.profileRef == "" {
			p.profileRef = DefaultDeviceProfileRef
			if spec.Kind == User {
				p.profileRef = DefaultUserProfileRef
			}
		}
	}
	switch spec.Behaviour {
	case Honest, Silent, Wrong, Garbage:
	case Reject:
		p.rejectState, p.rejectMessage = spec.RejectState, spec.RejectMessage
		if p.rejectState == "" {
			p.rejectState = DefaultRejectState
		}
		if p.rejectMessage == "" {
			p.rejectMessage = DefaultRejectMessage
		}
	default:
		return nil, fmt.Errorf("unknown behaviour %d", spec.Behaviour)
	}
	return p, nil
}

func keyTypeOf(pub crypto.PublicKey) (KeyType, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 1024:
			return RSA1024, nil
		case 2048:
			return RSA2048, nil
		case 4096:
			return RSA4096, nil
		}
		return 0, fmt.Errorf("unsupported RSA key size %d", k.N.BitLen())
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return ECP256, nil
		case elliptic.P384():
			return ECP384, nil
		}
		return 0, fmt.Errorf("unsupported curve %s", k.Curve.Params().Name)
	}
	return 0, fmt.Errorf("unsupported key type %T", pub)
}

// clientKey is a key pair with its DER SubjectPublicKeyInfo.
type clientKey struct {
	signer crypto.Signer
	spki   []byte
}

func newKey(kt KeyType) (clientKey, error) {
	var s crypto.Signer
	var err error
	switch kt {
	case RSA2048:
		s, err = rsa.GenerateKey(rand.Reader, 2048)
	case RSA1024:
		s, err = rsa.GenerateKey(rand.Reader, 1024)
	case RSA4096:
		s, err = rsa.GenerateKey(rand.Reader, 4096)
	case ECP256:
		s, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ECP384:
		s, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	default:
		return clientKey{}, fmt.Errorf("unknown key type %d", kt)
	}
	if err != nil {
		return clientKey{}, fmt.Errorf("generate %s key: %w", kt, err)
	}
	spki, err := x509.MarshalPKIXPublicKey(s.Public())
	if err != nil {
		return clientKey{}, fmt.Errorf("marshal %s public key: %w", kt, err)
	}
	return clientKey{signer: s, spki: spki}, nil
}

// The RSA key pool is shared by every Emulator of the process (tests create
// many), and grows lazily: slot i is generated the first time it is needed.
type poolSlot struct {
	once sync.Once
	key  clientKey
	err  error
}

type poolIndex struct {
	kt  KeyType
	idx int
}

var (
	poolMu sync.Mutex
	pool   = map[poolIndex]*poolSlot{}
)

// pooledKey returns slot idx of the pool for kt; idx -1 is a key that no
// client holds (used by the Wrong behaviour).
func pooledKey(kt KeyType, idx int) (clientKey, error) {
	poolMu.Lock()
	s := pool[poolIndex{kt, idx}]
	if s == nil {
		s = &poolSlot{}
		pool[poolIndex{kt, idx}] = s
	}
	poolMu.Unlock()
	s.once.Do(func() { s.key, s.err = newKey(kt) })
	return s.key, s.err
}

func (e *Emulator) clientKey(kt KeyType) (clientKey, error) {
	switch kt {
	case ECP256, ECP384:
		return newKey(kt)
	case RSA2048, RSA1024:
		return pooledKey(kt, int(e.rsaNext.Add(1)%uint64(e.opts.KeyPoolSize)))
	case RSA4096:
		return pooledKey(kt, 0)
	}
	return clientKey{}, fmt.Errorf("unknown key type %d", kt)
}

// sign computes what the client answers for data, by behaviour. Reject and
// Silent have no signature.
func (p *process) sign(data []byte) ([]byte, error) {
	switch p.behaviour {
	case Honest:
		return signWith(p.signer, data)
	case Wrong:
		var other crypto.Signer
		if p.keyType.isRSA() {
			k, err := pooledKey(p.keyType, -1)
			if err != nil {
				return nil, err
			}
			other = k.signer
		} else {
			k, err := newKey(p.keyType)
			if err != nil {
				return nil, err
			}
			other = k.signer
		}
		return signWith(other, data)
	case Garbage:
		n := 72 // about an ECDSA P-256 DER signature
		if k, ok := p.signer.Public().(*rsa.PublicKey); ok {
			n = k.Size()
		}
		b := make([]byte, n)
		_, _ = rand.Read(b)
		return b, nil
	}
	return nil, nil
}

// signWith signs as ChromeOS does: RSASSA-PKCS1-v1_5 over SHA-256, or ECDSA
// over SHA-256 with an ASN.1 DER SEQUENCE {r, s}.
func signWith(s crypto.Signer, data []byte) ([]byte, error) {
	h := crypto.SHA256.New()
	h.Write(data)
	digest := h.Sum(nil)
	switch k := s.(type) {
	case *rsa.PrivateKey:
		return rsa.SignPKCS1v15(nil, k, crypto.SHA256, digest)
	case *ecdsa.PrivateKey:
		return ecdsa.SignASN1(rand.Reader, k, digest)
	}
	return s.Sign(rand.Reader, digest, crypto.SHA256)
}

func uuid() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func serial() string {
	const alphabet = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"
	var b [10]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:])
}

func digits(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = '0' + b[i]%10
	}
	if b[0] == '0' {
		b[0] = '1'
	}
	return string(b)
}
