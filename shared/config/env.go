package config

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/chromeos-certprov/adapter/shared/inventory"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
)

// Lookup reads an environment variable; os.LookupEnv in production, a map in tests.
type Lookup func(name string) (string, bool)

// MapLookup returns a Lookup over m.
func MapLookup(m map[string]string) Lookup {
	return func(name string) (string, bool) { v, ok := m[name]; return v, ok }
}

// DefaultAPIEndpoint is the Certificate Provisioning API's own endpoint:
// calls to it carry Application Default Credentials.
const DefaultAPIEndpoint = "https://chromemanagement.googleapis.com/"

// Defaults of the sweep's settings (the pipeline's zero values disable them).
const (
	// DefaultSweepAfter is how long an unfinished record may stay unchanged
	// before the sweep re-drives its process.
	DefaultSweepAfter = time.Hour
	// DefaultSweepBudget bounds one sweep: inside PollSignature's default
	// 60 s timeout.
	DefaultSweepBudget = 50 * time.Second
)

// MinLease is twice the API client's 30 s call deadline: every call ends
// well inside its lease.
const MinLease = time.Minute

// Config is everything the functions need.
type Config struct {
	Project             string
	CallerInstanceID    string
	APIEndpoint         string
	APIEmulatorHost     string // an API emulator's host:port, called without credentials
	Emulated            bool   // APIEmulatorHost is set: no credentials
	FirestoreDatabase   string
	FirestoreCollection string
	TasksEmulator       string
	PollQueue           string
	IssueQueue          string
	ClaimQueue          string
	PollURL             string
	IssueURL            string
	TasksServiceAccount string
	TasksMaxAttempts    int
	Poll                pipeline.PollSchedule
	RecordTTL           time.Duration
	// InventoryCollection and InventoryGrace: the certificate inventory
	// (shared/inventory).
	InventoryCollection string
	InventoryGrace      time.Duration
	// SweepAfter: see pipeline.Pipeline.SweepAfter (0 disables).
	SweepAfter time.Duration
	// SweepBudget: see pipeline.Pipeline.SweepBudget.
	SweepBudget time.Duration
	// Lease: see pipeline.Pipeline.Lease.
	Lease time.Duration
	// CATimeout: see pipeline.Pipeline.CATimeout (default half the lease, at
	// most half the lease).
	CATimeout time.Duration
	LogLevel  slog.Level
	// SealingKey is RECORD_SEALING_KEY (a secret), read by adapter.Sealer.
	SealingKey string
	Adapter    Adapter

	// DirectorySubject is the user the Directory API reads act as through
	// domain-wide delegation ("": the service account's own admin role).
	DirectorySubject string

	// configJSON and configFile are where Adapter comes from.
	configJSON, configFile string
}

// Setting declares one environment variable: its name, what it means, its
// default and its bounds, and the Config field it sets.
type Setting struct {
	Name string
	// Doc is what the variable means (Markdown, as in the README).
	Doc string
	// Default is the value used when the variable is unset or empty, written
	// as one would set it; "" when there is none.
	Default string
	// DefaultDoc says what happens when the variable is unset where Default
	// cannot (derived from another setting, one of two required).
	DefaultDoc string
	// RequiredInCloud: required unless CLOUD_TASKS_EMULATOR_HOST is set.
	RequiredInCloud bool
	// Min and Max bound a number, both included (the README shows them).
	Min, Max float64
	// ZeroOff admits a duration of 0, which turns the feature off; other
	// durations must be positive.
	ZeroOff bool
	// ReadBy names the library that reads the variable itself: Config has no
	// field for it.
	ReadBy string

	// target is the Config field: *string, *int, *float64, *time.Duration or
	// *slog.Level; nil when ReadBy is set.
	target any
}

// defaultText is the README's default column: the default as set, or what
// DefaultDoc says.
func (s Setting) defaultText() string {
	switch {
	case s.Default != "":
		return "`" + s.Default + "`"
	case s.RequiredInCloud:
		return "required in the cloud"
	}
	return s.DefaultDoc
}

