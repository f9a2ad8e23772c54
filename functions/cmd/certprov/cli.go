package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/chromeos-certprov/adapter/shared/config"
)

// Exit codes a script can rely on.
const (
	exitOK          = 0 // done; nothing wrong found
	exitProblem     = 1 // a problem was found, or what was asked for does not exist
	exitUsage       = 2 // the command line is wrong
	exitUnreachable = 3 // the store or a service could not be reached
)

// env is what a command reads besides its arguments: where it writes and the
// environment (os.LookupEnv, or a map in tests).
type env struct {
	stdout, stderr io.Writer
	lookup         config.Lookup
}

// command is one subcommand.
type command struct {
	name, summary string
	run           func(ctx context.Context, e env, args []string) int
}

func commands() []command {
	return []command{
		{"config check", "validate an adapter config as the functions do at start", configCheck},
		{"render", "show what a profile would ask a device to sign", render},
		{"status", "show one process's progress record", status},
		{"find", "find the processes of a device or a user", find},
		{"timeline", "show one process's transitions and its log filter", timeline},
		{"list", "list processes with counts by state and failure", list},
		{"retry", "re-drive a stuck process as the sweep does", retry},
		{"fail", "fail a process on purpose (setFailure, then FAILED)", fail},
		{"certs list", "list inventoried certificates (by device, user, expiry, CA)", certsList},
		{"certs show", "show one inventoried certificate by serial", certsShow},
		{"certs revoke", "revoke certificates (CAS) or say what to revoke in the CA", certsRevoke},
	}
}

const usageText = `certprov: operate the ChromeOS certificate provisioning adapter.

Usage: certprov COMMAND [flags] [args]   (certprov COMMAND --help for its flags)

Commands:
%s
Every command takes --json. Exit codes: 0 ok, 1 a problem was found, the
process was not found or the action was refused, 2 usage error, 3 the store
or a service could not be reached.

Examples:
  certprov config check --config adapter-config.json
  certprov config check --tfvars terraform/terraform.tfvars.example
  certprov render --config adapter-config.json --profile device_profile --device-id D1 --serial 5CD1
  certprov status 3f0c8f7e-...            # FIRESTORE_EMULATOR_HOST for the emulator
  certprov find --serial 5CD1234XYZ --since 7d
  certprov list --state FAILED --since 24h
  certprov retry 3f0c8f7e-...              # the functions' TASKS_* variables
  certprov fail 3f0c8f7e-... --message "Restart the device to try again."
  certprov certs list --expiring 30d
  certprov certs revoke 1A2B3C4D --reason keyCompromise
`

func usage(w io.Writer) {
	var b strings.Builder
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-13s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, usageText, b.String())
}

// run runs the command named by args and returns its exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, lookup config.Lookup) int {
	e := env{stdout: stdout, stderr: stderr, lookup: lookup}
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		return exitOK
	}
	for _, c := range commands() {
		words := strings.Fields(c.name)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == c.name {
			return c.run(ctx, e, args[len(words):])
		}
	}
	fmt.Fprintf(stderr, "certprov: unknown command %q\n\n", strings.Join(args, " "))
	usage(stderr)
	return exitUsage
}

// flags returns a FlagSet for a command, with --json, whose usage shows
// synopsis and examples.
func flags(e env, name, synopsis, examples string) (*flag.FlagSet, *bool) {
	fs := flag.NewFlagSet("certprov "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	asJSON := fs.Bool("json", false, "print JSON instead of text")
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage: certprov %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
		fmt.Fprintf(out, "\nExamples:\n%s", examples)
	}
	return fs, asJSON
}

// parse parses args, flags and positional arguments in any order, and
// returns the positional ones; ok false means return code (--help: 0 with the
// usage on stdout; bad flags: 2).
func parse(e env, fs *flag.FlagSet, args []string) (positional []string, code int, ok bool) {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(e.stdout)
			fs.Usage()
			return nil, exitOK, false
		}
	}
	for {
		if err := fs.Parse(args); err != nil {
			return nil, exitUsage, false
		}
		if fs.NArg() == 0 {
			return positional, 0, true
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// usageError reports a usage problem and returns exitUsage.
func usageError(e env, fs *flag.FlagSet, format string, args ...any) int {
	fmt.Fprintf(e.stderr, "%s: %s\n", fs.Name(), fmt.Sprintf(format, args...))
	fmt.Fprintf(e.stderr, "Run '%s --help' for usage.\n", fs.Name())
	return exitUsage
}

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// problems flattens a joined error into one entry per problem (an entry may
// span lines when one problem has parts).
func problems(err error) []string {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, problems(e)...)
		}
		return out
	}
	return []string{strings.TrimSpace(err.Error())}
}

// indent indents the continuation lines of s.
func indent(s, by string) string { return strings.ReplaceAll(s, "\n", "\n"+by) }
