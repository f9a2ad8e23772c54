package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/chromeos-certprov/adapter/shared/adapter"
	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/config"
	"github.com/chromeos-certprov/adapter/shared/inventory"
	"github.com/chromeos-certprov/adapter/shared/revocation"
	"github.com/chromeos-certprov/adapter/shared/store/firestore"
)

// inventoryStore is what the certs commands need of the inventory.
type inventoryStore interface {
	revocation.Inventory
}

// inventoryFlags are the store flags and the inventory's collection.
type inventoryFlags struct {
	storeFlags
	collection *string
}

func addInventoryFlags(fs *flag.FlagSet, e env) inventoryFlags {
	sf := addStoreFlags(fs, e)
	v, _ := e.lookup("INVENTORY_COLLECTION")
	return inventoryFlags{storeFlags: sf, collection: fs.String("inventory-collection", cmp.Or(v, inventory.DefaultCollection),
		"collection of the certificate inventory (default $INVENTORY_COLLECTION)")}
}

func (f inventoryFlags) open(ctx context.Context) (inventoryStore, func(), error) {
	if *f.project == "" {
		return nil, nil, errNoProject
	}
	c, err := firestore.Open(ctx, *f.project, *f.database)
	if err != nil {
		return nil, nil, err
	}
	return inventory.NewFirestore(c, *f.collection), func() { c.Close() }, nil
}

// parseWithin reads "30d", "36h" (from now).
func parseWithin(s string, now time.Time) (time.Time, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		if _, err := fmt.Sscanf(days, "%d", &n); err == nil && n > 0 && fmt.Sprint(n) == days {
			return now.AddDate(0, 0, n), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(d), nil
	}
	return time.Time{}, fmt.Errorf("--expiring %q: want a duration (30d, 36h)", s)
}

// certsView is the output of certs list and certs show.
type certsView struct {
	Certificates []*inventory.Entry `json:"certificates"`
}

func writeEntries(w io.Writer, es []*inventory.Entry) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERIAL\tNOT AFTER\tSUBJECT\tDEVICE/USER\tCA\tREVOKED")
	for _, e := range es {
		who := e.UserEmail
		if e.DeviceID != "" {
			who = cmp.Or(e.DeviceSerial, e.DeviceID)
			if e.UserEmail != "" {
				who += " / " + e.UserEmail
			}
		}
		rev := "-"
		if r := e.Revocation; r != nil {
			rev = r.Reason + " by " + r.By
			if r.ReportedOnly {
				rev = "REPORTED (revoke in CA): " + rev
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Serial, e.NotAfter.Format(time.RFC3339), shorten(e.Subject, 40), orDash(who), e.CARef, rev)
	}
	tw.Flush()
}

func showEntry(w io.Writer, e *inventory.Entry) {
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "%-15s %s\n", k+":", v)
		}
	}
	line("serial", e.Serial)
	line("issuer", e.Issuer)
	line("subject", e.Subject)
	line("SANs", strings.Join(e.SANs, ", "))
	line("SHA-256", e.Fingerprint)
	line("valid", e.NotBefore.Format(time.RFC3339)+" to "+e.NotAfter.Format(time.RFC3339))
	line("customer", e.Customer)
	line("process", e.ProcessID)
	if e.DeviceID != "" {
		line("device", e.DeviceID+" (serial "+orDash(e.DeviceSerial)+")")
	}
	line("user", e.UserEmail)
	line("profile", e.ProfileRef)
	line("CA connection", e.CARef)
	line("recorded", e.RecordedAt.Format(time.RFC3339))
	line("kept until", e.ExpireAt.Format(time.RFC3339))
	if r := e.Revocation; r != nil {
		what := "revoked"
		if r.ReportedOnly {
			what = "reported for revocation in the CA (" + revocation.Instruction(e) + ")"
		}
		line("revocation", fmt.Sprintf("%s %s: %s, by %s", what, r.At.Format(time.RFC3339), r.Reason, r.By))
	} else {
		line("revocation", "none")
	}
}