// settings declares every environment variable the functions read, in the
// order of the README's table, each bound to its field of c.
func (c *Config) settings() []Setting {
	p := pipeline.DefaultPoll
	return []Setting{
		{Name: "GOOGLE_CLOUD_PROJECT", target: &c.Project, RequiredInCloud: true,
			Doc: "project of Firestore and Cloud Tasks"},
		{Name: "CERTPROV_CONFIG", target: &c.configJSON, DefaultDoc: "one of these two is required",
			Doc: "the adapter config as inline JSON (below)"},
		{Name: "CERTPROV_CONFIG_FILE", target: &c.configFile,
			Doc: "path of the adapter config JSON"},
		{Name: "CALLER_INSTANCE_ID", target: &c.CallerInstanceID, DefaultDoc: "`certprov-adapter-$GOOGLE_CLOUD_PROJECT`",
			Doc: "the `callerInstanceId` used to claim; must stay the same for one deployment"},
		{Name: "CERTPROV_API_ENDPOINT", target: &c.APIEndpoint, Default: DefaultAPIEndpoint,
			Doc: "Certificate Provisioning API base URL, e.g. a Private Service Connect endpoint; calls keep Application Default Credentials and the API's scope"},
		{Name: "CERTPROV_API_EMULATOR_HOST", target: &c.APIEmulatorHost,
			Doc: "`host:port` of an API emulator (the local run, the stand-ins, tests): calls go there without credentials. Not with `CERTPROV_API_ENDPOINT` (refused)"},
		{Name: "DIRECTORY_SUBJECT", target: &c.DirectorySubject, DefaultDoc: "the service account's own admin role",
			Doc: "email of an administrator the [directory variables](#directory-variables)' reads act as through domain-wide delegation (the service account then needs `roles/iam.serviceAccountTokenCreator` on itself); unset: the service account reads with an admin role of its own. With `CERTPROV_API_EMULATOR_HOST` the emulator serves the Directory reads too"},
		{Name: "FIRESTORE_DATABASE", target: &c.FirestoreDatabase, Default: "(default)",
			Doc: "Firestore database id"},
		{Name: "FIRESTORE_COLLECTION", target: &c.FirestoreCollection, Default: "certprovProcesses",
			Doc: "collection of the progress documents"},
		{Name: "FIRESTORE_EMULATOR_HOST", ReadBy: "the Firestore client library",
			Doc: "Firestore emulator `host:port` (read by the Firestore client library)"},
		{Name: "CLOUD_TASKS_EMULATOR_HOST", target: &c.TasksEmulator,
			Doc: "Cloud Tasks emulator `host:port` (insecure gRPC)"},
		{Name: "TASKS_POLL_QUEUE", target: &c.PollQueue, RequiredInCloud: true,
			Doc: "full name `projects/P/locations/L/queues/Q` of the queue of the poll tasks"},
		{Name: "TASKS_ISSUE_QUEUE", target: &c.IssueQueue, RequiredInCloud: true,
			Doc: "full name `projects/P/locations/L/queues/Q` of the queue of the issue tasks"},
		{Name: "TASKS_CLAIM_QUEUE", target: &c.ClaimQueue,
			Doc: "full name `projects/P/locations/L/queues/Q` of the rate-limited queue of the claims that met the API's quota (PollSignature runs them at its `/claim` path); empty: such claims are left to Pub/Sub's redeliveries"},
		{Name: "POLL_SIGNATURE_URL", target: &c.PollURL, RequiredInCloud: true,
			Doc: "URL of the PollSignature function"},
		{Name: "ISSUE_CERTIFICATE_URL", target: &c.IssueURL, RequiredInCloud: true,
			Doc: "URL of the IssueCertificate function"},
		{Name: "TASKS_SERVICE_ACCOUNT", target: &c.TasksServiceAccount, RequiredInCloud: true,
			Doc: "service account whose OIDC token Cloud Tasks attaches (audience: the target URL)"},
		{Name: "TASKS_MAX_ATTEMPTS", target: &c.TasksMaxAttempts, Default: strconv.Itoa(pipeline.DefaultMaxAttempts), Min: 1, Max: 100,
			Doc: "the queues' max attempts: the last attempt reports a failure instead of erroring"},
		{Name: "POLL_INITIAL_DELAY", target: &c.Poll.Initial, Default: duration(p.Initial),
			Doc: "first poll after signData"},
		{Name: "POLL_MULTIPLIER", target: &c.Poll.Multiplier, Default: number(p.Multiplier), Min: 1, Max: 10,
			Doc: "each poll's delay times this"},
		{Name: "POLL_MAX_DELAY", target: &c.Poll.Max, Default: duration(p.Max),
			Doc: "cap of the delay in the first phase; at least `POLL_INITIAL_DELAY`"},
		{Name: "POLL_FAST_FOR", target: &c.Poll.FastFor, Default: duration(p.FastFor), ZeroOff: true,
			Doc: "after this time since signData, poll only just after the client's check-ins (30 s, 2 min and 8 min after the process's start, plus 5 s) and at least every `POLL_LATE_INTERVAL` (+jitter) until `POLL_LATE_AFTER`: a client that has not answered the push by then answers at a check-in; `0`: the first phase lasts until `POLL_LATE_AFTER`"},
		{Name: "POLL_LATE_AFTER", target: &c.Poll.LateAfter, Default: duration(p.LateAfter), ZeroOff: true,
			Doc: "after this time since signData, poll every `POLL_LATE_INTERVAL` instead (a client that has not signed by then is asleep or offline); `0`: one phase to the deadline"},
		{Name: "POLL_LATE_INTERVAL", target: &c.Poll.LateInterval, Default: duration(p.LateInterval),
			Doc: "delay between polls in the late phase"},
		{Name: "POLL_JITTER", target: &c.Poll.Jitter, Default: number(p.Jitter), Min: 0, Max: 0.9,
			Doc: "± fraction of randomness on each delay"},
		{Name: "POLL_DEADLINE", target: &c.Poll.Deadline, Default: duration(p.Deadline),
			Doc: `after one last poll at this time since signData the process is failed ("did not answer in time")`},
		{Name: "SWEEP_AFTER", target: &c.SweepAfter, Default: duration(DefaultSweepAfter), ZeroOff: true,
			Doc: "a process whose record has not changed for this long while unfinished is re-driven by the [sweep](#when-a-task-is-lost-the-sweep); at least twice the longest gap between polls and longer than `LEASE` (refused otherwise); `0` disables the sweep"},
		{Name: "SWEEP_BUDGET", target: &c.SweepBudget, Default: duration(DefaultSweepBudget),
			Doc: "how long one sweep may run: it stops at a record boundary when less than 5 s are left and the next sweep takes the rest (terraform sets it to PollSignature's timeout minus 10 s); at least `10s`"},
		{Name: "LEASE", target: &c.Lease, Default: duration(pipeline.DefaultLease),
			Doc: "how long a step with an external side effect (claim, signData, the CA, the upload) keeps other deliveries of the same process away while its call is in flight; a call that fails frees it at once; at least `1m` (twice the API's call deadline) and shorter than `SWEEP_AFTER`"},
		{Name: "CA_TIMEOUT", target: &c.CATimeout, DefaultDoc: "half of `LEASE`",
			Doc: "deadline of each CA call (the SCEP challenge, the issuance and the check of its answer); a CA slower than this is treated as unreachable (retried); at most half of `LEASE` (refused otherwise)"},
		{Name: "RECORD_TTL", target: &c.RecordTTL, Default: duration(pipeline.DefaultTTL),
			Doc: "how long finished progress documents are kept (Firestore TTL field `expireAt`)"},
		{Name: "INVENTORY_COLLECTION", target: &c.InventoryCollection, Default: inventory.DefaultCollection,
			Doc: "collection of the [certificate inventory](#certificate-inventory): one document per uploaded certificate"},
		{Name: "INVENTORY_GRACE", target: &c.InventoryGrace, Default: duration(inventory.DefaultGrace),
			Doc: "how long an inventory entry is kept after its certificate's not-after (Firestore TTL field `expireAt` = not-after + this)"},
		{Name: "LOG_LEVEL", target: &c.LogLevel, Default: "info",
			Doc: "`debug`, `info`, `warn`, `error`"},
		{Name: "RECORD_SEALING_KEY", target: &c.SealingKey,
			Doc: "secret: 32 random bytes, base64 (`openssl rand -base64 32`). The signData bytes and the CSR are sealed with it (AES-256-GCM) when they hold a SCEP challenge password, so it never reaches Firestore in clear; required when a SCEP connection has a challenge"},
	}
}

