package cas

import (
	"context"
	"fmt"
	"strings"

	"cloud.google.com/go/security/privateca/apiv1/privatecapb"

	"github.com/chromeos-certprov/adapter/shared/ca"
)

// Probe asks the service what an issuance will need, without issuing, and
// says in a line per step what it answered: the pool's CA certificates
// (FetchCaCerts, fresh), and the configured certificate template
// (GetCertificateTemplate), which must exist in the pool's location. The
// operator CLI runs it (config check --connect); the functions never do.
func (c *Connector) Probe(ctx context.Context) (_ []string, err error) {
	defer ca.Recover(ctx, "cas: Probe", &err)
	roots, err := c.fetchRoots(ctx)
	if err != nil {
		return nil, err
	}
	subjects := make([]string, 0, len(roots))
	for _, r := range roots {
		subjects = append(subjects, r.Subject.String())
	}
	lines := []string{fmt.Sprintf("pool %s: %d root(s): %s", c.pool, len(roots), strings.Join(subjects, "; "))}
	if c.template == "" {
		return append(lines, "certificate template: none (the pool's issuance policy applies)"), nil
	}
	if _, err := c.client.GetCertificateTemplate(ctx, &privatecapb.GetCertificateTemplateRequest{Name: c.template}, noRetry); err != nil {
		return lines, classify("get the certificate template "+c.template, err)
	}
	return append(lines, "certificate template "+c.template+": found"), nil
}
