package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// loadKey reads a PEM private key (PKCS#8, PKCS#1 or SEC 1).
func loadKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%s holds no PEM block", path)
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		if s, ok := k.(crypto.Signer); ok {
			return s, nil
		}
		return nil, fmt.Errorf("%s: a %T cannot sign", path, k)
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	return nil, fmt.Errorf("%s: %q is not a PKCS#8, PKCS#1 or SEC 1 private key", path, block.Type)
}

// ephemeralKey generates a key of type "ec" (P-256) or "rsa" (2048 bits).
func ephemeralKey(typ string) (crypto.Signer, error) {
	switch typ {
	case "ec":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "rsa":
		return rsa.GenerateKey(rand.Reader, 2048)
	}
	return nil, fmt.Errorf("--key-type %q: want ec or rsa", typ)
}

// sign signs data as a ChromeOS client answers signData: SHA-256, then
// PKCS#1 v1.5 (RSA) or ASN.1 ECDSA.
func sign(k crypto.Signer, data []byte) ([]byte, error) {
	digest := sha256.Sum256(data)
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, digest[:])
	case *ecdsa.PrivateKey:
		return ecdsa.SignASN1(rand.Reader, k, digest[:])
	}
	return nil, errors.New("the key is neither RSA nor ECDSA")
}
