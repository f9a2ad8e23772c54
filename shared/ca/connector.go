package ca

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// Issuer is a CA connection.
type Issuer interface {
	// Issue requests a certificate; errors are *Error with a kind. A retry
	// with the same RequestID never yields a second certificate.
	Issue(ctx context.Context, req Request) (*Issued, error)
	// Roots are the CA certificates an issued leaf must chain to.
	Roots(ctx context.Context) ([]*x509.Certificate, error)
}

// Challenger is the optional capability of an Issuer whose CSR carries a
// challenge password (SCEP): the pipeline asks for the password at claim
// time, before signData, and puts it into the CSR the device signs. The
// pipeline checks for it with a type assertion. A password of "" means none.
type Challenger interface {
	Challenge(ctx context.Context, processKey string) (password string, expires time.Time, err error)
}

// Deps is what a connector may use besides its settings.
type Deps struct {
	// Secrets reads a secret by the name of the environment variable that
	// holds it (see Secret).
	Secrets func(envName string) (string, error)
}

// Connector is a connector type as its package registers it.
type Connector struct {
	// New checks settings (the "settings" object of a caConnections entry,
	// decoded with strictjson), resolves the secrets they name and makes
	// the connection. It does not contact the CA.
	New func(ctx context.Context, settings json.RawMessage, deps Deps) (Issuer, error)
	// NeedsChallenge reports, from the settings alone, whether a connection
	// puts a challenge password into the CSR: its Issuer is then a
	// Challenger, ClaimProcess builds it and records are sealed. Settings it
	// cannot read count as needing one, so that building them says what is
	// wrong. Nil means never.
	NeedsChallenge func(settings json.RawMessage) bool
}

// Adapt turns a connector package's own constructor, which returns its
// concrete type and takes the secrets function, into a Connector.New. A
// failed construction returns a nil Issuer, not a nil pointer in one.
func Adapt[T Issuer](newFn func(ctx context.Context, settings json.RawMessage, secrets func(envName string) (string, error)) (T, error)) func(context.Context, json.RawMessage, Deps) (Issuer, error) {
	return func(ctx context.Context, settings json.RawMessage, deps Deps) (Issuer, error) {
		c, err := newFn(ctx, settings, deps.Secrets)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}

var (
	registryMu sync.RWMutex
	registry   = map[string]Connector{}
)

// Register makes a connector type known under typ, the "type" of a
// caConnections entry. Each connector package calls it from init, so what a
// binary links is what it can build. It panics on an empty type, a missing
// New or a type registered twice: those are programming errors.
func Register(typ string, c Connector) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if typ == "" || c.New == nil {
		panic(fmt.Sprintf("ca.Register(%q): a type and New are required", typ))
	}
	if _, dup := registry[typ]; dup {
		panic(fmt.Sprintf("ca.Register(%q): registered twice", typ))
	}
	registry[typ] = c
}

// Types lists the registered connector types, sorted.
func Types() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	return slices.Sorted(maps.Keys(registry))
}

func lookup(typ string) (Connector, error) {
	registryMu.RLock()
	c, ok := registry[typ]
	registryMu.RUnlock()
	if !ok {
		return Connector{}, fmt.Errorf("unknown CA connector type %q (registered: %s)", typ, strings.Join(Types(), ", "))
	}
	return c, nil
}

// New builds a connection of the registered type typ from its settings.
func New(ctx context.Context, typ string, settings json.RawMessage, deps Deps) (Issuer, error) {
	c, err := lookup(typ)
	if err != nil {
		return nil, err
	}
	return c.New(ctx, settings, deps)
}

// NeedsChallenge reports whether a connection of type typ with these
// settings puts a challenge password into the CSR (see Connector).
func NeedsChallenge(typ string, settings json.RawMessage) (bool, error) {
	c, err := lookup(typ)
	if err != nil {
		return false, err
	}
	return c.NeedsChallenge != nil && c.NeedsChallenge(settings), nil
}
