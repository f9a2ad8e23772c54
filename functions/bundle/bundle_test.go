package bundle

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/chromeos-certprov/adapter/shared/tooling/testenv"
	"github.com/google/go-cmp/cmp"
)

// spec is terraform/bundle/files.json, the one list of what the bundle holds.
type spec struct {
	Include      []string `json:"include"`
	Exclude      []string `json:"exclude"`
	RootFile     string   `json:"root_file"`
	RootTemplate string   `json:"root_template"`
}

// bundle is the rendered source bundle: repository files plus the generated
// root package file.
type bundle struct {
	Files       []string `json:"files"` // repository-relative, sorted
	RootFile    string   `json:"root_file"`
	RootContent string   `json:"root_content"`
}

// repoRoot finds the repository root: the nearest directory above the test's
// working directory that has terraform/bundle/files.json.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("getwd: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "terraform", "bundle", "files.json")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no terraform/bundle/files.json above the working directory")
		}
		dir = parent
	}
}

func loadSpec(root string) (spec, error) {
	var s spec
	raw, err := os.ReadFile(filepath.Join(root, "terraform", "bundle", "files.json"))
	if err != nil {
		return s, fmt.Errorf("read bundle spec: %w", err)
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return s, fmt.Errorf("parse bundle spec: %w", err)
	}
	if len(s.Include) == 0 || s.RootFile == "" || s.RootTemplate == "" {
		return s, errors.New("bundle spec: include, root_file and root_template are required")
	}
	return s, nil
}

// render computes the bundle as terraform/bundle.tf does:
// setsubtract(union of fileset(root, include), union of fileset(root, exclude))
// plus templatefile(root_template, {module = <module path of go.mod>}).
func render(root string, s spec) (bundle, error) {
	files, err := fileset(root, s.Include)
	if err != nil {
		return bundle{}, err
	}
	var kept []string
	for _, f := range files {
		if !matchAny(s.Exclude, f) {
			kept = append(kept, f)
		}
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return bundle{}, fmt.Errorf("read go.mod: %w", err)
	}
	mod, err := modulePath(gomod)
	if err != nil {
		return bundle{}, err
	}
	tmpl, err := os.ReadFile(filepath.Join(root, "terraform", "bundle", s.RootTemplate))
	if err != nil {
		return bundle{}, fmt.Errorf("read root template: %w", err)
	}
	content, err := renderTemplate(string(tmpl), map[string]string{"module": mod})
	if err != nil {
		return bundle{}, err
	}
	return bundle{Files: kept, RootFile: s.RootFile, RootContent: content}, nil
}

// modulePath extracts the module path the way bundle.tf does, with the same
// regular expression.
func modulePath(gomod []byte) (string, error) {
	m := regexp.MustCompile(`(?m)^module[ \t]+(\S+)`).FindSubmatch(gomod)
	if m == nil {
		return "", errors.New("go.mod has no module line")
	}
	return string(m[1]), nil
}

// renderTemplate substitutes ${name} like terraform's templatefile. It accepts
// only plain ${name} interpolations: any other template syntax would make the
// two renderings differ, so it is an error here.
func renderTemplate(tmpl string, vars map[string]string) (string, error) {
	if strings.Contains(tmpl, "%{") {
		return "", errors.New("root template: %{ directives are not supported by this test's renderer")
	}
	var errs []error
	out := regexp.MustCompile(`\$\{([^}]*)\}`).ReplaceAllStringFunc(tmpl, func(m string) string {
		name := m[2 : len(m)-1]
		v, ok := vars[name]
		if !ok {
			errs = append(errs, fmt.Errorf("root template: unknown interpolation %s", m))
		}
		return v
	})
	return out, errors.Join(errs...)
}

