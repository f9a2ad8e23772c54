package campaign

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"sync"
	"time"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/tasks"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
	"github.com/chromeos-certprov/adapter/shared/tooling/simulation"
)

// The faults of issue 11: lost claim answers, refused repeat claims,
// setFailure failing and contention on a task's last attempt, garbage CA
// answers.

// issue11APIFault decides a lost claim answer or a failed setFailure for one
// API request of p; false: none, the other faults are drawn.
func (inj *injector) issue11APIFault(p *plan, method string) (cpemulator.Fault, bool) {
	switch method {
	case cpemulator.MethodClaim:
		p.mu.Lock()
		first := p.lostClaim && !p.lostClaimDone
		p.lostClaimDone = true
		p.mu.Unlock()
		if !first {
			return 0, false
		}
		// The claim acts; its answer is lost.
		if p.draw() < 0.5 {
			if inj.take(p, "api claim: acted, answer lost (503)") {
				inj.lostClaims.Add(1)
				return cpemulator.FaultLostResponse, true
			}
		} else if inj.take(p, "api claim: acted, then timed out") {
			inj.lostClaims.Add(1)
			return cpemulator.FaultTimeoutAfterActing, true
		}
	case cpemulator.MethodSetFailure:
		p.mu.Lock()
		pending := p.failLast && !p.failLastDone
		last := pending && p.lastInFlight > 0
		first := pending && !last && !p.failFirstDone && p.inTask > 0
		if last {
			p.failLastDone = true
		}
		if first {
			p.failFirstDone = true
		}
		p.mu.Unlock()
		switch {
		case last:
			if !inj.take(p, "api setFailure on a task's last attempt: failed") {
				return 0, false
			}
			inj.setFailureLast.Add(1)
			if p.draw() < 0.5 {
				inj.api429.Add(1)
				return cpemulator.FaultResourceExhausted, true
			}
			inj.api503.Add(1)
			return cpemulator.FaultUnavailable, true
		case first:
			// The record stays FAILING: the task's next attempt is
			// presented as its last.
			inj.note(p, "api setFailure: 503 (its task's next attempt will be its last)")
			inj.setFailureBefore.Add(1)
			inj.api503.Add(1)
			return cpemulator.FaultUnavailable, true
		}
	}
	return 0, false
}

// contend crashes an issue attempt of p (at issue:before-ca, holding the
// lease) once, if p is to meet contention on a last attempt and ctx is a
// task attempt's: the retry is then presented as the last attempt.
func (inj *injector) contend(ctx context.Context, p *plan) bool {
	if !simulation.InTaskAttempt(ctx) {
		return false
	}
	p.mu.Lock()
	due := p.contendLast && !p.contendDone
	p.contendDone = true
	p.mu.Unlock()
	if !due || !inj.take(p, "crash at issue:before-ca holding the lease (its retry will be presented as the last attempt)") {
		return false
	}
	p.mu.Lock()
	p.contendNext = true
	p.mu.Unlock()
	inj.contentionCrashes.Add(1)
	return true
}

// taskAttempt is the dispatcher's hook before a task attempt: it tracks the
// attempts in flight per process and presents an attempt as the task's last
// when p is to meet contention there (the lease of a crashed attempt is still
// held) or a failed setFailure (the record is FAILING).
func (inj *injector) taskAttempt(q tasks.Queue, body []byte, retry int) (bool, func(int)) {
	var tb pipeline.TaskBody
	if json.Unmarshal(body, &tb) != nil || tb.Key == "" {
		return false, nil
	}
	p := inj.planByID(lastSegment(tb.Key))
	if p == nil {
		return false, nil
	}
	var rec *progress.Record
	if inj.store != nil {
		rec, _ = inj.store.Peek(context.Background(), tb.Key)
	}
	p.mu.Lock()
	p.inTask++
	faultsBefore := p.faults
	var why string
	switch {
	case rec == nil:
	case p.failLast && !p.failLastDone && rec.State == progress.StateFailing:
		why = "setFailure"
		p.lastInFlight++
	case p.contendNext:
		p.contendNext = false
		if !rec.State.Terminal() && inj.clk.Now().Before(rec.LeaseUntil) {
			why = "contention"
		}
	}
	p.mu.Unlock()
	if why == "contention" {
		inj.contentionLast.Add(1)
	}
	if why != "" {
		inj.note(p, fmt.Sprintf("%s attempt (retry %d) of %s presented as its last (%s), record %s", q, retry, tb.Key, why, rec.State))
	}
	return why != "", func(status int) {
		// A failed last attempt is dropped: a problem unless the process
		// has ended anyway (a concurrent delivery finished it) or another
		// injected fault failed the attempt.
		var after *progress.Record
		if why != "" && (status < 200 || status > 299) {
			after, _ = inj.store.Peek(context.Background(), tb.Key)
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		p.inTask--
		if why == "setFailure" {
			p.lastInFlight--
		}
		// An injected crash, store fault or timeout on this very attempt
		// makes it fail by design (the sweep resumes a dropped task).
		if after != nil && !after.State.Terminal() && p.faults == faultsBefore {
			p.lastFailed = append(p.lastFailed, fmt.Sprintf("%s: the attempt presented as the task's last failed (%d %s) and left the process %s: its task is dropped and only the sweep resumes it",
				why, status, http.StatusText(status), after.State))
		}
	}
}

// problems are p's violations found while the run went on.
func (p *plan) problems() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lastFailed...)
}