// decode sets each setting's field from env, or from its default when the
// variable is unset or empty, and returns every value that does not parse
// (the field then keeps the default).
func decode(env Lookup, settings []Setting) []error {
	var errs []error
	for _, s := range settings {
		if s.target == nil {
			continue
		}
		if v, ok := env(s.Name); ok && v != "" {
			if err := s.set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %q is %s", s.Name, v, err))
			} else {
				continue
			}
		}
		if s.Default != "" {
			if err := s.set(s.Default); err != nil {
				panic(fmt.Sprintf("config: the default of %s: %q is %s", s.Name, s.Default, err))
			}
		}
	}
	return errs
}

// errNot is a value's problem, worded to follow `NAME: "value" is `.
type errNot string

func (e errNot) Error() string { return string(e) }

// set parses v into the setting's field.
func (s Setting) set(v string) error {
	switch t := s.target.(type) {
	case *string:
		*t = v
	case *int:
		n, err := strconv.Atoi(v)
		if err != nil || float64(n) < s.Min || float64(n) > s.Max {
			return errNot(fmt.Sprintf("not a number from %g to %g", s.Min, s.Max))
		}
		*t = n
	case *float64:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < s.Min || f > s.Max {
			return errNot(fmt.Sprintf("not a number from %g to %g", s.Min, s.Max))
		}
		*t = f
	case *time.Duration:
		d, err := time.ParseDuration(v)
		if s.ZeroOff && v == "0" {
			d, err = 0, nil
		} else if err == nil && d <= 0 {
			err = errNot("not positive")
		}
		if err != nil {
			if s.ZeroOff {
				return errNot("not a positive duration (e.g. 30s) or 0")
			}
			return errNot("not a positive duration (e.g. 30s)")
		}
		*t = d
	case *slog.Level:
		if err := t.UnmarshalText([]byte(v)); err != nil {
			return errNot("not debug, info, warn or error")
		}
	default:
		panic(fmt.Sprintf("config: %s has a field of type %T", s.Name, s.target))
	}
	return nil
}

