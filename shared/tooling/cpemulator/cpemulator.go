// Package cpemulator is an in-process emulator of the Chrome Management
// Certificate Provisioning API (chromemanagement v1,
// customers.certificateProvisioningProcesses), served as an http.Handler, with
// simulated ChromeOS clients that hold real keys and really sign. Tests, the
// local run and the benchmarks point the generated client
// google.golang.org/api/chromemanagement/v1 at it.
//
// It also serves the two Admin SDK Directory API reads that the adapter's
// directory variables use (directory.go), with a directory entry for every
// simulated client's device and user.
//
// It follows the discovery document of google.golang.org/api v0.309.0 (paths,
// JSON field names, base64 bytes, enum names), answers errors in Google's JSON
// form ({"error":{"code","message","status"}}) with the matching HTTP status,
// and enforces the rules of the service and of the ChromeOS client that the
// adapter must live with: one claimer, signData only after a claim and at most
// once (a second request fails the process, as Chromium does), an uploaded
// certificate must carry the process's public key. Where the real behaviour is
// undocumented the choice made here is written next to the code (look for
// "Choice:").
//
// Fault injection (Options.ErrorRate, Options.LostResponseRate,
// Options.Fault, including requests that time out before or after acting) and inspection (Calls, Process, Processes, Violations) serve
// the fault campaign and the reports. Everything is safe for concurrent use and
// sized for tens of thousands of processes: a client's signature appears
// lazily, at the first read after its delay, with no timer per process.
package cpemulator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Method names, as counted by Calls and passed to Options.Fault.
const (
	MethodGet               = "get"
	MethodClaim             = "claim"
	MethodSignData          = "signData"
	MethodOperationsGet     = "operations.get"
	MethodUploadCertificate = "uploadCertificate"
	MethodSetFailure        = "setFailure"
)

var methodNames = [...]string{MethodGet, MethodClaim, MethodSignData, MethodOperationsGet, MethodUploadCertificate, MethodSetFailure}

const (
	mGet = iota
	mClaim
	mSignData
	mOperationsGet
	mUploadCertificate
	mSetFailure
	numMethods
)

// Fault is what Options.Fault asks to happen to one request.
type Fault int

const (
	// NoFault serves the request normally (the random rates still apply).
	NoFault Fault = iota
	// FaultUnavailable answers 503 UNAVAILABLE without acting.
	FaultUnavailable
	// FaultResourceExhausted answers 429 RESOURCE_EXHAUSTED without acting.
	FaultResourceExhausted
	// FaultInternal answers 500 INTERNAL without acting.
	FaultInternal
	// FaultLostResponse acts, then answers 503 UNAVAILABLE instead of the
	// real answer: a timeout after the server did the work.
	FaultLostResponse
	// FaultPass serves the request normally and skips the random rates.
	FaultPass
	// FaultTimeout holds the request without acting until the client gives
	// up (its connection closes) or Options.TimeoutHold passes, then answers
	// 504 DEADLINE_EXCEEDED: a request timed out before it reached the
	// service.
	FaultTimeout
	// FaultTimeoutAfterActing acts, then holds the answer the same way: the
	// client timed out although the service did the work.
	FaultTimeoutAfterActing
)

// NotificationEncoding chooses how AddClient encodes the Pub/Sub notification.
type NotificationEncoding int

const (
	// NotifyBinary sends binary protobuf.
	NotifyBinary NotificationEncoding = iota
	// NotifyJSON sends proto3 JSON.
	NotifyJSON
	// NotifyAlternate alternates binary and JSON, starting with binary.
	NotifyAlternate
)