// lastSegment is what follows the last ':' of a record key (the process id).
func lastSegment(key string) string {
	for i := len(key) - 1; i >= 0; i-- {
		if key[i] == ':' {
			return key[i+1:]
		}
	}
	return key
}

// refuseRepeatClaim is the API emulator's RefuseRepeatClaim.
func (inj *injector) refuseRepeatClaim(name string) bool {
	p := inj.planByID(name[lastSlash(name)+1:])
	return p != nil && p.refuseRepeat
}

func lastSlash(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '/' {
			return i
		}
	}
	return -1
}

// caAnswer answers the issuances of a process planned for a garbage
// certificate with one for a key no client holds.
func (inj *injector) caAnswer(req ca.Request) *ca.Issued {
	inj.mu.Lock()
	p := inj.byReqID[req.RequestID]
	inj.mu.Unlock()
	if p == nil || !p.garbageCert || inj.garbage == nil {
		return nil
	}
	inj.garbageCerts.Add(1)
	inj.note(p, "ca: answered a certificate for another key")
	return inj.garbage
}

// garbageCertificate is a self-signed certificate for a fresh key (nil if
// one cannot be made, which only disables the fault).
func garbageCertificate() *ca.Issued {
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		return nil
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "garbage (fault campaign)"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
	}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil
	}
	return &ca.Issued{Leaf: leaf}
}

// errorLog counts the pipeline's ERROR logs by process id and message; its
// handler passes every record on to the campaign's own logger.
type errorLog struct {
	mu sync.Mutex
	n  map[[2]string]int64 // {process id, message}
}

func (e *errorLog) add(process, msg string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n[[2]string{process, msg}]++
}

// of returns the counts of one process, by message.
func (e *errorLog) of(process string) map[string]int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out map[string]int64
	for k, v := range e.n {
		if k[0] == process {
			if out == nil {
				out = map[string]int64{}
			}
			out[k[1]] += v
		}
	}
	return out
}

// total returns the count of one message over every process.
func (e *errorLog) total(msg string) int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	var n int64
	for k, v := range e.n {
		if k[1] == msg {
			n += v
		}
	}
	return n
}

// handler returns a handler that counts ERROR records into e and passes every
// record on to next's handler (none when next is nil).
func (e *errorLog) handler(next *slog.Logger) slog.Handler {
	var h slog.Handler = slog.DiscardHandler
	if next != nil {
		h = next.Handler()
	}
	return &errorHandler{log: e, next: h}
}

type errorHandler struct {
	log     *errorLog
	next    slog.Handler
	process string // the process_id attribute, once added
}

func (h *errorHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelError || h.next.Enabled(ctx, l)
}

func (h *errorHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		process := h.process
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "process_id" {
				process = a.Value.String()
			}
			return true
		})
		h.log.add(process, r.Message)
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *errorHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	for _, a := range attrs {
		if a.Key == "process_id" {
			c.process = a.Value.String()
		}
	}
	c.next = h.next.WithAttrs(attrs)
	return &c
}

func (h *errorHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	return &c
}
