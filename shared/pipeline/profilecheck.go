package pipeline

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// MsgIncompleteCertificate is the WARNING logged when the CA issued a
// certificate without something the request asked for (a SAN, a key usage,
// an extended key usage): micromdm's scepserver drops the UPN otherName, for
// one. A log-based metric counts it (terraform: monitoring.tf).
const MsgIncompleteCertificate = "issued certificate lacks what the request asked for"

var (
	oidSAN         = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidKeyUsage    = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtKeyUsage = asn1.ObjectIdentifier{2, 5, 29, 37}
)

// sanNames are the GeneralName tags of a SAN extension, for messages.
var sanNames = map[uint8]string{0: "otherName", 1: "email", 2: "DNS", 4: "directoryName", 6: "URI", 7: "IP"}

// missingFromCertificate lists what the CSR (DER) requested that the issued
// leaf lacks: each SAN entry (compared byte for byte), each key usage bit and
// each extended key usage. An empty list means the CA issued all of it.
func missingFromCertificate(csrDER []byte, leaf *x509.Certificate) ([]string, error) {
	req, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("parse the request: %w", err)
	}
	wantExt := map[string][]byte{}
	for _, e := range req.Extensions {
		wantExt[e.Id.String()] = e.Value
	}
	gotExt := map[string][]byte{}
	for _, e := range leaf.Extensions {
		gotExt[e.Id.String()] = e.Value
	}
	var missing []string
	if want, ok := wantExt[oidSAN.String()]; ok {
		wantNames, err := generalNames(want)
		if err != nil {
			return nil, fmt.Errorf("the request's SANs: %w", err)
		}
		gotNames, err := generalNames(gotExt[oidSAN.String()])
		if err != nil {
			return nil, fmt.Errorf("the certificate's SANs: %w", err)
		}
		for _, w := range wantNames {
			if !slices.ContainsFunc(gotNames, func(g generalName) bool { return g.tag == w.tag && bytes.Equal(g.value, w.value) }) {
				missing = append(missing, "SAN "+w.String())
			}
		}
	}
	if want, ok := wantExt[oidKeyUsage.String()]; ok {
		var bits asn1.BitString
		if _, err := asn1.Unmarshal(want, &bits); err != nil {
			return nil, fmt.Errorf("the request's key usage: %w", err)
		}
		for i, name := range keyUsageNames {
			if bits.At(i) == 1 && leaf.KeyUsage&(1<<i) == 0 {
				missing = append(missing, "key usage "+name)
			}
		}
	}
	if want, ok := wantExt[oidExtKeyUsage.String()]; ok {
		var oids []asn1.ObjectIdentifier
		if _, err := asn1.Unmarshal(want, &oids); err != nil {
			return nil, fmt.Errorf("the request's extended key usage: %w", err)
		}
		var got []asn1.ObjectIdentifier
		if raw, ok := gotExt[oidExtKeyUsage.String()]; ok {
			if _, err := asn1.Unmarshal(raw, &got); err != nil {
				return nil, fmt.Errorf("the certificate's extended key usage: %w", err)
			}
		}
		for _, w := range oids {
			if !slices.ContainsFunc(got, w.Equal) {
				missing = append(missing, "extended key usage "+w.String())
			}
		}
	}
	return missing, nil
}

var keyUsageNames = []string{"digitalSignature", "contentCommitment", "keyEncipherment", "dataEncipherment", "keyAgreement", "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly"}

type generalName struct {
	tag   uint8
	value []byte
}

func (g generalName) String() string {
	name := sanNames[g.tag]
	if name == "" {
		name = fmt.Sprintf("[%d]", g.tag)
	}
	switch g.tag {
	case 1, 2, 6:
		return name + ":" + string(g.value)
	case 0:
		// type-id OID first: the UPN is 1.3.6.1.4.1.311.20.2.3.
		s := cryptobyte.String(g.value)
		var oid asn1.ObjectIdentifier
		if s.ReadASN1ObjectIdentifier(&oid) {
			if oid.Equal(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 3}) {
				return "otherName:UPN"
			}
			return "otherName:" + oid.String()
		}
	}
	return name
}

// generalNames reads a SubjectAltName extension value: SEQUENCE OF
// GeneralName, each kept as its context tag and content bytes.
func generalNames(der []byte) ([]generalName, error) {
	if len(der) == 0 {
		return nil, nil
	}
	in := cryptobyte.String(der)
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, errors.New("not a SEQUENCE")
	}
	var out []generalName
	for !seq.Empty() {
		var v cryptobyte.String
		var tag cbasn1.Tag
		if !seq.ReadAnyASN1(&v, &tag) {
			return nil, errors.New("malformed GeneralName")
		}
		if tag&0x80 == 0 {
			return nil, fmt.Errorf("GeneralName with a non-context tag %#x", uint8(tag))
		}
		out = append(out, generalName{tag: uint8(tag & 0x1f), value: v})
	}
	return out, nil
}