// fileset returns the regular files under root matching any pattern, sorted,
// with terraform's fileset() semantics (doublestar globs: * within a path
// segment, ** any number of segments, symlinks followed).
func fileset(root string, patterns []string) ([]string, error) {
	seen := map[string]bool{}
	for _, p := range patterns {
		// Walk only below the pattern's literal leading directories.
		segs := strings.Split(p, "/")
		base := ""
		for _, s := range segs[:len(segs)-1] {
			if strings.ContainsAny(s, `*?[{\`) {
				break
			}
			base = path.Join(base, s)
		}
		start := filepath.Join(root, filepath.FromSlash(base))
		if _, err := os.Stat(start); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		err := filepath.WalkDir(start, func(name string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(root, name)
			if err != nil {
				return err
			}
			rel = filepath.ToSlash(rel)
			fi, err := os.Stat(name)
			if err != nil || !fi.Mode().IsRegular() {
				return err
			}
			if match(p, rel) {
				seen[rel] = true
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("fileset %s: %w", p, err)
		}
	}
	files := make([]string, 0, len(seen))
	for f := range seen {
		files = append(files, f)
	}
	sort.Strings(files)
	return files, nil
}

func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if match(p, name) {
			return true
		}
	}
	return false
}

// match reports whether the slash-separated name matches the doublestar
// pattern: ** matches zero or more whole segments, other segments match as
// path.Match.
func match(pattern, name string) bool {
	return matchSegs(strings.Split(pattern, "/"), strings.Split(name, "/"))
}

func matchSegs(pat, name []string) bool {
	if len(pat) == 0 {
		return len(name) == 0
	}
	if pat[0] == "**" {
		for i := 0; i <= len(name); i++ {
			if matchSegs(pat[1:], name[i:]) {
				return true
			}
		}
		return false
	}
	if len(name) == 0 {
		return false
	}
	ok, err := path.Match(pat[0], name[0])
	return err == nil && ok && matchSegs(pat[1:], name[1:])
}

// zipBundle writes the bundle as the archive provider's archive_file with
// source blocks does: entries sorted by name, created with zip.Writer.Create.
func zipBundle(root string, b bundle) ([]byte, error) {
	content := map[string][]byte{b.RootFile: []byte(b.RootContent)}
	for _, f := range b.Files {
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f)))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", f, err)
		}
		content[f] = data
	}
	names := make([]string, 0, len(content))
	for n := range content {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, n := range names {
		w, err := zw.Create(n)
		if err != nil {
			return nil, fmt.Errorf("zip %s: %w", n, err)
		}
		if _, err := w.Write(content[n]); err != nil {
			return nil, fmt.Errorf("zip %s: %w", n, err)
		}
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("zip: %w", err)
	}
	return buf.Bytes(), nil
}

// unzip extracts the bundle into dir, as Cloud Functions does before the build.
func unzip(data []byte, dir string) error {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return fmt.Errorf("open zip: %w", err)
	}
	for _, f := range zr.File {
		dst := filepath.Join(dir, filepath.FromSlash(f.Name))
		if !strings.HasPrefix(dst, filepath.Clean(dir)+string(filepath.Separator)) {
			return fmt.Errorf("zip entry %q escapes the directory", f.Name)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("unzip %s: %w", f.Name, err)
		}
		r, err := f.Open()
		if err != nil {
			return fmt.Errorf("unzip %s: %w", f.Name, err)
		}
		data, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			return fmt.Errorf("unzip %s: %w", f.Name, err)
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			return fmt.Errorf("unzip %s: %w", f.Name, err)
		}
	}
	return nil
}

func TestMatchIsDoublestar(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"go.mod", "go.mod", true},
		{"go.mod", "shared/go.mod", false},
		{"functions/**/*.go", "functions/claim/claim.go", true},
		{"functions/**/*.go", "functions/x.go", true}, // ** matches zero segments
		{"functions/**/*.go", "functions/a/b/c.go", true},
		{"functions/**/*.go", "functions/claim/claim.go.orig", false},
		{"functions/**/*.go", "shared/x.go", false},
		{"**/*_test.go", "x_test.go", true},
		{"**/*_test.go", "shared/a/x_test.go", true},
		{"**/*_test.go", "shared/a/x.go", false},
		{"**/testdata/**", "shared/ca/testdata/a/b.go", true},
		{"**/testdata/**", "testdata/b.go", true},
		{"**/testdata/**", "shared/testdatax/b.go", false},
		{"functions/cmd/**", "functions/cmd/local/main.go", true},
		{"functions/cmd/**", "functions/cmdx/main.go", false},
		{"shared/*.go", "shared/a/b.go", false}, // * stays within a segment
	}
	for _, tt := range tests {
		if got := match(tt.pattern, tt.name); got != tt.want {
			t.Errorf("match(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

func TestRenderTemplate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, tmpl, want string
		wantErr          bool
	}{
		{name: "module", tmpl: `import _ "${module}/functions/claim"`, want: `import _ "example.com/m/functions/claim"`},
		{name: "unknown variable", tmpl: `${other}`, wantErr: true},
		{name: "directive", tmpl: `%{ if true }x%{ endif }`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := renderTemplate(tt.tmpl, map[string]string{"module": "example.com/m"})
			if (err != nil) != tt.wantErr {
				t.Fatalf("renderTemplate error = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Errorf("renderTemplate = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestBundleContents checks what goes into the bundle: the module files, every
// function package, no tests and nothing that only the local run needs.
func TestBundleContents(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	s, err := loadSpec(root)
	if err != nil {
		t.Fatal(err)
	}
	b, err := render(root, s)
	if err != nil {
		t.Fatal(err)
	}
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
	var fromTerraform bundle
	if err := json.Unmarshal(raw, &fromTerraform); err != nil {
		t.Fatalf("parse terraform's bundle: %v", err)
	}
	root := repoRoot(t)
	s, err := loadSpec(root)
	if err != nil {
		t.Fatal(err)
	}
	got, err := render(root, s)
	if err != nil {
		t.Fatal(err)
	}
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
	s, err := loadSpec(root)
	if err != nil {
		t.Fatal(err)
	}
	b, err := render(root, s)
	if err != nil {
		t.Fatal(err)
	}
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
