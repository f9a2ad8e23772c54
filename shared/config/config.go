// Package config loads the adapter's settings once at start: the deployment's
// endpoints and schedule from environment variables, and the adapter config
// (CA connections, profiles, allowed customers) from JSON. Every problem is
// reported at once, so one failed deploy shows all of them.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/chromeos-certprov/adapter/shared/profile"
	"github.com/chromeos-certprov/adapter/shared/strictjson"
)

// Lookup reads an environment variable; os.LookupEnv in production, a map in tests.
type Lookup func(name string) (string, bool)

// MapLookup returns a Lookup over m.
func MapLookup(m map[string]string) Lookup {
	return func(name string) (string, bool) { v, ok := m[name]; return v, ok }
}

// Defaults of the environment settings.
const (
	DefaultAPIEndpoint         = "https://chromemanagement.googleapis.com/"
	DefaultFirestoreCollection = "certprovProcesses"
	DefaultTasksMaxAttempts    = 10
	DefaultRecordTTL           = 30 * 24 * time.Hour
	// DefaultSweepAfter is how long an unfinished record may stay unchanged
	// before the sweep re-drives its process.
	DefaultSweepAfter = time.Hour
	// DefaultSweepBudget bounds one sweep: inside PollSignature's default
	// 60 s timeout.
	DefaultSweepBudget = 50 * time.Second
	// DefaultLease is how long a step with an external side effect (a claim,
	// signData, the CA, an upload) keeps other deliveries away while its call
	// is in flight.
	DefaultLease = 2 * time.Minute
	// MinLease is twice the API client's 30 s call deadline: every call ends
	// well inside its lease.
	MinLease = time.Minute
)

// DefaultPoll is the default poll schedule (see the README's Performance section
// for the measurement that chose it).
var DefaultPoll = PollSchedule{
	Initial:      2 * time.Second,
	Multiplier:   1.5,
	Max:          10 * time.Second,
	Jitter:       0.2,
	LateAfter:    10 * time.Minute,
	LateInterval: 5 * time.Minute,
	Deadline:     24 * time.Hour,
}

// PollSchedule says when the poller asks for the signature again: Initial after
// signData, then each delay times Multiplier up to Max, each randomised by
// ±Jitter (a fraction); once LateAfter has passed since signData, every
// LateInterval (±Jitter); until Deadline after signData. A client that has
// not signed within minutes is asleep or offline: polling it often costs
// calls and gains little. LateAfter 0 keeps the first phase to the end.
type PollSchedule struct {
	Initial      time.Duration
	Multiplier   float64
	Max          time.Duration
	Jitter       float64
	LateAfter    time.Duration
	LateInterval time.Duration
	Deadline     time.Duration
}

// Delay is the wait before poll n (0-based) when elapsed has passed since
// signData, for a uniform draw u in [0,1) that applies the jitter.
func (s PollSchedule) Delay(n int, elapsed time.Duration, u float64) time.Duration {
	d := float64(s.Initial) * math.Pow(s.Multiplier, float64(n))
	if d > float64(s.Max) {
		d = float64(s.Max)
	}
	if s.LateAfter > 0 && s.LateInterval > 0 && elapsed >= s.LateAfter {
		d = float64(s.LateInterval)
	}
	return time.Duration(d * (1 + s.Jitter*(2*u-1)))
}

// PollsUntil is how many polls a client that never signs costs until d, on
// average (the jitter's mean).
func (s PollSchedule) PollsUntil(d time.Duration) int {
	var t time.Duration
	for n := 0; ; n++ {
		t += s.Delay(n, t, 0.5)
		if t >= d || n >= 10_000_000 {
			return n + 1 // the poll at the deadline itself
		}
	}
}

// QuietestGap is the longest wait between two polls, jitter included: a live
// process's record changes at least this often.
func (s PollSchedule) QuietestGap() time.Duration {
	d := s.Max
	if s.LateAfter > 0 && s.LateInterval > d {
		d = s.LateInterval
	}
	return time.Duration(float64(d) * (1 + s.Jitter))
}

