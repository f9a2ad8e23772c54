package adapter

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"

	gfirestore "cloud.google.com/go/firestore"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/config"
	"github.com/chromeos-certprov/adapter/shared/cpapi"
	"github.com/chromeos-certprov/adapter/shared/inventory"
	"github.com/chromeos-certprov/adapter/shared/logging"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/seal"
	"github.com/chromeos-certprov/adapter/shared/store/firestore"
	"github.com/chromeos-certprov/adapter/shared/tasks/cloudtasks"
)

// ConnectorTypes lists the CA connector types this adapter builds, sorted:
// those registered by the connector packages connectors.go imports.
func ConnectorTypes() []string { return ca.Types() }

// EnvSecrets reads secrets from environment variables (Cloud Functions mounts
// Secret Manager secrets there).
func EnvSecrets(lookup config.Lookup) func(string) (string, error) {
	return func(name string) (string, error) {
		v, ok := lookup(name)
		if !ok || v == "" {
			return "", fmt.Errorf("secret environment variable %s is not set", name)
		}
		return v, nil
	}
}

// BuildCAs builds every configured CA connection, reporting every problem at once.
func BuildCAs(ctx context.Context, a config.Adapter, secrets func(string) (string, error)) (map[string]pipeline.Issuer, error) {
	return buildCAs(ctx, a, secrets, "")
}

// builds reports whether function fn builds connection c. IssueCertificate
// talks to the CA and builds them all; ClaimProcess builds only those that
// need a challenge at claim time (ca.NeedsChallenge: SCEP with a challenge),
// because it asks for the challenge before signData; PollSignature builds
// none. The others get a placeholder that knows the reference exists, so no
// function needs a secret it does not use. An unknown type is an error.
func builds(fn string, c config.CAConnection) (bool, error) {
	needsChallenge, err := ca.NeedsChallenge(c.Type, c.Settings)
	switch fn {
	case "", "IssueCertificate":
		return true, err
	case "ClaimProcess":
		return needsChallenge, err
	}
	return false, err
}

// elsewhere stands for a CA connection built by another function.
type elsewhere struct{ ref, typ, fn string }

func (e elsewhere) err() error {
	return &ca.Error{Kind: ca.Permanent, Reason: fmt.Sprintf("CA connection %q (%s) is not built in %s", e.ref, e.typ, e.fn),
		UserMessage: "The adapter is misconfigured. Contact your administrator."}
}

func (e elsewhere) Issue(context.Context, ca.Request) (*ca.Issued, error) { return nil, e.err() }

func (e elsewhere) Roots(context.Context) ([]*x509.Certificate, error) { return nil, e.err() }

func buildCAs(ctx context.Context, a config.Adapter, secrets func(string) (string, error), fn string) (map[string]pipeline.Issuer, error) {
	cas := map[string]pipeline.Issuer{}
	var errs []error
	for _, ref := range sortedRefs(a) {
		c := a.CAConnections[ref]
		build, err := builds(fn, c)
		if err != nil {
			errs = append(errs, fmt.Errorf("caConnections[%q]: %w", ref, err))
			continue
		}
		if !build {
			cas[ref] = elsewhere{ref: ref, typ: c.Type, fn: "this function"}
			continue
		}
		issuer, err := ca.New(ctx, c.Type, c.Settings, ca.Deps{Secrets: secrets})
		if err != nil {
			errs = append(errs, fmt.Errorf("caConnections[%q] (%s): %w", ref, c.Type, err))
			continue
		}
		cas[ref] = issuer
	}
	return cas, errors.Join(errs...)
}

