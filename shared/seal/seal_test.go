package seal

import (
	"bytes"
	"encoding/base64"
	"testing"
)

func TestSealOpen(t *testing.T) {
	t.Parallel()
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	s, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("challengePassword=hunter2")
	sealed, err := s.Seal(secret, "c:p")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("hunter2")) || !Sealed(sealed) || Sealed(secret) {
		t.Fatal("sealed data shows the secret or is not recognised")
	}
	got, err := s.Open(sealed, "c:p")
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := s.Open(sealed, "c:other"); err == nil {
		t.Error("opened with another record's key")
	}
	other, _ := New(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{8}, 32)))
	if _, err := other.Open(sealed, "c:p"); err == nil {
		t.Error("opened with another key")
	}
	for _, bad := range []string{"", "short", base64.StdEncoding.EncodeToString([]byte("16 bytes exactly"))} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%q) accepted a bad key", bad)
		}
	}
}
