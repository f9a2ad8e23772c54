package cas

import (
	"context"

	"cloud.google.com/go/security/privateca/apiv1/privatecapb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/chromeos-certprov/adapter/shared/ca"
)

// casReasons maps RFC 5280 reasons to the service's RevocationReason.
var casReasons = map[ca.Reason]privatecapb.RevocationReason{
	ca.ReasonUnspecified:          privatecapb.RevocationReason_REVOCATION_REASON_UNSPECIFIED,
	ca.ReasonKeyCompromise:        privatecapb.RevocationReason_KEY_COMPROMISE,
	ca.ReasonCACompromise:         privatecapb.RevocationReason_CERTIFICATE_AUTHORITY_COMPROMISE,
	ca.ReasonAffiliationChanged:   privatecapb.RevocationReason_AFFILIATION_CHANGED,
	ca.ReasonSuperseded:           privatecapb.RevocationReason_SUPERSEDED,
	ca.ReasonCessationOfOperation: privatecapb.RevocationReason_CESSATION_OF_OPERATION,
	ca.ReasonCertificateHold:      privatecapb.RevocationReason_CERTIFICATE_HOLD,
	ca.ReasonPrivilegeWithdrawn:   privatecapb.RevocationReason_PRIVILEGE_WITHDRAWN,
}

// Revoke revokes the certificate the connector issued under r.RequestID
// (named CertificateID(r.RequestID) in the pool) with RevokeCertificate and
// the reason. The caller needs privateca.certificates.update on the pool
// (terraform/cas.tf's revoker role). A certificate already revoked
// (FailedPrecondition, with revocation details on GetCertificate) is not an
// error; neither is a retry within the request_id window. A certificate that
// the service does not store (DevOps tier) is NotFound: Permanent.
func (c *Connector) Revoke(ctx context.Context, r ca.Revocation) (err error) {
	defer ca.Recover(ctx, "cas: Revoke", &err)
	if r.RequestID == "" {
		return &ca.Error{Kind: ca.Permanent, UserMessage: msgInternal, Reason: "no request id: the certificate's name in the pool is unknown"}
	}
	name := c.pool + "/certificates/" + CertificateID(r.RequestID)
	reason, ok := casReasons[r.Reason]
	if !ok {
		reason = privatecapb.RevocationReason_REVOCATION_REASON_UNSPECIFIED
	}
	cert, err := c.client.RevokeCertificate(ctx, &privatecapb.RevokeCertificateRequest{
		Name: name, Reason: reason, RequestId: RequestUUID(c.pool, "revoke\n"+r.RequestID),
	}, noRetry)
	if status.Code(err) == codes.FailedPrecondition {
		// Already revoked? The service says so with FailedPrecondition;
		// the certificate's revocation details tell it from other refusals.
		if got, gerr := c.client.GetCertificate(ctx, &privatecapb.GetCertificateRequest{Name: name}, noRetry); gerr == nil && got.GetRevocationDetails() != nil {
			return nil
		}
	}
	if err != nil {
		return classify("revoke certificate", err)
	}
	if r.Serial != nil && cert.GetPemCertificate() != "" {
		if issued, perr := parseIssued(cert); perr == nil && issued.Leaf.SerialNumber.Cmp(r.Serial) != 0 {
			return &ca.Error{Kind: ca.Permanent, UserMessage: msgInternal,
				Reason: "CAS revoked " + name + " whose serial is not the one asked for (certificate id collision?)"}
		}
	}
	return nil
}
