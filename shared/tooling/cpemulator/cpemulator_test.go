package cpemulator

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	cm "google.golang.org/api/chromemanagement/v1"
)

// The guide's test vector: "data to sign\n".
var sampleData = []byte("data to sign\n")

func TestHonestClientFullFlow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		spec ClientSpec
		alg  string
	}{
		{"device RSA-2048", ClientSpec{Kind: Device, Key: RSA2048}, AlgorithmRSA},
		{"device EC P-256", ClientSpec{Kind: Device, Key: ECP256}, AlgorithmECDSA},
		{"user RSA-2048", ClientSpec{Kind: User, Key: RSA2048}, AlgorithmRSA},
		{"affiliated user EC P-256", ClientSpec{Kind: User, Key: ECP256, Affiliated: true}, AlgorithmECDSA},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, Options{})
			name := f.add(tc.spec)

			p, err := f.get(name)
			f.must(err)
			spki := b64(t, p.SubjectPublicKeyInfo)
			if _, err := x509.ParsePKIXPublicKey(spki); err != nil {
				t.Fatalf("subjectPublicKeyInfo does not parse: %v", err)
			}
			if p.Name != name || p.StartTime != "2025-03-07T13:38:54.930621Z" || p.ProvisioningProfileId == "" {
				t.Errorf("process header: name=%q startTime=%q profileId=%q", p.Name, p.StartTime, p.ProvisioningProfileId)
			}
			if p.SignatureAlgorithm != "" || p.SignData != "" || p.Signature != "" || p.IssuedCertificate != "" || p.FailureMessage != "" {
				t.Errorf("fresh generic process shows later fields: %+v", p)
			}
			if p.GenericCaConnection == nil || p.GenericCaConnection.CaConnectionAdapterConfigReference != DefaultCARef ||
				p.GenericProfile == nil || p.GenericProfile.ProfileAdapterConfigReference == "" || p.ScepProfile != nil || p.ScepCaConnection != nil {
				t.Errorf("CA connection / profile: %+v %+v %+v", p.GenericCaConnection, p.GenericProfile, p.ScepProfile)
			}
			switch tc.spec.Kind {
			case Device:
				if p.ChromeOsDevice == nil || p.ChromeOsDevice.DeviceDirectoryApiId == "" || p.ChromeOsDevice.SerialNumber == "" || p.ChromeOsUserSession != nil {
					t.Errorf("device identity: %+v %+v", p.ChromeOsDevice, p.ChromeOsUserSession)
				}
			case User:
				u := p.ChromeOsUserSession
				if u == nil || p.ChromeOsDevice != nil || !strings.Contains(u.UserPrimaryEmail, "@") || u.UserDirectoryApiId == "" {
					t.Fatalf("user identity: %+v %+v", p.ChromeOsDevice, u)
				}
				if tc.spec.Affiliated != (u.ChromeOsDevice != nil) {
					t.Errorf("affiliated=%v, user session device %+v", tc.spec.Affiliated, u.ChromeOsDevice)
				}
			}

			f.must(f.claim(name, "adapter-1"))
			op, err := f.signData(name, sampleData, tc.alg)
			f.must(err)
			if !strings.HasPrefix(op.Name, name+"/operations/") || op.Done || op.Error != nil || len(op.Response) != 0 {
				t.Errorf("signData operation: %+v", op)
			}
			var md map[string]string
			if err := json.Unmarshal(op.Metadata, &md); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(map[string]string{"@type": typeSignDataMetadata, "startTime": "2025-03-07T13:38:54.930621Z"}, md); diff != "" {
				t.Errorf("metadata (-want +got):\n%s", diff)
			}

			done, err := f.op(op.Name)
			f.must(err)
			got := signResponse(t, done)
			sig := b64(t, got.Signature)
			if err := verify(spki, b64(t, got.SignData), sig); err != nil {
				t.Errorf("signature in the operation does not verify: %v", err)
			}
			if string(b64(t, got.SignData)) != string(sampleData) || got.SignatureAlgorithm != tc.alg {
				t.Errorf("operation's process: signData=%q algorithm=%q", got.SignData, got.SignatureAlgorithm)
			}

			p, err = f.get(name)
			f.must(err)
			if p.Signature != got.Signature || p.SignatureAlgorithm != tc.alg || p.SignData != got.SignData {
				t.Errorf("GET after signing: signature=%q algorithm=%q signData=%q", p.Signature, p.SignatureAlgorithm, p.SignData)
			}

			pub, _ := x509.ParsePKIXPublicKey(spki)
			cert := certFor(t, pub)
			f.must(f.upload(name, cert))
			p, err = f.get(name)
			f.must(err)
			if p.IssuedCertificate != cert {
				t.Errorf("issuedCertificate = %q, want the uploaded PEM", p.IssuedCertificate)
			}

			s := f.snap(name)
			want := Snapshot{
				Name: name, State: StateUploaded, ClaimedBy: "adapter-1", SignDataCalls: 1, SignDataRequests: 1,
				SignData: sampleData, SignatureAlgorithm: tc.alg, SignDataAt: t0, SignedAt: t0,
				Signature: sig, Operations: []string{op.Name}, UploadCalls: 1, UploadedPEM: cert, UploadedAt: t0,
			}
			if diff := cmp.Diff(want, s, snapshotCore); diff != "" {
				t.Errorf("snapshot (-want +got):\n%s", diff)
			}
			wantCalls := map[string]int{"get": 3, "claim": 1, "signData": 1, "operations.get": 1, "uploadCertificate": 1, "setFailure": 0}
			if diff := cmp.Diff(wantCalls, f.emu.Calls()); diff != "" {
				t.Errorf("Calls (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(wantCalls, s.Requests); diff != "" {
				t.Errorf("per-process requests (-want +got):\n%s", diff)
			}
			if v := f.emu.Violations(); len(v) != 0 {
				t.Errorf("violations: %+v", v)
			}
		})
	}
}