// FromEnv builds the production pipeline from the environment: the API client,
// Firestore, Cloud Tasks and the CA connections.
func FromEnv(ctx context.Context, lookup config.Lookup, fn string) (*pipeline.Pipeline, *slog.Logger, error) {
	cfg, err := config.Load(lookup, ConnectorTypes())
	if err != nil {
		return nil, nil, err
	}
	log := logging.New(os.Stdout, cfg.LogLevel, fn)
	api, err := cpapi.New(ctx, apiOptions(cfg))
	if err != nil {
		return nil, nil, err
	}
	fs, err := gfirestore.NewClientWithDatabase(ctx, cfg.Project, cfg.FirestoreDatabase)
	if err != nil {
		return nil, nil, fmt.Errorf("firestore client: %w", err)
	}
	tcfg := cloudtasks.Config{PollQueue: cfg.PollQueue, IssueQueue: cfg.IssueQueue, PollURL: cfg.PollURL, IssueURL: cfg.IssueURL, ClaimQueue: cfg.ClaimQueue, ServiceAccount: cfg.TasksServiceAccount}
	var enq *cloudtasks.Enqueuer
	if cfg.TasksEmulator != "" {
		opts, err := cloudtasks.Dial(ctx, cfg.TasksEmulator)
		if err != nil {
			return nil, nil, err
		}
		enq, err = cloudtasks.New(ctx, tcfg, opts...)
		if err != nil {
			return nil, nil, err
		}
	} else if enq, err = cloudtasks.New(ctx, tcfg); err != nil {
		return nil, nil, err
	}
	cas, err := buildCAs(ctx, cfg.Adapter, EnvSecrets(lookup), fn)
	if err != nil {
		return nil, nil, fmt.Errorf("configuration:\n%w", err)
	}
	sealer, err := Sealer(cfg.SealingKey, cfg.Adapter)
	if err != nil {
		return nil, nil, err
	}
	p := &pipeline.Pipeline{
		Sealer:           sealer,
		Store:            firestore.New(fs, cfg.FirestoreCollection),
		Tasks:            enq,
		API:              api,
		CAs:              cas,
		Profiles:         cfg.Adapter.Profiles,
		Directory:        directoryClient(cfg),
		Inventory:        inventory.NewFirestore(fs, cfg.InventoryCollection),
		InventoryGrace:   cfg.InventoryGrace,
		Allowed:          cfg.Adapter.Allowed,
		CallerID:         cfg.CallerInstanceID,
		Project:          cfg.Project,
		Schedule:         cfg.Poll,
		TTL:              cfg.RecordTTL,
		MaxAttempts:      cfg.TasksMaxAttempts,
		PaceClaims:       cfg.ClaimQueue != "",
		SweepAfter:       cfg.SweepAfter,
		SweepBudget:      cfg.SweepBudget,
		Lease:            cfg.Lease,
		CATimeout:        cfg.CATimeout,
		RefuseIncomplete: cfg.Adapter.RefuseIncomplete(),
		Log:              log,
	}
	log.Info("adapter configured", slog.String("caller_instance_id", cfg.CallerInstanceID),
		slog.Int("ca_connections", len(cas)), slog.Int("profiles", len(cfg.Adapter.Profiles)),
		slog.Bool("emulated_api", cfg.Emulated))
	return p, log, nil
}

// apiOptions keeps an endpoint override and the emulator apart: an override
// (Private Service Connect, a regional endpoint) keeps Application Default
// Credentials and the scope; only CERTPROV_API_EMULATOR_HOST drops them.
func apiOptions(cfg *config.Config) cpapi.Options {
	if cfg.Emulated {
		return cpapi.Options{EmulatorHost: cfg.APIEmulatorHost}
	}
	if cfg.APIEndpoint == config.DefaultAPIEndpoint {
		return cpapi.Options{}
	}
	return cpapi.Options{Endpoint: cfg.APIEndpoint}
}

// Lazy builds the pipeline from the environment on first use, once per
// instance (init() only registers functions: every function's package is
// linked into every deployment). A failed build is retried on the next call.
func Lazy(fn string) func(context.Context) (*pipeline.Pipeline, *slog.Logger, error) {
	var mu sync.Mutex
	var p *pipeline.Pipeline
	var log *slog.Logger
	return func(ctx context.Context) (*pipeline.Pipeline, *slog.Logger, error) {
		mu.Lock()
		defer mu.Unlock()
		if p != nil {
			return p, log, nil
		}
		var err error
		p, log, err = FromEnv(context.WithoutCancel(ctx), os.LookupEnv, fn)
		if err != nil {
			logging.New(os.Stdout, slog.LevelInfo, fn).Error("adapter not configured", slog.String("reason", err.Error()))
			p = nil
			return nil, nil, err
		}
		return p, log, nil
	}
}

// Sealer builds the sealer of RECORD_SEALING_KEY (a secret: 32 random bytes,
// base64). The key is required, in every function, when a CA connection puts a
// challenge password into the CSR, so that the password never reaches
// Firestore in clear.
func Sealer(key string, a config.Adapter) (*seal.Sealer, error) {
	if key == "" {
		for _, ref := range sortedRefs(a) {
			if hasChallenge(a.CAConnections[ref]) {
				return nil, fmt.Errorf("configuration: RECORD_SEALING_KEY is required because caConnections[%q] puts a challenge password into the CSR", ref)
			}
		}
		return nil, nil
	}
	s, err := seal.New(key)
	if err != nil {
		return nil, fmt.Errorf("configuration: RECORD_SEALING_KEY: %w", err)
	}
	return s, nil
}

// hasChallenge reports whether a connection's CSRs carry a challenge password.
func hasChallenge(c config.CAConnection) bool {
	needs, _ := ca.NeedsChallenge(c.Type, c.Settings)
	return needs
}

func sortedRefs(a config.Adapter) []string {
	refs := slices.Sorted(maps.Keys(a.CAConnections))
	return refs
}