// Options configure an Emulator. The zero value works.
type Options struct {
	// Publish is called by AddClient (and Notify) with the
	// CertificateProvisioningPubsubNotification of a new process, and nil
	// attributes (the API documents none). Nil: no notification.
	Publish func(ctx context.Context, data []byte, attrs map[string]string) error
	// Encoding of the notifications.
	Encoding NotificationEncoding

	// KeyPoolSize is how many distinct RSA-2048 keys the simulated clients
	// share (RSA key generation is slow). Default 4. EC keys are fresh per
	// client; RSA-1024 uses the same pool size; RSA-4096 always one key.
	KeyPoolSize int

	// ErrorRate is the probability that a request fails with 429
	// RESOURCE_EXHAUSTED or 503 UNAVAILABLE (half each) before acting.
	ErrorRate float64
	// LostResponseRate is the probability that a request that was not failed
	// by ErrorRate is applied but answered with 503 UNAVAILABLE.
	LostResponseRate float64
	// Seed seeds the fault dice, so a campaign can be replayed.
	Seed uint64
	// Fault, when set, decides a fault per request before the random rates:
	// anything but NoFault overrides them. method is one of the Method*
	// constants, processName the process's resource name (also for
	// operations.get). It is called concurrently.
	Fault func(method, processName string) Fault
	// TimeoutHold is how long FaultTimeout and FaultTimeoutAfterActing hold a
	// request whose client does not give up first; default one minute.
	TimeoutHold time.Duration

	// Now is the clock; default time.Now. Tests pass a settable clock so a
	// client's SignDelay elapses without sleeping.
	Now func() time.Time
	// Sleep, when set, is how a timed-out request is held (TimeoutHold):
	// it waits d on the emulator's clock or until ctx ends. Default a real
	// timer. A virtual clock passes its own, so that the hold takes clock
	// time while the rest of the run goes on.
	Sleep func(ctx context.Context, d time.Duration) error

	// RefuseRepeatClaims makes a repeat claim by the caller instance id that
	// already holds the process fail with 400 FAILED_PRECONDITION, as a claim
	// by another id does. The API documents only "400 when claimed"; whether
	// a repeat by the same id succeeds is not documented, so the adapter must
	// work either way: tests run both.
	RefuseRepeatClaims bool
	// RefuseRepeatClaim, when set, decides per process (by resource name)
	// whether a repeat claim by the holder is refused, as RefuseRepeatClaims
	// does for every process (either refuses). The fault campaign draws it.
	// It is called concurrently.
	RefuseRepeatClaim func(processName string) bool

	// MyCustomer, when set, is the customer that the literal customer id
	// "my_customer" in a request stands for, as the real API resolves it for
	// the caller.
	MyCustomer string

	// QuotaPerMinute, when positive, is the project's request quota: at most
	// this many requests per QuotaWindow across all methods; the rest are
	// answered 429 RESOURCE_EXHAUSTED without acting (Quota reports them).
	QuotaPerMinute int
	// QuotaWindow is the quota's window; default one minute (a run whose
	// time is scaled passes a minute divided by its scale).
	QuotaWindow time.Duration
}

// Emulator is the fake API. Create it with New; it is an http.Handler that
// serves paths under /v1/.
type Emulator struct {
	opts Options
	now  func() time.Time

	mu    sync.RWMutex
	procs map[string]*process // by resource name
	order []*process          // in creation order

	calls [numMethods]atomic.Int64
	quota *quota         // nil: no quota (Options.QuotaPerMinute)
	dir   directoryState // the Directory endpoints (directory.go)

	vmu        sync.Mutex
	violations []Violation

	dice    sync.Mutex
	rng     *rand.Rand
	rsaNext atomic.Uint64
	notifyN atomic.Uint64
	userN   atomic.Uint64
}