// snapshotCore compares the fields a test sets in its want Snapshot.
var snapshotCore = cmp.FilterPath(func(p cmp.Path) bool {
	switch p.Last().String() {
	case ".Customer", ".ID", ".Kind", ".Key", ".Behaviour", ".SignDelay", ".PublicKey", ".SPKI", ".Created",
		".IsSCEP", ".CARef", ".ProfileRef", ".Requests":
		return true
	}
	return false
}, cmp.Ignore())

func TestGuideTestVector(t *testing.T) {
	t.Parallel()
	// The guide's sample SPKI, signData and signature verify with the same
	// check the tests apply to the emulator's honest clients.
	spki := b64(t, "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAqtbosvGe1JzJJYBPsPzFY33xD9fSJhQLZh21ELD2vEZ5OSzxXzQOhlXZ2Mv4C3m4zn8mjuYykprBxaMggryd8kyhycm2DDsL2/KUkdQNPnv6mBQ8iionF84iabh+FWph1CU63j2vCPnw0VYSv7cz+bHsxs3tXFB7PqqQZr7WcWAAxFaIqoTkJrTGMzDFs8GHUA6mFhMj0WsPzp3aicj24uW0AAJjVFmiZ+pz1lOOL4coNsVrujrX2E6lU8AHjmoQT6ThRVnuo1jFXoASB4A1It6dtu/P8L3zhsVWYRtOZjLLVvGryzT8z0A8iW5k+apkb465jgLd2vuxFPekAgPRDwIDAQAB")
	sig := b64(t, "mPfL8v/DR+ZqbtJ6X5cJCTrzfOO3wPHCY8nV/stbokdNZnkRJ8U0PBzgm6pWy08pMmOfrs9ZMBXcQ0i05Oe6AwgHYYN5RHuwdnhAklJYriDT4fXdzewD6KuA6x7ZX1d2xYnh0p2XczcdNOJsrz2T/p+89PLcB6I1PIg1Cwz4I1YCAS2OMAQF5DxS+SvMpPbkdzkNG4SCCL/hJNayxRMr98SbQ0aQE77AtxzpXGof5cBEBOcbQ+T+kBIgArQ87D6bQVHVB3di+TvYepK6hwxiLbhCEDGHgi2DfMp8kEWnAVPVzi6xht5jPNhVqILALRbQQ1nUjlP8UO+/y+WR4M36Yg==")
	if err := verify(spki, b64(t, "ZGF0YSB0byBzaWduCg=="), sig); err != nil {
		t.Fatalf("guide test vector: %v", err)
	}
}

