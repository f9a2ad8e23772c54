package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/store"
)

// listView is the result of "list" (its --json output).
type listView struct {
	Processes []listRow `json:"processes"`
	ByState   []count   `json:"byState"`
	ByFailure []count   `json:"byFailure"`
	Limit     int       `json:"limit"`
	// Truncated: the limit was reached; older matching processes exist maybe.
	Truncated bool `json:"truncated"`
	// Next is the --after of the next page, when Truncated.
	Next string `json:"next,omitempty"`
}

// cursorText writes a position in the listing as --after takes it.
func cursorText(c store.Cursor) string {
	return c.CreatedAt.UTC().Format(time.RFC3339Nano) + "," + c.Key
}

func parseCursor(s string) (*store.Cursor, error) {
	if s == "" {
		return nil, nil
	}
	at, key, ok := strings.Cut(s, ",")
	t, err := time.Parse(time.RFC3339Nano, at)
	if !ok || err != nil || key == "" {
		return nil, fmt.Errorf("--after %q: want the \"next\" of the page before (CREATED,KEY)", s)
	}
	return &store.Cursor{CreatedAt: t, Key: key}, nil
}

type listRow struct {
	Key             string    `json:"key"`
	CreatedAt       time.Time `json:"createdAt"`
	State           string    `json:"state"`
	Customer        string    `json:"customer"`
	ProcessID       string    `json:"processId"`
	ProfileRef      string    `json:"profileRef,omitempty"`
	CAConnectionRef string    `json:"caConnectionRef,omitempty"`
	PollCount       int       `json:"pollCount"`
	Attempts        int       `json:"attempts"`
	FailureMessage  string    `json:"failureMessage,omitempty"`
}

type count struct {
	Value string `json:"value"`
	Count int    `json:"count"`
}

// counts returns the counts of values, most frequent first, then by value.
func counts(values []string) []count {
	m := map[string]int{}
	for _, v := range values {
		m[v]++
	}
	out := []count{}
	for v, n := range m {
		out = append(out, count{v, n})
	}
	slices.SortFunc(out, func(a, b count) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		return strings.Compare(a.Value, b.Value)
	})
	return out
}

// parseSince reads "7d", "36h", "90m" (before now) or an RFC 3339 time or a date.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n > 0 {
			return now.AddDate(0, 0, -n), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--since %q: want a duration (7d, 36h, 90m), an RFC 3339 time or a date (2026-12-01)", s)
}

var states = []progress.State{progress.StateReceived, progress.StateClaimed, progress.StateSigning, progress.StatePolling,
	progress.StateSigned, progress.StateIssuing, progress.StateIssued, progress.StateFailing,
	progress.StateUploaded, progress.StateFailed, progress.StateClaimedElsewhere}

func list(ctx context.Context, e env, args []string) int {
	fs, asJSON := flags(e, "list", "[--state S] [--since D] [--customer C] [--profile P] [--limit N] [--after NEXT] [--json]",
		`  certprov list --state FAILED --since 24h       # what broke since yesterday
  certprov list --customer C0abc1234 --profile device-wifi --since 2026-12-01
  certprov list --state FAILING --json | jq '.processes[].key'
  certprov list --since 7d --limit 50 --after 2026-12-05T16:02:49Z,C0abc1234:9a0d2e55-...   # the next page
`)
	sf := addReadFlags(fs, e)
	state := fs.String("state", "", "only processes in this state (RECEIVED ... UPLOADED, FAILED, FAILING)")
	since := fs.String("since", "", "only processes created since: 7d, 36h, 90m, an RFC 3339 time or a date")
	customer := fs.String("customer", "", "only this customer's processes")
	profileRef := fs.String("profile", "", "only processes of this profile reference")
	after := fs.String("after", "", "continue after this position: the \"next\" a truncated listing printed")
	limit := fs.Int("limit", 100, fmt.Sprintf("read at most this many processes, newest first (1 to %d)", store.MaxQueryLimit))
	pos, code, ok := parse(e, fs, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return usageError(e, fs, "unexpected argument %q", pos[0])
	}
	st := progress.State(strings.ToUpper(*state))
	if st != "" && !slices.Contains(states, st) {
		return usageError(e, fs, "--state %q: not a state (%s)", *state, joinStates())
	}
	if *limit < 1 || *limit > store.MaxQueryLimit {
		return usageError(e, fs, "--limit %d: want 1 to %d", *limit, store.MaxQueryLimit)
	}
	from, err := parseSince(*since, time.Now())
	if err != nil {
		return usageError(e, fs, "%v", err)
	}
	cursor, err := parseCursor(*after)
	if err != nil {
		return usageError(e, fs, "%v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, *sf.timeout)
	defer cancel()
	s, closeStore, err := sf.open(ctx)
	if err != nil {
		return storeFailure(e, "list", err)
	}
	defer closeStore()
	recs, err := s.List(ctx, store.Filter{State: st, Customer: *customer, ProfileRef: *profileRef, Since: from, After: cursor}, *limit)
	if err != nil {
		return storeFailure(e, "list", err)
	}
	v := listView{Processes: []listRow{}, Limit: *limit, Truncated: len(recs) == *limit}
	var byState, byFailure []string
	for _, r := range recs {
		v.Processes = append(v.Processes, listRow{Key: r.Key, CreatedAt: r.CreatedAt.UTC(), State: string(r.State), Customer: r.Customer, ProcessID: r.ProcessID,
			ProfileRef: r.ProfileRef, CAConnectionRef: r.CAConnectionRef, PollCount: r.PollCount, Attempts: r.Attempts, FailureMessage: r.FailureMessage})
		byState = append(byState, string(r.State))
		if r.FailureMessage != "" {
			byFailure = append(byFailure, r.FailureMessage)
		}
	}
	v.ByState, v.ByFailure = counts(byState), counts(byFailure)
	if v.Truncated {
		last := recs[len(recs)-1]
		v.Next = cursorText(store.Cursor{CreatedAt: last.CreatedAt, Key: last.Key})
	}
	if *asJSON {
		if err := writeJSON(e.stdout, v); err != nil {
			return exitProblem
		}
		return exitOK
	}
	v.write(e)
	return exitOK
}

func (v listView) write(e env) {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CREATED\tSTATE\tCUSTOMER\tPROCESS\tPROFILE\tCA\tPOLLS\tATTEMPTS\tFAILURE")
	for _, r := range v.Processes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", r.CreatedAt.Format(time.RFC3339), r.State, r.Customer, r.ProcessID,
			orDash(r.ProfileRef), orDash(r.CAConnectionRef), r.PollCount, r.Attempts, shorten(r.FailureMessage, 60))
	}
	tw.Flush()
	fmt.Fprintf(e.stdout, "\n%d process(es)", len(v.Processes))
	if v.Truncated {
		fmt.Fprintf(e.stdout, " (the limit, %d: older ones may match; next page: --after %s)", v.Limit, v.Next)
	}
	fmt.Fprintln(e.stdout)
	if len(v.ByState) > 0 {
		fmt.Fprintln(e.stdout, "by state:")
		for _, c := range v.ByState {
			fmt.Fprintf(e.stdout, "  %5d  %s\n", c.Count, c.Value)
		}
	}
	if len(v.ByFailure) > 0 {
		fmt.Fprintln(e.stdout, "by failure message:")
		for _, c := range v.ByFailure {
			fmt.Fprintf(e.stdout, "  %5d  %s\n", c.Count, c.Value)
		}
	}
}

func joinStates() string {
	s := make([]string, len(states))
	for i, st := range states {
		s[i] = string(st)
	}
	return strings.Join(s, ", ")
}

func shorten(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