// New returns an emulator with no processes.
func New(opts Options) *Emulator {
	if opts.KeyPoolSize <= 0 {
		opts.KeyPoolSize = 4
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	e := &Emulator{
		opts:  opts,
		now:   now,
		procs: make(map[string]*process),
		rng:   rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
	}
	if opts.QuotaPerMinute > 0 {
		e.quota = &quota{limit: opts.QuotaPerMinute, window: opts.QuotaWindow}
		if e.quota.window <= 0 {
			e.quota.window = time.Minute
		}
	}
	return e
}

// Calls returns how many requests each method received, including those that
// failed (injected faults, 4xx answers). Every method has a key.
func (e *Emulator) Calls() map[string]int {
	m := make(map[string]int, numMethods)
	for i, n := range methodNames {
		m[n] = int(e.calls[i].Load())
	}
	return m
}

// route is a parsed request path.
type route struct {
	method  int
	process string // resource name, my_customer resolved
	opID    string // operations.get only
}

const processCollection = "certificateProvisioningProcesses"

// parseRoute maps an HTTP request to a method. ok is false for any path or
// HTTP method the API does not have.
func (e *Emulator) parseRoute(r *http.Request) (route, bool) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/")
	if !ok {
		return route{}, false
	}
	segs := strings.Split(rest, "/")
	if len(segs) != 4 && len(segs) != 6 {
		return route{}, false
	}
	if segs[0] != "customers" || segs[2] != processCollection {
		return route{}, false
	}
	for _, s := range segs {
		if s == "" {
			return route{}, false
		}
	}
	customer := segs[1]
	if customer == "my_customer" && e.opts.MyCustomer != "" {
		customer = e.opts.MyCustomer
	}
	if len(segs) == 6 {
		if segs[4] != "operations" || strings.Contains(segs[3], ":") || strings.Contains(segs[5], ":") || r.Method != http.MethodGet {
			return route{}, false
		}
		return route{method: mOperationsGet, process: processName(customer, segs[3]), opID: segs[5]}, true
	}
	id, verb, hasVerb := strings.Cut(segs[3], ":")
	if id == "" || strings.Contains(customer, ":") {
		return route{}, false
	}
	rt := route{process: processName(customer, id)}
	if !hasVerb {
		if r.Method != http.MethodGet {
			return route{}, false
		}
		rt.method = mGet
		return rt, true
	}
	if r.Method != http.MethodPost {
		return route{}, false
	}
	switch verb {
	case "claim":
		rt.method = mClaim
	case "signData":
		rt.method = mSignData
	case "uploadCertificate":
		rt.method = mUploadCertificate
	case "setFailure":
		rt.method = mSetFailure
	default:
		return route{}, false
	}
	return rt, true
}

func processName(customer, id string) string {
	return "customers/" + customer + "/" + processCollection + "/" + id
}

// maxBody bounds request bodies; a certificate chain is a few KiB.
const maxBody = 1 << 20

// ServeHTTP serves the API.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, directoryPrefix) {
		e.serveDirectory(w, r)
		return
	}
	rt, ok := e.parseRoute(r)
	if !ok {
		writeError(w, r, errNotFound("Method not found."))
		return
	}
	e.calls[rt.method].Add(1)
	p := e.lookup(rt.process)
	if p != nil {
		p.requests[rt.method].Add(1)
	}
	if e.quota != nil && !e.quota.take(e.now()) {
		writeError(w, r, errQuota())
		return
	}

	fault := e.fault(methodNames[rt.method], rt.process)
	switch fault {
	case FaultUnavailable:
		writeError(w, r, errUnavailable())
		return
	case FaultResourceExhausted:
		writeError(w, r, &apiError{HTTP: http.StatusTooManyRequests, Status: "RESOURCE_EXHAUSTED", Message: "Quota exceeded for quota metric 'Requests' of service 'chromemanagement.googleapis.com' (emulated)."})
		return
	case FaultInternal:
		writeError(w, r, &apiError{HTTP: http.StatusInternalServerError, Status: "INTERNAL", Message: "Internal error encountered."})
		return
	case FaultTimeout:
		e.hold(r)
		writeError(w, r, errDeadline())
		return
	}

	resp, aerr := e.serve(r, rt, p)
	switch fault {
	case FaultLostResponse:
		writeError(w, r, errUnavailable())
		return
	case FaultTimeoutAfterActing:
		e.hold(r)
		writeError(w, r, errDeadline())
		return
	}
	if aerr != nil {
		writeError(w, r, aerr)
		return
	}
	writeJSON(w, r, resp)
}

