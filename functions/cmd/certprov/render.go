package main

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	cm "google.golang.org/api/chromemanagement/v1"

	"github.com/chromeos-certprov/adapter/shared/adapter"
	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/config"
	"github.com/chromeos-certprov/adapter/shared/cpapi"
	"github.com/chromeos-certprov/adapter/shared/csr"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
)

// renderReport is the result of "render" (its --json output).
type renderReport struct {
	ProcessName  string `json:"processName"`
	CAConnection string `json:"caConnection"`
	CAType       string `json:"caType"`
	Profile      string `json:"profile"`
	// Refused: the claim would fail the process.
	Refused *pipeline.RefusedError `json:"refused,omitempty"`

	KeyType            string   `json:"keyType,omitempty"`
	KeySource          string   `json:"keySource,omitempty"` // "file" or "ephemeral"
	SignatureAlgorithm string   `json:"signatureAlgorithm,omitempty"`
	Request            *request `json:"request,omitempty"`
	// ChallengePassword: the request holds a SCEP challenge password (not shown).
	ChallengePassword bool `json:"challengePassword,omitempty"`
	// Validity and CATemplate are what the issuance asks of the CA besides the CSR.
	Validity   string `json:"validity,omitempty"`
	CATemplate string `json:"caTemplate,omitempty"`
	// RequestInfoPEM is the DER CertificationRequestInfo signData sends.
	RequestInfoPEM string `json:"requestInfoPem,omitempty"`
	CSRPEM         string `json:"csrPem,omitempty"`
	// Certificate is what the CA issued (--issue).
	Certificate *certificate `json:"certificate,omitempty"`
	Notes       []string     `json:"notes,omitempty"`
}

