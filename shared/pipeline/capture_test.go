package pipeline_test

// captureRelease writes what this release leaves in Firestore and in the
// queues at each resumable state, for TestReleaseCompat to finish with a later
// release. TestReleaseCompat runs it into a temporary directory (this
// release finishes its own); to keep a release's formats, before a change to
// a record field, a task body or the scheduler's request:
//
//	go test -run TestCaptureRelease ./shared/pipeline -capture testdata/release-<commit>
//
// It drives the pipeline with the API emulator, a CA and the memory store on
// a virtual clock, and stops each process at one state.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromeos-certprov/adapter/shared/adapter"
	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/tasks"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
)

var captureDir = flag.String("capture", "", "TestCaptureRelease: directory to write this release's records and task bodies into")

// captureEpoch is the virtual time at which every captured process starts.
var captureEpoch = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)

type capturer struct {
	t        *testing.T
	dir      string
	caPEM    []byte
	caKeyPEM []byte
	client   *ecdsa.PrivateKey
	cases    []compatCase
	cas      map[*harness]*clockedCA
}

func (c *capturer) write(name string, data []byte) {
	c.t.Helper()
	path := filepath.Join(c.dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// faulty is the emulator's fault for a method, switchable during a case.
type faulty struct {
	f atomic.Pointer[func(method string) cpemulator.Fault]
}

func (f *faulty) set(fn func(method string) cpemulator.Fault) { f.f.Store(&fn) }

func (f *faulty) fault(method, _ string) cpemulator.Fault {
	if fn := f.f.Load(); fn != nil && *fn != nil {
		return (*fn)(method)
	}
	return cpemulator.NoFault
}

func (c *capturer) harness(f *faulty) *harness {
	c.t.Helper()
	if f == nil {
		f = &faulty{}
	}
	h := newHarness(c.t, cpemulator.Options{Fault: f.fault})
	h.clk.t = captureEpoch
	conn, err := loadClockedCA(c.caPEM, c.caKeyPEM, h.clk.Now)
	if err != nil {
		c.t.Fatal(err)
	}
	c.cas[h] = conn
	h.p.CAs = map[string]pipeline.Issuer{cpemulator.DefaultCARef: conn}
	h.p.Schedule.Deadline = 24 * time.Hour
	h.p.SweepAfter = time.Hour
	return h
}

func (c *capturer) add(h *harness, name string) (string, []byte) {
	return h.add(cpemulator.ClientSpec{ProcessID: "compat-" + name, Signer: c.client, SignDelay: 20 * time.Second})
}

// take removes the pending task whose name starts with prefix.
func take(t *testing.T, q *queue, prefix string) tasks.Task {
	t.Helper()
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, task := range q.pending {
		if strings.HasPrefix(task.Name, prefix) {
			q.pending = append(q.pending[:i], q.pending[i+1:]...)
			return task
		}
	}
	var names []string
	for _, task := range q.pending {
		names = append(names, string(task.Queue)+"/"+task.Name)
	}
	t.Fatalf("no pending task %s*; pending: %v", prefix, names)
	return tasks.Task{}
}

// keep records one case: the record of procName as it is now, and the delivery.
func (c *capturer) keep(h *harness, name, about, procName string, replay compatReplay, route string, body []byte, task string, at time.Time, want progress.State) {
	c.t.Helper()
	rec := h.record(procName)
	recJSON, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		c.t.Fatal(err)
	}
	c.write("records/"+name+".json", append(recJSON, '\n'))
	c.write("bodies/"+name+".json", body)
	now := h.clk.Now()
	if at.After(now) {
		now = at
	}
	c.cases = append(c.cases, compatCase{
		Name: name, About: about, ProcessID: h.snap(procName).ID, Record: "records/" + name + ".json",
		Replay: replay, Deliver: compatDelivery{Route: route, Body: "bodies/" + name + ".json", Task: task},
		Now: now, Want: want,
	})
}

// TestCaptureRelease writes this release's cases into the directory of
// -capture (see captureRelease).
func TestCaptureRelease(t *testing.T) {
	if *captureDir == "" {
		t.Skip("-capture DIR not set: nothing to write (TestReleaseCompat captures and finishes this release)")
	}
	captureRelease(t, *captureDir)
}

func captureRelease(t *testing.T, dir string) {
	t.Helper()
	c := &capturer{t: t, dir: dir, cas: map[*harness]*clockedCA{}}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Fixed keys, so that the test can stand the same process and CA up again.
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "certprov compat CA"},
		NotBefore: captureEpoch.Add(-24 * time.Hour), NotAfter: captureEpoch.AddDate(30, 0, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	caKeyDER, err := x509.MarshalPKCS8PrivateKey(caKey)
	if err != nil {
		t.Fatal(err)
	}
	c.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	c.caKeyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: caKeyDER})
	c.write("ca.pem", c.caPEM)
	c.write("ca-key.pem", c.caKeyPEM)
	c.client, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	clientDER, err := x509.MarshalPKCS8PrivateKey(c.client)
	if err != nil {
		t.Fatal(err)
	}
	c.write("client-key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: clientDER}))
	ctx := context.Background()

	// CLAIMED: the claim went through, then planning the request failed
	// (the CA's challenge was unavailable) before signData; Pub/Sub pushes
	// the message again. (Releases up to bb4de32 read the process a second
	// time after the claim; there a 503 on that read left CLAIMED.)
	{
		h := c.harness(nil)
		h.p.CAs = map[string]pipeline.Issuer{cpemulator.DefaultCARef: unavailableChallenge{c.cas[h]}}
		name, data := c.add(h, "claimed")
		if err := h.p.Claim(ctx, pipeline.Delivery{Body: data, Attempt: 1}); err == nil {
			t.Fatal("claimed: the claim did not fail")
		}
		push, err := json.Marshal(adapter.Push{
			Message:      adapter.PushMessage{Data: data, MessageID: "17000000000001", PublishTime: captureEpoch},
			Subscription: "projects/certprov-compat/subscriptions/certprov-claim", DeliveryAttempt: 2,
		})
		if err != nil {
			t.Fatal(err)
		}
		h.clk.advance(90 * time.Second)
		c.keep(h, "claimed", "CLAIMED after a 503 before signData; Pub/Sub's second push of the notification", name,
			compatReplay{Claimed: true}, "claim", push, "", time.Time{}, progress.StateUploaded)
	}

	// RECEIVED, handed to a continue task: 429 on every read of the
	// process up to the last delivery.
	{
		f := &faulty{}
		f.set(func(method string) cpemulator.Fault {
			if method == cpemulator.MethodGet {
				return cpemulator.FaultResourceExhausted
			}
			return cpemulator.NoFault
		})
		h := c.harness(f)
		name, data := c.add(h, "continue")
		if err := h.p.Claim(ctx, pipeline.Delivery{Body: data, Attempt: h.p.MaxAttempts}); err != nil {
			t.Fatalf("continue: %v", err)
		}
		task := take(t, h.q, "continue-")
		c.keep(h, "continue", "RECEIVED after 429 on the last delivery; the continue task (poll queue) carries it on", name,
			compatReplay{}, string(task.Queue), task.Body, task.Name, task.ScheduleTime, progress.StateUploaded)
	}

	// SIGNING: signData acted but its answer was lost; the first poll
	// task (enqueued before signData) resumes it.
	{
		f := &faulty{}
		f.set(func(method string) cpemulator.Fault {
			if method == cpemulator.MethodSignData {
				return cpemulator.FaultLostResponse
			}
			return cpemulator.NoFault
		})
		h := c.harness(f)
		name, data := c.add(h, "signing")
		if err := h.p.Claim(ctx, pipeline.Delivery{Body: data, Attempt: 1}); err == nil {
			t.Fatal("signing: signData's lost answer was not an error")
		}
		task := take(t, h.q, "poll-")
		c.keep(h, "signing", "SIGNING: signData acted, its answer lost; the first poll task", name,
			compatReplay{Claimed: true, SignData: true}, string(task.Queue), task.Body, task.Name, task.ScheduleTime, progress.StateUploaded)
	}

	// POLLING with a pending operation, then SIGNED, ISSUING, ISSUED and
	// the sweep's re-drive, each from its own process.
	polling := func(n string, f *faulty) (*harness, string) {
		h := c.harness(f)
		name, data := c.add(h, n)
		if err := h.p.Claim(ctx, pipeline.Delivery{Body: data, Attempt: 1}); err != nil {
			t.Fatalf("%s: claim: %v", n, err)
		}
		first := take(t, h.q, "poll-")
		h.clk.advanceTo(first.ScheduleTime)
		if err := h.p.Poll(ctx, pipeline.Delivery{Body: first.Body, Attempt: 1}); err != nil {
			t.Fatalf("%s: first poll: %v", n, err)
		}
		if s := h.record(name).State; s != progress.StatePolling {
			t.Fatalf("%s: state %s after the first poll, want POLLING", n, s)
		}
		return h, name
	}
	{
		h, name := polling("polling", nil)
		task := take(t, h.q, "poll-")
		c.keep(h, "polling", "POLLING, the operation pending; the next poll task", name,
			compatReplay{Claimed: true, SignData: true}, string(task.Queue), task.Body, task.Name, task.ScheduleTime, progress.StateUploaded)
	}
	{
		h, name := polling("sweep-poll", nil)
		take(t, h.q, "poll-") // dropped by the queue
		h.clk.advance(2 * time.Hour)
		if _, err := h.p.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
		task := take(t, h.q, "sweep-")
		c.keep(h, "sweep-poll", "POLLING whose poll task was dropped; the sweep's re-drive (poll queue)", name,
			compatReplay{Claimed: true, SignData: true}, string(task.Queue), task.Body, task.Name, task.ScheduleTime, progress.StateUploaded)
	}
	signed := func(n string, f *faulty) (*harness, string, tasks.Task) {
		h, name := polling(n, f)
		for {
			task := take(t, h.q, "")
			h.clk.advanceTo(task.ScheduleTime)
			if task.Queue == tasks.QueueIssue {
				return h, name, task
			}
			if err := h.p.Poll(ctx, pipeline.Delivery{Body: task.Body, Attempt: 1}); err != nil {
				t.Fatalf("%s: poll: %v", n, err)
			}
		}
	}
	{
		h, name, task := signed("signed", nil)
		c.keep(h, "signed", "SIGNED; the issue task", name,
			compatReplay{Claimed: true, SignData: true}, string(task.Queue), task.Body, task.Name, task.ScheduleTime, progress.StateUploaded)
		// The same record, idle for two hours, and the scheduler's request.
		rec := h.record(name)
		path, body := schedulerRequest(t)
		c.write("bodies/scheduler-sweep.json", body)
		c.cases = append(c.cases, compatCase{
			Name: "scheduler-sweep", About: "SIGNED and idle (its issue task dropped); the scheduler's sweep request (terraform/sweep.tf)",
			ProcessID: rec.ProcessID, Record: "records/signed.json", Replay: compatReplay{Claimed: true, SignData: true},
			Deliver: compatDelivery{Route: "poll", Body: "bodies/scheduler-sweep.json", Path: path}, Now: rec.UpdatedAt.Add(2 * time.Hour), Want: progress.StateUploaded,
		})
	}
	{
		h, name, task := signed("sweep-issue", nil)
		h.clk.advance(2 * time.Hour)
		if _, err := h.p.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
		sw := take(t, h.q, "sweep-")
		c.keep(h, "sweep-issue", "SIGNED whose issue task was dropped; the sweep's re-drive (issue queue)", name,
			compatReplay{Claimed: true, SignData: true}, string(sw.Queue), sw.Body, sw.Name, sw.ScheduleTime, progress.StateUploaded)
		_ = task
	}
	{
		h, name, task := signed("issuing", nil)
		h.crashOnce("issue:after-ca")
		if err := h.p.Issue(ctx, pipeline.Delivery{Body: task.Body, Attempt: 1}); err == nil {
			t.Fatal("issuing: no crash")
		}
		h.p.Crash = nil
		c.keep(h, "issuing", "ISSUING: the CA answered, the instance died before storing the certificate; the issue task again", name,
			compatReplay{Claimed: true, SignData: true, CAIssued: true}, string(task.Queue), task.Body, task.Name, task.ScheduleTime, progress.StateUploaded)
	}
	{
		h, name, task := signed("issued", nil)
		h.crashOnce("upload:before-upload")
		if err := h.p.Issue(ctx, pipeline.Delivery{Body: task.Body, Attempt: 1}); err == nil {
			t.Fatalf("issued: no crash: %s %s", h.record(name).State, h.record(name).LastError)
		}
		h.p.Crash = nil
		c.keep(h, "issued", "ISSUED: the certificate stored, the instance died before the upload; the issue task again", name,
			compatReplay{Claimed: true, SignData: true, CAIssued: true}, string(task.Queue), task.Body, task.Name, task.ScheduleTime, progress.StateUploaded)
	}
	{
		f := &faulty{}
		h, name, task := signed("upload-lost", f)
		f.set(func(method string) cpemulator.Fault {
			if method == cpemulator.MethodUploadCertificate {
				return cpemulator.FaultLostResponse
			}
			return cpemulator.NoFault
		})
		if err := h.p.Issue(ctx, pipeline.Delivery{Body: task.Body, Attempt: 1}); err == nil {
			t.Fatal("upload-lost: the lost answer was not an error")
		}
		f.set(nil)
		c.keep(h, "upload-lost", "ISSUED: the upload acted, its answer lost; the issue task again", name,
			compatReplay{Claimed: true, SignData: true, CAIssued: true, Uploaded: true}, string(task.Queue), task.Body, task.Name, task.ScheduleTime, progress.StateUploaded)
	}
	{
		f := &faulty{}
		h, name, task := signed("failing", f)
		c.cas[h].refuse = &ca.Error{Kind: ca.Permanent, Reason: "refused by policy", UserMessage: "The certificate authority refused this request."}
		f.set(func(method string) cpemulator.Fault {
			if method == cpemulator.MethodSetFailure {
				return cpemulator.FaultUnavailable
			}
			return cpemulator.NoFault
		})
		if err := h.p.Issue(ctx, pipeline.Delivery{Body: task.Body, Attempt: h.p.MaxAttempts}); err != nil {
			t.Fatalf("failing: %v", err)
		}
		f.set(nil)
		rec := h.record(name)
		if rec.State != progress.StateFailing || rec.FailureReported {
			t.Fatalf("failing: state %s reported %v", rec.State, rec.FailureReported)
		}
		report := take(t, h.q, "report-")
		c.keep(h, "failing", "FAILING, setFailure not through on the last attempt; the report task", name,
			compatReplay{Claimed: true, SignData: true}, string(report.Queue), report.Body, report.Name, report.ScheduleTime, progress.StateFailed)
	}

	manifest, err := json.MarshalIndent(c.cases, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	c.write("cases.json", append(manifest, '\n'))
}

// schedulerRequest is the path (under PollSignature's URL) and the body of
// the sweep request that terraform/sweep.tf configures.
// unavailableChallenge is a CA connection whose challenge is unavailable: a
// transient failure after the claim, before signData.
type unavailableChallenge struct{ pipeline.Issuer }

func (unavailableChallenge) Challenge(context.Context, string) (string, time.Time, error) {
	return "", time.Time{}, errors.New("challenge: 503 Service Unavailable")
}

func schedulerRequest(t *testing.T) (string, []byte) {
	t.Helper()
	tf, err := os.ReadFile("../../terraform/sweep.tf")
	if err != nil {
		t.Fatal(err)
	}
	uri := regexp.MustCompile(`uri\s*=\s*(?:local\.run_urls\.poll|"\$\{local\.run_urls\.poll\}([^"]*)")`).FindSubmatch(tf)
	m := regexp.MustCompile(`body\s*=\s*base64encode\(("(?:[^"\\]|\\.)*")\)`).FindSubmatch(tf)
	if uri == nil || m == nil {
		t.Fatal("terraform/sweep.tf: no uri = local.run_urls.poll[/path] or body = base64encode(\"...\")")
	}
	s, err := strconv.Unquote(string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	return string(uri[1]), []byte(s)
}