func (e *Emulator) serve(r *http.Request, rt route, p *process) (any, *apiError) {
	if aerr := checkQuery(r); aerr != nil {
		return nil, aerr
	}
	var body []byte
	if r.Method == http.MethodPost {
		b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil {
			return nil, errInvalid("Invalid JSON payload received. Could not read the request body.")
		}
		if len(b) > maxBody {
			return nil, errInvalid("Invalid JSON payload received. The request body is too large.")
		}
		body = b
	}
	if p == nil {
		return nil, errNotFound(fmt.Sprintf("Certificate provisioning process %q not found.", rt.process))
	}
	now := e.now()
	switch rt.method {
	case mGet:
		return e.get(p, now)
	case mClaim:
		return e.claim(p, body, now)
	case mSignData:
		return e.signData(p, body, now)
	case mOperationsGet:
		return e.getOperation(p, rt.opID, now)
	case mUploadCertificate:
		return e.uploadCertificate(p, body, now)
	case mSetFailure:
		return e.setFailure(p, body, now)
	}
	return nil, errNotFound("Method not found.")
}

// hold keeps a timed-out request until its client gives up or
// Options.TimeoutHold passes. The body is drained first: the server notices a
// closed connection only once it has read the request.
func (e *Emulator) hold(r *http.Request) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, maxBody+1))
	d := e.opts.TimeoutHold
	if d <= 0 {
		d = time.Minute
	}
	if e.opts.Sleep != nil {
		_ = e.opts.Sleep(r.Context(), d) // an error: the client gave up
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.Context().Done():
	case <-t.C:
	}
}

func errDeadline() *apiError {
	return &apiError{HTTP: http.StatusGatewayTimeout, Status: "DEADLINE_EXCEEDED", Message: "The request timed out (emulated)."}
}

func (e *Emulator) lookup(name string) *process {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.procs[name]
}

// fault rolls the dice for one request.
func (e *Emulator) fault(method, name string) Fault {
	if e.opts.Fault != nil {
		switch f := e.opts.Fault(method, name); f {
		case NoFault:
		case FaultPass:
			return NoFault
		default:
			return f
		}
	}
	if e.opts.ErrorRate <= 0 && e.opts.LostResponseRate <= 0 {
		return NoFault
	}
	e.dice.Lock()
	defer e.dice.Unlock()
	if e.opts.ErrorRate > 0 && e.rng.Float64() < e.opts.ErrorRate {
		if e.rng.IntN(2) == 0 {
			return FaultResourceExhausted
		}
		return FaultUnavailable
	}
	if e.opts.LostResponseRate > 0 && e.rng.Float64() < e.opts.LostResponseRate {
		return FaultLostResponse
	}
	return NoFault
}

// systemParams are the query parameters every Google API accepts.
var systemParams = map[string]bool{
	"$.xgafv": true, "access_token": true, "alt": true, "callback": true, "fields": true,
	"key": true, "oauth_token": true, "prettyPrint": true, "quotaUser": true,
	"uploadType": true, "upload_protocol": true,
}

func checkQuery(r *http.Request) *apiError {
	q := r.URL.Query()
	for k := range q {
		if !systemParams[k] {
			return errInvalid(fmt.Sprintf("Invalid JSON payload received. Unknown name %q: Cannot bind query parameter. Field '%s' could not be found in request message.", k, k))
		}
	}
	if alt := q.Get("alt"); alt != "" && alt != "json" {
		return errInvalid(fmt.Sprintf("Invalid value for alt: %q (the emulator serves JSON only).", alt))
	}
	if f := q.Get("fields"); f != "" {
		if _, err := parseFieldMask(f); err != nil {
			return errInvalid("Invalid field selection " + f)
		}
	}
	return nil
}

// writeJSON writes a 200 answer, applying the fields and prettyPrint
// parameters as Google does (pretty printing is Google's default).
func writeJSON(w http.ResponseWriter, r *http.Request, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, r, &apiError{HTTP: http.StatusInternalServerError, Status: "INTERNAL", Message: "encode response: " + err.Error()})
		return
	}
	if f := r.URL.Query().Get("fields"); f != "" {
		if b, err = projectFields(b, f); err != nil {
			writeError(w, r, errInvalid("Invalid field selection "+f))
			return
		}
	}
	writeBody(w, r, http.StatusOK, b)
}

func writeBody(w http.ResponseWriter, r *http.Request, code int, b []byte) {
	if r.URL.Query().Get("prettyPrint") != "false" {
		var buf bytes.Buffer
		if json.Indent(&buf, b, "", "  ") == nil {
			b = buf.Bytes()
		}
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(b)
	_, _ = w.Write([]byte("\n"))
}
