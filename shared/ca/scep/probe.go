package scep

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/chromeos-certprov/adapter/shared/ca"
)

// Probe asks the CA what an enrollment will ask it, without enrolling, and
// says in a line per step what it answered: GetCACaps and GetCACert (always
// fresh, not the cached answer), and for an "ndes" challenge the NDES admin
// page, which must hand out a one-time password. That password is not used:
// NDES lets it expire unused. The operator CLI runs it (config check
// --connect); the functions never do.
func (c *Connector) Probe(ctx context.Context) (_ []string, err error) {
	defer ca.Recover(ctx, "scep: Probe", &err)
	info, err := c.fetchCAInfo(ctx)
	if err != nil {
		return nil, err
	}
	caps := slices.Sorted(maps.Keys(info.caps))
	if len(caps) == 0 {
		caps = []string{"(none: POST, AES and SHA-256 not offered)"}
	}
	subjects := make([]string, 0, len(info.all))
	for _, cert := range info.all {
		subjects = append(subjects, cert.Subject.String())
	}
	lines := []string{
		"GetCACaps: " + strings.Join(caps, " "),
		fmt.Sprintf("GetCACert: %d certificate(s): %s; requests encrypted to %s, %s with %s", len(info.all), strings.Join(subjects, "; "), info.recipient.Subject, info.cipher().name, info.digest()),
	}
	if c.cfg.challenge == ChallengeNDES {
		if _, err := c.fetchNDESChallenge(ctx); err != nil {
			return lines, err
		}
		lines = append(lines, "NDES admin page: issued a one-time challenge password (unused; NDES expires it)")
	}
	return lines, nil
}
