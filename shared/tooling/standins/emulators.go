package standins

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/chromeos-certprov/adapter/shared/tooling/testenv"
)

// The emulators' commands, as local-services.md gives them.
const (
	firestoreBin = "/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud_firestore_emulator"
	pubsubBin    = "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator"
	// cloudTasksTool is the Cloud Tasks emulator, a tool of the module .ci/tools.
	cloudTasksTool = "github.com/aertje/cloud-tasks-emulator"
)

// Emulators are the stand-ins a command uses: the ones named by
// FIRESTORE_EMULATOR_HOST, PUBSUB_EMULATOR_HOST and CLOUD_TASKS_EMULATOR_HOST,
// and the others started on free loopback ports.
type Emulators struct {
	Hosts Hosts
	// Started names the emulators this process started (and Stop stops).
	Started []string
	servers []*testenv.Server
}

// StartEmulators starts, in parallel, each emulator that the environment
// does not name. The Cloud Tasks emulator runs with `go tool` in the module
// .ci/tools found above the working directory (the build is cached by Go).
// Each runs in its own process group, stopped by Stop.
func StartEmulators(ctx context.Context) (*Emulators, error) {
	e := &Emulators{}
	type spec struct {
		name, env string
		host      *string
		wait      time.Duration
		cmd       func(port int) (string, []string, error)
	}
	specs := []spec{
		{"firestore", "FIRESTORE_EMULATOR_HOST", &e.Hosts.Firestore, 90 * time.Second, func(port int) (string, []string, error) {
			return firestoreBin, []string{"start", "--host=127.0.0.1", fmt.Sprintf("--port=%d", port)}, nil
		}},
		{"pubsub", "PUBSUB_EMULATOR_HOST", &e.Hosts.PubSub, 90 * time.Second, func(port int) (string, []string, error) {
			return pubsubBin, []string{"--host=127.0.0.1", fmt.Sprintf("--port=%d", port)}, nil
		}},
		{"cloudtasks", "CLOUD_TASKS_EMULATOR_HOST", &e.Hosts.Tasks, 5 * time.Minute, func(port int) (string, []string, error) {
			tools, err := toolsDir()
			if err != nil {
				return "", nil, err
			}
			goBin, err := goCommand()
			if err != nil {
				return "", nil, err
			}
			return goBin, []string{"-C", tools, "tool", cloudTasksTool, "-host", "127.0.0.1", "-port", strconv.Itoa(port)}, nil
		}},
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, s := range specs {
		if v := os.Getenv(s.env); v != "" {
			*s.host = v
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			srv, addr, err := startOne(ctx, s.name, s.wait, s.cmd)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s emulator (or set %s): %w", s.name, s.env, err))
				return
			}
			*s.host = addr
			e.servers = append(e.servers, srv)
			e.Started = append(e.Started, s.name)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		e.Stop()
		return nil, err
	}
	return e, nil
}

func startOne(ctx context.Context, name string, wait time.Duration, cmd func(port int) (string, []string, error)) (*testenv.Server, string, error) {
	port, err := testenv.FreePort()
	if err != nil {
		return nil, "", err
	}
	bin, args, err := cmd(port)
	if err != nil {
		return nil, "", err
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, "", fmt.Errorf("not installed: %w", err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	srv, err := testenv.Start(ctx, name, addr, wait, bin, args...)
	return srv, addr, err
}

// Stop stops the emulators this process started.
func (e *Emulators) Stop() {
	for _, s := range e.servers {
		s.Stop()
	}
	e.servers = nil
}

// toolsDir finds .ci/tools above the working directory.
func toolsDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		tools := filepath.Join(dir, ".ci", "tools")
		if _, err := os.Stat(filepath.Join(tools, "go.mod")); err == nil {
			return tools, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no .ci/tools/go.mod above the working directory: run from the repository")
		}
		dir = parent
	}
}

func goCommand() (string, error) {
	p, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the go command runs the Cloud Tasks emulator: %w", err)
	}
	return p, nil
}
