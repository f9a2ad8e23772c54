package main

import (
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"net"
	"strings"
	"unicode/utf16"
)

// request is a CSR in readable form, read back from its DER: what the CA
// will see.
type request struct {
	Subject      string   `json:"subject"`
	SANs         []string `json:"subjectAltNames"`
	KeyUsages    []string `json:"keyUsages"`
	ExtKeyUsages []string `json:"extendedKeyUsages"`
	// TemplateName is the Microsoft certificate template name extension.
	TemplateName string `json:"templateNameExtension,omitempty"`
	// Other lists extensions not shown above, by OID.
	Other []string `json:"otherExtensions,omitempty"`
}

var (
	oidKeyUsage       = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtKeyUsage    = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidMSTemplateName = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2}
	oidUPN            = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 3}
)

var keyUsageNames = []string{"digitalSignature", "contentCommitment", "keyEncipherment", "dataEncipherment",
	"keyAgreement", "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly"}

var extKeyUsageNames = map[string]string{
	"1.3.6.1.5.5.7.3.1":      "serverAuth",
	"1.3.6.1.5.5.7.3.2":      "clientAuth",
	"1.3.6.1.5.5.7.3.3":      "codeSigning",
	"1.3.6.1.5.5.7.3.4":      "emailProtection",
	"1.3.6.1.5.5.7.3.8":      "timeStamping",
	"1.3.6.1.5.5.7.3.9":      "OCSPSigning",
	"1.3.6.1.4.1.311.20.2.2": "smartcardLogon",
}

// describe reads a DER CSR back.
func describe(der []byte) (*request, error) {
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("read the CSR back: %w", err)
	}
	r := &request{Subject: csr.Subject.String(), SANs: []string{}, KeyUsages: []string{}, ExtKeyUsages: []string{}}
	for _, ext := range csr.Extensions {
		switch {
		case ext.Id.Equal(oidKeyUsage):
			var bits asn1.BitString
			if _, err := asn1.Unmarshal(ext.Value, &bits); err != nil {
				return nil, fmt.Errorf("key usage extension: %w", err)
			}
			for i, name := range keyUsageNames {
				if bits.At(i) == 1 {
					r.KeyUsages = append(r.KeyUsages, name)
				}
			}
		case ext.Id.Equal(oidExtKeyUsage):
			var oids []asn1.ObjectIdentifier
			if _, err := asn1.Unmarshal(ext.Value, &oids); err != nil {
				return nil, fmt.Errorf("extended key usage extension: %w", err)
			}
			for _, o := range oids {
				name, ok := extKeyUsageNames[o.String()]
				if !ok {
					name = o.String()
				}
				r.ExtKeyUsages = append(r.ExtKeyUsages, name)
			}
		case ext.Id.Equal(oidSubjectAltName):
			sans, err := generalNames(ext.Value)
			if err != nil {
				return nil, fmt.Errorf("subject alternative name extension: %w", err)
			}
			r.SANs = sans
		case ext.Id.Equal(oidMSTemplateName):
			var raw asn1.RawValue
			if _, err := asn1.Unmarshal(ext.Value, &raw); err != nil {
				return nil, fmt.Errorf("template name extension: %w", err)
			}
			r.TemplateName = decodeString(raw)
		default:
			r.Other = append(r.Other, fmt.Sprintf("%s (critical: %t)", ext.Id, ext.Critical))
		}
	}
	return r, nil
}

// generalNames reads a GeneralNames SEQUENCE as "TYPE:value" strings, in order.
func generalNames(der []byte) ([]string, error) {
	var seq asn1.RawValue
	if _, err := asn1.Unmarshal(der, &seq); err != nil {
		return nil, err
	}
	out := []string{}
	rest := seq.Bytes
	for len(rest) > 0 {
		var gn asn1.RawValue
		var err error
		if rest, err = asn1.Unmarshal(rest, &gn); err != nil {
			return nil, err
		}
		switch gn.Tag {
		case 0:
			var other struct {
				ID    asn1.ObjectIdentifier
				Value asn1.RawValue // [0] EXPLICIT: Bytes holds the value's TLV
			}
			if _, err := asn1.UnmarshalWithParams(gn.FullBytes, &other, "tag:0"); err != nil {
				return nil, fmt.Errorf("otherName: %w", err)
			}
			var v asn1.RawValue
			if other.ID.Equal(oidUPN) {
				if _, err := asn1.Unmarshal(other.Value.Bytes, &v); err != nil {
					return nil, fmt.Errorf("otherName %s: %w", other.ID, err)
				}
				out = append(out, "UPN:"+decodeString(v))
			} else {
				out = append(out, "otherName:"+other.ID.String())
			}
		case 1:
			out = append(out, "email:"+string(gn.Bytes))
		case 2:
			out = append(out, "DNS:"+string(gn.Bytes))
		case 6:
			out = append(out, "URI:"+string(gn.Bytes))
		case 7:
			out = append(out, "IP:"+net.IP(gn.Bytes).String())
		default:
			out = append(out, fmt.Sprintf("[%d]:%x", gn.Tag, gn.Bytes))
		}
	}
	return out, nil
}

// decodeString reads a UTF8String, PrintableString, IA5String or BMPString.
func decodeString(v asn1.RawValue) string {
	if v.Tag == asn1.TagBMPString {
		u := make([]uint16, 0, len(v.Bytes)/2)
		for i := 0; i+1 < len(v.Bytes); i += 2 {
			u = append(u, uint16(v.Bytes[i])<<8|uint16(v.Bytes[i+1]))
		}
		return string(utf16.Decode(u))
	}
	return string(v.Bytes)
}

// joinOrNone joins a list for the text output.
func joinOrNone(s []string) string {
	if len(s) == 0 {
		return "(none)"
	}
	return strings.Join(s, ", ")
}