// duration writes d as one would set it: "10m", not "10m0s".
func duration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func number(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// Load reads the environment settings and the adapter config through env.
func Load(env Lookup, connectorTypes []string) (*Config, error) {
	c := newConfig()
	errs := decode(env, c.settings())
	errs = append(errs, c.derive()...)
	errs = append(errs, c.validate()...)
	raw, err := adapterJSON(c.configJSON, c.configFile)
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

// newConfig is a Config before its environment is read: the settings of the
// poll schedule that no variable sets (the client's documented check-ins)
// are the code's.
func newConfig() *Config {
	c := &Config{}
	c.Poll.CheckIns, c.Poll.CheckInMargin = pipeline.DefaultPoll.CheckIns, pipeline.DefaultPoll.CheckInMargin
	return c
}

// LoadPoll reads only the poll schedule (POLL_*) through env, for the local
// runs, which fill in everything else themselves.
func LoadPoll(env Lookup) (pipeline.PollSchedule, error) {
	c := newConfig()
	var poll []Setting
	for _, s := range c.settings() {
		if strings.HasPrefix(s.Name, "POLL_") {
			poll = append(poll, s)
		}
	}
	errs := decode(env, poll)
	errs = append(errs, c.validatePoll()...)
	if err := errors.Join(errs...); err != nil {
		return pipeline.PollSchedule{}, fmt.Errorf("configuration:\n%w", err)
	}
	return c.Poll, nil
}

// derive fills in the defaults that depend on other settings.
func (c *Config) derive() []error {
	var errs []error
	c.Emulated = c.APIEmulatorHost != ""
	if c.CATimeout == 0 {
		c.CATimeout = c.Lease / 2
	}
	if c.CallerInstanceID == "" {
		if c.Project == "" {
			errs = append(errs, errors.New("CALLER_INSTANCE_ID: not set and GOOGLE_CLOUD_PROJECT is empty, so no stable default exists"))
		} else {
			c.CallerInstanceID = "certprov-adapter-" + c.Project
		}
	}
	return errs
}

// validate checks the settings against each other.
func (c *Config) validate() []error {
	var errs []error
	if c.Emulated && c.APIEndpoint != DefaultAPIEndpoint {
		errs = append(errs, fmt.Errorf("CERTPROV_API_ENDPOINT (%s) and CERTPROV_API_EMULATOR_HOST (%s) are both set: set the endpoint for the real API (with credentials), the emulator host for an emulator (without)", c.APIEndpoint, c.APIEmulatorHost))
	}
	if c.CATimeout > c.Lease/2 {
		errs = append(errs, fmt.Errorf("CA_TIMEOUT %s: must be at most half of LEASE (%s), so that a CA call is given up well before another delivery may take the process over", c.CATimeout, c.Lease))
	}
	errs = append(errs, c.validatePoll()...)
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
	if c.TasksEmulator == "" {
		for _, s := range c.settings() {
			if v, ok := s.target.(*string); ok && s.RequiredInCloud && *v == "" {
				errs = append(errs, fmt.Errorf("%s: required (unless CLOUD_TASKS_EMULATOR_HOST is set)", s.Name))
			}
		}
	}
	return errs
}

// validatePoll checks the poll schedule's settings against each other.
func (c *Config) validatePoll() []error {
	var errs []error
	if c.Poll.Max < c.Poll.Initial {
		errs = append(errs, fmt.Errorf("POLL_MAX_DELAY %s is shorter than POLL_INITIAL_DELAY %s", c.Poll.Max, c.Poll.Initial))
	}
	if c.Poll.LateAfter > 0 && c.Poll.LateInterval <= 0 {
		errs = append(errs, fmt.Errorf("POLL_LATE_INTERVAL must be positive when POLL_LATE_AFTER is set (%s); set POLL_LATE_AFTER=0 to poll at POLL_MAX_DELAY to the end", c.Poll.LateAfter))
	}
	return errs
}
