// Package sceptest starts real SCEP certificate authorities for tests --
// micromdm's scepserver (StartSCEPServer) and step-ca's SCEP provisioner
// (StartStepCA), built once with `go install` into the user cache -- plus
// fakes for what cannot run here: NDES's mscep_admin challenge page
// (StartNDESAdmin), and a SCEP responder of our own (StartResponder) that
// answers PENDING before SUCCESS and implements CertPoll, which neither real
// server does; StartNDES pairs the two into an NDES stand-in with RA
// certificates and one-time challenges. Each gives connector settings
// (Settings) and the secrets they name (Secrets), for the connector's tests
// and the pipeline's end-to-end tests alike.
//
// Where a binary cannot be built (no module proxy), tests skip through
// testenv.Unavailable, or fail under CERTPROV_INTEGRATION=require.
package sceptest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// Versions of the real servers.
const (
	SCEPServerVersion = "v2.3.0"
	StepCAVersion     = "v0.30.2"
)

// SCEPServerBin returns micromdm's scepserver, $CERTPROV_SCEPSERVER_BIN or
// built into os.UserCacheDir()/certprov/bin/scepserver-<version>/.
func SCEPServerBin() (string, error) {
	if p := os.Getenv("CERTPROV_SCEPSERVER_BIN"); p != "" {
		return p, nil
	}
	return install("scepserver", "github.com/micromdm/scep/v2/cmd/scepserver", SCEPServerVersion)
}

// StepCABin returns step-ca, $CERTPROV_STEPCA_BIN or built (CGO_ENABLED=0,
// a few minutes on two cores) into os.UserCacheDir()/certprov/bin/step-ca-<version>/.
func StepCABin() (string, error) {
	if p := os.Getenv("CERTPROV_STEPCA_BIN"); p != "" {
		return p, nil
	}
	return install("step-ca", "github.com/smallstep/certificates/cmd/step-ca", StepCAVersion)
}

// install builds pkg@version with `go install` once per machine: a file
// lock keeps concurrent test binaries from building it twice.
func install(name, pkg, version string) (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "certprov", "bin", name+"-"+version)
	bin := filepath.Join(dir, name)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", dir, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("build %s: %w", name, err)
	}
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	args := []string{goBin, "install", pkg + "@" + version}
	if nice, err := exec.LookPath("nice"); err == nil {
		args = append([]string{nice}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install %s@%s: %w: %s", pkg, version, err, tail(out))
	}
	if err := os.Rename(filepath.Join(tmp, name), bin); err != nil {
		return "", err
	}
	if _, err := os.Stat(bin); err != nil {
		return "", errors.New("go install left no " + name)
	}
	return bin, nil
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}
