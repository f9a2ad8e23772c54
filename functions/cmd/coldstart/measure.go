package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/chromeos-certprov/adapter/shared/ca/devca"
)

// entryPoint is one deployed function (terraform/locals.tf entry_points).
type entryPoint struct {
	Name      string
	Push      bool // a Pub/Sub push delivery (ClaimProcess)
	CASecrets bool // terraform passes the CA secrets to this function only
}

var entryPoints = []entryPoint{
	{Name: "ClaimProcess", Push: true},
	{Name: "PollSignature"},
	{Name: "IssueCertificate", CASecrets: true},
}

// sample is one cold start.
type sample struct {
	// Listen is from process start until the port accepts a connection
	// (runtime and package initialisation, funcframework.Start).
	Listen time.Duration `json:"listen_ns"`
	// FirstAnswer is from process start until the first request is answered.
	FirstAnswer time.Duration `json:"first_answer_ns"`
	// FirstRequest is the first request alone: on a lazily configured
	// function it includes reading the configuration and creating the clients.
	FirstRequest time.Duration `json:"first_request_ns"`
	// WarmRequest is the same request sent again on the same connection.
	WarmRequest time.Duration `json:"warm_request_ns"`
	// CPU is the process's user+system time from start to exit (killed right
	// after the warm request): less disturbed by other load than wall time.
	CPU time.Duration `json:"cpu_ns"`
	// MaxRSS is the process's peak resident set size, in bytes.
	MaxRSS int64 `json:"max_rss_bytes"`
}

// deployment is what terraform gives the functions besides fixed values: an
// adapter config with a development CA connection whose key is a secret
// (IssueCertificate only), and the record sealing key (all three).
type deployment struct {
	config     string
	secretEnv  string
	secret     string
	sealingKey string
}

func newDeployment(dir string) (deployment, error) {
	cert, key, err := devca.Generate("coldstart CA")
	if err != nil {
		return deployment{}, fmt.Errorf("development CA: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return deployment{}, fmt.Errorf("development CA key: %w", err)
	}
	certFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		return deployment{}, fmt.Errorf("development CA certificate: %w", err)
	}
	const secretEnv = "COLDSTART_CA_KEY"
	config, err := json.Marshal(map[string]any{
		"allowedCustomers": []string{"C0coldstart"},
		"caConnections": map[string]any{
			"dev": map[string]any{"type": devca.Type, "settings": map[string]string{"certFile": certFile, "keyEnv": secretEnv}},
		},
		"profiles": map[string]any{},
	})
	if err != nil {
		return deployment{}, err
	}
	sealing := make([]byte, 32)
	if _, err := rand.Read(sealing); err != nil {
		return deployment{}, err
	}
	return deployment{
		config:     string(config),
		secretEnv:  secretEnv,
		secret:     string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		sealingKey: base64.StdEncoding.EncodeToString(sealing),
	}, nil
}

// functionEnv is the environment of one instance but its PORT: terraform's function_env
// with its defaults, the secrets terraform passes to that function, and the
// switches that keep every cloud endpoint on a closed local port (no
// credentials are looked up; nothing leaves the machine).
func functionEnv(ep entryPoint, d deployment) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"FUNCTION_TARGET=" + ep.Name,
		"K_SERVICE=coldstart",
		"GOOGLE_CLOUD_PROJECT=coldstart",
		"CERTPROV_CONFIG=" + d.config,
		"FIRESTORE_DATABASE=certprov",
		"FIRESTORE_COLLECTION=certprovProcesses",
		"TASKS_POLL_QUEUE=projects/coldstart/locations/us-central1/queues/certprov-poll",
		"TASKS_ISSUE_QUEUE=projects/coldstart/locations/us-central1/queues/certprov-issue",
		"POLL_SIGNATURE_URL=https://certprov-poll-123456789012.us-central1.run.app",
		"ISSUE_CERTIFICATE_URL=https://certprov-issue-123456789012.us-central1.run.app",
		"TASKS_SERVICE_ACCOUNT=certprov-tasks@coldstart.iam.gserviceaccount.com",
		"TASKS_MAX_ATTEMPTS=10",
		"RECORD_TTL=720h",
		"LOG_LEVEL=info",
		"RECORD_SEALING_KEY=" + d.sealingKey,
		"CERTPROV_API_EMULATOR_HOST=127.0.0.1:9",
		"FIRESTORE_EMULATOR_HOST=127.0.0.1:9",
		"CLOUD_TASKS_EMULATOR_HOST=127.0.0.1:9",
		"NO_PROXY=*",
	}
	if ep.CASecrets {
		env = append(env, d.secretEnv+"="+d.secret)
	}
	return env
}

