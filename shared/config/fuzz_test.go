package config

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fuzzTypes are the connector types of the adapter.
var fuzzTypes = []string{"dev", "cas", "scep", "est"}

// sameJSON compares connector settings as JSON values: neither layout nor
// escaping ("\u003e" for ">", as json.Marshal writes it) counts.
var sameJSON = cmp.Transformer("json", func(r json.RawMessage) any {
	var v any
	dec := json.NewDecoder(bytes.NewReader(r))
	dec.UseNumber() // numbers as written: a float64 cannot hold every one
	if dec.Decode(&v) != nil {
		return string(r)
	}
	return v
})

// settingsStrings returns every string of the settings objects of data's
// caConnections (where the connectors' secrets and credentials are) that
// appears nowhere else in data (a profile may quote the same text
// legitimately), when data decodes at all.
func settingsStrings(data []byte) []string {
	var doc any
	if json.Unmarshal(data, &doc) != nil {
		return nil
	}
	var inSettings, elsewhere []string
	var walk func(v any, out *[]string, depth int, conns bool)
	walk = func(v any, out *[]string, depth int, conns bool) {
		switch v := v.(type) {
		case string:
			*out = append(*out, v)
		case []any:
			for _, e := range v {
				walk(e, out, depth+1, false)
			}
		case map[string]any:
			for k, e := range v {
				elsewhere = append(elsewhere, k)
				switch {
				case depth == 0 && k == "caConnections":
					walk(e, out, 1, true)
				case depth == 2 && conns && k == "settings":
					walk(e, &inSettings, 3, false)
				default:
					walk(e, out, depth+1, conns && depth < 2)
				}
			}
		}
	}
	walk(doc, &elsewhere, 0, false)
	var out []string
	for _, s := range inSettings {
		if !slices.ContainsFunc(elsewhere, func(e string) bool { return strings.Contains(e, s) }) {
			out = append(out, s)
		}
	}
	return out
}

// FuzzParseAdapter parses an adapter config. Seeds: the example configs of
// every connector (shared/tooling/ca/e2e/testdata) and configs with secrets in
// their settings. It asserts no panic; that an accepted config encodes
// and parses again to the same config (round trip); and that no error
// quotes a value of a connector's settings (they hold URLs with
// credentials, secret names, keys), which the config parser never needs to
// show.
func FuzzParseAdapter(f *testing.F) {
	examples, err := filepath.Glob("../tooling/ca/e2e/testdata/*.json")
	if err != nil || len(examples) == 0 {
		f.Fatalf("no example configs: %v", err)
	}
	for _, p := range examples {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(goodAdapter))
	f.Add([]byte(`{"allowedCustomers":["C01"],"caConnections":{"x":{"type":"est","settings":{"url":"https://u:SEEKRIT1@est.example.com","passwordEnv":"SEEKRIT2 literal"}}},"profiles":{}}`))
	f.Add([]byte(`{"allowedCustomers":["C01"],"caConnections":{"x":{"type":"nope","settings":{"url":"http://scep/?token=SEEKRIT3"}}},"profiles":{"p":{"subject":{"commonName":"${NAME}"}}}}`))
	f.Add([]byte(`{"allowedCustomers":[],"caConnections":{"x":{"type":"dev","settings":"SEEKRIT4"}}} trailing`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseAdapter(data, fuzzTypes)
		if err != nil {
			for _, s := range settingsStrings(data) {
				if len(s) >= 6 && strings.Contains(err.Error(), s) {
					t.Fatalf("the error quotes the settings value %q: %v", s, err)
				}
			}
			return
		}
		again, err := json.Marshal(a)
		if err != nil {
			t.Fatalf("an accepted config does not encode: %v", err)
		}
		b, err := ParseAdapter(again, fuzzTypes)
		if err != nil {
			t.Fatalf("an accepted config, encoded, is refused: %v\n%s", err, again)
		}
		if diff := cmp.Diff(a, b, sameJSON); diff != "" {
			t.Fatalf("round trip changed the config (-first +second):\n%s", diff)
		}
	})
}
