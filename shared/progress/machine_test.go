package progress

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestMachineIsTheDiagram checks the transition table against the state
// diagram both ways: every edge drawn is in the table, and every edge of the
// table is drawn, in the README and in this package's doc (the same text).
func TestMachineIsTheDiagram(t *testing.T) {
	t.Parallel()
	readme := diagramAfter(t, "../../README.md", "Every step is a compare-and-set", func(lines []string, i int) []string {
		for ; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
		}
		var block []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			block = append(block, lines[i])
		}
		return block
	})
	doc := diagramAfter(t, "doc.go", "The state machine", func(lines []string, i int) []string {
		for ; i < len(lines) && !strings.HasPrefix(lines[i], "//\t"); i++ {
		}
		var block []string
		for ; i < len(lines) && strings.HasPrefix(lines[i], "//\t"); i++ {
			block = append(block, strings.TrimPrefix(lines[i], "//\t"))
		}
		return block
	})
	if diff := cmp.Diff(readme, doc); diff != "" {
		t.Errorf("the README's diagram and the package doc's differ (-README +doc):\n%s", diff)
	}
	drawn, err := parseDiagram(readme)
	if err != nil {
		t.Fatalf("parse the README's diagram: %v", err)
	}
	var table []string
	for _, from := range States {
		for _, to := range machine[from] {
			table = append(table, edge(from, to))
		}
	}
	slices.Sort(table)
	if diff := cmp.Diff(table, drawn); diff != "" {
		t.Errorf("transition table and diagram differ (-table +diagram):\n%s", diff)
	}
}

// diagramAfter reads file and returns the block that block finds after the
// first line containing marker.
func diagramAfter(t *testing.T, file, marker string, block func(lines []string, i int) []string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("read %s: %v", file, err)
	}
	lines := strings.Split(string(b), "\n")
	i := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, marker) })
	if i < 0 {
		t.Fatalf("%s: no line with %q", file, marker)
	}
	d := block(lines, i)
	if len(d) == 0 {
		t.Fatalf("%s: no diagram after %q", file, marker)
	}
	return d
}

func edge(from, to State) string { return string(from) + " -> " + string(to) }

// TestParseDiagram checks the diagram reader on small pictures, including the
// mistakes it must refuse.
func TestParseDiagram(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		diagram []string
		want    []string
		wantErr string
	}{
		{"chain", []string{"RECEIVED -> CLAIMED -> SIGNING"}, []string{"CLAIMED -> SIGNING", "RECEIVED -> CLAIMED"}, ""},
		{"re-entry", []string{"POLLING* -> SIGNED"}, []string{"POLLING -> POLLING", "POLLING -> SIGNED"}, ""},
		{"backwards", []string{"FAILED <- FAILING"}, []string{"FAILING -> FAILED"}, ""},
		{"prose ignored", []string{"SIGNED -> ISSUING (ASK THE CA)"}, []string{"SIGNED -> ISSUING"}, ""},
		{"bus", []string{
			"SIGNED -> ISSUING",
			" |         |",
			" +---------+--> FAILING",
		}, []string{"ISSUING -> FAILING", "SIGNED -> FAILING", "SIGNED -> ISSUING"}, ""},
		{"bus through a bus", []string{
			"SIGNED    ISSUING",
			" |         |",
			" +---------+--> FAILING",
			" |",
			" +--> FAILED",
		}, []string{"ISSUING -> FAILING", "SIGNED -> FAILED", "SIGNED -> FAILING"}, ""},
		{"unknown state", []string{"RECEIVED -> CLAIMD"}, nil, `unknown state "CLAIMD"`},
		{"dangling bar", []string{"SIGNED", "        |", "        +--> FAILED"}, nil, "leads to no state"},
		{"arrow to nothing", []string{"SIGNED -> "}, nil, "points at no state"},
		{"arrow from nothing", []string{"  -> FAILED"}, nil, "comes from no state"},
	}
	for _, tc := range tests {
		got, err := parseDiagram(tc.diagram)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s: edges (-want +got):\n%s", tc.name, diff)
		}
	}
}

var (
	stateToken = regexp.MustCompile(`[A-Z][A-Z_]*\*?`)
	prose      = regexp.MustCompile(`\([^)]*\)`)
)

