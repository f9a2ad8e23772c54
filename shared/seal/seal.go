// Package seal encrypts the progress fields that can carry a secret (the SCEP
// challenge password sits inside the bytes the client signs and inside the
// CSR) before they reach Firestore, with AES-256-GCM under a key kept in
// Secret Manager.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
)

// prefix marks sealed data (version 1), so plain data is never mistaken for it.
var prefix = []byte("certprov-seal-v1:")

// Sealer seals and opens with one key.
type Sealer struct{ aead cipher.AEAD }

// New returns a Sealer for a base64-encoded 32-byte key.
func New(keyB64 string) (*Sealer, error) {
	key, err := base64.StdEncoding.DecodeString(keyB64)
	if err != nil || len(key) != 32 {
		return nil, errors.New("seal: the key must be 32 random bytes, base64-encoded (e.g. openssl rand -base64 32)")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts plain; ad binds it to its record (the record key).
func (s *Sealer) Seal(plain []byte, ad string) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: nonce: %w", err)
	}
	out := append([]byte{}, prefix...)
	out = append(out, nonce...)
	return s.aead.Seal(out, nonce, plain, []byte(ad)), nil
}

// Sealed reports whether data was made by Seal.
func Sealed(data []byte) bool {
	return len(data) > len(prefix) && string(data[:len(prefix)]) == string(prefix)
}

// Open decrypts data made by Seal with the same ad.
func (s *Sealer) Open(data []byte, ad string) ([]byte, error) {
	if !Sealed(data) {
		return nil, errors.New("seal: data is not sealed")
	}
	data = data[len(prefix):]
	n := s.aead.NonceSize()
	if len(data) < n {
		return nil, errors.New("seal: sealed data too short")
	}
	plain, err := s.aead.Open(nil, data[:n], data[n:], []byte(ad))
	if err != nil {
		return nil, errors.New("seal: cannot open (wrong key or tampered data)")
	}
	return plain, nil
}
