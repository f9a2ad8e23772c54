// Package config loads the adapter's settings once at start: the deployment's
// endpoints and schedule from environment variables, and the adapter config
// (CA connections, profiles, allowed customers) from JSON. Every problem is
// reported at once, so one failed deploy shows all of them.
//
// Each environment variable is declared once, in env.go: its name, meaning,
// default and bounds, and the Config field it sets. Load decodes them through
// a Lookup (os.LookupEnv in production, a map in tests); the README's
// "Environment variables" table is rendered from the same declarations and a
// test keeps the two equal.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/chromeos-certprov/adapter/shared/profile"
	"github.com/chromeos-certprov/adapter/shared/strictjson"
)

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
	keys := slices.Sorted(maps.Keys(m))
	return keys
}

func adapterJSON(inline, file string) ([]byte, error) {
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
