package pipeline

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromeos-certprov/adapter/shared/progress"
)

// TestEveryTransitionIsInTheMachine reads every p.transition call of the
// package and checks each edge it may take (from each state of its from list
// to its target) against the state machine, so that an edge missing from the
// table fails here, not on a rare path in production (where Transition
// refuses it with ErrNotInMachine).
func TestEveryTransitionIsInTheMachine(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string][]progress.State{"nonTerminal": nonTerminal}
	fset := token.NewFileSet()
	calls := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "transition" || len(call.Args) < 4 {
				return true
			}
			calls++
			at := fset.Position(call.Pos())
			from, ok := states(call.Args[2], vars)
			if !ok {
				t.Errorf("%s: cannot read the from list %s", at, pos(fset, call.Args[2]))
				return true
			}
			to, ok := states(call.Args[3], vars)
			if !ok || len(to) != 1 {
				t.Errorf("%s: cannot read the target %s", at, pos(fset, call.Args[3]))
				return true
			}
			for _, s := range from {
				if !progress.Allowed(s, to[0]) {
					t.Errorf("%s: %s -> %s is not in the state machine", at, s, to[0])
				}
			}
			return true
		})
	}
	if calls == 0 {
		t.Fatal("no transition call found")
	}
}

// states resolves a from list ([]progress.State{...} or a package variable)
// or a target (progress.StateX) to its states.
func states(e ast.Expr, vars map[string][]progress.State) ([]progress.State, bool) {
	byName := map[string]progress.State{}
	for _, s := range progress.States {
		byName["State"+stateName(s)] = s
	}
	switch e := e.(type) {
	case *ast.Ident:
		s, ok := vars[e.Name]
		return s, ok
	case *ast.SelectorExpr:
		s, ok := byName[e.Sel.Name]
		return []progress.State{s}, ok
	case *ast.CompositeLit:
		var out []progress.State
		for _, el := range e.Elts {
			s, ok := states(el, vars)
			if !ok {
				return nil, false
			}
			out = append(out, s...)
		}
		return out, len(out) > 0
	}
	return nil, false
}

// stateName is the Go name of s after "State": CLAIMED_ELSEWHERE is ClaimedElsewhere.
func stateName(s progress.State) string {
	var b strings.Builder
	for _, w := range strings.Split(strings.ToLower(string(s)), "_") {
		b.WriteString(strings.ToUpper(w[:1]) + w[1:])
	}
	return b.String()
}

func pos(fset *token.FileSet, e ast.Expr) string {
	return fset.Position(e.Pos()).String()
}
