package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/tooling/sourcebundle"
	"github.com/chromeos-certprov/adapter/shared/tooling/testenv"
)

// repoRoot finds the repository root: the nearest directory above the test's
// working directory that has terraform/bundle/files.json.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("getwd: %v", err)
	}
	root, err := sourcebundle.FindRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// render renders the repository's bundle as terraform/bundle.tf does.
func render(t *testing.T, root string) sourcebundle.Bundle {
	t.Helper()
	b, err := sourcebundle.Render(root)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBundleContents checks what goes into the bundle: the module files, every
// function package, no tests and nothing that only the local run needs.
func TestBundleContents(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	b := render(t, root)
	has := map[string]bool{}
	dirs := map[string]bool{}
	for _, f := range b.Files {
		has[f] = true
		dirs[path.Dir(f)] = true
		if strings.HasSuffix(f, "_test.go") || strings.HasPrefix(f, "functions/cmd/") || strings.HasPrefix(f, "functions/bundle/") {
			t.Errorf("bundle holds %s, which the deployed functions do not need", f)
		}
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		if !has[f] {
			t.Errorf("bundle lacks %s", f)
		}
	}
	for _, d := range []string{"functions/claim", "functions/poll", "functions/issue"} {
		if !dirs[d] {
			t.Errorf("bundle has no file of %s: does the package exist (with a non-test .go file)?", d)
		}
	}
	if has[b.RootFile] {
		t.Errorf("generated root file %s would overwrite the repository's own %s", b.RootFile, b.RootFile)
	}
	if !strings.Contains(b.RootContent, "package ") {
		t.Errorf("generated root file is not Go:\n%s", b.RootContent)
	}
}

// TestTerraformRendersSameBundle compares this test's rendering with what
// terraform computed for the same files.json (.ci/tofu.sh evaluates
// local.bundle_files and local.bundle_root_file with `tofu console` and passes
// the result in CERTPROV_TERRAFORM_BUNDLE).
func TestTerraformRendersSameBundle(t *testing.T) {
	file := os.Getenv("CERTPROV_TERRAFORM_BUNDLE")
	if file == "" {
		testenv.Unavailable(t, "terraform's bundle (CERTPROV_TERRAFORM_BUNDLE, written by .ci/tofu.sh)", errors.New("not set"))
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("read terraform's bundle: %v", err)
	}
	var fromTerraform sourcebundle.Bundle
	if err := json.Unmarshal(raw, &fromTerraform); err != nil {
		t.Fatalf("parse terraform's bundle: %v", err)
	}
	got := render(t, repoRoot(t))
	if len(fromTerraform.Files) == 0 {
		t.Fatal("terraform's bundle has no files")
	}
	if diff := cmp.Diff(fromTerraform, got); diff != "" {
		t.Errorf("bundle differs from terraform's (-terraform +test):\n%s", diff)
	}
}

// TestBundleIsWhatTheFunctionsLink checks that the bundle's Go files are
// exactly the non-test Go files of the packages the three functions link (go
// list -deps), so no emulator, simulation or test kit ships and nothing the
// functions need is missing. It logs both line counts.
func TestBundleIsWhatTheFunctionsLink(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	b := render(t, root)
	var bundled []string
	for _, f := range b.Files {
		if strings.HasSuffix(f, ".go") {
			bundled = append(bundled, f)
		}
	}
	cmd := exec.Command("go", "list", "-deps", "-f", `{{if .Module}}{{if .Module.Main}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}
{{end}}{{range .CgoFiles}}{{$d}}/{{.}}
{{end}}{{range .EmbedFiles}}{{$d}}/{{.}}
{{end}}{{end}}{{end}}`, "./functions/claim", "./functions/poll", "./functions/issue")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	var linked []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		rel, err := filepath.Rel(root, line)
		if err != nil {
			t.Fatal(err)
		}
		linked = append(linked, filepath.ToSlash(rel))
	}
	slices.Sort(linked)
	slices.Sort(bundled)
	if diff := cmp.Diff(linked, bundled); diff != "" {
		t.Errorf("bundle's Go files differ from what the functions link (-linked +bundled):\n%s", diff)
	}
	lines := func(files []string) int {
		n := 0
		for _, f := range files {
			data, err := os.ReadFile(filepath.Join(root, f))
			if err != nil {
				t.Fatal(err)
			}
			n += bytes.Count(data, []byte("\n"))
		}
		return n
	}
	t.Logf("linked: %d files, %d lines; bundled: %d files, %d lines", len(linked), lines(linked), len(bundled), lines(bundled))
}
