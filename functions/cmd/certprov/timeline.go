package main

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/chromeos-certprov/adapter/shared/progress"
)

// timelineView is one process's transitions (the --json output is a list).
type timelineView struct {
	Key         string       `json:"key"`
	State       string       `json:"state"`
	CreatedAt   time.Time    `json:"createdAt"`
	Transitions []transition `json:"transitions"`
	// LogFilter is the Cloud Logging filter of the process's log lines.
	LogFilter  string `json:"logFilter"`
	ConsoleURL string `json:"consoleUrl,omitempty"`
}

type transition struct {
	At time.Time `json:"at"`
	// Elapsed since the record was created; Step since the transition before.
	Elapsed string `json:"elapsed"`
	Step    string `json:"step"`
	From    string `json:"from,omitempty"`
	To      string `json:"to"`
}

// timeMillis shows the sub-second steps of a process apart.
const timeMillis = "2006-01-02T15:04:05.000Z07:00"

func newTimeline(r *progress.Record, project string) timelineView {
	v := timelineView{Key: r.Key, State: string(r.State), CreatedAt: r.CreatedAt.UTC(), Transitions: []transition{},
		LogFilter: fmt.Sprintf("jsonPayload.process_id=%q", r.ProcessID)}
	if project != "" {
		v.ConsoleURL = "https://console.cloud.google.com/logs/query;query=" + url.PathEscape(v.LogFilter) + "?project=" + url.QueryEscape(project)
	}
	prev := r.CreatedAt
	for _, c := range r.History {
		v.Transitions = append(v.Transitions, transition{At: c.At.UTC(), Elapsed: span(c.At.Sub(r.CreatedAt)), Step: span(c.At.Sub(prev)),
			From: string(c.From), To: string(c.To)})
		prev = c.At
	}
	return v
}

func timeline(ctx context.Context, e env, args []string) int {
	fs, asJSON := flags(e, "timeline", "PROCESS_ID | CUSTOMER:PROCESS_ID [--project P] [--database D] [--collection C] [--json]",
		`  certprov timeline 3f0c8f7e-1d2a-4c55-9e4b-2b8f0e6a1c10
  certprov timeline C0abc1234:3f0c8f7e-1d2a-4c55-9e4b-2b8f0e6a1c10 --json
`)
	sf := addReadFlags(fs, e)
	pos, code, ok := parse(e, fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(e, fs, "want one PROCESS_ID, got %d arguments", len(pos))
	}
	ctx, cancel := context.WithTimeout(ctx, *sf.timeout)
	defer cancel()
	s, closeStore, err := sf.open(ctx)
	if err != nil {
		return storeFailure(e, "timeline", err)
	}
	defer closeStore()
	recs, err := findProcess(ctx, s, pos[0])
	if err != nil {
		return storeFailure(e, "timeline", err)
	}
	views := make([]timelineView, len(recs))
	for i, r := range recs {
		views[i] = newTimeline(r, *sf.project)
	}
	if *asJSON {
		if err := writeJSON(e.stdout, views); err != nil {
			return exitProblem
		}
		return exitOK
	}
	w := e.stdout
	for i, v := range views {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s: %s, created %s\n", v.Key, v.State, v.CreatedAt.Format(time.RFC3339))
		fmt.Fprintf(w, "%-24s  %9s  %9s  %s\n", "AT", "ELAPSED", "STEP", "TRANSITION")
		for _, t := range v.Transitions {
			change := t.To
			if t.From != "" {
				change = t.From + " -> " + t.To
			}
			fmt.Fprintf(w, "%-24s  %9s  %9s  %s\n", t.At.Format(timeMillis), "+"+t.Elapsed, "+"+t.Step, change)
		}
		fmt.Fprintf(w, "logs: %s\n", v.LogFilter)
		if v.ConsoleURL != "" {
			fmt.Fprintf(w, "      %s\n", v.ConsoleURL)
		}
	}
	return exitOK
}
