package bundle

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"go/parser"
	"go/token"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromeos-certprov/adapter/shared/ca/devca"
	"github.com/chromeos-certprov/adapter/shared/tooling/sourcebundle"
)

// What the Cloud Functions Go buildpack (GoogleCloudPlatform/buildpacks,
// cmd/go/functions_framework) does with an uploaded source, and this test
// repeats:
//  1. parse the package at the root of the source: its name and its imports;
//  2. `go list -m`: the module path, whose first element must contain a dot;
//  3. `go list -m -f {{.Version}} <functions-framework-go>`; if the module does
//     not require the framework, `go mod edit -require` its pinned version;
//  4. if the root package imports the framework's functions package
//     (declarative functions), generate functions.local/app/main.go inside the
//     module: blank-import the root package, funcframework.Start($PORT).
//     Otherwise the generated main would call <package>.<FUNCTION_TARGET>,
//     which a root package that only blank-imports does not have;
//  5. `go mod tidy`, then `go build` that main package;
//  6. run it with FUNCTION_TARGET=<entry point> and PORT.
//
// The buildpack's constants and generated main are in
// shared/tooling/sourcebundle, which the cold-start measurement shares.

// entryPoints are the functions terraform deploys (terraform/locals.tf,
// local.entry_points), how each is triggered and whether it gets CA secrets.
var entryPoints = []struct {
	name       string
	cloudEvent bool
	caSecrets  bool // terraform passes the CA secrets to this function only
}{
	{name: "ClaimProcess", cloudEvent: true},
	{name: "PollSignature"},
	{name: "IssueCertificate", caSecrets: true},
}

// TestTerraformContract checks that this test runs what terraform deploys:
// the same entry points (local.entry_points) and every environment variable
// terraform sets (local.function_env).
func TestTerraformContract(t *testing.T) {
	t.Parallel()
	locals, err := os.ReadFile(filepath.Join(repoRoot(t), "terraform", "locals.tf"))
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile(`(?s)entry_points = \{(.*?)\}`).FindSubmatch(locals)
	if block == nil {
		t.Fatal("terraform/locals.tf has no entry_points map")
	}
	got := map[string]bool{}
	for _, m := range regexp.MustCompile(`=\s*"(\w+)"`).FindAllSubmatch(block[1], -1) {
		got[string(m[1])] = true
	}
	if len(got) != len(entryPoints) {
		t.Errorf("terraform deploys %d entry points, this test checks %d", len(got), len(entryPoints))
	}
	for _, ep := range entryPoints {
		if !got[ep.name] {
			t.Errorf("terraform/locals.tf entry_points lacks %s", ep.name)
		}
	}

	env := regexp.MustCompile(`(?s)function_env = merge\((.*?)\n  \)`).FindSubmatch(locals)
	if env == nil {
		t.Fatal("terraform/locals.tf has no function_env")
	}
	set := map[string]bool{}
	for _, kv := range functionEnv("X", 1, deployment{}, false) {
		k, _, _ := strings.Cut(kv, "=")
		set[k] = true
	}
	for _, m := range regexp.MustCompile(`(?m)^\s+([A-Z][A-Z0-9_]+)\s+=`).FindAllSubmatch(env[1], -1) {
		if !set[string(m[1])] {
			t.Errorf("terraform sets %s, which this test does not give the functions", m[1])
		}
	}
}

// TestBuildpackBuildsEachEntryPoint renders the bundle, builds it as the Go
// buildpack would and checks that every entry point is served.
func TestBuildpackBuildsEachEntryPoint(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the whole bundle; skipped with -short")
	}
	bin := buildBundle(t)

	// 6. Run each entry point with the environment terraform gives it. It must
	// be served (not 404) and configure itself (no 5xx): the push function
	// acknowledges a message that is not a notification, a task function
	// refuses a GET.
	d := newDeployment(t)
	for _, ep := range entryPoints {
		t.Run(ep.name, func(t *testing.T) {
			status, body := serveOnce(t, bin, functionEnv(ep.name, freePort(t), d, ep.caSecrets), ep.cloudEvent)
			switch {
			case status == http.StatusNotFound:
				t.Errorf("%s: got 404: the function is not served at / (body %q)", ep.name, body)
			case status >= 500:
				hint := ""
				if !ep.caSecrets {
					hint = "; terraform gives CA secrets to IssueCertificate only, so no other function may need them to start"
				}
				t.Errorf("%s: got %d %q: the function is served but did not configure itself from terraform's environment%s (its output follows)",
					ep.name, status, strings.TrimSpace(body), hint)
			default:
				t.Logf("%s answered %d %q", ep.name, status, strings.TrimSpace(body))
			}
		})
	}

	// The check above can fail: a target that is not registered does not start.
	t.Run("unknown entry point fails", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin)
		cmd.Env = functionEnv("NoSuchFunction", freePort(t), d, false)
		out, err := cmd.CombinedOutput()
		if err == nil || ctx.Err() != nil {
			t.Fatalf("binary with FUNCTION_TARGET=NoSuchFunction: err %v (context %v), want a start failure; output:\n%s", err, ctx.Err(), out)
		}
		if !strings.Contains(string(out), "NoSuchFunction") {
			t.Errorf("start failure does not name the target:\n%s", out)
		}
	})
}

