package ca

import (
	"fmt"
	"regexp"
	"strings"
)

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Secret reads the secret that the setting field names: name is the value of
// a setting such as "passwordEnv", an environment variable name, resolved
// through secrets (nil: none available).
//
// Its errors name the setting and never its value: an administrator who
// wrote the password itself where its variable's name belongs must not find
// it in a log. An error from secrets is passed on with name replaced by the
// setting.
func Secret(secrets func(envName string) (string, error), field, name string) (string, error) {
	switch {
	case name == "":
		return "", fmt.Errorf("%s is required", field)
	case !envNameRE.MatchString(name):
		return "", fmt.Errorf("%s is not an environment variable name (letters, digits and _): put the secret into an environment variable and name that variable here", field)
	case secrets == nil:
		return "", fmt.Errorf("%s: no secrets available", field)
	}
	v, err := secrets(name)
	if err != nil {
		return "", fmt.Errorf("%s: the environment variable it names: %v", field, redacted{err, name, "<" + field + ">"})
	}
	if v == "" {
		return "", fmt.Errorf("%s: the environment variable it names is empty", field)
	}
	return v, nil
}

// redacted is err with every occurrence of secret in its text replaced.
type redacted struct {
	err         error
	secret, sub string
}

// Error is err's text with the secret replaced. There is no Unwrap: the
// wrapped error's own text holds the secret.
func (r redacted) Error() string { return strings.ReplaceAll(r.err.Error(), r.secret, r.sub) }
