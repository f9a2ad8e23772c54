package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/chromeos-certprov/adapter/shared/config"
	"github.com/chromeos-certprov/adapter/shared/cpapi"
	"github.com/chromeos-certprov/adapter/shared/logging"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/store/firestore"
	"github.com/chromeos-certprov/adapter/shared/tasks/cloudtasks"
)

// actEnv is the help text of the environment the actions read besides the
// store's: the functions' own variables, so that an operator's shell set up
// like the functions (terraform output) acts like them.
const actEnv = `
Environment (the functions' own variables):
  TASKS_POLL_QUEUE, TASKS_ISSUE_QUEUE     the queues (projects/P/locations/L/queues/Q)
  POLL_SIGNATURE_URL, ISSUE_CERTIFICATE_URL  their target functions
  TASKS_SERVICE_ACCOUNT                   the OIDC identity of the tasks (not with the emulator)
  CLOUD_TASKS_EMULATOR_HOST               the Cloud Tasks emulator instead of Cloud Tasks
  CALLER_INSTANCE_ID                      default certprov-adapter-$GOOGLE_CLOUD_PROJECT
  CERTPROV_API_ENDPOINT, CERTPROV_API_EMULATOR_HOST   the API (fail only)
  TASKS_MAX_ATTEMPTS, LEASE, RECORD_TTL   as the functions have them
`

// actor is the pipeline an action runs through: the functions' store, queues
// and API client, without CA connections or profiles (no action needs them).
type actor struct {
	p     *pipeline.Pipeline
	store *firestore.Store
	close func()
}

// errConfig marks an environment the actions cannot run with (exit 2).
var errConfig = errors.New("configuration")