func TestStrictFieldNames(t *testing.T) {
	t.Parallel()
	// Every name the emulator prints must exist in the generated client's
	// types (the client itself silently ignores unknown names).
	f := newFixture(t, Options{})
	specs := []ClientSpec{
		{Kind: User, Affiliated: true, Key: ECP256},
		{Kind: Device, SCEP: &ScepSpec{SubjectCommonName: "cn", Organization: "o", OrganizationalUnits: []string{"ou"}, Locality: "l", State: "s", Country: "DE",
			SubjectAltNames: []SubjectAltName{{Type: "DNS_NAME", Value: "a.example"}}, KeyUsages: []string{"KEY_USAGE_SIGNING"}, CertificateTemplateName: "tmpl"}},
	}
	for _, spec := range specs {
		name := f.add(spec)
		op := f.claimAndSign(name, sampleData)
		pub := f.snap(name).PublicKey
		f.must(f.upload(name, certFor(t, pub)))

		_, body := f.raw(http.MethodGet, "/v1/"+name, "")
		strictDecode(t, body, &cm.GoogleChromeManagementVersionsV1CertificateProvisioningProcess{})

		_, body = f.raw(http.MethodGet, "/v1/"+op.Name, "")
		var o struct {
			cm.GoogleLongrunningOperation
			Metadata map[string]json.RawMessage `json:"metadata"`
			Response map[string]json.RawMessage `json:"response"`
		}
		strictDecode(t, body, &o)
		if got := string(o.Metadata["@type"]); got != `"`+typeSignDataMetadata+`"` {
			t.Errorf("metadata @type = %s", got)
		}
		if got := string(o.Response["@type"]); got != `"`+typeSignDataResponse+`"` {
			t.Errorf("response @type = %s", got)
		}
		delete(o.Metadata, "@type")
		delete(o.Response, "@type")
		md, _ := json.Marshal(o.Metadata)
		strictDecode(t, md, &cm.GoogleChromeManagementVersionsV1SignDataMetadata{})
		resp, _ := json.Marshal(o.Response)
		strictDecode(t, resp, &cm.GoogleChromeManagementVersionsV1SignDataResponse{})
	}
}

func TestSignDelayAndSignedAt(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	name := f.add(ClientSpec{Key: ECP256, SignDelay: 30 * time.Second})
	op := f.claimAndSign(name, sampleData)

	f.clock.Advance(29 * time.Second)
	o, err := f.op(op.Name)
	f.must(err)
	if o.Done {
		t.Fatalf("operation done after 29s of a 30s delay: %+v", o)
	}
	p, err := f.get(name)
	f.must(err)
	if p.Signature != "" || p.SignData == "" || p.SignatureAlgorithm != AlgorithmECDSA {
		t.Errorf("GET while signing: signature=%q signData=%q algorithm=%q", p.Signature, p.SignData, p.SignatureAlgorithm)
	}
	if s := f.snap(name); s.State != StateSigning || !s.SignedAt.IsZero() {
		t.Errorf("snapshot while signing: state=%s signedAt=%v", s.State, s.SignedAt)
	}

	f.clock.Advance(time.Hour) // read late: signedAt is still signData time + delay
	o, err = f.op(op.Name)
	f.must(err)
	signResponse(t, o)
	if s := f.snap(name); s.State != StateSigned || !s.SignedAt.Equal(t0.Add(30*time.Second)) {
		t.Errorf("snapshot after signing: state=%s signedAt=%v, want %v", s.State, s.SignedAt, t0.Add(30*time.Second))
	}
}

func TestBehaviours(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		spec ClientSpec
		// check inspects the operation read 1h after signData.
		check func(t *testing.T, f *fixture, name string, op *cm.GoogleLongrunningOperation)
	}{
		{"silent never signs", ClientSpec{Behaviour: Silent, Key: ECP256}, func(t *testing.T, f *fixture, name string, op *cm.GoogleLongrunningOperation) {
			if op.Done {
				t.Errorf("silent client's operation is done: %+v", op)
			}
			if s := f.snap(name); s.State != StateSigning || s.Signature != nil {
				t.Errorf("snapshot: %+v", s)
			}
		}},
		{"wrong key RSA", ClientSpec{Behaviour: Wrong, Key: RSA2048}, invalidSignature},
		{"wrong key EC", ClientSpec{Behaviour: Wrong, Key: ECP256}, invalidSignature},
		{"garbage RSA", ClientSpec{Behaviour: Garbage, Key: RSA2048}, invalidSignature},
		{"garbage EC", ClientSpec{Behaviour: Garbage, Key: ECP256}, invalidSignature},
		{"reject", ClientSpec{Behaviour: Reject, Key: ECP256, SignDelay: time.Minute}, func(t *testing.T, f *fixture, name string, op *cm.GoogleLongrunningOperation) {
			if !op.Done || op.Error == nil || op.Error.Code != 3 || len(op.Response) != 0 {
				t.Fatalf("rejected operation: %+v", op)
			}
			if !strings.Contains(op.Error.Message, "failure state "+DefaultRejectState) || !strings.Contains(op.Error.Message, DefaultRejectMessage) {
				t.Errorf("error message %q", op.Error.Message)
			}
			p, err := f.get(name)
			f.must(err)
			if p.FailureMessage != DefaultRejectMessage || p.Signature != "" {
				t.Errorf("process after rejection: failureMessage=%q signature=%q", p.FailureMessage, p.Signature)
			}
			if s := f.snap(name); s.State != StateFailed || s.FailedBy != "client" || !s.FailedAt.Equal(t0.Add(time.Minute)) {
				t.Errorf("snapshot: state=%s failedBy=%q failedAt=%v", s.State, s.FailedBy, s.FailedAt)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, Options{})
			name := f.add(tc.spec)
			op := f.claimAndSign(name, sampleData)
			f.clock.Advance(time.Hour)
			o, err := f.op(op.Name)
			f.must(err)
			tc.check(t, f, name, o)
		})
	}
}

