package testenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	cloudtasks "cloud.google.com/go/cloudtasks/apiv2"
	"cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// cloudTasksPkg is the emulator's main package, pinned in the tools module .ci/tools.
const cloudTasksPkg = "github.com/aertje/cloud-tasks-emulator"

var cloudTasksOnce once

// CloudTasks returns the host:port of a Cloud Tasks emulator (CLOUD_TASKS_EMULATOR_HOST,
// or one started for this test binary) that speaks insecure gRPC. The emulator is
// github.com/aertje/cloud-tasks-emulator, built once from the tools module .ci/tools
// into the user cache directory (keyed by that module's go.mod and go.sum), so
// later runs start it without building. It has no queues: create them with
// CloudTasksQueue, under a name of your own per test.
//
// Tasks it dispatches carry an OIDC token (when the task asks for one) signed by the
// emulator's fixed, public test key; the emulator is started without -openid-issuer
// (which would listen on all interfaces), so the token's issuer is
// "http://cloud-tasks-emulator" and no JWKS is served.
func CloudTasks(t testing.TB) string {
	t.Helper()
	addr, err := cloudTasksOnce.get("CLOUD_TASKS_EMULATOR_HOST", func() (string, error) {
		bin, err := cloudTasksBinary(context.Background())
		if err != nil {
			return "", err
		}
		port, err := FreePort()
		if err != nil {
			return "", err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		_, err = Start(context.Background(), "cloudtasks", addr, 30*time.Second, bin, "-host", "127.0.0.1", "-port", strconv.Itoa(port))
		return addr, err
	})
	if err != nil {
		Unavailable(t, "Cloud Tasks emulator", err)
	}
	return addr
}

// CloudTasksQueue creates the queue name (projects/P/locations/L/queues/Q, where Q
// is letters, digits and hyphens) on the emulator at addr with the given retry
// config (nil: the emulator's defaults, 100 attempts from 100ms backoff), and
// deletes it when t ends. The emulator keeps a deleted queue's name reserved, so
// use a fresh name per test.
func CloudTasksQueue(t testing.TB, addr, name string, retry *cloudtaskspb.RetryConfig) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := cloudTasksClient(ctx, addr)
	if err != nil {
		t.Fatalf("cloud tasks emulator client: %v", err)
	}
	defer client.Close()
	i := strings.LastIndex(name, "/queues/")
	if i < 0 {
		t.Fatalf("cloud tasks queue %q: want projects/P/locations/L/queues/Q", name)
	}
	if _, err := client.CreateQueue(ctx, &cloudtaskspb.CreateQueueRequest{
		Parent: name[:i],
		Queue:  &cloudtaskspb.Queue{Name: name, RetryConfig: retry},
	}); err != nil {
		t.Fatalf("create cloud tasks queue %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		client, err := cloudTasksClient(ctx, addr)
		if err != nil {
			t.Errorf("cloud tasks emulator client: %v", err)
			return
		}
		defer client.Close()
		if err := client.DeleteQueue(ctx, &cloudtaskspb.DeleteQueueRequest{Name: name}); err != nil {
			t.Errorf("delete cloud tasks queue %s: %v", name, err)
		}
	})
}

func cloudTasksClient(ctx context.Context, addr string) (*cloudtasks.Client, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	c, err := cloudtasks.NewClient(ctx, option.WithGRPCConn(conn), option.WithoutAuthentication())
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// cloudTasksBinary returns the path of the emulator binary, building it from the
// tools module if the cache does not hold a build of the current pins.
func cloudTasksBinary(ctx context.Context) (string, error) {
	tools, err := toolsDir()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(tools, f))
		if err != nil {
			return "", fmt.Errorf("testenv: tools module: %w", err)
		}
		fmt.Fprintf(h, "%s %d\n", f, len(b))
		h.Write(b)
	}
	fmt.Fprintf(h, "%s %s/%s\n", cloudTasksPkg, runtime.GOOS, runtime.GOARCH)
	key := hex.EncodeToString(h.Sum(nil))[:16]

	cache, err := cacheDir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(cache, "cloud-tasks-emulator-"+key)
	if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() {
		return bin, nil
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("testenv: build cloud tasks emulator: %w", err)
	}
	// Build beside the target and rename, so that test binaries building at the
	// same time never run a half-written file.
	tmp, err := os.CreateTemp(cache, "cloud-tasks-emulator-*.tmp")
	if err != nil {
		return "", fmt.Errorf("testenv: build cloud tasks emulator: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", tmp.Name(), cloudTasksPkg)
	cmd.Dir = tools
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly -buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("testenv: go build %s in %s: %w: %s", cloudTasksPkg, tools, err, tail(out))
	}
	if err := os.Rename(tmp.Name(), bin); err != nil {
		return "", fmt.Errorf("testenv: build cloud tasks emulator: %w", err)
	}
	return bin, nil
}

// toolsDir finds .ci/tools by walking up from the working directory (a test's
// working directory is its package directory inside the repository).
func toolsDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("testenv: find repository root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			tools := filepath.Join(dir, ".ci", "tools")
			if _, err := os.Stat(filepath.Join(tools, "go.mod")); err == nil {
				return tools, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testenv: no .ci/tools/go.mod above the working directory")
		}
		dir = parent
	}
}

// cacheDir is $XDG_CACHE_HOME/certprov (or the platform's user cache directory).
func cacheDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("testenv: cache directory: %w", err)
	}
	dir := filepath.Join(base, "certprov")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("testenv: cache directory: %w", err)
	}
	return dir, nil
}
