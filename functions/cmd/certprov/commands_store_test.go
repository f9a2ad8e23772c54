package main

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/progress"
)

const statusOK = `process:           customers/C0local/certificateProvisioningProcesses/p-ok
state:             UPLOADED (finished): the certificate was uploaded to the device
customer:          C0local
device:            dev-0a1b (serial 5CD1234XYZ)
profile:           device_profile
CA connection:     default_ca_config
key:               EC-P256
created:           2026-12-01T08:00:00Z
updated:           2026-12-01T08:00:26Z (+26s)
signed:            2026-12-01T08:00:23Z (+23s)
issued:            2026-12-01T08:00:25Z (+25s)
CA took:           800ms
uploaded:          2026-12-01T08:00:26Z (+26s)
polls:             3
attempts:          1 (signData calls 1, CA attempts 1)
sweeps:            0 (report hand-offs 0)
certificate:       serial 1234ABCD, subject CN=5CD1234XYZ,O=Example Corp
  valid:           2026-12-01T08:01:00Z to 2026-12-31T08:01:00Z (issuer CN=5CD1234XYZ,O=Example Corp)
record expires:    2026-12-31T08:00:00Z
`

func TestStatus(t *testing.T) {
	vars := seeded(t)
	ts := func(s string) *time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return &v
	}
	tests := []struct {
		name string
		args []string
		vars map[string]string
		code int
		text string   // the whole text output, when set
		has  []string // lines the text output holds
		want []statusView
	}{
		{name: "uploaded", args: []string{"p-ok"}, code: exitOK, text: statusOK},
		{name: "by key", args: []string{"C0local:p-ok"}, code: exitOK, text: statusOK},
		{name: "failed and reported", args: []string{"p-late"}, code: exitOK, has: []string{
			"state:             FAILED (finished): failed, and the device was told (or the API had failed it)\n",
			"sweeps:            1 (report hand-offs 0)\n",
			"last error:        the client did not sign by the deadline\n",
			`failure:           "The device did not answer in time. It will try again when it is online." (shown to the device)` + "\n",
		}},
		{name: "failing, not yet reported", args: []string{"p-failing"}, code: exitOK, has: []string{
			"state:             FAILING: failed; telling the device (setFailure) is pending\n",
			`failure:           "The certificate authority refused the request." (NOT YET shown to the device)` + "\n",
			"deadline:          2026-12-02T11:00:00Z (+24h0m0s)\n",
		}},
		{name: "polling", args: []string{"p-poll"}, code: exitOK, want: []statusView{{
			Key: "C0local:p-poll", Customer: "C0local", ProcessID: "p-poll", ProcessName: "customers/C0local/certificateProvisioningProcesses/p-poll",
			State: "POLLING", Meaning: "waiting for the device to sign; polled until the deadline", ProfileRef: "device_profile", CAConnectionRef: "default_ca_config", KeyType: "EC-P256",
			CreatedAt: *ts("2026-12-01T12:00:00Z"), UpdatedAt: *ts("2026-12-01T12:10:00Z"), Elapsed: "10m0s",
			Deadline: ts("2026-12-02T12:00:00Z"), NextPollAt: ts("2026-12-01T12:15:00Z"), PollCount: 7,
		}}},
		{name: "not found", args: []string{"nope"}, code: exitProblem},
		{name: "no such key", args: []string{"C0local:nope"}, code: exitProblem},
		{name: "no process id", args: nil, code: exitUsage},
		{name: "two process ids", args: []string{"a", "b"}, code: exitUsage},
		{name: "no project", args: []string{"p-ok"}, vars: map[string]string{}, code: exitUsage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := vars
			if tc.vars != nil {
				v = tc.vars
			}
			args := append([]string{"status"}, tc.args...)
			r := runCLI(t, v, args...)
			if r.code != tc.code {
				t.Fatalf("exit code %d, want %d\n%s%s", r.code, tc.code, r.stdout, r.stderr)
			}
			if tc.text != "" {
				if diff := cmp.Diff(tc.text, r.stdout); diff != "" {
					t.Errorf("text output (-want +got):\n%s", diff)
				}
			}
			mustContain(t, "text output", r.stdout, tc.has...)
			j := runCLI(t, v, append(args, "--json")...)
			if j.code != tc.code {
				t.Errorf("--json: exit code %d, want %d", j.code, tc.code)
			}
			if tc.code != exitOK {
				return
			}
			var got []statusView
			decodeJSON(t, j, &got)
			if len(got) != 1 || got[0].State == "" {
				t.Fatalf("--json: want one process, got %+v", got)
			}
			if tc.want != nil {
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("--json output (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestTimeline(t *testing.T) {
	vars := seeded(t)
	r := runCLI(t, vars, "timeline", "p-ok")
	if r.code != exitOK {
		t.Fatalf("exit code %d\n%s", r.code, r.stderr)
	}
	want := `C0local:p-ok: UPLOADED, created 2026-12-01T08:00:00Z
AT                          ELAPSED       STEP  TRANSITION
2026-12-01T08:00:00.000Z        +0s        +0s  RECEIVED
2026-12-01T08:00:01.000Z        +1s        +1s  RECEIVED -> CLAIMED
2026-12-01T08:00:02.000Z        +2s        +1s  CLAIMED -> SIGNING
2026-12-01T08:00:03.000Z        +3s        +1s  SIGNING -> POLLING
2026-12-01T08:00:23.000Z       +23s       +20s  POLLING -> SIGNED
2026-12-01T08:00:24.000Z       +24s        +1s  SIGNED -> ISSUING
2026-12-01T08:00:25.000Z       +25s        +1s  ISSUING -> ISSUED
2026-12-01T08:00:26.000Z       +26s        +1s  ISSUED -> UPLOADED
logs: jsonPayload.process_id="p-ok"
      https://console.cloud.google.com/logs/query;query=jsonPayload.process_id=%22p-ok%22?project=` + project + "\n"
	if diff := cmp.Diff(want, r.stdout); diff != "" {
		t.Errorf("text output (-want +got):\n%s", diff)
	}
	j := runCLI(t, vars, "timeline", "p-late", "--json")
	if j.code != exitOK {
		t.Fatalf("--json: exit code %d\n%s", j.code, j.stderr)
	}
	var got []timelineView
	decodeJSON(t, j, &got)
	if len(got) != 1 {
		t.Fatalf("want one process, got %d", len(got))
	}
	var steps []string
	for _, tr := range got[0].Transitions {
		steps = append(steps, tr.From+">"+tr.To+" +"+tr.Elapsed)
	}
	wantSteps := []string{">RECEIVED +0s", "RECEIVED>CLAIMED +1s", "CLAIMED>SIGNING +2s", "SIGNING>POLLING +3s", "POLLING>FAILING +4h0m0s", "FAILING>FAILED +4h0m0s"}
	if diff := cmp.Diff(wantSteps, steps); diff != "" {
		t.Errorf("transitions (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(`jsonPayload.process_id="p-late"`, got[0].LogFilter); diff != "" {
		t.Errorf("log filter (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		args []string
		code int
	}{{[]string{"nope"}, exitProblem}, {nil, exitUsage}} {
		if r := runCLI(t, vars, append([]string{"timeline"}, tc.args...)...); r.code != tc.code {
			t.Errorf("timeline %v: exit code %d, want %d", tc.args, r.code, tc.code)
		}
	}
}

func TestList(t *testing.T) {
	vars := seeded(t)
	const late = "The device did not answer in time. It will try again when it is online."
	tests := []struct {
		name      string
		args      []string
		code      int
		keys      []string
		byState   []count
		byFailure []count
		truncated bool
		next      string
		has       []string
	}{
		{name: "all", code: exitOK,
			keys:      []string{"C0local:p-poll", "C0local:p-failing", "C0other:p-late2", "C0local:p-late", "C0local:p-ok"},
			byState:   []count{{"FAILED", 2}, {"FAILING", 1}, {"POLLING", 1}, {"UPLOADED", 1}},
			byFailure: []count{{late, 2}, {"The certificate authority refused the request.", 1}},
			has: []string{"CREATED               STATE     CUSTOMER  PROCESS    PROFILE         CA                 POLLS  ATTEMPTS  FAILURE\n",
				"2026-12-01T09:00:00Z  FAILED    C0local   p-late     device_profile  default_ca_config  40     2         The device did not answer in time. It will try again when i…\n",
				"5 process(es)\nby state:\n      2  FAILED\n      1  FAILING\n", "by failure message:\n      2  " + late + "\n"}},
		{name: "failed", args: []string{"--state", "failed"}, code: exitOK,
			keys: []string{"C0other:p-late2", "C0local:p-late"}, byState: []count{{"FAILED", 2}}, byFailure: []count{{late, 2}}},
		{name: "customer and since", args: []string{"--customer", "C0local", "--since", "2026-12-01T10:30:00Z"}, code: exitOK,
			keys: []string{"C0local:p-poll", "C0local:p-failing"}, byState: []count{{"FAILING", 1}, {"POLLING", 1}},
			byFailure: []count{{"The certificate authority refused the request.", 1}}},
		{name: "profile, nothing", args: []string{"--profile", "user_profile"}, code: exitOK,
			keys: []string{}, byState: []count{}, byFailure: []count{}, has: []string{"0 process(es)\n"}},
		{name: "limited", args: []string{"--limit", "2"}, code: exitOK, truncated: true,
			keys: []string{"C0local:p-poll", "C0local:p-failing"}, byState: []count{{"FAILING", 1}, {"POLLING", 1}},
			byFailure: []count{{"The certificate authority refused the request.", 1}},
			next:      "2026-12-01T11:00:00Z,C0local:p-failing",
			has:       []string{"2 process(es) (the limit, 2: older ones may match; next page: --after 2026-12-01T11:00:00Z,C0local:p-failing)\n"}},
		{name: "next page", args: []string{"--limit", "2", "--after", "2026-12-01T11:00:00Z,C0local:p-failing"}, code: exitOK, truncated: true,
			keys: []string{"C0other:p-late2", "C0local:p-late"}, byState: []count{{"FAILED", 2}}, byFailure: []count{{late, 2}},
			next: "2026-12-01T09:00:00Z,C0local:p-late"},
		{name: "last page", args: []string{"--limit", "2", "--after", "2026-12-01T09:00:00Z,C0local:p-late"}, code: exitOK,
			keys: []string{"C0local:p-ok"}, byState: []count{{"UPLOADED", 1}}, byFailure: []count{}},
		{name: "bad cursor", args: []string{"--after", "yesterday"}, code: exitUsage},
		{name: "bad state", args: []string{"--state", "DONE"}, code: exitUsage},
		{name: "bad since", args: []string{"--since", "yesterday"}, code: exitUsage},
		{name: "bad limit", args: []string{"--limit", "0"}, code: exitUsage},
		{name: "stray argument", args: []string{"FAILED"}, code: exitUsage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"list"}, tc.args...)
			r := runCLI(t, vars, args...)
			if r.code != tc.code {
				t.Fatalf("exit code %d, want %d\n%s%s", r.code, tc.code, r.stdout, r.stderr)
			}
			mustContain(t, "text output", r.stdout, tc.has...)
			if tc.code != exitOK {
				return
			}
			j := runCLI(t, vars, append(args, "--json")...)
			var got listView
			decodeJSON(t, j, &got)
			keys := []string{}
			for _, p := range got.Processes {
				keys = append(keys, p.Key)
			}
			if diff := cmp.Diff(tc.keys, keys); diff != "" {
				t.Errorf("processes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.byState, got.ByState); diff != "" {
				t.Errorf("byState (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.byFailure, got.ByFailure); diff != "" {
				t.Errorf("byFailure (-want +got):\n%s", diff)
			}
			if got.Truncated != tc.truncated || got.Next != tc.next {
				t.Errorf("truncated %t, next %q; want %t, %q", got.Truncated, got.Next, tc.truncated, tc.next)
			}
		})
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
		err  bool
	}{
		{"", time.Time{}, false},
		{"7d", now.AddDate(0, 0, -7), false},
		{"36h", now.Add(-36 * time.Hour), false},
		{"2026-12-01", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), false},
		{"2026-12-01T10:30:00Z", time.Date(2026, 12, 1, 10, 30, 0, 0, time.UTC), false},
		{"-1h", time.Time{}, true},
		{"0d", time.Time{}, true},
		{"soon", time.Time{}, true},
	}
	for _, tc := range tests {
		got, err := parseSince(tc.in, now)
		if (err != nil) != tc.err || !got.Equal(tc.want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v, error %t", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// TestStoreUnreachable: a store that does not answer is exit code 3.
func TestStoreUnreachable(t *testing.T) {
	t.Setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:1")
	vars := map[string]string{"GOOGLE_CLOUD_PROJECT": "nowhere"}
	for _, args := range [][]string{{"status", "p-1"}, {"timeline", "p-1"}, {"list"}} {
		r := runCLI(t, vars, append(args, "--timeout", "2s")...)
		if r.code != exitUnreachable {
			t.Errorf("%v: exit code %d, want %d\n%s", args, r.code, exitUnreachable, r.stderr)
		}
	}
}

func TestSpan(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{290 * time.Millisecond, "290ms"},
		{1150 * time.Millisecond, "1.2s"},
		{15*time.Minute + 1400*time.Millisecond, "15m1s"},
		{4*time.Hour + 5*time.Second, "4h0m0s"},
	} {
		if got := span(tc.d); got != tc.want {
			t.Errorf("span(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

// TestMeanings: every state says where its process stands.
func TestMeanings(t *testing.T) {
	if len(meanings) != len(states) {
		t.Errorf("%d meanings for %d states", len(meanings), len(states))
	}
	for _, s := range states {
		if meanings[s] == "" {
			t.Errorf("state %s has no meaning", s)
		}
	}
}

func TestFind(t *testing.T) {
	vars := seeded(t)
	tests := []struct {
		name string
		args []string
		code int
		keys []string
		has  []string // in the text output (stdout, or stderr when the code is not 0)
	}{
		{name: "by serial", args: []string{"--serial", "5CD1234XYZ"}, code: exitOK, keys: []string{"C0local:p-late", "C0local:p-ok"},
			has: []string{"2 process(es) of serial 5CD1234XYZ, newest first\n\nprocess:           customers/C0local/certificateProvisioningProcesses/p-late\n",
				"device:            dev-0a1b (serial 5CD1234XYZ)\n",
				`failure:           "` + didNotAnswer + `" (shown to the device)` + "\n",
				"certificate:       serial 1234ABCD, subject CN=5CD1234XYZ,O=Example Corp\n"}},
		{name: "by device since", args: []string{"--device", "dev-0a1b", "--since", "2026-12-01T08:30:00Z"}, code: exitOK, keys: []string{"C0local:p-late"}},
		{name: "by device, affiliated user", args: []string{"--device", "dev-9z8y"}, code: exitOK, keys: []string{"C0local:p-failing"},
			has: []string{"user:              ada@example.com\n"}},
		{name: "by user", args: []string{"--user", "ada@example.com"}, code: exitOK, keys: []string{"C0local:p-failing", "C0other:p-late2"}},
		{name: "by user, limited", args: []string{"--user", "ada@example.com", "--limit", "1"}, code: exitOK, keys: []string{"C0local:p-failing"},
			has: []string{"1 process(es) of user ada@example.com, newest first (the limit: older ones may exist; raise --limit)\n"}},
		{name: "nothing", args: []string{"--user", "nobody@example.com"}, code: exitProblem, keys: []string{},
			has: []string{"certprov find: no process of user nobody@example.com\n"}},
		{name: "no subject", args: nil, code: exitUsage, has: []string{"give one of --device, --serial or --user"}},
		{name: "two subjects", args: []string{"--device", "d", "--user", "u"}, code: exitUsage, has: []string{"give one of"}},
		{name: "bad since", args: []string{"--serial", "S", "--since", "soon"}, code: exitUsage},
		{name: "stray argument", args: []string{"--serial", "S", "extra"}, code: exitUsage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"find"}, tc.args...)
			r := runCLI(t, vars, args...)
			if r.code != tc.code {
				t.Fatalf("exit code %d, want %d\n%s%s", r.code, tc.code, r.stdout, r.stderr)
			}
			out := r.stdout
			if tc.code != exitOK {
				out = r.stderr
			}
			mustContain(t, "text output", out, tc.has...)
			if tc.keys == nil {
				return
			}
			j := runCLI(t, vars, append(args, "--json")...)
			if j.code != tc.code {
				t.Errorf("--json: exit code %d, want %d", j.code, tc.code)
			}
			var got findView
			decodeJSON(t, j, &got)
			keys := []string{}
			for _, p := range got.Processes {
				keys = append(keys, p.Key)
			}
			if diff := cmp.Diff(tc.keys, keys); diff != "" {
				t.Errorf("processes (-want +got):\n%s", diff)
			}
		})
	}
	// The JSON holds what find promises for each process.
	j := runCLI(t, vars, "find", "--serial", "5CD1234XYZ", "--json")
	var got findView
	decodeJSON(t, j, &got)
	if len(got.Processes) != 2 {
		t.Fatalf("want 2 processes, got %d", len(got.Processes))
	}
	late, ok := got.Processes[0], got.Processes[1]
	if got.By != "serial" || got.Value != "5CD1234XYZ" || got.Truncated {
		t.Errorf("find header: %+v", got)
	}
	if late.State != "FAILED" || late.FailureMessage != didNotAnswer || !late.FailureReported || late.LastError == "" || late.Sweeps != 1 ||
		late.PollCount != 40 || late.Attempts != 2 || late.ProfileRef != "device_profile" || late.DeviceSerial != "5CD1234XYZ" {
		t.Errorf("failed process: %+v", late)
	}
	if c := ok.Certificate; c == nil || c.Serial != "1234ABCD" || c.Subject != "CN=5CD1234XYZ,O=Example Corp" || !c.NotAfter.Equal(t0.Add(time.Minute+720*time.Hour)) {
		t.Errorf("uploaded process's certificate: %+v", ok.Certificate)
	}
}

// TestStatusCertificateFromRecord: without a PEM that parses, status shows
// what the record says of its certificate.
func TestStatusCertificateFromRecord(t *testing.T) {
	r := &progress.Record{Key: "C:p", State: progress.StateUploaded, CertificateSerial: "0ABC", CertificateSubject: "CN=x",
		CertificateNotBefore: t0, CertificateNotAfter: t0.Add(time.Hour)}
	want := &certificate{Serial: "0ABC", Subject: "CN=x", NotBefore: t0, NotAfter: t0.Add(time.Hour)}
	if diff := cmp.Diff(want, newStatusView(r).Certificate); diff != "" {
		t.Errorf("certificate (-want +got):\n%s", diff)
	}
	var b strings.Builder
	newStatusView(r).write(&b)
	mustContain(t, "text", b.String(), "certificate:       serial 0ABC, subject CN=x\n  valid:           2026-12-01T08:00:00Z to 2026-12-01T09:00:00Z\n")
}