func invalidSignature(t *testing.T, f *fixture, name string, op *cm.GoogleLongrunningOperation) {
	t.Helper()
	got := signResponse(t, op)
	if got.Signature == "" {
		t.Fatal("no signature")
	}
	if err := verify(b64(t, got.SubjectPublicKeyInfo), sampleData, b64(t, got.Signature)); err == nil {
		t.Error("a wrong client's signature verifies")
	}
	if s := f.snap(name); s.State != StateSigned || s.FailureMessage != "" {
		t.Errorf("snapshot: state=%s failure=%q (the API cannot know the signature is wrong)", s.State, s.FailureMessage)
	}
}

func TestKeyTypes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key  KeyType
		bits int // RSA modulus or EC curve size
		alg  string
		slow bool
	}{
		{RSA2048, 2048, AlgorithmRSA, false},
		{ECP256, 256, AlgorithmECDSA, false},
		{RSA1024, 1024, AlgorithmRSA, false},
		{ECP384, 384, AlgorithmECDSA, false},
		{RSA4096, 4096, AlgorithmRSA, true},
	}
	for _, tc := range tests {
		t.Run(tc.key.String(), func(t *testing.T) {
			t.Parallel()
			if tc.slow && testing.Short() {
				t.Skip("RSA-4096 key generation is slow")
			}
			f := newFixture(t, Options{})
			name := f.add(ClientSpec{Key: tc.key})
			p, err := f.get(name)
			f.must(err)
			pub, err := x509.ParsePKIXPublicKey(b64(t, p.SubjectPublicKeyInfo))
			f.must(err)
			var bits int
			switch k := pub.(type) {
			case *rsa.PublicKey:
				bits = k.N.BitLen()
			case *ecdsa.PublicKey:
				bits = k.Curve.Params().BitSize
			}
			if bits != tc.bits {
				t.Errorf("key size %d, want %d", bits, tc.bits)
			}
			// The client signs whatever it holds; refusing such keys is the
			// adapter's job.
			op := f.claimAndSign(name, sampleData)
			o, err := f.op(op.Name)
			f.must(err)
			got := signResponse(t, o)
			if got.SignatureAlgorithm != tc.alg {
				t.Errorf("algorithm %q, want %q", got.SignatureAlgorithm, tc.alg)
			}
			if err := verify(b64(t, got.SubjectPublicKeyInfo), sampleData, b64(t, got.Signature)); err != nil {
				t.Errorf("signature: %v", err)
			}
		})
	}
}

func TestOwnSigner(t *testing.T) {
	t.Parallel()
	k, err := pooledKey(ECP256, 0) // any key works
	f := newFixture(t, Options{})
	f.must(err)
	name := f.add(ClientSpec{Signer: k.signer})
	if s := f.snap(name); s.Key != ECP256 || string(s.SPKI) != string(k.spki) {
		t.Errorf("snapshot key %s", s.Key)
	}
	if _, err := New(Options{}).AddClient(t.Context(), ClientSpec{Customer: "c", Signer: &badSigner{}}); err == nil {
		t.Error("AddClient accepted an unsupported signer")
	}
}

