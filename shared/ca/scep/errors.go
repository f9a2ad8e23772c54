package scep

import (
	"errors"
	"fmt"

	"github.com/smallstep/scep"

	"github.com/chromeos-certprov/adapter/shared/ca"
)

// What the person at the device is told, by cause. The CA's own words go to
// the log (ca.Error.Reason), never to the device.
const (
	// MsgChallengeRejected: FAILURE badRequest. SCEP CAs answer badRequest to a
	// wrong, expired or already used challenge password (and to other policy
	// refusals they do not detail).
	MsgChallengeRejected = "The certificate authority rejected the enrollment challenge. Try again later or contact your administrator."
	// MsgBadAlg: FAILURE badAlg.
	MsgBadAlg = "The certificate authority does not accept this device's key type or the request's algorithms. Contact your administrator."
	// MsgBadMessageCheck: FAILURE badMessageCheck.
	MsgBadMessageCheck = "The certificate authority could not verify the enrollment request. Contact your administrator."
	// MsgBadTime: FAILURE badTime.
	MsgBadTime = "The certificate authority rejected the request because of a clock difference. Try again later or contact your administrator."
	// MsgBadCertID: FAILURE badCertID.
	MsgBadCertID = "The certificate authority could not find this enrollment request. Try again or contact your administrator."
	// MsgRefused: FAILURE with a failInfo outside RFC 8894.
	MsgRefused = "The certificate authority refused the certificate request. Contact your administrator."
	// MsgCAIdentity: the CA does not match the pinned caFingerprint.
	MsgCAIdentity = "The certificate authority's identity does not match the adapter's configuration. Contact your administrator."
	// MsgMisconfigured: the SCEP URL answers 4xx or not like a SCEP CA, the
	// CA offers no usable encryption certificate, or the request is malformed.
	MsgMisconfigured = "The adapter's connection to the certificate authority is misconfigured. Contact your administrator."
	// MsgWrongCertificate: the CA answered SUCCESS with a certificate for another key.
	MsgWrongCertificate = "The certificate authority returned a certificate that does not match this device's key. Contact your administrator."
	// MsgUnavailable: transport failures, 5xx, timeouts (retried; shown only
	// if the retries run out).
	MsgUnavailable = "The certificate authority is not reachable right now. Try again later."
	// MsgChallengeUnavailable: NDES's admin page cannot be read or parsed, or
	// refuses the adapter's account.
	MsgChallengeUnavailable = "The adapter could not get an enrollment challenge from the certificate authority. Contact your administrator."
	// MsgChallengeCacheFull: NDES's password cache is full (retried).
	MsgChallengeCacheFull = "The certificate authority has handed out too many enrollment challenges. Try again later."
)

// failInfoName names a failInfo without scep.FailInfo.String, which panics
// on values outside RFC 8894.
func failInfoName(fi scep.FailInfo) string {
	switch fi {
	case scep.BadAlg:
		return "badAlg"
	case scep.BadMessageCheck:
		return "badMessageCheck"
	case scep.BadRequest:
		return "badRequest"
	case scep.BadTime:
		return "badTime"
	case scep.BadCertID:
		return "badCertID"
	}
	return fmt.Sprintf("unknown failInfo %q", string(fi))
}

// failureError is a CertRep FAILURE for the device.
func failureError(fi scep.FailInfo, text string) *ca.Error {
	msg := MsgRefused
	switch fi {
	case scep.BadAlg:
		msg = MsgBadAlg
	case scep.BadMessageCheck:
		msg = MsgBadMessageCheck
	case scep.BadRequest:
		msg = MsgChallengeRejected
	case scep.BadTime:
		msg = MsgBadTime
	case scep.BadCertID:
		msg = MsgBadCertID
	}
	reason := "SCEP pkiStatus FAILURE, failInfo " + failInfoName(fi)
	if text != "" {
		reason += ": " + text
	}
	return &ca.Error{Kind: ca.Permanent, UserMessage: msg, Reason: reason}
}

func transientError(reason string, err error) *ca.Error {
	return &ca.Error{Kind: ca.Transient, UserMessage: MsgUnavailable, Reason: reason, Err: err}
}

func configError(reason string, err error) *ca.Error {
	return &ca.Error{Kind: ca.Permanent, UserMessage: MsgMisconfigured, Reason: reason, Err: err}
}

func isTransient(err error) bool { return ca.KindOf(err) == ca.Transient }

// httpStatusError is a non-200 answer.
type httpStatusError struct {
	op     string
	status int
	body   string
}

func (e *httpStatusError) Error() string {
	if e.body == "" {
		return fmt.Sprintf("%s: HTTP %d", e.op, e.status)
	}
	return fmt.Sprintf("%s: HTTP %d: %s", e.op, e.status, e.body)
}

// statusError classifies an HTTP status: 5xx, 408, 425 and 429 are worth a
// retry; any other status means the URL does not lead to a SCEP CA.
func statusError(op string, status int, body string) *ca.Error {
	e := &httpStatusError{op: op, status: status, body: body}
	if status >= 500 || status == 408 || status == 425 || status == 429 {
		return transientError("the SCEP CA answered an error status", e)
	}
	return configError("the SCEP URL answered an unexpected status", e)
}

func asStatus(err error) (*httpStatusError, bool) {
	var e *httpStatusError
	ok := errors.As(err, &e)
	return e, ok
}
