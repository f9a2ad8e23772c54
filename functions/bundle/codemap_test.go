package bundle

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// codeMap reads the README's code map: the paragraph "Code map. What ships
// ..." (the packages the functions link) and the next one, "What does not
// ship sits under `shared/tooling/` ..." (the tooling and the commands). It
// returns the package directories each names, with `a/{b,c}` expanded and
// the tooling names taken relative to shared/tooling/.
func codeMap(t *testing.T, readme string) (ships, tooling []string) {
	t.Helper()
	start := strings.Index(readme, "Code map. What ships")
	if start < 0 {
		t.Fatal(`README: no paragraph starting "Code map. What ships"`)
	}
	paras := strings.SplitN(readme[start:], "\n\n", 3)
	if len(paras) < 2 || !strings.HasPrefix(paras[1], "What does not ship sits under `shared/tooling/`") {
		t.Fatal("README: the code map's second paragraph does not start \"What does not ship sits under `shared/tooling/`\"")
	}
	tick := regexp.MustCompile("`([a-z0-9_/{},.]+)`")
	brace := regexp.MustCompile(`^(.*)\{([^}]*)\}(.*)$`)
	names := func(para, base string) []string {
		var out []string
		for _, m := range tick.FindAllStringSubmatch(para, -1) {
			expanded := []string{m[1]}
			if b := brace.FindStringSubmatch(m[1]); b != nil {
				expanded = nil
				for _, alt := range strings.Split(b[2], ",") {
					expanded = append(expanded, b[1]+alt+b[3])
				}
			}
			for _, n := range expanded {
				if strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "/") {
					continue // a file (connectors.go) or the folder itself
				}
				if !strings.HasPrefix(n, "shared/") && !strings.HasPrefix(n, "functions/") {
					if base == "" {
						continue // not a package of this module (`chromemanagement/v1`)
					}
					n = base + n
				}
				out = append(out, n)
			}
		}
		return out
	}
	return names(paras[0], ""), names(paras[1], "shared/tooling/")
}

// TestCodeMapIsTrue checks the README's code map against the tree: its
// "what ships" paragraph names exactly the packages the three functions link,
// and the two paragraphs together name every package of the module.
func TestCodeMapIsTrue(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	ships, tooling := codeMap(t, string(readme))
	list := func(args ...string) []string {
		t.Helper()
		cmd := exec.Command("go", append([]string{"list", "-f", `{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}`}, args...)...)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list %v: %v", args, err)
		}
		var dirs []string
		for _, line := range strings.Fields(string(out)) {
			rel, err := filepath.Rel(root, line)
			if err != nil {
				t.Fatal(err)
			}
			dirs = append(dirs, filepath.ToSlash(rel))
		}
		slices.Sort(dirs)
		return slices.Compact(dirs)
	}
	linked := list("-deps", "./functions/claim", "./functions/poll", "./functions/issue")
	slices.Sort(ships)
	if diff := cmp.Diff(linked, slices.Compact(ships)); diff != "" {
		t.Errorf("README code map, \"What ships\": the packages it names differ from what the functions link (-linked +named):\n%s", diff)
	}
	var missing []string
	named := slices.Concat(ships, tooling)
	for _, pkg := range list("./...") {
		if !slices.Contains(named, pkg) {
			missing = append(missing, pkg)
		}
	}
	if len(missing) > 0 {
		t.Errorf("README code map names no %q", missing)
	}
	for _, n := range tooling {
		if _, err := os.Stat(filepath.Join(root, n)); err != nil {
			t.Errorf("README code map names %s, which is not in the tree", n)
		}
	}
}
