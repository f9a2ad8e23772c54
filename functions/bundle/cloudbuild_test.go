package bundle

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// cloudbuild.yaml is a usable build trigger: every step has a unique id and
// waits only for steps before it, the tests run the README's test command,
// vet/test/validate gate the plan, and apply only follows the plan behind
// the _APPLY switch.
func TestCloudBuild(t *testing.T) {
	data, err := os.ReadFile("../../cloudbuild.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cb struct {
		Substitutions map[string]string `yaml:"substitutions"`
		Steps         []struct {
			ID         string   `yaml:"id"`
			Name       string   `yaml:"name"`
			WaitFor    []string `yaml:"waitFor"`
			Entrypoint string   `yaml:"entrypoint"`
			Args       []string `yaml:"args"`
		} `yaml:"steps"`
	}
	if err := yaml.Unmarshal(data, &cb); err != nil {
		t.Fatalf("cloudbuild.yaml: %v", err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go test [^\n]*$`).FindString(string(readme))
	if m == "" {
		t.Fatal("README.md has no `go test` command line")
	}
	seen := map[string]bool{}
	args := map[string]string{}
	for _, s := range cb.Steps {
		if s.ID == "" || seen[s.ID] {
			t.Errorf("step %q: missing or repeated id", s.ID)
		}
		if len(s.WaitFor) == 0 {
			t.Errorf("step %s: no waitFor", s.ID)
		}
		for _, w := range s.WaitFor {
			if w != "-" && !seen[w] {
				t.Errorf("step %s waits for %q, which is not an earlier step", s.ID, w)
			}
		}
		seen[s.ID] = true
		args[s.ID] = s.Entrypoint + " " + strings.Join(s.Args, " ")
	}
	for _, id := range []string{"vet", "test", "tf-fmt", "tf-validate", "plan", "apply"} {
		if !seen[id] {
			t.Errorf("no step %q", id)
		}
	}
	if !strings.Contains(args["test"], m) {
		t.Errorf("the test step runs %q, not the README's %q", args["test"], m)
	}
	for _, s := range cb.Steps {
		if s.ID == "plan" {
			for _, w := range []string{"vet", "test", "tf-validate"} {
				if !slices.Contains(s.WaitFor, w) {
					t.Errorf("plan does not wait for %s", w)
				}
			}
		}
		if s.ID == "apply" && (!slices.Contains(s.WaitFor, "plan") || !strings.Contains(args["apply"], `"${_APPLY}" != "true"`)) {
			t.Errorf("apply must wait for plan and be switched by _APPLY: %q", args["apply"])
		}
	}
	if v, ok := cb.Substitutions["_APPLY"]; !ok || v == "true" {
		t.Errorf("_APPLY must default to something other than \"true\", got %q", v)
	}
}
