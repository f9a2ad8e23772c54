package config

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the README's environment table from the declarations")

// envTable renders the README's "Environment variables" table from the
// declarations.
func envTable() string {
	var b strings.Builder
	b.WriteString("| variable | meaning | default |\n|---|---|---|\n")
	for _, s := range (&Config{}).settings() {
		b.WriteString(strings.ReplaceAll("| `"+s.Name+"` | "+s.meaning()+" | "+s.defaultText()+" |", "|  |", "| |") + "\n")
	}
	return b.String()
}

// meaning is the table's meaning column: Doc, and a number's bounds.
func (s Setting) meaning() string {
	switch s.target.(type) {
	case *int, *float64:
		return fmt.Sprintf("%s; %g to %g", s.Doc, s.Min, s.Max)
	}
	return s.Doc
}

// readmeTable finds the table under "### Environment variables" in readme:
// its start and end offsets.
func readmeTable(t *testing.T, readme string) (int, int) {
	t.Helper()
	const heading, header = "### Environment variables\n", "\n| variable | meaning | default |\n"
	i := strings.Index(readme, heading)
	if i < 0 {
		t.Fatal("README.md has no " + strings.TrimSpace(heading))
	}
	j := strings.Index(readme[i:], header)
	if j < 0 || strings.Contains(readme[i+len(heading):i+j], "\n#") {
		t.Fatal("README.md: no table in the section " + strings.TrimSpace(heading))
	}
	start := i + j + 1
	end := strings.Index(readme[start:], "\n\n")
	if end < 0 {
		t.Fatal("README.md: the environment table does not end")
	}
	return start, start + end + 1
}

// TestREADMEEnvironmentTable: the README's table is the declarations, both
// ways: every declared variable is documented with its meaning and default,
// and no documented variable is undeclared. `go test ./shared/config -run
// TestREADMEEnvironmentTable -update` rewrites it.
func TestREADMEEnvironmentTable(t *testing.T) {
	path := filepath.Join("..", "..", "README.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	start, end := readmeTable(t, readme)
	want := envTable()
	if *update {
		if err := os.WriteFile(path, []byte(readme[:start]+want+readme[end:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if diff := cmp.Diff(strings.Split(want, "\n"), strings.Split(readme[start:end], "\n")); diff != "" {
		t.Errorf("README.md's environment table is not the declarations in env.go (-declared +README); run go test ./shared/config -run %s -update:\n%s", t.Name(), diff)
	}
}

// TestTerraformSetsDeclaredVariables: every variable terraform gives the
// functions (terraform/locals.tf, function_env) is declared, so none is set
// for nothing or misspelled.
func TestTerraformSetsDeclaredVariables(t *testing.T) {
	t.Parallel()
	locals, err := os.ReadFile(filepath.Join("..", "..", "terraform", "locals.tf"))
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile(`(?s)function_env = merge\((.*?)\n  \)`).FindSubmatch(locals)
	if block == nil {
		t.Fatal("terraform/locals.tf has no function_env")
	}
	var declared []string
	for _, s := range (&Config{}).settings() {
		declared = append(declared, s.Name)
	}
	names := regexp.MustCompile(`(?m)^\s+(?:[\w.]+ == null \? \{\} : \{ )?([A-Z][A-Z0-9_]+)\s+=`).FindAllSubmatch(block[1], -1)
	if len(names) < 10 {
		t.Fatalf("found %d variables in function_env, want the 20 or so it sets", len(names))
	}
	for _, m := range names {
		if !slices.Contains(declared, string(m[1])) {
			t.Errorf("terraform sets %s, which config does not declare", m[1])
		}
	}
}

// TestDeclarations: names are unique, every declaration sets a field or
// says who reads it, and every default decodes.
func TestDeclarations(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, s := range (&Config{}).settings() {
		if seen[s.Name] {
			t.Errorf("%s: declared twice", s.Name)
		}
		seen[s.Name] = true
		if (s.target == nil) == (s.ReadBy == "") {
			t.Errorf("%s: wants exactly one of a field and ReadBy", s.Name)
		}
		if s.Doc == "" {
			t.Errorf("%s: no Doc", s.Name)
		}
		if s.target != nil && s.Default != "" {
			if err := s.set(s.Default); err != nil {
				t.Errorf("%s: default %q is %v", s.Name, s.Default, err)
			}
		}
	}
}