// Scale divides the schedule's durations by f (for time-scaled runs).
func (s PollSchedule) Scale(f float64) PollSchedule {
	div := func(d time.Duration) time.Duration { return time.Duration(float64(d) / f) }
	s.Initial, s.Max, s.LateAfter, s.LateInterval, s.Deadline = div(s.Initial), div(s.Max), div(s.LateAfter), div(s.LateInterval), div(s.Deadline)
	return s
}

// Config is everything the functions need.
type Config struct {
	Project             string
	CallerInstanceID    string
	APIEndpoint         string
	APIEmulatorHost     string // CERTPROV_API_EMULATOR_HOST: an API emulator's host:port, called without credentials
	Emulated            bool   // APIEmulatorHost is set: no credentials
	FirestoreDatabase   string
	FirestoreCollection string
	FirestoreEmulator   string
	TasksEmulator       string
	PollQueue           string
	IssueQueue          string
	PollURL             string
	IssueURL            string
	TasksServiceAccount string
	TasksMaxAttempts    int
	Poll                PollSchedule
	RecordTTL           time.Duration
	// SweepAfter: see pipeline.Pipeline.SweepAfter (SWEEP_AFTER; 0 disables).
	SweepAfter time.Duration
	// SweepBudget: see pipeline.Pipeline.SweepBudget (SWEEP_BUDGET).
	SweepBudget time.Duration
	// Lease: see pipeline.Pipeline.Lease (LEASE).
	Lease time.Duration
	// CATimeout: see pipeline.Pipeline.CATimeout (CA_TIMEOUT; default half
	// the lease, at most half the lease).
	CATimeout time.Duration
	LogLevel  slog.Level
	Adapter   Adapter
}

// Adapter is the adapter config (JSON, from CERTPROV_CONFIG or CERTPROV_CONFIG_FILE).
type Adapter struct {
	// AllowedCustomers lists the customer ids whose notifications are accepted.
	AllowedCustomers []string `json:"allowedCustomers"`
	// CAConnections maps a caConnectionAdapterConfigReference to a CA connection.
	CAConnections map[string]CAConnection `json:"caConnections"`
	// Profiles maps a profileAdapterConfigReference to a generic profile.
	Profiles map[string]profile.Profile `json:"profiles"`
}

// CAConnection names a connector type and its settings, which the connector
// validates itself.
type CAConnection struct {
	Type     string          `json:"type"`
	Settings json.RawMessage `json:"settings,omitempty"`
	// RefuseIncomplete fails a process whose issued certificate lacks a SAN,
	// a key usage or an extended key usage the request asked for (some CAs
	// drop what their template does not allow). Default: upload it, with a
	// WARNING that a log-based metric counts.
	RefuseIncomplete bool `json:"refuseIncomplete,omitempty"`
}

// RefuseIncomplete lists the CA connections with refuseIncomplete set.
func (a *Adapter) RefuseIncomplete() map[string]bool {
	m := map[string]bool{}
	for ref, c := range a.CAConnections {
		if c.RefuseIncomplete {
			m[ref] = true
		}
	}
	return m
}

// Allowed reports whether notifications of customer are accepted.
func (a *Adapter) Allowed(customer string) bool {
	return slices.Contains(a.AllowedCustomers, customer)
}

// ParseAdapter decodes and validates an adapter config. Unknown fields are errors.
func ParseAdapter(data []byte, connectorTypes []string) (Adapter, error) {
	var a Adapter
	if err := strictjson.Unmarshal(data, &a); err != nil {
		return Adapter{}, fmt.Errorf("adapter config: %w", err)
	}
	return a, a.Validate(connectorTypes)
}

// Validate reports every problem of a at once. connectorTypes lists the known
// connector types.
func (a *Adapter) Validate(connectorTypes []string) error {
	var errs []error
	if len(a.AllowedCustomers) == 0 {
		errs = append(errs, errors.New("allowedCustomers is empty: no notification would be accepted"))
	}
	for i, c := range a.AllowedCustomers {
		if c == "" || strings.ContainsAny(c, ":/ ") {
			errs = append(errs, fmt.Errorf("allowedCustomers[%d]: %q is not a customer id", i, c))
		}
	}
	if len(a.CAConnections) == 0 {
		errs = append(errs, errors.New("caConnections is empty"))
	}
	for _, ref := range sortedKeys(a.CAConnections) {
		c := a.CAConnections[ref]
		if !slices.Contains(connectorTypes, c.Type) {
			errs = append(errs, fmt.Errorf("caConnections[%q].type: unknown connector type %q (known: %s)", ref, c.Type, strings.Join(connectorTypes, ", ")))
		}
	}
	for _, ref := range sortedKeys(a.Profiles) {
		p := a.Profiles[ref]
		if err := p.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("profiles[%q]: %w", ref, err))
		}
	}
	return errors.Join(errs...)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Load reads the environment settings and the adapter config through env.