// buildBundle renders the bundle, builds it as the Go buildpack would (steps
// 1-5 above) and returns the binary.
func buildBundle(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "serverless_function_source_code")
	b, err := sourcebundle.Unpack(repoRoot(t), src)
	if err != nil {
		t.Fatal(err)
	}

	// 1. The root package.
	pkgName, imports := parseRootPackage(t, src)
	if pkgName == "main" {
		t.Fatal("the root package is package main; the buildpack needs a library package")
	}
	// 2. The module path.
	mod := strings.TrimSpace(goCmd(t, src, "list", "-m"))
	if first, _, _ := strings.Cut(mod, "/"); !strings.Contains(first, ".") {
		t.Fatalf("module path %q: its first element must contain a dot", mod)
	}
	// 3. The framework version.
	if _, err := goCmdErr(src, "list", "-m", "-f", "{{.Version}}", sourcebundle.FrameworkModule); err != nil {
		t.Logf("go.mod does not require %s; the buildpack would add %s", sourcebundle.FrameworkModule, sourcebundle.FrameworkInjected)
		goCmd(t, src, "mod", "edit", "-require", sourcebundle.FrameworkModule+"@"+sourcebundle.FrameworkInjected)
	}
	// 4. The generated main.
	if !imports[sourcebundle.FrameworkPackage] {
		t.Fatalf("the root package %s does not import %s: the buildpack would generate a main calling %s.<FUNCTION_TARGET>, "+
			"which does not exist, and the build would fail", b.RootFile, sourcebundle.FrameworkPackage, pkgName)
	}
	if err := os.MkdirAll(filepath.Join(src, sourcebundle.AppMainDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, sourcebundle.AppMainDir, "main.go"), sourcebundle.AppMain(mod), 0o644); err != nil {
		t.Fatal(err)
	}
	// 5. tidy and build.
	goCmd(t, src, "mod", "tidy")
	bin := filepath.Join(t.TempDir(), "main")
	goCmd(t, src, "build", "-o", bin, "./"+sourcebundle.AppMainDir)
	return bin
}

// parseRootPackage reads the package clause and imports of the root directory's
// .go files, as the buildpack's get_package converter does.
func parseRootPackage(t *testing.T, dir string) (string, map[string]bool) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no .go file at the root of the bundle (%v)", err)
	}
	name := ""
	imports := map[string]bool{}
	fset := token.NewFileSet()
	for _, f := range files {
		af, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatalf("parse %s: %v", f, err)
		}
		if name != "" && af.Name.Name != name {
			t.Fatalf("root files are in packages %s and %s", name, af.Name.Name)
		}
		name = af.Name.Name
		for _, imp := range af.Imports {
			p, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				t.Fatalf("parse %s: import %s: %v", f, imp.Path.Value, err)
			}
			imports[p] = true
		}
	}
	return name, imports
}

// goCmd runs the go command in dir as the buildpack would (modules resolved
// through the module proxy/cache, no workspace, this toolchain).
func goCmd(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := goCmdErr(dir, args...)
	if err != nil {
		t.Fatalf("go %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func goCmdErr(dir string, args ...string) (string, error) {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off", "GOTOOLCHAIN=local")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w\n%s", err, stderr.String())
	}
	return stdout.String(), nil
}

// deployment is what terraform gives the functions besides fixed values: an
// adapter config whose CA connection (not SCEP) needs a secret, and that
// secret, which terraform passes to IssueCertificate only (secret_env's
// default; ClaimProcess gets a CA's secrets only for SCEP connections).
type deployment struct {
	config    string
	secretEnv string
	secret    string
}

func newDeployment(t *testing.T) deployment {
	t.Helper()
	cert, key, err := devca.Generate("bundle test CA")
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	const secretEnv = "BUNDLE_TEST_CA_KEY"
	config, err := json.Marshal(map[string]any{
		"allowedCustomers": []string{"C0bundle1"},
		"caConnections": map[string]any{
			"dev": map[string]any{"type": devca.Type, "settings": map[string]string{"certFile": certFile, "keyEnv": secretEnv}},
		},
		"profiles": map[string]any{},
	})
	if err != nil {
		t.Fatal(err)
	}
	return deployment{
		config:    string(config),
		secretEnv: secretEnv,
		secret:    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
	}
}

