package main

import (
	"context"
	"fmt"
	"time"

	"github.com/chromeos-certprov/adapter/shared/store"
)

// findView is the result of "find" (its --json output).
type findView struct {
	// By names what was looked for: "device", "serial" or "user".
	By    string     `json:"by"`
	Value string     `json:"value"`
	Since *time.Time `json:"since,omitempty"`
	// Processes are newest first.
	Processes []statusView `json:"processes"`
	Limit     int          `json:"limit"`
	// Truncated: the limit was reached; older processes may match.
	Truncated bool `json:"truncated"`
}

func find(ctx context.Context, e env, args []string) int {
	fs, asJSON := flags(e, "find", "--device DIRECTORY_ID | --serial SERIAL | --user EMAIL [--since D] [--limit N] [--json]",
		`  certprov find --serial 5CD1234XYZ                 # "why doesn't this laptop have its certificate?"
  certprov find --user ada@example.com --since 7d
  certprov find --device 0a1b2c3d-... --json | jq -r '.processes[] | [.state, .failureMessage] | @tsv'

Every process of the device or user, newest first, as status shows it: state,
references, timings, polls, attempts, sweeps, last error, the failure message
and whether the device was shown it, and the certificate. A device's
processes include its affiliated users' (they name the device). Records of a
release before the subject was kept are not found this way: use list.
Exit 1 when nothing matches.
`)
	sf := addReadFlags(fs, e)
	device := fs.String("device", "", "the device's Directory API id (deviceDirectoryApiId)")
	serial := fs.String("serial", "", "the device's serial number")
	user := fs.String("user", "", "the user's primary email")
	since := fs.String("since", "", "only processes created since: 7d, 36h, 90m, an RFC 3339 time or a date")
	limit := fs.Int("limit", 20, fmt.Sprintf("read at most this many processes, newest first (1 to %d)", store.MaxQueryLimit))
	pos, code, ok := parse(e, fs, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return usageError(e, fs, "unexpected argument %q", pos[0])
	}
	var v findView
	var f store.Filter
	n := 0
	for _, o := range []struct {
		by, value string
		to        *string
	}{{"device", *device, &f.DeviceID}, {"serial", *serial, &f.DeviceSerial}, {"user", *user, &f.UserEmail}} {
		if o.value != "" {
			n++
			v.By, v.Value, *o.to = o.by, o.value, o.value
		}
	}
	if n != 1 {
		return usageError(e, fs, "give one of --device, --serial or --user")
	}
	if *limit < 1 || *limit > store.MaxQueryLimit {
		return usageError(e, fs, "--limit %d: want 1 to %d", *limit, store.MaxQueryLimit)
	}
	from, err := parseSince(*since, time.Now())
	if err != nil {
		return usageError(e, fs, "%v", err)
	}
	f.Since, v.Since, v.Limit = from, at(from), *limit
	ctx, cancel := context.WithTimeout(ctx, *sf.timeout)
	defer cancel()
	s, closeStore, err := sf.open(ctx)
	if err != nil {
		return storeFailure(e, "find", err)
	}
	defer closeStore()
	recs, err := s.List(ctx, f, *limit)
	if err != nil {
		return storeFailure(e, "find", err)
	}
	v.Processes, v.Truncated = make([]statusView, 0, len(recs)), len(recs) == *limit
	for _, r := range recs {
		v.Processes = append(v.Processes, newStatusView(r))
	}
	code = exitOK
	if len(recs) == 0 {
		code = exitProblem
	}
	if *asJSON {
		if err := writeJSON(e.stdout, v); err != nil {
			return exitProblem
		}
		return code
	}
	what := fmt.Sprintf("%s %s", v.By, v.Value)
	if v.Since != nil {
		what += " since " + v.Since.Format(time.RFC3339)
	}
	if len(recs) == 0 {
		fmt.Fprintf(e.stderr, "certprov find: no process of %s\n", what)
		return code
	}
	more := ""
	if v.Truncated {
		more = " (the limit: older ones may exist; raise --limit)"
	}
	fmt.Fprintf(e.stdout, "%d process(es) of %s, newest first%s\n", len(recs), what, more)
	for _, p := range v.Processes {
		fmt.Fprintln(e.stdout)
		p.write(e.stdout)
	}
	return code
}
