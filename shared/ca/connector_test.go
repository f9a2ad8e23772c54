package ca

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeIssuer is a connection that records the settings it was built from.
type fakeIssuer struct{ Settings string }

func (fakeIssuer) Issue(context.Context, Request) (*Issued, error)    { return nil, nil }
func (fakeIssuer) Roots(context.Context) ([]*x509.Certificate, error) { return nil, nil }

func TestRegistry(t *testing.T) {
	build := func(_ context.Context, settings json.RawMessage, deps Deps) (Issuer, error) {
		v, err := deps.Secrets("X")
		return fakeIssuer{Settings: string(settings) + v}, err
	}
	Register("test-plain", Connector{New: build})
	Register("test-challenge", Connector{New: build, NeedsChallenge: func(s json.RawMessage) bool { return string(s) != `"none"` }})
	t.Cleanup(func() { // so that the test can run again in this process (-count)
		registryMu.Lock()
		defer registryMu.Unlock()
		delete(registry, "test-plain")
		delete(registry, "test-challenge")
	})

	deps := Deps{Secrets: func(string) (string, error) { return "+secret", nil }}
	got, err := New(context.Background(), "test-plain", json.RawMessage(`{}`), deps)
	if err != nil {
		t.Fatalf("New(test-plain): %v", err)
	}
	if diff := cmp.Diff(fakeIssuer{Settings: "{}+secret"}, got); diff != "" {
		t.Errorf("New(test-plain) (-want +got):\n%s", diff)
	}

	_, err = New(context.Background(), "tset-plain", nil, deps)
	if err == nil || !strings.Contains(err.Error(), `unknown CA connector type "tset-plain"`) ||
		!strings.Contains(err.Error(), "test-challenge, test-plain") {
		t.Errorf("New of an unknown type: %v, want the type and the registered ones", err)
	}

	for _, tc := range []struct {
		typ, settings string
		want, wantErr bool
	}{
		{typ: "test-plain", settings: `{}`, want: false},
		{typ: "test-challenge", settings: `{}`, want: true},
		{typ: "test-challenge", settings: `"none"`, want: false},
		{typ: "unknown", settings: `{}`, wantErr: true},
	} {
		got, err := NeedsChallenge(tc.typ, json.RawMessage(tc.settings))
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("NeedsChallenge(%s, %s) = %v, %v; want %v, error %v", tc.typ, tc.settings, got, err, tc.want, tc.wantErr)
		}
	}

	for _, tc := range []struct {
		name string
		typ  string
		c    Connector
	}{
		{"twice", "test-plain", Connector{New: build}},
		{"no type", "", Connector{New: build}},
		{"no New", "test-nonew", Connector{}},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register %s did not panic", tc.name)
				}
			}()
			Register(tc.typ, tc.c)
		}()
	}
}

// ptrIssuer is a connector type whose constructor returns a pointer.
type ptrIssuer struct{ secret string }

func (*ptrIssuer) Issue(context.Context, Request) (*Issued, error)    { return nil, nil }
func (*ptrIssuer) Roots(context.Context) ([]*x509.Certificate, error) { return nil, nil }

func newPtrIssuer(_ context.Context, _ json.RawMessage, secrets func(string) (string, error)) (*ptrIssuer, error) {
	v, err := secrets("KEY")
	if err != nil {
		return nil, err
	}
	return &ptrIssuer{secret: v}, nil
}

// Adapt passes the secrets through, and a failed construction is a nil
// Issuer, not a nil *ptrIssuer inside a non-nil interface.
func TestAdapt(t *testing.T) {
	t.Parallel()
	build := Adapt(newPtrIssuer)
	iss, err := build(context.Background(), nil, Deps{Secrets: func(string) (string, error) { return "k", nil }})
	if p, ok := iss.(*ptrIssuer); err != nil || !ok || p.secret != "k" {
		t.Errorf("Adapt(New) = %#v, %v; want the connector with its secret", iss, err)
	}
	iss, err = build(context.Background(), nil, Deps{Secrets: func(string) (string, error) { return "", errors.New("not set") }})
	if err == nil || iss != nil {
		t.Errorf("Adapt(New) on failure = %#v, %v; want a nil Issuer and the error", iss, err)
	}
}
