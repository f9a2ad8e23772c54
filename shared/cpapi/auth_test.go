package cpapi_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/oauth2"
	"google.golang.org/api/option"

	"github.com/chromeos-certprov/adapter/shared/cpapi"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
)

// tokenEndpoint is a local OAuth 2.0 token endpoint: it hands out one access
// token and records the scope that a service account's JWT assertion asks for.
type tokenEndpoint struct {
	mu     sync.Mutex
	scopes []string
}

func (te *tokenEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	if a := r.PostForm.Get("assertion"); a != "" {
		if parts := strings.Split(a, "."); len(parts) == 3 {
			payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
			var claims struct {
				Scope string `json:"scope"`
			}
			_ = json.Unmarshal(payload, &claims)
			te.mu.Lock()
			te.scopes = append(te.scopes, claims.Scope)
			te.mu.Unlock()
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"access_token":"adc-token","token_type":"Bearer","expires_in":3600}`))
}

// serviceAccountKey writes an Application Default Credentials file, a
// service account key whose token endpoint is tokenURL. (An authorized_user
// file would not do: its token_uri is ignored, the token would be asked of
// oauth2.googleapis.com.)
func serviceAccountKey(t *testing.T, tokenURL string) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	path := filepath.Join(t.TempDir(), "sa.json")
	b, _ := json.Marshal(map[string]string{"type": "service_account", "project_id": "p", "private_key_id": "k1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "certprov-claim@p.iam.gserviceaccount.com", "client_id": "1", "token_uri": tokenURL})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// An endpoint override (Private Service Connect, a regional endpoint) keeps
// Application Default Credentials and the API's scope; only the emulator
// setting calls without credentials.
func TestEndpointOverrideKeepsCredentials(t *testing.T) {
	te := &tokenEndpoint{}
	tokens := httptest.NewServer(te)
	defer tokens.Close()
	sa := serviceAccountKey(t, tokens.URL+"/token")

	emu := cpemulator.New(cpemulator.Options{})
	var mu sync.Mutex
	var auth []string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth = append(auth, r.Header.Get("Authorization"))
		mu.Unlock()
		emu.ServeHTTP(w, r)
	}))
	defer api.Close()
	ctx := context.Background()
	name, err := emu.AddClient(ctx, cpemulator.ClientSpec{Customer: "C1"})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		adc       string // GOOGLE_APPLICATION_CREDENTIALS
		opts      cpapi.Options
		wantAuth  string
		wantScope bool
	}{
		{"endpoint override, service account (ADC)", sa, cpapi.Options{Endpoint: api.URL + "/"}, "Bearer adc-token", true},
		{"endpoint override, explicit token source", filepath.Join(t.TempDir(), "missing.json"), cpapi.Options{Endpoint: api.URL + "/",
			ClientOptions: []option.ClientOption{option.WithTokenSource(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "static", TokenType: "Bearer"}))}}, "Bearer static", false},
		{"emulator, no credentials needed", filepath.Join(t.TempDir(), "missing.json"), cpapi.Options{EmulatorHost: strings.TrimPrefix(api.URL, "http://")}, "", false},
	}
	for _, tc := range tests {
		t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", tc.adc)
		mu.Lock()
		auth = nil
		mu.Unlock()
		te.mu.Lock()
		te.scopes = nil
		te.mu.Unlock()
		c, err := cpapi.New(ctx, tc.opts)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if _, err := c.Get(ctx, name); err != nil {
			t.Errorf("%s: get: %v", tc.name, err)
		}
		mu.Lock()
		if len(auth) != 1 || auth[0] != tc.wantAuth {
			t.Errorf("%s: Authorization %q, want %q", tc.name, auth, tc.wantAuth)
		}
		mu.Unlock()
		te.mu.Lock()
		if tc.wantScope && (len(te.scopes) != 1 || te.scopes[0] != cpapi.Scope) {
			t.Errorf("%s: token requested for scopes %q, want %q", tc.name, te.scopes, cpapi.Scope)
		}
		te.mu.Unlock()
	}
}
