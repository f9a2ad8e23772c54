// Package testenv starts the real local stand-ins that integration tests run
// against (the Firestore, Pub/Sub and Cloud Tasks emulators), once per test
// binary, on free loopback ports, and stops them by process group when the
// tests end. A server already named in the environment (FIRESTORE_EMULATOR_HOST,
// PUBSUB_EMULATOR_HOST, CLOUD_TASKS_EMULATOR_HOST) is used instead of a new one.
//
// Where a stand-in is not installed, tests skip, unless CERTPROV_INTEGRATION=require
// (as in .ci/run), which turns the skip into a failure.
package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Server is a stand-in process listening on Addr.
type Server struct {
	Name    string
	Addr    string
	cmd     *exec.Cmd
	log     *os.File
	stopped atomic.Bool
}

var (
	mu      sync.Mutex
	started []*Server
)

// Main runs the tests and then stops every server this binary started.
// Call it from TestMain: func TestMain(m *testing.M) { testenv.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	StopAll()
	os.Exit(code)
}

// StopAll stops every server started by this process.
func StopAll() {
	mu.Lock()
	defer mu.Unlock()
	for _, s := range started {
		s.Stop()
	}
	started = nil
}

// Required reports whether missing stand-ins fail tests instead of skipping them.
func Required() bool { return os.Getenv("CERTPROV_INTEGRATION") == "require" }

// Unavailable skips t (or fails it, when Required) because a stand-in is missing.
func Unavailable(t testing.TB, what string, err error) {
	t.Helper()
	if Required() {
		t.Fatalf("%s is required (CERTPROV_INTEGRATION=require) but unavailable: %v", what, err)
	}
	t.Skipf("%s unavailable (set CERTPROV_INTEGRATION=require to fail instead): %v", what, err)
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("testenv: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start runs name with args in its own process group (so wrappers that fork,
// like the Firestore emulator's, are stopped whole), writes its output to a
// temporary log file and waits until addr accepts TCP connections.
func Start(ctx context.Context, name, addr string, wait time.Duration, bin string, args ...string) (*Server, error) {
	logf, err := os.CreateTemp("", "certprov-"+name+"-*.log")
	if err != nil {
		return nil, fmt.Errorf("testenv: %s log: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("testenv: start %s: %w", name, err)
	}
	s := &Server{Name: name, Addr: addr, cmd: cmd, log: logf}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(wait)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			logf.Close()
			out, _ := os.ReadFile(logf.Name())
			return nil, fmt.Errorf("testenv: %s exited before listening (%v): %s", name, err, tail(out))
		case <-ctx.Done():
			s.Stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			out, _ := os.ReadFile(logf.Name())
			return nil, fmt.Errorf("testenv: %s not listening on %s after %s: %s", name, addr, wait, tail(out))
		}
	}
	mu.Lock()
	started = append(started, s)
	mu.Unlock()
	return s, nil
}

// Stop kills the server's process group. It is safe to call more than once:
// only the first call signals, so a reused process id is never hit.
func (s *Server) Stop() {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return
	}
	if !s.stopped.CompareAndSwap(false, true) {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		for i := 0; i < 50; i++ {
			if syscall.Kill(-s.cmd.Process.Pid, 0) != nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		close(done)
	}()
	<-done
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	if s.log != nil {
		s.log.Close()
		os.Remove(s.log.Name())
	}
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// once memoizes one server per kind for the test binary.
type once struct {
	sync.Once
	addr string
	err  error
}

func (o *once) get(envVar string, start func() (string, error)) (string, error) {
	o.Do(func() {
		if v := os.Getenv(envVar); v != "" {
			o.addr = v
			return
		}
		o.addr, o.err = start()
	})
	return o.addr, o.err
}

var errNotInstalled = errors.New("not installed")

func lookBin(path string) (string, error) {
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("%s: %w", path, errNotInstalled)
	}
	return path, nil
}
