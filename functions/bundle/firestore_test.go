package bundle

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/chromeos-certprov/adapter/shared/progress"
)

// TestFirestoreExemptions: every blob, array and map field of the progress
// document, and the long texts named below, is exempt from Firestore's
// single-field indexing (terraform/firestore.tf, firestore_unindexed_fields),
// and no field the sweep's or the operator CLI's queries use is; every
// equality filter of the CLI's queries has its composite index.
func TestFirestoreExemptions(t *testing.T) {
	tf, err := os.ReadFile(filepath.Join(repoRoot(t), "terraform", "firestore.tf"))
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile(`(?s)firestore_unindexed_fields = \[(.*?)\]`).FindSubmatch(tf)
	if block == nil {
		t.Fatal("terraform/firestore.tf has no firestore_unindexed_fields list")
	}
	exempt := map[string]bool{}
	for _, m := range regexp.MustCompile(`"([^"]+)"`).FindAllSubmatch(block[1], -1) {
		exempt[string(m[1])] = true
	}

	want := map[string]string{
		"certificatePem": "a PEM certificate chain",
		"lastError":      "an error text",
		"failureMessage": "a text for the device",
	}
	rt := reflect.TypeOf(progress.Record{})
	for i := 0; i < rt.NumField(); i++ {
		f := rt.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("firestore"), ",")
		if name == "" || name == "-" {
			continue
		}
		switch f.Type.Kind() {
		case reflect.Slice, reflect.Array, reflect.Map:
			want[name] = "a " + f.Type.String()
		}
	}
	for name, why := range want {
		if !exempt[name] {
			t.Errorf("progress field %q (%s) is indexed: add it to firestore_unindexed_fields in terraform/firestore.tf", name, why)
		}
	}
	for _, queried := range []string{"state", "updatedAt", "createdAt", "customer", "profileRef", "processId", "deviceId", "deviceSerial", "userEmail"} {
		if exempt[queried] {
			t.Errorf("%q is exempt from indexing, but the sweep's or the operator CLI's queries need it", queried)
		}
	}
	// Every equality filter of the operator CLI's queries has its composite
	// index with createdAt (terraform: google_firestore_index.operator).
	set := regexp.MustCompile(`(?s)resource "google_firestore_index" "operator" \{\s*for_each = toset\(\[(.*?)\]\)`).FindSubmatch(tf)
	if set == nil {
		t.Fatal(`terraform/firestore.tf has no google_firestore_index "operator" with a for_each list`)
	}
	for _, field := range []string{"state", "customer", "profileRef", "processId", "deviceId", "deviceSerial", "userEmail"} {
		if !strings.Contains(string(set[1]), `"`+field+`"`) {
			t.Errorf("no composite index (%s, createdAt desc) in google_firestore_index.operator", field)
		}
	}
}
