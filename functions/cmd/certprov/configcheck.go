package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/chromeos-certprov/adapter/shared/adapter"
	"github.com/chromeos-certprov/adapter/shared/config"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
)

// configReport is the result of "config check" (its --json output).
type configReport struct {
	Source           string             `json:"source"`
	OK               bool               `json:"ok"`
	Problems         []string           `json:"problems"`
	Notes            []string           `json:"notes,omitempty"`
	AllowedCustomers []string           `json:"allowedCustomers"`
	CAConnections    []connectionReport `json:"caConnections"`
	Profiles         []string           `json:"profiles"`
}

type connectionReport struct {
	Ref  string `json:"ref"`
	Type string `json:"type"`
	// Built: the connector accepted its settings.
	Built bool `json:"built"`
	// Reachable and Answer: with --connect, whether it answered and what.
	Reachable *bool  `json:"reachable,omitempty"`
	Answer    string `json:"answer,omitempty"`
	// Checks are the steps that answered, one line each (with an error,
	// those before it).
	Checks []string `json:"checks,omitempty"`
}

// placeholderSecret stands for a secret that is not set in this shell.
const placeholderSecret = "certprov-config-check-placeholder"

func configCheck(ctx context.Context, e env, args []string) int {
	fs, asJSON := flags(e, "config check", "(--config FILE | --tfvars FILE) [--connect] [--json]",
		`  certprov config check --config adapter-config.json
  certprov config check --tfvars terraform/terraform.tfvars.example --json
  SCEP_CHALLENGE=... certprov config check --config adapter-config.json --connect
`)
	file := fs.String("config", "", "adapter config JSON file (as CERTPROV_CONFIG_FILE)")
	tfvars := fs.String("tfvars", "", "terraform tfvars file whose adapter_config to check")
	connect := fs.Bool("connect", false, "also ask each CA connection what an enrollment will ask it (SCEP GetCACaps and GetCACert, the NDES admin page, EST /cacerts, the CAS pool and certificate template)")
	timeout := fs.Duration("timeout", 20*time.Second, "deadline of each connection's check (--connect)")
	pos, code, ok := parse(e, fs, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return usageError(e, fs, "unexpected argument %q", pos[0])
	}
	data, source, secretEnv, err := readAdapterConfig(*file, *tfvars)
	if err != nil {
		if *file == "" && *tfvars == "" || *file != "" && *tfvars != "" {
			return usageError(e, fs, "%v", err)
		}
		r := configReport{Source: source, Problems: problems(err)}
		if c := r.print(e, *asJSON); c != exitOK {
			return c
		}
		return exitProblem
	}
	r, issuers := checkAdapter(ctx, e, data, source, secretEnv)
	code = exitOK
	if !r.OK {
		code = exitProblem
	}
	if *connect && issuers != nil {
		if !connectAll(ctx, &r, issuers, *timeout) && code == exitOK {
			code = exitUnreachable
		}
	}
	if c := r.print(e, *asJSON); c != exitOK {
		return c
	}
	return code
}

// checkAdapter validates the config as the functions do at start:
// config.ParseAdapter, every CA connection built as IssueCertificate builds
// it, and the sealing key a SCEP challenge needs. Secrets come from this
// shell's environment; one that is not set is checked with a placeholder and
// noted.
//
// secretEnv, from a tfvars file, maps each secret terraform mounts to the
// functions that get it (nil: not checked).
func checkAdapter(ctx context.Context, e env, data []byte, source string, secretEnv map[string][]string) (configReport, map[string]pipeline.Issuer) {
	r := configReport{Source: source, Problems: []string{}}
	a, err := config.ParseAdapter(data, adapter.ConnectorTypes())
	r.Problems = append(r.Problems, problems(err)...)
	r.AllowedCustomers = a.AllowedCustomers
	for ref := range a.Profiles {
		r.Profiles = append(r.Profiles, ref)
	}
	slices.Sort(r.Profiles)
	if err != nil && a.CAConnections == nil && a.Profiles == nil && a.AllowedCustomers == nil {
		return r, nil // it did not decode
	}
	// Each connection is built alone, to know which secrets it reads.
	var missing []string
	reads := map[string][]string{} // by connection
	issuers := map[string]pipeline.Issuer{}
	for _, ref := range sortedKeys(a.CAConnections) {
		secrets := func(name string) (string, error) {
			if !slices.Contains(reads[ref], name) {
				reads[ref] = append(reads[ref], name)
			}
			if v, ok := e.lookup(name); ok && v != "" {
				return v, nil
			}
			if !slices.Contains(missing, name) {
				missing = append(missing, name)
			}
			return placeholderSecret, nil
		}
		one := config.Adapter{CAConnections: map[string]config.CAConnection{ref: a.CAConnections[ref]}}
		built, err := adapter.BuildCAsFor(ctx, one, secrets, "")
		r.Problems = append(r.Problems, problems(err)...)
		maps.Copy(issuers, built)
	}
	for _, ref := range sortedKeys(a.CAConnections) {
		_, built := issuers[ref]
		r.CAConnections = append(r.CAConnections, connectionReport{Ref: ref, Type: a.CAConnections[ref].Type, Built: built})
	}
	_, sealErr := adapter.Sealer("", a)
	if secretEnv != nil {
		r.Problems = append(r.Problems, checkSecretEnv(a, reads, sealErr != nil, secretEnv)...)
	}
	for _, name := range missing {
		r.Notes = append(r.Notes, fmt.Sprintf("secret %s is not set in this environment: checked with a placeholder (the functions read it from Secret Manager)", name))
	}
	r.Notes = append(r.Notes, directoryNotes(a)...)
	key, _ := e.lookup("RECORD_SEALING_KEY")
	if _, err := adapter.Sealer(key, a); err != nil {
		if key == "" {
			r.Notes = append(r.Notes, strings.TrimPrefix(err.Error(), "configuration: ")+" (not set in this environment: make sure the deployment sets it)")
		} else {
			r.Problems = append(r.Problems, err.Error())
		}
	}
	r.OK = len(r.Problems) == 0
	return r, issuers
}