func TestSCEPProcess(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	scep := &ScepSpec{
		SubjectCommonName: "${USER_EMAIL}", Organization: "Example", OrganizationalUnits: []string{"IT", "Ops"},
		Locality: "Berlin", State: "BE", Country: "DE",
		SubjectAltNames: []SubjectAltName{{Type: "RFC822_NAME", Value: "a@example.com"}, {Type: "OTHER_NAME_USER_PRINCIPAL_NAME", Value: "a@corp"}},
		KeyUsages:       []string{"KEY_USAGE_SIGNING", "KEY_USAGE_KEY_ENCIPHERMENT"}, CertificateTemplateName: "ChromeUser",
	}
	name := f.add(ClientSpec{Kind: User, Key: RSA2048, CARef: "ndes", SCEP: scep})
	p, err := f.get(name)
	f.must(err)
	want := &cm.GoogleChromeManagementVersionsV1ScepProfile{
		SubjectCommonName: "${USER_EMAIL}", Organization: "Example", OrganizationalUnits: []string{"IT", "Ops"},
		Locality: "Berlin", State: "BE", Country: "DE",
		SubjectAltNames: []*cm.GoogleChromeManagementVersionsV1SubjectAltName{{Type: "RFC822_NAME", Value: "a@example.com"}, {Type: "OTHER_NAME_USER_PRINCIPAL_NAME", Value: "a@corp"}},
		KeyUsages:       []string{"KEY_USAGE_SIGNING", "KEY_USAGE_KEY_ENCIPHERMENT"}, CertificateTemplateName: "ChromeUser",
	}
	if diff := cmp.Diff(want, p.ScepProfile); diff != "" {
		t.Errorf("scepProfile (-want +got):\n%s", diff)
	}
	if p.ScepCaConnection == nil || p.ScepCaConnection.CaConnectionAdapterConfigReference != "ndes" || p.GenericCaConnection != nil || p.GenericProfile != nil {
		t.Errorf("CA connection: scep=%+v generic=%+v profile=%+v", p.ScepCaConnection, p.GenericCaConnection, p.GenericProfile)
	}
	if p.SignatureAlgorithm != AlgorithmRSA {
		t.Errorf("SCEP process before signData: signatureAlgorithm=%q, want %q", p.SignatureAlgorithm, AlgorithmRSA)
	}
	f.must(f.claim(name, "a"))
	_, err = f.signData(name, sampleData, AlgorithmECDSA)
	if code, status, _ := apiStatus(t, err); code != 400 || status != "INVALID_ARGUMENT" {
		t.Errorf("signData with the wrong algorithm: %d %s", code, status)
	}
}

type badSigner struct{ ecdsa.PrivateKey }

func (badSigner) Public() crypto.PublicKey { return "not a key" }

// A client that missed the push answers at its first check-in not before
// signData, counted from the process's start, and never when none is left.
func TestCheckInClients(t *testing.T) {
	t.Parallel()
	checkIns := []time.Duration{30 * time.Second, 2 * time.Minute}
	tests := []struct {
		name     string
		signData time.Duration // after the start
		want     time.Duration // signed at, after the start; 0: never
	}{
		{"before the first check-in", 10 * time.Second, 30 * time.Second},
		{"at a check-in", 30 * time.Second, 30 * time.Second},
		{"between check-ins", time.Minute, 2 * time.Minute},
		{"after the last check-in", 3 * time.Minute, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, Options{})
			name := f.add(ClientSpec{Key: ECP256, SignDelay: time.Second, CheckIns: checkIns})
			f.clock.Advance(tc.signData)
			op := f.claimAndSign(name, sampleData)
			if tc.want > tc.signData {
				f.clock.Advance(tc.want - tc.signData - time.Millisecond)
				o, err := f.op(op.Name)
				f.must(err)
				if o.Done {
					t.Fatalf("operation done just before the check-in at %s", tc.want)
				}
			}
			f.clock.Advance(10 * time.Hour)
			o, err := f.op(op.Name)
			f.must(err)
			s := f.snap(name)
			switch {
			case tc.want == 0 && (o.Done || s.State != StateSigning):
				t.Errorf("client without a check-in left answered: done=%v state=%s", o.Done, s.State)
			case tc.want > 0 && !s.SignedAt.Equal(t0.Add(tc.want)):
				t.Errorf("signed at %v, want %v (the check-in)", s.SignedAt.Sub(t0), tc.want)
			}
		})
	}
}

func TestCheckInsFrom(t *testing.T) {
	t.Parallel()
	never := func() float64 { return 0 }
	most := func() float64 { return 1 }
	tests := []struct {
		name    string
		k       int
		horizon time.Duration
		early   func() float64
		scale   float64
		want    []time.Duration
	}{
		{"from 30 s, an hour", 0, time.Hour, never, 0, []time.Duration{30 * time.Second, 2 * time.Minute, 8 * time.Minute}},
		{"from 2 min, a day: every 8 h after 8 min", 1, 24 * time.Hour, never, 1,
			[]time.Duration{2 * time.Minute, 8 * time.Minute, 8*time.Hour + 8*time.Minute, 16*time.Hour + 8*time.Minute}},
		{"a tenth early, scaled by 60", 2, time.Hour, most, 60, []time.Duration{7200 * time.Millisecond}},
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.want, CheckInsFrom(tc.k, tc.horizon, tc.early, tc.scale)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
}