// newActor builds the pipeline of an action from the environment; withAPI
// adds the API client (fail).
func newActor(ctx context.Context, e env, sf storeFlags, withAPI bool) (*actor, error) {
	get := func(name string) string {
		v, _ := e.lookup(name)
		return cmp.Or(strings.TrimSpace(v), config.Default(name))
	}
	p := &pipeline.Pipeline{Log: logging.Discard, CallerID: cmp.Or(get("CALLER_INSTANCE_ID"), "certprov-adapter-"+*sf.project)}
	var errs []error
	if n := get("TASKS_MAX_ATTEMPTS"); n != "" {
		v, err := strconv.Atoi(n)
		if err != nil || v < 1 {
			errs = append(errs, fmt.Errorf("TASKS_MAX_ATTEMPTS %q: want a positive number", n))
		}
		p.MaxAttempts = v
	}
	for _, d := range []struct {
		name string
		to   *time.Duration
	}{{"LEASE", &p.Lease}, {"RECORD_TTL", &p.TTL}} {
		if s := get(d.name); s != "" {
			v, err := time.ParseDuration(s)
			if err != nil || v <= 0 {
				errs = append(errs, fmt.Errorf("%s %q: want a positive duration", d.name, s))
			}
			*d.to = v
		}
	}
	tcfg := cloudtasks.Config{PollQueue: get("TASKS_POLL_QUEUE"), IssueQueue: get("TASKS_ISSUE_QUEUE"),
		PollURL: get("POLL_SIGNATURE_URL"), IssueURL: get("ISSUE_CERTIFICATE_URL"), ServiceAccount: get("TASKS_SERVICE_ACCOUNT")}
	missing := false
	for _, name := range []string{"TASKS_POLL_QUEUE", "TASKS_ISSUE_QUEUE", "POLL_SIGNATURE_URL", "ISSUE_CERTIFICATE_URL"} {
		if get(name) == "" {
			errs, missing = append(errs, fmt.Errorf("%s is not set: set it as the functions have it", name)), true
		}
	}
	if err := tcfg.Validate(); err != nil && !missing {
		errs = append(errs, fmt.Errorf("the task queues (TASKS_*_QUEUE, *_URL):\n%w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: %w", errConfig, err)
	}
	s, closeStore, err := sf.openStore(ctx)
	if err != nil {
		return nil, err
	}
	a := &actor{p: p, store: s, close: closeStore}
	p.Store = s
	var enq *cloudtasks.Enqueuer
	if host := get("CLOUD_TASKS_EMULATOR_HOST"); host != "" {
		opts, err := cloudtasks.Dial(ctx, host)
		if err != nil {
			a.close()
			return nil, err
		}
		enq, err = cloudtasks.New(ctx, tcfg, opts...)
	} else {
		enq, err = cloudtasks.New(ctx, tcfg)
	}
	if err != nil {
		a.close()
		return nil, err
	}
	p.Tasks = enq
	a.close = func() { enq.Close(); closeStore() }
	if withAPI {
		o := cpapi.Options{EmulatorHost: get("CERTPROV_API_EMULATOR_HOST")}
		if ep := get("CERTPROV_API_ENDPOINT"); o.EmulatorHost == "" && ep != config.DefaultAPIEndpoint {
			o.Endpoint = ep
		}
		api, err := cpapi.New(ctx, o)
		if err != nil {
			a.close()
			return nil, err
		}
		p.API = api
	}
	return a, nil
}

// resolve finds the key of the process an action names: a CUSTOMER:PROCESS_ID
// key as it is, a process id when exactly one customer has it.
func resolve(ctx context.Context, s *firestore.Store, id string) (string, error) {
	if strings.Contains(id, ":") {
		return id, nil
	}
	recs, err := findProcess(ctx, s, id)
	if err != nil {
		return "", err
	}
	if len(recs) > 1 {
		keys := make([]string, len(recs))
		for i, r := range recs {
			keys[i] = r.Key
		}
		return "", fmt.Errorf("%w: process %s exists for %d customers (%s): name one as CUSTOMER:PROCESS_ID", errAmbiguous, id, len(recs), strings.Join(keys, ", "))
	}
	return recs[0].Key, nil
}

var errAmbiguous = errors.New("ambiguous process id")

// actionView is what an action did (its --json output).
type actionView struct {
	Action string `json:"action"`
	Key    string `json:"key"`
	// Done: the action went through; Refused says why it did not.
	Done    bool   `json:"done"`
	Refused string `json:"refused,omitempty"`
	// Error: the action was cut short by a failing service.
	Error string `json:"error,omitempty"`
	State string `json:"state,omitempty"`
	// Task is the task a retry enqueued.
	Task            *taskView `json:"task,omitempty"`
	Sweeps          int       `json:"sweeps"`
	MaxRedrives     int       `json:"maxRedrives"`
	SignDataCalls   int       `json:"signDataCalls"`
	LastError       string    `json:"lastError,omitempty"`
	FailureMessage  string    `json:"failureMessage,omitempty"`
	FailureReported bool      `json:"failureReported"`
	// Next says what happens now, or what to do.
	Next string `json:"next"`
}

type taskView struct {
	Queue string `json:"queue"`
	Name  string `json:"name"`
}

func newActionView(action, key string, r *progress.Record) actionView {
	v := actionView{Action: action, Key: key, MaxRedrives: pipeline.MaxRedrives}
	if r != nil {
		v.Key, v.State, v.Sweeps, v.SignDataCalls = r.Key, string(r.State), r.Sweeps, r.SignDataCalls
		v.LastError, v.FailureMessage, v.FailureReported = r.LastError, r.FailureMessage, r.FailureReported
	}
	return v
}

// report prints v and returns code.
func (v actionView) report(e env, asJSON bool, code int) int {
	if asJSON {
		if err := writeJSON(e.stdout, v); err != nil {
			return exitProblem
		}
		return code
	}
	w := e.stdout
	if !v.Done {
		w = e.stderr
	}
	v.write(w)
	return code
}

func (v actionView) write(w io.Writer) {
	switch {
	case v.Refused != "":
		fmt.Fprintf(w, "certprov %s %s: refused: %s\n", v.Action, v.Key, v.Refused)
	case v.Error != "":
		fmt.Fprintf(w, "certprov %s %s: %s\n", v.Action, v.Key, v.Error)
	case v.Task != nil:
		fmt.Fprintf(w, "%s: re-driven from %s by task %s in the %s queue; re-drive %d of %d\n", v.Key, v.State, v.Task.Name, v.Task.Queue, v.Sweeps, v.MaxRedrives)
	default:
		fmt.Fprintf(w, "%s: %s\n", v.Key, v.State)
	}
	if v.FailureMessage != "" && v.Action == "fail" {
		told := "NOT YET shown to the device"
		if v.FailureReported {
			told = "shown to the device"
		}
		fmt.Fprintf(w, "failure: %q (%s)\n", v.FailureMessage, told)
	}
	if v.Next != "" {
		fmt.Fprintf(w, "next: %s\n", v.Next)
	}
}

// actionFailure reports an error that stopped an action before or while it
// acted: 1 not found or refused, 2 configuration or an ambiguous id, 3 a
// service.
func actionFailure(e env, asJSON bool, action, key string, err error) int {
	var refused *pipeline.ActionRefusedError
	if errors.As(err, &refused) {
		v := newActionView(action, key, refused.Record)
		v.Refused = refused.Reason
		v.Next = "certprov status " + v.Key
		return v.report(e, asJSON, exitProblem)
	}
	code := exitUnreachable
	switch {
	case errors.Is(err, progress.ErrNotFound):
		code = exitProblem
	case errors.Is(err, errNoProject), errors.Is(err, errConfig), errors.Is(err, errAmbiguous):
		code = exitUsage
	}
	if !asJSON {
		fmt.Fprintf(e.stderr, "certprov %s: %v\n", action, err)
		return code
	}
	v := newActionView(action, key, nil)
	v.Error = err.Error()
	return v.report(e, true, code)
}

func retry(ctx context.Context, e env, args []string) int {
	fs, asJSON := flags(e, "retry", "PROCESS_ID | CUSTOMER:PROCESS_ID [--project P] [--database D] [--collection C] [--json]",
		`  certprov retry 3f0c8f7e-1d2a-4c55-9e4b-2b8f0e6a1c10
  certprov retry C0abc1234:3f0c8f7e-1d2a-4c55-9e4b-2b8f0e6a1c10 --json
  certprov list --state SIGNED --json | jq -r '.processes[].key' | xargs -n1 certprov retry

Re-drives a stuck process exactly as the sweep does: a task under a fresh
name resumes it from its state (a poll task up to POLLING, an issue task from
SIGNED, the failure report in FAILING), and the record counts the re-drive
among the sweep's `+strconv.Itoa(pipeline.MaxRedrives)+`. Every step is safe to run twice: no second
signData, no second certificate. Refused (exit 1, with the reason) for a
finished process, while a delivery holds the lease, while a poll is
scheduled, and once the re-drives are used up (fail it instead).
`+actEnv)
	sf := addStoreFlags(fs, e)
	pos, code, ok := parse(e, fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(e, fs, "want one PROCESS_ID, got %d arguments", len(pos))
	}
	ctx, cancel := context.WithTimeout(ctx, *sf.timeout)
	defer cancel()
	a, err := newActor(ctx, e, sf, false)
	if err != nil {
		return actionFailure(e, *asJSON, "retry", pos[0], err)
	}
	defer a.close()
	key, err := resolve(ctx, a.store, pos[0])
	if err != nil {
		return actionFailure(e, *asJSON, "retry", pos[0], err)
	}
	rec, task, err := a.p.Retry(ctx, key)
	if err != nil {
		return actionFailure(e, *asJSON, "retry", key, err)
	}
	v := newActionView("retry", key, rec)
	v.Done, v.Task = true, &taskView{Queue: string(task.Queue), Name: task.Name}
	v.Next = "the task resumes the process now; follow it with: certprov status " + rec.ProcessID
	return v.report(e, *asJSON, exitOK)
}

func fail(ctx context.Context, e env, args []string) int {
	fs, asJSON := flags(e, "fail", "PROCESS_ID | CUSTOMER:PROCESS_ID --message TEXT [--project P] [--database D] [--collection C] [--json]",
		`  certprov fail 3f0c8f7e-1d2a-4c55-9e4b-2b8f0e6a1c10 --message "Your administrator stopped this request. Restart the device to try again."
  certprov fail C0abc1234:3f0c8f7e-... --message "The Wi-Fi profile is being replaced; the device will enroll again." --json

Fails a process on purpose through the pipeline's own failure path: the
record moves to FAILING with the message, setFailure shows it on the device
(which retries after about 24 hours or a reboot), and the record ends FAILED
only once the API took it. If setFailure does not go through, a task keeps
trying and the record stays FAILING (exit 3). Refused (exit 1) for a finished
process, one already failing, and while a delivery holds the lease.
Exit 0: FAILED and shown to the device.
`+actEnv)
	sf := addStoreFlags(fs, e)
	message := fs.String("message", "", "what the device shows the user: what happened and what to do (required, at most 500 bytes)")
	pos, code, ok := parse(e, fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(e, fs, "want one PROCESS_ID, got %d arguments", len(pos))
	}
	if strings.TrimSpace(*message) == "" {
		return usageError(e, fs, "--message TEXT is required: the device shows it to the user")
	}
	ctx, cancel := context.WithTimeout(ctx, *sf.timeout)
	defer cancel()
	a, err := newActor(ctx, e, sf, true)
	if err != nil {
		return actionFailure(e, *asJSON, "fail", pos[0], err)
	}
	defer a.close()
	key, err := resolve(ctx, a.store, pos[0])
	if err != nil {
		return actionFailure(e, *asJSON, "fail", pos[0], err)
	}
	rec, err := a.p.Fail(ctx, key, *message)
	if err != nil {
		return actionFailure(e, *asJSON, "fail", key, err)
	}
	v := newActionView("fail", key, rec)
	switch rec.State {
	case progress.StateFailed:
		v.Done, v.Next = true, "nothing: the device was told and starts a new process by itself"
		return v.report(e, *asJSON, exitOK)
	case progress.StateClaimedElsewhere:
		v.Error = "setFailure needs the claim, and another adapter instance holds it: " + rec.LastError
		return v.report(e, *asJSON, exitProblem)
	}
	v.Error = "setFailure did not go through: " + rec.LastError
	v.Next = "a task tries again (the sweep after it); the record stays FAILING until the device was told: certprov status " + rec.ProcessID
	return v.report(e, *asJSON, exitUnreachable)
}
