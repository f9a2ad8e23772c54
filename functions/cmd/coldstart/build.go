package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/chromeos-certprov/adapter/shared/tooling/sourcebundle"
)

// What the Cloud Functions Go buildpack does with the uploaded source, as
// functions/bundle/buildpack_test.go repeats it (see that file for the steps
// and the buildpack's sources). The bundle is rendered, zipped and unzipped
// by shared/tooling/sourcebundle exactly as terraform/bundle.tf does; the
// test in functions/bundle checks that rendering against terraform's. The
// buildpack's go build step (GoogleCloudPlatform/buildpacks cmd/go/build) runs
// `go build [-gcflags $GOOGLE_GOGCFLAGS] [-ldflags $GOOGLE_GOLDFLAGS] -o main .`:
// no flags unless those build environment variables are set, and terraform
// sets none, so the deployed binary is not stripped.

// variant is one way of building the bundle.
type variant struct {
	Name    string   `json:"name"`
	LDFlags string   `json:"ldflags,omitempty"`
	Env     []string `json:"env,omitempty"`
	Path    string   `json:"-"`
	Size    int64    `json:"size_bytes"`
}

// variants: what the buildpack builds; the same with symbols and DWARF
// stripped, which GOOGLE_GOLDFLAGS="-s -w" in the function's build
// environment would give; and a static binary without cgo. The buildpack
// leaves CGO_ENABLED alone, so whether its binary is dynamically linked (as
// here, where gcc is installed) depends on a C compiler in its build image.
func variants() []variant {
	return []variant{
		{Name: "buildpack"},
		{Name: "stripped", LDFlags: "-s -w"},
		{Name: "no-cgo", Env: []string{"CGO_ENABLED=0"}},
	}
}

// build renders the bundle into src and builds each variant as the buildpack
// would, into out. It fills in each variant's path and size.
func build(ctx context.Context, root, src, out string, vs []variant) error {
	if _, err := sourcebundle.Unpack(root, src); err != nil {
		return err
	}
	mod, err := goCmd(ctx, src, "list", "-m")
	if err != nil {
		return err
	}
	mod = strings.TrimSpace(mod)
	if _, err := goCmd(ctx, src, "list", "-m", "-f", "{{.Version}}", sourcebundle.FrameworkModule); err != nil {
		if _, err := goCmd(ctx, src, "mod", "edit", "-require", sourcebundle.FrameworkModule+"@"+sourcebundle.FrameworkInjected); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(src, sourcebundle.AppMainDir), 0o755); err != nil {
		return fmt.Errorf("generated main: %w", err)
	}
	if err := os.WriteFile(filepath.Join(src, sourcebundle.AppMainDir, "main.go"), sourcebundle.AppMain(mod), 0o644); err != nil {
		return fmt.Errorf("generated main: %w", err)
	}
	if _, err := goCmd(ctx, src, "mod", "tidy"); err != nil {
		return err
	}
	for i := range vs {
		v := &vs[i]
		v.Path = filepath.Join(out, "main-"+v.Name)
		args := []string{"build"}
		if v.LDFlags != "" {
			args = append(args, "-ldflags", v.LDFlags)
		}
		args = append(args, "-o", v.Path, "./"+sourcebundle.AppMainDir)
		if _, err := goCmdEnv(ctx, src, v.Env, args...); err != nil {
			return err
		}
		fi, err := os.Stat(v.Path)
		if err != nil {
			return fmt.Errorf("built binary: %w", err)
		}
		v.Size = fi.Size()
	}
	return nil
}

// goCmd runs the go command in dir as the buildpack would: modules through
// the proxy and cache, no workspace, this toolchain.
func goCmd(ctx context.Context, dir string, args ...string) (string, error) {
	return goCmdEnv(ctx, dir, nil, args...)
}

// goCmdEnv is goCmd with more environment variables.
func goCmdEnv(ctx context.Context, dir string, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off", "GOTOOLCHAIN=local"), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}
