package sourcebundle

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

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
		if got := Match(tt.pattern, tt.name); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
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
			got, err := RenderTemplate(tt.tmpl, map[string]string{"module": "example.com/m"})
			if (err != nil) != tt.wantErr {
				t.Fatalf("RenderTemplate error = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Errorf("RenderTemplate = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestUnpack renders the repository's bundle, zips it as terraform does and
// unzips it: every bundled file arrives with its bytes, and the generated
// root file with the rendered content.
func TestUnpack(t *testing.T) {
	t.Parallel()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := FindRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	b, err := Unpack(root, dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(b.Files, "go.mod") || !slices.Contains(b.Files, "functions/claim/claim.go") {
		t.Fatalf("bundle lacks go.mod or functions/claim/claim.go: %v", b.Files)
	}
	var unpacked []string
	err = filepath.WalkDir(dir, func(name string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, name)
		unpacked = append(unpacked, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Sorted(slices.Values(append(slices.Clone(b.Files), b.RootFile)))
	slices.Sort(unpacked)
	if diff := cmp.Diff(want, unpacked); diff != "" {
		t.Errorf("unpacked files (-bundle +unpacked):\n%s", diff)
	}
	for _, f := range b.Files {
		orig, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if string(orig) != string(got) {
			t.Errorf("%s differs after the zip round trip", f)
		}
	}
	got, err := os.ReadFile(filepath.Join(dir, b.RootFile))
	if err != nil || string(got) != b.RootContent || !strings.Contains(b.RootContent, "package ") {
		t.Errorf("root file %s: %v\n%s", b.RootFile, err, got)
	}
}