// pubsubPush is what the claim push subscription delivers: the wrapped
// Pub/Sub message whose data is not a notification. ClaimProcess configures
// itself, decodes it and acknowledges it (200) without a cloud call.
const pubsubPush = `{"message":{"data":"bm90IGEgbm90aWZpY2F0aW9u","messageId":"1","message_id":"1","publishTime":"2026-01-01T00:00:00Z","publish_time":"2026-01-01T00:00:00Z"},` +
	`"subscription":"projects/coldstart/subscriptions/certprov-claim","deliveryAttempt":1}`

// newRequest is a request that reaches the function's code and gets a
// definite answer (200) without a cloud call: for the task functions a task
// body without a process key, which they acknowledge as malformed.
func newRequest(ep entryPoint, addr string) (*http.Request, error) {
	url, body := "http://"+addr+"/", "{}"
	if ep.Push {
		body = pubsubPush
	}
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return req, nil
}

// freePort returns a port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail keeps the last bytes a process wrote, for error messages.
type tail struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if over := t.buf.Len() - 4096; over > 0 {
		t.buf.Next(over)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}

// configuredLog is the message adapter.FromEnv logs once configured.
const configuredLog = `"message":"adapter configured"`

// prober sends the requests of one start.
type prober func(addr string) (*http.Request, error)

// measure starts bin once with env (which must not set PORT), waits until it
// listens by trying to connect every pollEvery, sends the request twice on
// that connection and kills the process. Any answer but 200, an exit before
// answering or no answer within timeout is an error.
func measure(ctx context.Context, bin string, env []string, probe prober, pollEvery, timeout time.Duration) (sample, error) {
	var s sample
	port, err := freePort()
	if err != nil {
		return s, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	var out tail
	cmd := exec.Command(bin)
	cmd.Env = append(env[:len(env):len(env)], "PORT="+strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return s, fmt.Errorf("start: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	defer stop()
	fail := func(format string, args ...any) (sample, error) {
		stop()
		return s, fmt.Errorf("%s; its output ends:\n%s", fmt.Sprintf(format, args...), out.String())
	}

	deadline := start.Add(timeout)
	var conn net.Conn
	for conn == nil {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn = c
			s.Listen = time.Since(start)
			break
		}
		if time.Now().After(deadline) {
			return fail("not listening on %s after %v", addr, timeout)
		}
		select {
		case err := <-exited:
			exited <- err
			return fail("exited before listening: %v", err)
		case <-ctx.Done():
			return fail("%v", ctx.Err())
		case <-time.After(pollEvery):
		}
	}

	// The first request goes over the connection that found the port open;
	// the warm one reuses it (keep-alive), as a front end would.
	var handed atomic.Bool
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			if handed.CompareAndSwap(false, true) {
				return conn, nil
			}
			var d net.Dialer
			return d.DialContext(ctx, network, a)
		},
		DisableCompression: true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: time.Until(deadline)}
	send := func() (time.Duration, error) {
		req, err := probe(addr)
		if err != nil {
			return 0, err
		}
		t := time.Now()
		resp, err := client.Do(req.WithContext(ctx))
		if err != nil {
			return 0, err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(t)
		if resp.StatusCode != http.StatusOK {
			return d, fmt.Errorf("answered %d %q, want 200", resp.StatusCode, strings.TrimSpace(string(body)))
		}
		return d, nil
	}
	if s.FirstRequest, err = send(); err != nil {
		return fail("first request: %v", err)
	}
	s.FirstAnswer = time.Since(start)
	if s.WarmRequest, err = send(); err != nil {
		return fail("second request: %v", err)
	}

	stop()
	// The first request must have configured the function (adapter.Lazy
	// logs this once), or it did not measure what the table says.
	if !strings.Contains(out.String(), configuredLog) {
		return s, fmt.Errorf("no %q in its output, so the first request did not configure the function; its output ends:\n%s", configuredLog, out.String())
	}
	if ps := cmd.ProcessState; ps != nil {
		s.CPU = ps.UserTime() + ps.SystemTime()
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			s.MaxRSS = ru.Maxrss * 1024 // kilobytes on Linux
		}
	}
	if s.CPU == 0 {
		return s, errors.New("no resource usage for the process")
	}
	return s, nil
}
