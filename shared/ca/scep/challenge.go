package scep

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/chromeos-certprov/adapter/shared/ca"
)

// Challenge returns the challengePassword for one process's CSR and when it
// stops being accepted (zero: never). "static" returns the configured
// secret; "ndes" fetches a fresh one-time password from NDES's mscep_admin
// page (HTTP basic authentication) and gives it the configured validity,
// counted from before the fetch; "none" returns "".
//
// Errors are *ca.Error: Transient when NDES is unreachable, answers 5xx or
// its password cache is full; Permanent (MsgChallengeUnavailable) when it
// refuses the account or the page has no password.
func (c *Connector) Challenge(ctx context.Context, _ string) (password string, expires time.Time, err error) {
	defer ca.Recover(ctx, "scep: Challenge", &err)
	switch c.cfg.challenge {
	case ChallengeStatic:
		return c.staticChallenge, time.Time{}, nil
	case ChallengeNDES:
		start := c.now()
		pw, err := c.fetchNDESChallenge(ctx)
		if err != nil {
			return "", time.Time{}, err
		}
		return pw, start.Add(c.cfg.validity), nil
	}
	return "", time.Time{}, nil
}

func challengeError(kind ca.Kind, reason string, err error) *ca.Error {
	msg := MsgChallengeUnavailable
	if kind == ca.Transient {
		msg = MsgUnavailable
	}
	return &ca.Error{Kind: kind, UserMessage: msg, Reason: "NDES challenge: " + reason, Err: err}
}

func (c *Connector) fetchNDESChallenge(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.adminURL.String(), nil)
	if err != nil {
		return "", challengeError(ca.Permanent, "make the request", err)
	}
	req.SetBasicAuth(c.ndesUser, c.ndesPasswd)
	resp, err := c.client.Do(req)
	if err != nil {
		return "", challengeError(ca.Transient, "the admin page is unreachable", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return "", challengeError(ca.Transient, "reading the admin page failed", err)
	}
	switch s := resp.StatusCode; {
	case s == http.StatusOK:
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		return "", challengeError(ca.Permanent, fmt.Sprintf("the admin page refused the account (HTTP %d); check usernameEnv/passwordEnv and that basic authentication is enabled", s), nil)
	case s >= 500 || s == http.StatusRequestTimeout || s == http.StatusTooManyRequests:
		return "", challengeError(ca.Transient, fmt.Sprintf("the admin page answered HTTP %d", s), nil)
	default:
		return "", challengeError(ca.Permanent, fmt.Sprintf("the admin page answered HTTP %d; check adminUrl", s), nil)
	}
	return parseNDESAdminPage(decodePage(body, resp.Header.Get("Content-Type")))
}

var (
	// NDES (English): "The enrollment challenge password is: <B> 5E2A... </B>".
	// The password is printable ASCII without markup (and not starting with
	// ":"), ending at a space, a tag or the page's end: a damaged page
	// yields no password rather than markup or control characters.
	ndesPasswordRE = regexp.MustCompile(`(?is)enrollment\s+challenge\s+password\s+is\s*:?\s*(?:<[^>]*>\s*)*([\x21-\x39\x3b\x3d\x3f-\x7e][\x21-\x3b\x3d\x3f-\x7e]*)(?:[\s<]|$)`)
	// Other languages: the one bold run of 16 hex digits (NDES's password
	// form; the CA thumbprint is 40 hex digits in groups).
	ndesBoldHexRE   = regexp.MustCompile(`(?is)<b>\s*([0-9a-f]{16})\s*</b>`)
	ndesCacheFullRE = regexp.MustCompile(`(?is)password\s+cache\s+is\s+full`)
	ndesNoRightsRE  = regexp.MustCompile(`(?is)do\s+not\s+have\s+sufficient\s+permission`)
)

// parseNDESAdminPage finds the one-time password in the mscep_admin page.
// Errors never quote the page (it may hold a password).
func parseNDESAdminPage(page string) (string, error) {
	if ndesCacheFullRE.MatchString(page) {
		return "", &ca.Error{Kind: ca.Transient, UserMessage: MsgChallengeCacheFull, Reason: "NDES challenge: the password cache is full; passwords expire or must be used first"}
	}
	if ndesNoRightsRE.MatchString(page) {
		return "", challengeError(ca.Permanent, "the account may not enroll with SCEP (NDES: insufficient permission)", nil)
	}
	if m := ndesPasswordRE.FindStringSubmatch(page); m != nil {
		return m[1], nil
	}
	if m := ndesBoldHexRE.FindAllStringSubmatch(page, -1); len(m) == 1 {
		return m[0][1], nil
	}
	return "", challengeError(ca.Permanent, "no enrollment challenge password in the admin page; check adminUrl", errors.New("password not found"))
}

// decodePage returns the page as a string: NDES serves it in UTF-16
// ("charset=Unicode"), other servers in UTF-8.
func decodePage(body []byte, contentType string) string {
	ct := strings.ToLower(contentType)
	switch {
	case bytes.HasPrefix(body, []byte{0xFF, 0xFE}):
		return utf16String(body[2:], binary.LittleEndian)
	case bytes.HasPrefix(body, []byte{0xFE, 0xFF}):
		return utf16String(body[2:], binary.BigEndian)
	case bytes.HasPrefix(body, []byte{0xEF, 0xBB, 0xBF}):
		return string(body[3:])
	case strings.Contains(ct, "utf-16be"):
		return utf16String(body, binary.BigEndian)
	case strings.Contains(ct, "utf-16") || strings.Contains(ct, "charset=unicode"):
		return utf16String(body, binary.LittleEndian)
	case len(body) >= 4 && body[0] != 0 && body[1] == 0 && body[2] != 0 && body[3] == 0:
		return utf16String(body, binary.LittleEndian)
	case len(body) >= 4 && body[0] == 0 && body[1] != 0 && body[2] == 0 && body[3] != 0:
		return utf16String(body, binary.BigEndian)
	}
	return string(body)
}

func utf16String(b []byte, order binary.ByteOrder) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = order.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}