func certsList(ctx context.Context, e env, args []string) int {
	fs, asJSON := flags(e, "certs list", "[--device ID | --user EMAIL | --expiring 30d | --ca REF] [--active] [--limit N] [--json]",
		`  certprov certs list --device 0a1b2c3d-...
  certprov certs list --user ada@example.com
  certprov certs list --expiring 30d --ca corp_cas
  certprov certs list --json | jq -r '.certificates[] | [.serial, .notAfter] | @tsv'

The inventoried certificates (every certificate the adapter uploaded, kept
until its not-after plus INVENTORY_GRACE), soonest to expire first. The
filters combine. Exit 0, also when nothing matches.
`)
	inf := addInventoryFlags(fs, e)
	var f inventory.Filter
	fs.StringVar(&f.DeviceID, "device", "", "the device's Directory API id")
	fs.StringVar(&f.UserEmail, "user", "", "the user's primary email")
	fs.StringVar(&f.CARef, "ca", "", "the CA connection reference")
	expiring := fs.String("expiring", "", "only certificates whose not-after is within this time: 30d, 36h")
	fs.BoolVar(&f.Active, "active", false, "leave out revoked (and reported) certificates")
	limit := fs.Int("limit", 1000, "show at most this many")
	pos, code, ok := parse(e, fs, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return usageError(e, fs, "unexpected argument %q", pos[0])
	}
	if *expiring != "" {
		t, err := parseWithin(*expiring, time.Now())
		if err != nil {
			return usageError(e, fs, "%v", err)
		}
		f.ExpiringBefore = t
	}
	if *limit < 1 {
		return usageError(e, fs, "--limit %d: want at least 1", *limit)
	}
	ctx, cancel := context.WithTimeout(ctx, *inf.timeout)
	defer cancel()
	s, closeStore, err := inf.open(ctx)
	if err != nil {
		return storeFailure(e, "certs list", err)
	}
	defer closeStore()
	es, err := s.List(ctx, f, *limit)
	if err != nil {
		return storeFailure(e, "certs list", err)
	}
	if *asJSON {
		if es == nil {
			es = []*inventory.Entry{}
		}
		_ = writeJSON(e.stdout, certsView{Certificates: es})
		return exitOK
	}
	writeEntries(e.stdout, es)
	return exitOK
}