func Load(env Lookup, connectorTypes []string) (*Config, error) {
	var errs []error
	get := func(name, def string) string {
		if v, ok := env(name); ok && v != "" {
			return v
		}
		return def
	}
	dur := func(name string, def time.Duration) time.Duration {
		v := get(name, "")
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s: %q is not a positive duration (e.g. 30s)", name, v))
			return def
		}
		return d
	}
	durOrZero := func(name string, def time.Duration) time.Duration {
		if get(name, "") == "0" {
			return 0
		}
		return dur(name, def)
	}
	num := func(name string, def float64, lo, hi float64) float64 {
		v := get(name, "")
		if v == "" {
			return def
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < lo || f > hi {
			errs = append(errs, fmt.Errorf("%s: %q is not a number from %g to %g", name, v, lo, hi))
			return def
		}
		return f
	}
	c := &Config{
		Project:             get("GOOGLE_CLOUD_PROJECT", ""),
		APIEndpoint:         get("CERTPROV_API_ENDPOINT", DefaultAPIEndpoint),
		APIEmulatorHost:     get("CERTPROV_API_EMULATOR_HOST", ""),
		FirestoreDatabase:   get("FIRESTORE_DATABASE", "(default)"),
		FirestoreCollection: get("FIRESTORE_COLLECTION", DefaultFirestoreCollection),
		FirestoreEmulator:   get("FIRESTORE_EMULATOR_HOST", ""),
		TasksEmulator:       get("CLOUD_TASKS_EMULATOR_HOST", ""),
		PollQueue:           get("TASKS_POLL_QUEUE", ""),
		IssueQueue:          get("TASKS_ISSUE_QUEUE", ""),
		PollURL:             get("POLL_SIGNATURE_URL", ""),
		IssueURL:            get("ISSUE_CERTIFICATE_URL", ""),
		TasksServiceAccount: get("TASKS_SERVICE_ACCOUNT", ""),
		TasksMaxAttempts:    int(num("TASKS_MAX_ATTEMPTS", DefaultTasksMaxAttempts, 1, 100)),
		Poll: PollSchedule{
			Initial:      dur("POLL_INITIAL_DELAY", DefaultPoll.Initial),
			Multiplier:   num("POLL_MULTIPLIER", DefaultPoll.Multiplier, 1, 10),
			Max:          dur("POLL_MAX_DELAY", DefaultPoll.Max),
			Jitter:       num("POLL_JITTER", DefaultPoll.Jitter, 0, 0.9),
			LateAfter:    durOrZero("POLL_LATE_AFTER", DefaultPoll.LateAfter),
			LateInterval: dur("POLL_LATE_INTERVAL", DefaultPoll.LateInterval),
			Deadline:     dur("POLL_DEADLINE", DefaultPoll.Deadline),
		},
		RecordTTL:   dur("RECORD_TTL", DefaultRecordTTL),
		SweepAfter:  durOrZero("SWEEP_AFTER", DefaultSweepAfter),
		Lease:       dur("LEASE", DefaultLease),
		SweepBudget: dur("SWEEP_BUDGET", DefaultSweepBudget),
	}
	c.Emulated = c.APIEmulatorHost != ""
	if c.Emulated && c.APIEndpoint != DefaultAPIEndpoint {
		errs = append(errs, fmt.Errorf("CERTPROV_API_ENDPOINT (%s) and CERTPROV_API_EMULATOR_HOST (%s) are both set: set the endpoint for the real API (with credentials), the emulator host for an emulator (without)", c.APIEndpoint, c.APIEmulatorHost))
	}
	c.CATimeout = dur("CA_TIMEOUT", c.Lease/2)
	if c.CATimeout > c.Lease/2 {
		errs = append(errs, fmt.Errorf("CA_TIMEOUT %s: must be at most half of LEASE (%s), so that a CA call is given up well before another delivery may take the process over", c.CATimeout, c.Lease))
	}
	c.CallerInstanceID = get("CALLER_INSTANCE_ID", "")
	if c.CallerInstanceID == "" {
		if c.Project == "" {
			errs = append(errs, errors.New("CALLER_INSTANCE_ID: not set and GOOGLE_CLOUD_PROJECT is empty, so no stable default exists"))
		} else {
			c.CallerInstanceID = "certprov-adapter-" + c.Project
		}
	}
	if c.Poll.Max < c.Poll.Initial {
		errs = append(errs, fmt.Errorf("POLL_MAX_DELAY %s is shorter than POLL_INITIAL_DELAY %s", c.Poll.Max, c.Poll.Initial))
	}
	if c.Poll.LateAfter > 0 && c.Poll.LateInterval <= 0 {
		errs = append(errs, fmt.Errorf("POLL_LATE_INTERVAL must be positive when POLL_LATE_AFTER is set (%s); set POLL_LATE_AFTER=0 to poll at POLL_MAX_DELAY to the end", c.Poll.LateAfter))
	}
	if quiet := c.Poll.QuietestGap(); c.SweepAfter > 0 && c.SweepAfter < 2*quiet {
		errs = append(errs, fmt.Errorf("SWEEP_AFTER %s: must be at least twice the longest gap between polls (%s), or a live process would be taken for a stranded one; or 0 to disable the sweep", c.SweepAfter, quiet))
	}
	if c.SweepBudget < 10*time.Second {
		errs = append(errs, fmt.Errorf("SWEEP_BUDGET %s: must be at least 10s (a sweep keeps 5 s in hand before it)", c.SweepBudget))
	}
	if c.Lease < MinLease {
		errs = append(errs, fmt.Errorf("LEASE %s: must be at least %s (twice the API's call deadline), so that a call always ends inside its lease", c.Lease, MinLease))
	}
	if c.SweepAfter > 0 && c.SweepAfter <= c.Lease {
		errs = append(errs, fmt.Errorf("SWEEP_AFTER %s: must be longer than LEASE %s, or the sweep would re-drive a step still in flight", c.SweepAfter, c.Lease))
	}
	if err := c.LogLevel.UnmarshalText([]byte(get("LOG_LEVEL", "info"))); err != nil {
		errs = append(errs, fmt.Errorf("LOG_LEVEL: %q is not debug, info, warn or error", get("LOG_LEVEL", "")))
	}
	if c.TasksEmulator == "" {
		for _, name := range []string{"GOOGLE_CLOUD_PROJECT", "TASKS_POLL_QUEUE", "TASKS_ISSUE_QUEUE", "POLL_SIGNATURE_URL", "ISSUE_CERTIFICATE_URL", "TASKS_SERVICE_ACCOUNT"} {
			if get(name, "") == "" {
				errs = append(errs, fmt.Errorf("%s: required (unless CLOUD_TASKS_EMULATOR_HOST is set)", name))
			}
		}
	}
	raw, err := adapterJSON(env)
	if err != nil {
		errs = append(errs, err)
	} else {
		a, err := ParseAdapter(raw, connectorTypes)
		if err != nil {
			errs = append(errs, err)
		}
		c.Adapter = a
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("configuration:\n%w", err)
	}
	return c, nil
}

func adapterJSON(env Lookup) ([]byte, error) {
	inline, _ := env("CERTPROV_CONFIG")
	file, _ := env("CERTPROV_CONFIG_FILE")
	switch {
	case inline != "" && file != "":
		return nil, errors.New("CERTPROV_CONFIG and CERTPROV_CONFIG_FILE are both set: choose one")
	case inline != "":
		return []byte(inline), nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("CERTPROV_CONFIG_FILE: %w", err)
		}
		return b, nil
	}
	return nil, errors.New("CERTPROV_CONFIG or CERTPROV_CONFIG_FILE: the adapter config is required")
}