// functionEnv is the environment of one function instance: what
// terraform/locals.tf sets (function_env), the CA secret for IssueCertificate
// only, and the emulator switches that keep every endpoint on a closed local
// port, so nothing leaves the machine whatever the function does.
func functionEnv(target string, port int, d deployment, withSecret bool) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"FUNCTION_TARGET=" + target,
		"PORT=" + strconv.Itoa(port),
		"K_SERVICE=bundle-test",
		// terraform/locals.tf function_env
		"GOOGLE_CLOUD_PROJECT=bundle-test",
		"CERTPROV_CONFIG=" + d.config,
		"FIRESTORE_DATABASE=certprov",
		"FIRESTORE_COLLECTION=certprovProcesses",
		"TASKS_POLL_QUEUE=projects/bundle-test/locations/us-central1/queues/certprov-poll",
		"TASKS_ISSUE_QUEUE=projects/bundle-test/locations/us-central1/queues/certprov-issue",
		"TASKS_CLAIM_QUEUE=projects/bundle-test/locations/us-central1/queues/certprov-claim",
		"POLL_SIGNATURE_URL=https://certprov-poll-123456789012.us-central1.run.app",
		"ISSUE_CERTIFICATE_URL=https://certprov-issue-123456789012.us-central1.run.app",
		"TASKS_SERVICE_ACCOUNT=certprov-tasks@bundle-test.iam.gserviceaccount.com",
		"TASKS_MAX_ATTEMPTS=10",
		"RECORD_TTL=720h",
		"INVENTORY_COLLECTION=certprovCertificates",
		"INVENTORY_GRACE=2160h",
		"LOG_LEVEL=debug",
		"CALLER_INSTANCE_ID=certprov-adapter-bundle-test",
		"POLL_INITIAL_DELAY=2s",
		"POLL_MULTIPLIER=1.5",
		"POLL_MAX_DELAY=10s",
		"POLL_JITTER=0.2",
		"POLL_FAST_FOR=10s",
		"POLL_LATE_AFTER=10m",
		"POLL_LATE_INTERVAL=5m",
		"SWEEP_AFTER=1h",
		"LEASE=2m",
		"SWEEP_BUDGET=50s",
		"CA_TIMEOUT=1m",
		"POLL_DEADLINE=24h",
		// local stand-ins
		"CERTPROV_API_EMULATOR_HOST=127.0.0.1:9",
		"FIRESTORE_EMULATOR_HOST=127.0.0.1:9",
		"CLOUD_TASKS_EMULATOR_HOST=127.0.0.1:9",
		"NO_PROXY=*",
	}
	if withSecret {
		env = append(env, d.secretEnv+"="+d.secret)
	}
	return env
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// serveOnce starts the binary for one entry point, sends it one request that
// reaches the function (a Pub/Sub push delivery, or a GET that a task function
// refuses) and returns the answer.
func serveOnce(t *testing.T, bin string, env []string, cloudEvent bool) (int, string) {
	t.Helper()
	var target, port string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "FUNCTION_TARGET="); ok {
			target = v
		} else if v, ok := strings.CutPrefix(kv, "PORT="); ok {
			port = v
		}
	}
	var logs bytes.Buffer
	cmd := exec.Command(bin)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", target, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("%s output:\n%s", target, logs.String())
		}
	})

	addr := net.JoinHostPort("127.0.0.1", port)
	giveUp := time.After(2 * time.Minute)
	for ready := false; !ready; {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("%s exited before serving: %v", target, err)
		case <-time.After(50 * time.Millisecond):
			if c, err := net.Dial("tcp", addr); err == nil {
				c.Close()
				ready = true
			}
		case <-giveUp:
			t.Fatalf("%s did not listen on %s", target, addr)
		}
	}

	var req *http.Request
	var err error
	if cloudEvent {
		// What the claim push subscription (terraform/pubsub.tf) delivers: the
		// wrapped Pub/Sub message with its delivery attempt, POSTed to the
		// function's URL. Its data is not a notification.
		body := `{"message":{"data":"bm90IGEgbm90aWZpY2F0aW9u","messageId":"1","message_id":"1","publishTime":"2026-01-01T00:00:00Z","publish_time":"2026-01-01T00:00:00Z"},` +
			`"subscription":"projects/bundle-test/subscriptions/certprov-claim","deliveryAttempt":1}`
		req, err = http.NewRequest(http.MethodPost, "http://"+addr+"/", strings.NewReader(body))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
		}
	} else {
		req, err = http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("request to %s: %v", target, err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	return resp.StatusCode, body.String()
}