// parseDiagram reads the edges of an ASCII state diagram, sorted:
//   - "A -> B" (any number of dashes) is an edge from A to B, "B <- A" too;
//   - "A*" is a re-entry, an edge from A to A;
//   - a bus "+---+---+--> B" is an edge to B from each state above one of its
//     "+", reached through "|" (and the "+" of other buses) straight up;
//   - text in parentheses is prose.
func parseDiagram(lines []string) ([]string, error) {
	type token struct {
		state      State
		start, end int // columns, end exclusive, with the *
	}
	grid := make([]string, len(lines))
	tokens := make([][]token, len(lines))
	edges := map[string]bool{}
	known := map[State]bool{}
	for _, s := range States {
		known[s] = true
	}
	for l, line := range lines {
		grid[l] = prose.ReplaceAllStringFunc(line, func(s string) string { return strings.Repeat(" ", len(s)) })
		for _, m := range stateToken.FindAllStringIndex(grid[l], -1) {
			name := grid[l][m[0]:m[1]]
			s := State(strings.TrimSuffix(name, "*"))
			if !known[s] {
				return nil, fmt.Errorf("line %d: unknown state %q", l+1, s)
			}
			tokens[l] = append(tokens[l], token{s, m[0], m[1]})
			if strings.HasSuffix(name, "*") {
				edges[edge(s, s)] = true
			}
		}
	}
	at := func(l, c int) byte {
		if l < 0 || l >= len(grid) || c < 0 || c >= len(grid[l]) {
			return ' '
		}
		return grid[l][c]
	}
	stateAt := func(l, c int) (State, bool) {
		if l < 0 || l >= len(tokens) {
			return "", false
		}
		for _, tk := range tokens[l] {
			if tk.start <= c && c < tk.end {
				return tk.state, true
			}
		}
		return "", false
	}
	skip := func(l, c, step int, chars string) int {
		for strings.IndexByte(chars, at(l, c)) >= 0 && c >= 0 && c < len(grid[l]) {
			c += step
		}
		return c
	}
	up := func(l, c int) (State, error) {
		for m := l - 1; m >= 0; m-- {
			if s, ok := stateAt(m, c); ok {
				return s, nil
			}
			if ch := at(m, c); ch != '|' && ch != '+' {
				break
			}
		}
		return "", fmt.Errorf("line %d: the bus at column %d leads to no state", l+1, c+1)
	}
	for l, line := range grid {
		for c := 0; c < len(line); c++ {
			var from, to []State
			switch line[c] {
			case '>':
				t, ok := stateAt(l, skip(l, c+1, 1, " "))
				if !ok {
					return nil, fmt.Errorf("line %d: the arrow at column %d points at no state", l+1, c+1)
				}
				to = []State{t}
				j := skip(l, skip(l, c-1, -1, "-"), -1, " ")
				if s, ok := stateAt(l, j); ok {
					from = []State{s}
				} else if ch := at(l, j); ch == '+' || ch == '|' {
					for ; strings.IndexByte("+-|", at(l, j)) >= 0 && j >= 0; j-- {
						if at(l, j) == '+' {
							s, err := up(l, j)
							if err != nil {
								return nil, err
							}
							from = append(from, s)
						}
					}
				}
			case '<':
				t, ok := stateAt(l, skip(l, c-1, -1, " "))
				if !ok {
					return nil, fmt.Errorf("line %d: the arrow at column %d points at no state", l+1, c+1)
				}
				to = []State{t}
				if s, ok := stateAt(l, skip(l, skip(l, c+1, 1, "-"), 1, " ")); ok {
					from = []State{s}
				}
			default:
				continue
			}
			if len(from) == 0 {
				return nil, fmt.Errorf("line %d: the arrow at column %d comes from no state", l+1, c+1)
			}
			for _, f := range from {
				edges[edge(f, to[0])] = true
			}
		}
	}
	out := make([]string, 0, len(edges))
	for e := range edges {
		out = append(out, e)
	}
	slices.Sort(out)
	return out, nil
}

// TestMachine checks the table's own consistency: the terminal states, and
// only they, have no way out, and every state reaches a terminal one.
func TestMachine(t *testing.T) {
	t.Parallel()
	for s := range machine {
		if !slices.Contains(States, s) {
			t.Errorf("the table has a state %s missing from States", s)
		}
	}
	for _, s := range States {
		if got := len(machine[s]) == 0; got != s.Terminal() {
			t.Errorf("%s: no way out %v, terminal %v", s, got, s.Terminal())
		}
		for _, to := range machine[s] {
			if !slices.Contains(States, to) {
				t.Errorf("%s -> %s: not a state", s, to)
			}
		}
		seen, todo, ends := map[State]bool{s: true}, []State{s}, false
		for len(todo) > 0 {
			cur := todo[0]
			todo = todo[1:]
			ends = ends || cur.Terminal()
			for _, n := range machine[cur] {
				if !seen[n] {
					seen[n] = true
					todo = append(todo, n)
				}
			}
		}
		if !ends {
			t.Errorf("%s reaches no terminal state", s)
		}
	}
}

// TestTransitionRefusesAnEdgeNotInTheMachine: an edge the table lacks is a
// programming error, not a duplicate: a distinct error, and nothing written
// even when the record is in no state of from.
func TestTransitionRefusesAnEdgeNotInTheMachine(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		from []State
		to   State
	}{
		{"skips a step", []State{StateReceived}, StateSigning},
		{"backwards", []State{StatePolling}, StateSigning},
		{"one bad start among good ones", []State{StateSigned, StateIssuing, StateUploaded}, StateIssuing},
		{"out of a terminal state", []State{StateFailed}, StateFailing},
		{"no start", nil, StateClaimed},
	}
	for _, tc := range tests {
		s := &oneRecord{r: &Record{Key: "c:p", State: StateReceived}}
		_, err := Transition(context.Background(), s, "c:p", tc.from, tc.to, now, time.Hour, nil)
		var se *StateError
		if !errors.Is(err, ErrNotInMachine) || errors.As(err, &se) {
			t.Errorf("%s: %v, want ErrNotInMachine and no StateError", tc.name, err)
		}
		if s.r.Version != 0 || s.r.State != StateReceived {
			t.Errorf("%s: the record was written: %+v", tc.name, s.r)
		}
	}
}
