package scep

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/chromeos-certprov/adapter/shared/strictjson"
)

// Settings of a SCEP CA connection: the "settings" object of a
// caConnections entry of type "scep".
type Settings struct {
	// URL is the SCEP endpoint: ".../certsrv/mscep/mscep.dll" for NDES,
	// ".../scep/<provisioner>" for step-ca.
	URL string `json:"url"`
	// CAFingerprint, when set, pins the CA: the SHA-256 of one CA certificate
	// of GetCACert (hex, colons allowed). Every other certificate used (RA
	// certificates, intermediates) must chain to it, and Roots returns only it.
	CAFingerprint string `json:"caFingerprint,omitempty"`
	// Challenge says where the challengePassword put into the CSR comes from.
	Challenge ChallengeSettings `json:"challenge"`
	// SignerKeyEnv names an environment variable (a secret) holding a PEM RSA
	// private key for the adapter's own SCEP signer. Default: a key generated
	// per instance. A fixed key helps when a CA encrypts a poll's answer to
	// the key of the original request.
	SignerKeyEnv string `json:"signerKeyEnv,omitempty"`
	// Timeout bounds each HTTP request; default 30s.
	Timeout string `json:"timeout,omitempty"`
	// PollInterval is how long to wait before asking again about a PENDING
	// request; default 30s.
	PollInterval string `json:"pollInterval,omitempty"`
}

// ChallengeSettings selects the challenge password source.
type ChallengeSettings struct {
	// Type is "static" (one password from a secret), "ndes" (a one-time
	// password fetched per process from NDES's mscep_admin page) or "none".
	Type string `json:"type"`
	// SecretEnv (static) names the environment variable holding the password.
	SecretEnv string `json:"secretEnv,omitempty"`
	// AdminURL (ndes) is the mscep_admin page, ".../certsrv/mscep_admin/".
	AdminURL string `json:"adminUrl,omitempty"`
	// UsernameEnv and PasswordEnv (ndes) name the environment variables with
	// the account allowed to fetch challenges (HTTP basic authentication).
	UsernameEnv string `json:"usernameEnv,omitempty"`
	PasswordEnv string `json:"passwordEnv,omitempty"`
	// Validity (ndes) is how long a fetched password stays usable; NDES's
	// default is 60m.
	Validity string `json:"validity,omitempty"`
}

// Challenge types.
const (
	ChallengeStatic = "static"
	ChallengeNDES   = "ndes"
	ChallengeNone   = "none"
)

const (
	defaultTimeout      = 30 * time.Second
	defaultPollInterval = 30 * time.Second
	defaultNDESValidity = 60 * time.Minute
)

// config is Settings checked and resolved.
type config struct {
	url          *url.URL
	fingerprint  []byte
	challenge    string
	secretEnv    string
	adminURL     *url.URL
	usernameEnv  string
	passwordEnv  string
	validity     time.Duration
	signerKeyEnv string
	timeout      time.Duration
	pollInterval time.Duration
}

// needsChallenge reports whether a connection puts a challenge password
// into the CSR: every challenge type but "none". Settings that do not decode
// count as needing one; building them says what is wrong.
func needsChallenge(raw json.RawMessage) bool {
	var s Settings
	if err := strictjson.Unmarshal(raw, &s); err != nil {
		return true
	}
	return s.Challenge.Type != ChallengeNone
}

// parseSettings decodes settings strictly and reports every problem at once.
func parseSettings(raw json.RawMessage) (*config, error) {
	var s Settings
	if err := strictjson.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("scep settings: %w", err)
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("scep settings: "+format, args...)) }
	c := &config{signerKeyEnv: s.SignerKeyEnv}

	if s.URL == "" {
		bad("url is required")
	} else if u, err := parseHTTPURL(s.URL); err != nil {
		bad("url: %v", err)
	} else {
		c.url = u
	}
	if s.CAFingerprint != "" {
		fp, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(s.CAFingerprint), ":", ""))
		if err != nil || len(fp) != 32 {
			bad("caFingerprint must be a SHA-256 in hex (64 hex digits, colons allowed)")
		} else {
			c.fingerprint = fp
		}
	}
	c.timeout = duration(&errs, "timeout", s.Timeout, defaultTimeout)
	c.pollInterval = duration(&errs, "pollInterval", s.PollInterval, defaultPollInterval)

	ch := s.Challenge
	c.challenge = ch.Type
	unwanted := func(field, value string) {
		if value != "" {
			bad("challenge.%s is not used with challenge type %q", field, ch.Type)
		}
	}
	switch ch.Type {
	case ChallengeStatic:
		if ch.SecretEnv == "" {
			bad("challenge.secretEnv is required with challenge type %q", ch.Type)
		}
		c.secretEnv = ch.SecretEnv
		unwanted("adminUrl", ch.AdminURL)
		unwanted("usernameEnv", ch.UsernameEnv)
		unwanted("passwordEnv", ch.PasswordEnv)
		unwanted("validity", ch.Validity)
	case ChallengeNDES:
		if ch.AdminURL == "" {
			bad("challenge.adminUrl is required with challenge type %q", ch.Type)
		} else if u, err := parseHTTPURL(ch.AdminURL); err != nil {
			bad("challenge.adminUrl: %v", err)
		} else {
			c.adminURL = u
		}
		if ch.UsernameEnv == "" {
			bad("challenge.usernameEnv is required with challenge type %q", ch.Type)
		}
		if ch.PasswordEnv == "" {
			bad("challenge.passwordEnv is required with challenge type %q", ch.Type)
		}
		c.usernameEnv, c.passwordEnv = ch.UsernameEnv, ch.PasswordEnv
		c.validity = duration(&errs, "challenge.validity", ch.Validity, defaultNDESValidity)
		unwanted("secretEnv", ch.SecretEnv)
	case ChallengeNone:
		unwanted("secretEnv", ch.SecretEnv)
		unwanted("adminUrl", ch.AdminURL)
		unwanted("usernameEnv", ch.UsernameEnv)
		unwanted("passwordEnv", ch.PasswordEnv)
		unwanted("validity", ch.Validity)
	case "":
		bad("challenge.type is required: %q, %q or %q", ChallengeStatic, ChallengeNDES, ChallengeNone)
	default:
		bad("challenge.type %q is unknown: want %q, %q or %q", ch.Type, ChallengeStatic, ChallengeNDES, ChallengeNone)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// parseHTTPURL checks a URL setting. Its errors never quote the URL: it may
// carry a password or a token in its query.
func parseHTTPURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // without the URL
		}
		return nil, fmt.Errorf("not a URL: %v", err)
	}
	if u.User != nil {
		return nil, errors.New("must not carry credentials; name them by environment variable instead")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, errors.New("must be an http or https URL")
	}
	if u.Host == "" {
		return nil, errors.New("has no host")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("must not have a query or fragment")
	}
	return u, nil
}

func duration(errs *[]error, field, value string, def time.Duration) time.Duration {
	if value == "" {
		return def
	}
	d, err := time.ParseDuration(value)
	if err != nil || d <= 0 {
		*errs = append(*errs, fmt.Errorf("scep settings: %s %q is not a positive duration (like \"30s\")", field, value))
		return def
	}
	return d
}