// certificate is an issued certificate in readable form.
type certificate struct {
	Serial    string    `json:"serial"`
	Subject   string    `json:"subject"`
	Issuer    string    `json:"issuer"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	PEM       string    `json:"pem,omitempty"`
}

func describeCertificate(c *x509.Certificate) *certificate {
	return &certificate{Serial: fmt.Sprintf("%X", c.SerialNumber), Subject: c.Subject.String(), Issuer: c.Issuer.String(),
		NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC()}
}

func render(ctx context.Context, e env, args []string) int {
	fs, asJSON := flags(e, "render", "(--config FILE | --tfvars FILE) (--profile REF | --scep-profile FILE) (--device-id ID --serial S | --user EMAIL [--user-id ID]) [--directory NAME=VALUE]... [--key FILE] [--issue] [--json]",
		`  certprov render --config adapter-config.json --profile device_profile --device-id 0a1b2c --serial 5CD1234XYZ
  certprov render --config adapter-config.json --profile user_profile --user alice@example.com --key alice.key
  certprov render --config adapter-config.json --profile device_profile --device-id D --serial S --key k.pem --issue
  certprov render --config adapter-config.json --scep-profile scep-profile.json --ca corp-scep --user alice@example.com
`)
	file := fs.String("config", "", "adapter config JSON file")
	tfvars := fs.String("tfvars", "", "terraform tfvars file whose adapter_config to use")
	profileRef := fs.String("profile", "", "profileAdapterConfigReference of a generic profile")
	scepProfile := fs.String("scep-profile", "", "a SCEP profile in the API's JSON shape (scepProfile of a process), instead of --profile")
	caRef := fs.String("ca", "", "caConnectionAdapterConfigReference (default: the config's only CA connection)")
	customer := fs.String("customer", "", "customer id (default: the first of allowedCustomers)")
	processID := fs.String("process-id", "certprov-render", "process id (the variable ${PROCESS_ID})")
	provProfile := fs.String("provisioning-profile-id", "", "provisioningProfileId of the process")
	deviceID := fs.String("device-id", "", "the device's Directory API id")
	serial := fs.String("serial", "", "the device's serial number")
	user := fs.String("user", "", "the user's primary email (a user process)")
	userID := fs.String("user-id", "", "the user's Directory API id")
	keyFile := fs.String("key", "", "PEM private key (RSA 2048 or EC P-256) standing for the device's; default: an ephemeral one")
	keyType := fs.String("key-type", "ec", "type of the ephemeral key: ec (P-256) or rsa (2048)")
	issue := fs.Bool("issue", false, "send the CSR to the CA connection and print the certificate it issues")
	dirValues := directoryValues{}
	fs.Var(dirValues, "directory", "NAME=VALUE: the value of a directory variable, as the Directory API would give it (repeatable; e.g. DEVICE_ASSET_ID=A123, USER_CUSTOM:Employment.costCenter=CC1); one not given is empty")
	pos, code, ok := parse(e, fs, args)
	if !ok {
		return code
	}
	switch {
	case len(pos) > 0:
		return usageError(e, fs, "unexpected argument %q", pos[0])
	case (*profileRef == "") == (*scepProfile == ""):
		return usageError(e, fs, "give one of --profile REF and --scep-profile FILE")
	case *user == "" && *deviceID == "" && *serial == "":
		return usageError(e, fs, "give the identity: --device-id ID --serial S, or --user EMAIL")
	case (*file == "") == (*tfvars == ""):
		return usageError(e, fs, "give one of --config FILE and --tfvars FILE")
	case *keyType != "ec" && *keyType != "rsa":
		return usageError(e, fs, "--key-type %q: want ec or rsa", *keyType)
	}
	fail := func(code int, err error) int {
		fmt.Fprintf(e.stderr, "certprov render: %v\n", err)
		return code
	}
	data, _, _, err := readAdapterConfig(*file, *tfvars)
	if err != nil {
		return fail(exitProblem, err)
	}
	a, err := config.ParseAdapter(data, adapter.ConnectorTypes())
	if err != nil {
		return fail(exitProblem, fmt.Errorf("the config does not validate (run certprov config check):\n%w", err))
	}
	if *caRef == "" {
		if len(a.CAConnections) != 1 {
			return usageError(e, fs, "the config has %d CA connections: choose one with --ca (%s)", len(a.CAConnections), strings.Join(sortedKeys(a.CAConnections), ", "))
		}
		*caRef = sortedKeys(a.CAConnections)[0]
	}
	if *customer == "" {
		*customer = "C0render"
		if len(a.AllowedCustomers) > 0 {
			*customer = a.AllowedCustomers[0]
		}
	}
	r := renderReport{CAConnection: *caRef, CAType: a.CAConnections[*caRef].Type, Profile: *profileRef,
		ProcessName: "customers/" + *customer + "/certificateProvisioningProcesses/" + *processID}

	key, err := ephemeralKey(*keyType)
	r.KeySource = "ephemeral"
	if *keyFile != "" {
		key, err = loadKey(*keyFile)
		r.KeySource = "file"
	}
	if err != nil {
		return fail(exitProblem, err)
	}
	if r.KeySource == "ephemeral" {
		r.Notes = append(r.Notes, "the key is ephemeral, generated for this render: pass --key FILE to sign with yours")
	}
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return fail(exitProblem, fmt.Errorf("the key's public key: %w", err))
	}

	proc := &cpapi.Process{Name: r.ProcessName, ProvisioningProfileId: *provProfile,
		SubjectPublicKeyInfo: base64.StdEncoding.EncodeToString(spki)}
	if *user != "" || *userID != "" {
		proc.ChromeOsUserSession = &cm.GoogleChromeManagementVersionsV1ChromeOsUserSession{UserPrimaryEmail: *user, UserDirectoryApiId: *userID}
		if *deviceID != "" || *serial != "" {
			proc.ChromeOsUserSession.ChromeOsDevice = &cm.GoogleChromeManagementVersionsV1ChromeOsDevice{DeviceDirectoryApiId: *deviceID, SerialNumber: *serial}
		}
	} else {
		proc.ChromeOsDevice = &cm.GoogleChromeManagementVersionsV1ChromeOsDevice{DeviceDirectoryApiId: *deviceID, SerialNumber: *serial}
	}
	if *scepProfile != "" {
		b, err := os.ReadFile(*scepProfile)
		if err != nil {
			return fail(exitProblem, fmt.Errorf("read the SCEP profile: %w", err))
		}
		var sp cm.GoogleChromeManagementVersionsV1ScepProfile
		if err := json.Unmarshal(b, &sp); err != nil {
			return fail(exitProblem, fmt.Errorf("the SCEP profile %s: %w", *scepProfile, err))
		}
		proc.ScepProfile = &sp
		proc.ScepCaConnection = &cm.GoogleChromeManagementVersionsV1ScepCaConnection{CaConnectionAdapterConfigReference: *caRef}
		r.Profile = "scepProfile"
	} else {
		proc.GenericProfile = &cm.GoogleChromeManagementVersionsV1GenericProfile{ProfileAdapterConfigReference: *profileRef}
		proc.GenericCaConnection = &cm.GoogleChromeManagementVersionsV1GenericCaConnection{CaConnectionAdapterConfigReference: *caRef}
	}

	// The CA connections are built as ClaimProcess builds them (only those
	// that give a challenge), or all of them, as IssueCertificate does, to issue.
	fn := "ClaimProcess"
	if *issue {
		fn = "IssueCertificate"
	}
	var missing []string
	secrets := func(name string) (string, error) {
		if v, ok := e.lookup(name); ok && v != "" {
			return v, nil
		}
		if *issue {
			return "", fmt.Errorf("secret environment variable %s is not set (--issue needs the real one)", name)
		}
		if !slices.Contains(missing, name) {
			missing = append(missing, name)
		}
		return placeholderSecret, nil
	}
	issuers, err := adapter.BuildCAsFor(ctx, a, secrets, fn)
	if err != nil {
		return fail(exitProblem, fmt.Errorf("build the CA connections:\n%w", err))
	}
	for _, name := range missing {
		r.Notes = append(r.Notes, "secret "+name+" is not set in this environment: a placeholder stands for it")
	}
	if !a.Allowed(*customer) {
		// The claim acknowledges such a notification and does nothing more.
		r.Refused = &pipeline.RefusedError{Reason: fmt.Sprintf("customer %s is not in allowedCustomers: the claim acknowledges its notifications and ignores them", *customer),
			Message: "(none: the process is not claimed, so the device waits and is shown nothing)"}
		return r.print(e, *asJSON, exitProblem)
	}
	p := &pipeline.Pipeline{CAs: issuers, Profiles: a.Profiles, Directory: dirValues}
	rendered, err := p.Render(ctx, *customer, *processID, proc)
	var refused *pipeline.RefusedError
	switch {
	case errors.As(err, &refused):
		r.Refused = refused
		return r.print(e, *asJSON, exitProblem)
	case err != nil:
		return fail(exitUnreachable, err)
	}
	r.KeyType, r.SignatureAlgorithm, r.ChallengePassword = string(rendered.KeyType), rendered.SignatureAlgorithm, rendered.Challenge
	r.RequestInfoPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATION REQUEST INFO", Bytes: rendered.RequestInfo}))
	var validity time.Duration
	if prof, ok := a.Profiles[*profileRef]; ok && *scepProfile == "" {
		validity, r.CATemplate = prof.ValidityDuration(), prof.TemplateName
	}
	r.Validity = "the CA's default"
	if validity > 0 {
		r.Validity = fmt.Sprintf("%s (%.4g days)", validity, validity.Hours()/24)
	}
	sig, err := sign(key, rendered.RequestInfo)
	if err != nil {
		return fail(exitProblem, fmt.Errorf("sign: %w", err))
	}
	der, err := csr.Assemble(rendered.RequestInfo, sig, rendered.SignatureAlgorithm)
	if err != nil {
		return fail(exitProblem, err)
	}
	r.CSRPEM = string(csr.PEM(der))
	if r.Request, err = describe(der); err != nil {
		return fail(exitProblem, err)
	}
	if !*issue {
		return r.print(e, *asJSON, exitOK)
	}
	// A request id of its own per run: a CA that deduplicates by it (CAS)
	// must not answer an earlier render's certificate.
	issued, err := issuers[*caRef].Issue(ctx, ca.Request{CSR: der, RequestID: "certprov-render-" + uuid.NewString(),
		Validity: validity, TemplateName: r.CATemplate})
	if err != nil {
		r.Notes = append(r.Notes, "the CA did not issue: "+err.Error())
		code := exitProblem
		if ca.KindOf(err) == ca.Transient {
			code = exitUnreachable
		}
		return r.print(e, *asJSON, code)
	}
	if issued == nil || issued.Leaf == nil {
		r.Notes = append(r.Notes, "the CA answered pending: ask again later")
		return r.print(e, *asJSON, exitProblem)
	}
	r.Certificate = describeCertificate(issued.Leaf)
	r.Certificate.PEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: issued.Leaf.Raw}))
	return r.print(e, *asJSON, exitOK)
}

func (r renderReport) print(e env, asJSON bool, code int) int {
	if asJSON {
		if err := writeJSON(e.stdout, r); err != nil {
			return exitProblem
		}
		return code
	}
	w := e.stdout
	fmt.Fprintf(w, "process:             %s\n", r.ProcessName)
	fmt.Fprintf(w, "profile:             %s\n", r.Profile)
	fmt.Fprintf(w, "CA connection:       %s (%s)\n", r.CAConnection, r.CAType)
	if r.Refused != nil {
		fmt.Fprintf(w, "REFUSED by the claim: %s\n", r.Refused.Reason)
		fmt.Fprintf(w, "the device would be shown: %s\n", r.Refused.Message)
		return code
	}
	fmt.Fprintf(w, "key:                 %s (%s)\n", r.KeyType, r.KeySource)
	fmt.Fprintf(w, "signature algorithm: %s\n", r.SignatureAlgorithm)
	fmt.Fprintf(w, "subject:             %s\n", r.Request.Subject)
	fmt.Fprintf(w, "subject alt names:   %s\n", joinOrNone(r.Request.SANs))
	fmt.Fprintf(w, "key usages:          %s\n", joinOrNone(r.Request.KeyUsages))
	fmt.Fprintf(w, "extended key usages: %s\n", joinOrNone(r.Request.ExtKeyUsages))
	if r.Request.TemplateName != "" {
		fmt.Fprintf(w, "template extension:  %s\n", r.Request.TemplateName)
	}
	for _, o := range r.Request.Other {
		fmt.Fprintf(w, "other extension:     %s\n", o)
	}
	if r.ChallengePassword {
		fmt.Fprintf(w, "challenge password:  present (not shown)\n")
	}
	fmt.Fprintf(w, "validity (CA):       %s\n", r.Validity)
	if r.CATemplate != "" {
		fmt.Fprintf(w, "template (CA):       %s\n", r.CATemplate)
	}
	fmt.Fprintf(w, "\nsignData would send this CertificationRequestInfo:\n%s", r.RequestInfoPEM)
	fmt.Fprintf(w, "\nsigned with the %s key, the CSR is:\n%s", r.KeySource, r.CSRPEM)
	if c := r.Certificate; c != nil {
		fmt.Fprintf(w, "\nissued certificate: serial %s\n  subject %s\n  issuer  %s\n  valid   %s to %s\n%s",
			c.Serial, c.Subject, c.Issuer, c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339), c.PEM)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	return code
}
