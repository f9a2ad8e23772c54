package scep

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// The pkcsPKIEnvelope is built here rather than with pkcs7.Encrypt: that
// function takes its content cipher from a package-global variable and has no
// triple DES, which NDES (advertising only DES3) needs.

// contentCipher is a CMS content-encryption algorithm.
type contentCipher struct {
	name    string
	oid     asn1.ObjectIdentifier
	keySize int
	block   func(key []byte) (cipher.Block, error)
}

var (
	oidData          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidEnvelopedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 3}
	oidRSAEncryption = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}

	cipherAES128CBC = contentCipher{"AES-128-CBC", asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}, 16, aes.NewCipher}
	cipherDES3CBC   = contentCipher{"DES-EDE3-CBC", asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 7}, 24, des.NewTripleDESCipher}
)

// envelope returns the DER ContentInfo of a CMS EnvelopedData holding content
// encrypted with c for the single RSA recipient (RFC 5652 section 6, key
// transport with RSAES-PKCS1-v1_5, issuerAndSerialNumber, version 0).
func envelope(content []byte, recipient *x509.Certificate, c contentCipher) ([]byte, error) {
	pub, ok := recipient.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("the encryption certificate %q has a %T key; SCEP needs RSA", recipient.Subject, recipient.PublicKey)
	}
	key := make([]byte, c.keySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	block, err := c.block(key)
	if err != nil {
		return nil, err
	}
	iv := make([]byte, block.BlockSize())
	if _, err := rand.Read(iv); err != nil {
		return nil, err
	}
	pad := block.BlockSize() - len(content)%block.BlockSize()
	plain := make([]byte, len(content), len(content)+pad)
	copy(plain, content)
	for range pad {
		plain = append(plain, byte(pad))
	}
	encrypted := make([]byte, len(plain))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(encrypted, plain)
	encryptedKey, err := rsa.EncryptPKCS1v15(rand.Reader, pub, key)
	if err != nil {
		return nil, fmt.Errorf("encrypt the content key: %w", err)
	}

	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // ContentInfo
		b.AddASN1ObjectIdentifier(oidEnvelopedData)
		b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // EnvelopedData
				b.AddASN1Int64(0)
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // KeyTransRecipientInfo
						b.AddASN1Int64(0)
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // IssuerAndSerialNumber
							b.AddBytes(recipient.RawIssuer)
							b.AddASN1BigInt(recipient.SerialNumber)
						})
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1ObjectIdentifier(oidRSAEncryption)
							b.AddASN1NULL()
						})
						b.AddASN1OctetString(encryptedKey)
					})
				})
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // EncryptedContentInfo
					b.AddASN1ObjectIdentifier(oidData)
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(c.oid)
						b.AddASN1OctetString(iv)
					})
					b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) {
						b.AddBytes(encrypted)
					})
				})
			})
		})
	})
	der, err := b.Bytes()
	if err != nil {
		return nil, errors.New("encode the envelope")
	}
	return der, nil
}