func certsShow(ctx context.Context, e env, args []string) int {
	fs, asJSON := flags(e, "certs show", "SERIAL [--json]", `  certprov certs show 1A2B3C4D
  certprov certs show 1a:2b:3c:4d --json

One inventoried certificate by its serial (hex, colons allowed): issuer,
subject, SANs, SHA-256, validity, who it was issued for, and its
revocation. Every certificate with that serial is shown (one per issuer).
Exit 1 when there is none.
`)
	inf := addInventoryFlags(fs, e)
	pos, code, ok := parse(e, fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(e, fs, "give one serial number")
	}
	if _, err := inventory.ParseSerial(pos[0]); err != nil {
		return usageError(e, fs, "%v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, *inf.timeout)
	defer cancel()
	s, closeStore, err := inf.open(ctx)
	if err != nil {
		return storeFailure(e, "certs show", err)
	}
	defer closeStore()
	es, err := s.List(ctx, inventory.Filter{Serial: pos[0]}, 0)
	if err != nil {
		return storeFailure(e, "certs show", err)
	}
	if len(es) == 0 {
		fmt.Fprintf(e.stderr, "certprov certs show: no inventoried certificate has serial %s\n", pos[0])
		return exitProblem
	}
	if *asJSON {
		_ = writeJSON(e.stdout, certsView{Certificates: es})
		return exitOK
	}
	for i, en := range es {
		if i > 0 {
			fmt.Fprintln(e.stdout)
		}
		showEntry(e.stdout, en)
	}
	return exitOK
}

// revokeView is the output of certs revoke.
type revokeView struct {
	DryRun  bool                `json:"dryRun"`
	Results []revocation.Result `json:"results"`
}

// cliRevokers are the connector types the CLI revokes through: the ones
// whose revocation is held by the CA service itself. The development CA
// keeps its CRL in the process that runs it (the local run): from the CLI
// it is reported like SCEP and EST.
var cliRevokers = map[string]bool{"cas": true}

func certsRevoke(ctx context.Context, e env, args []string) int {
	fs, asJSON := flags(e, "certs revoke", "SERIAL | --device ID | --user EMAIL --reason R [--dry-run] [--by WHO] [--config FILE] [--json]",
		`  certprov certs revoke 1A2B3C4D --reason keyCompromise
  certprov certs revoke --device 0a1b2c3d-... --reason cessationOfOperation --dry-run
  certprov certs revoke --user ada@example.com --reason privilegeWithdrawn

Revokes one certificate (by serial) or every unrevoked one of a device or a
user, and records the revocation in the inventory (when, why, by whom).
Google CAS connections revoke with RevokeCertificate and the reason (the
caller needs privateca.certificates.update on the pool). SCEP and EST have
no revocation in their protocols: the command prints, for each,
  REVOKE IN CA: serial S, issuer I
for the administrator to revoke in their CA, and records it as reported.
Revoking again is a no-op. The CA connections come from the adapter config
(--config, or CERTPROV_CONFIG / CERTPROV_CONFIG_FILE as the functions have them).
Reasons: `+strings.Join(ca.ReasonNames(), ", ")+`.
Exit 0 when all are revoked (now or before), 1 when one could only be
reported or the CA refused, 3 when the CA or the store could not be reached.
`)
	inf := addInventoryFlags(fs, e)
	device := fs.String("device", "", "every certificate of this device (Directory API id)")
	user := fs.String("user", "", "every certificate of this user (primary email)")
	reasonName := fs.String("reason", "", "RFC 5280 reason (required)")
	dryRun := fs.Bool("dry-run", false, "only say what would be revoked")
	who, _ := e.lookup("USER")
	by := fs.String("by", cmp.Or(who, "certprov"), "who revokes, as the inventory records it")
	cfgFile := fs.String("config", "", "adapter config JSON file (default $CERTPROV_CONFIG or $CERTPROV_CONFIG_FILE)")
	pos, code, ok := parse(e, fs, args)
	if !ok {
		return code
	}
	n := len(pos)
	if *device != "" {
		n++
	}
	if *user != "" {
		n++
	}
	if n != 1 || len(pos) > 1 {
		return usageError(e, fs, "give one serial, or one of --device or --user")
	}
	if *reasonName == "" {
		return usageError(e, fs, "--reason is required (%s)", strings.Join(ca.ReasonNames(), ", "))
	}
	reason, err := ca.ParseReason(*reasonName)
	if err != nil {
		return usageError(e, fs, "%v", err)
	}
	f := inventory.Filter{DeviceID: *device, UserEmail: *user}
	if len(pos) == 1 {
		if _, err := inventory.ParseSerial(pos[0]); err != nil {
			return usageError(e, fs, "%v", err)
		}
		f.Serial = pos[0]
	}
	a, err := adapterConfig(e, *cfgFile)
	if err != nil {
		fmt.Fprintf(e.stderr, "certprov certs revoke: %v\n", err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, *inf.timeout)
	defer cancel()
	s, closeStore, err := inf.open(ctx)
	if err != nil {
		return storeFailure(e, "certs revoke", err)
	}
	defer closeStore()
	es, err := s.List(ctx, f, 0)
	if err != nil {
		return storeFailure(e, "certs revoke", err)
	}
	if len(es) == 0 {
		fmt.Fprintln(e.stderr, "certprov certs revoke: no inventoried certificate matches")
		return exitProblem
	}
	cas := map[string]ca.Issuer{}
	for _, en := range es {
		c, ok := a.CAConnections[en.CARef]
		if _, done := cas[en.CARef]; done || !ok || !cliRevokers[c.Type] {
			continue
		}
		issuer, err := ca.New(ctx, c.Type, c.Settings, ca.Deps{Secrets: adapter.EnvSecrets(e.lookup)})
		if err != nil {
			fmt.Fprintf(e.stderr, "certprov certs revoke: CA connection %q: %v\n", en.CARef, err)
			return exitProblem
		}
		cas[en.CARef] = issuer
	}
	r := &revocation.Revoker{Inventory: s, CAs: cas}
	v := revokeView{DryRun: *dryRun}
	code = exitOK
	for _, en := range es {
		res := r.Revoke(ctx, en, reason, *by, *dryRun)
		v.Results = append(v.Results, res)
		switch res.Outcome {
		case revocation.ReportOnly, revocation.WouldReport:
			code = max(code, exitProblem)
		case revocation.Failed:
			c := exitProblem
			if res.Transient {
				c = exitUnreachable
			}
			code = max(code, c)
		}
	}
	if *asJSON {
		_ = writeJSON(e.stdout, v)
		return code
	}
	for _, res := range v.Results {
		fmt.Fprintf(e.stdout, "%s  %s  %s\n", res.Entry.Serial, res.Outcome, res.Entry.Subject)
		if res.Instruction != "" {
			fmt.Fprintln(e.stdout, "  "+res.Instruction)
		}
		if res.Error != "" {
			fmt.Fprintln(e.stdout, "  error: "+res.Error)
		}
	}
	return code
}

// adapterConfig reads the adapter config of file, else of the environment.
func adapterConfig(e env, file string) (config.Adapter, error) {
	var data []byte
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return config.Adapter{}, err
		}
		data = b
	default:
		inline, _ := e.lookup("CERTPROV_CONFIG")
		path, _ := e.lookup("CERTPROV_CONFIG_FILE")
		switch {
		case inline != "":
			data = []byte(inline)
		case path != "":
			b, err := os.ReadFile(path)
			if err != nil {
				return config.Adapter{}, err
			}
			data = b
		default:
			return config.Adapter{}, errors.New("the adapter config is needed to know each CA connection: give --config, or set CERTPROV_CONFIG or CERTPROV_CONFIG_FILE")
		}
	}
	a, err := config.ParseAdapter(data, adapter.ConnectorTypes())
	if err != nil {
		return config.Adapter{}, fmt.Errorf("adapter config: %w", err)
	}
	return a, nil
}