// checkSecretEnv checks terraform's secret_env against what the config
// reads: every secret a connection reads is mounted into IssueCertificate,
// and into ClaimProcess where the claim builds it (a SCEP connection with a
// challenge: the claim fetches the challenge); RECORD_SEALING_KEY into all three when a challenge needs it.
func checkSecretEnv(a config.Adapter, reads map[string][]string, sealing bool, secretEnv map[string][]string) []string {
	var out []string
	need := func(name, why string, fns ...string) {
		got, ok := secretEnv[name]
		if !ok {
			out = append(out, fmt.Sprintf("secret_env does not declare %s, which %s reads", name, why))
			return
		}
		for _, fn := range fns {
			if !slices.Contains(got, fn) {
				out = append(out, fmt.Sprintf("secret_env.%s.functions lacks %q: %s reads it there", name, fn, why))
			}
		}
	}
	for _, ref := range sortedKeys(reads) {
		fns := []string{"issue"}
		if adapter.Builds("ClaimProcess", a.CAConnections[ref]) {
			fns = []string{"claim", "issue"}
		}
		for _, name := range reads[ref] {
			need(name, fmt.Sprintf("caConnections[%q]", ref), fns...)
		}
	}
	if sealing {
		need("RECORD_SEALING_KEY", "every function (a SCEP challenge is sealed)", "claim", "poll", "issue")
	}
	return out
}

// prober is a connection that can check more than its CA certificates
// (the SCEP and CAS connectors: GetCACaps and the NDES admin page, the CAS
// certificate template); it returns a line per step.
type prober interface {
	Probe(ctx context.Context) ([]string, error)
}

// connectAll asks each built connection what an enrollment will ask it:
// Probe where the connector has it, else its CA certificates (EST /cacerts,
// the development CA). It reports whether all answered.
func connectAll(ctx context.Context, r *configReport, issuers map[string]pipeline.Issuer, timeout time.Duration) bool {
	all := true
	for i := range r.CAConnections {
		c := &r.CAConnections[i]
		iss, ok := issuers[c.Ref]
		if !ok {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, timeout)
		lines, err := probe(cctx, iss)
		cancel()
		reachable := err == nil
		c.Reachable = &reachable
		c.Checks = lines
		if err != nil {
			all = false
			c.Answer = err.Error()
			continue
		}
		c.Answer = strings.Join(lines, "; ")
	}
	return all
}

func probe(ctx context.Context, iss pipeline.Issuer) ([]string, error) {
	if p, ok := iss.(prober); ok {
		return p.Probe(ctx)
	}
	roots, err := iss.Roots(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(roots))
	for _, root := range roots {
		names = append(names, root.Subject.String())
	}
	return []string{fmt.Sprintf("%d CA certificate(s): %s", len(roots), strings.Join(names, "; "))}, nil
}

func (r configReport) print(e env, asJSON bool) int {
	if asJSON {
		if err := writeJSON(e.stdout, r); err != nil {
			return exitProblem
		}
		return exitOK
	}
	w := e.stdout
	fmt.Fprintf(w, "config: %s\n", r.Source)
	if r.AllowedCustomers != nil || r.CAConnections != nil || r.Profiles != nil {
		fmt.Fprintf(w, "allowed customers: %s\n", strings.Join(r.AllowedCustomers, ", "))
		for _, c := range r.CAConnections {
			state := "ok"
			if !c.Built {
				state = "NOT BUILT"
			}
			line := fmt.Sprintf("CA connection %s (%s): %s", c.Ref, c.Type, state)
			if c.Reachable != nil {
				if *c.Reachable {
					line += "; reachable"
				} else {
					line += "; UNREACHABLE: " + c.Answer
				}
			}
			fmt.Fprintln(w, line)
			for _, check := range c.Checks {
				fmt.Fprintln(w, "  "+check)
			}
		}
		fmt.Fprintf(w, "profiles: %s\n", strings.Join(r.Profiles, ", "))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	if len(r.Problems) == 0 {
		fmt.Fprintln(w, "OK: the functions would start with this config")
		return exitOK
	}
	fmt.Fprintf(w, "%d problem(s):\n", len(r.Problems))
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  - %s\n", indent(p, "    "))
	}
	return exitOK
}

func sortedKeys[V any](m map[string]V) []string {
	keys := slices.Sorted(maps.Keys(m))
	return keys
}
