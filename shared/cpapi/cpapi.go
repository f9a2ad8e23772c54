// Package cpapi calls the Certificate Provisioning API through the generated
// google.golang.org/api/chromemanagement/v1 client, and classifies its errors
// as transient (retry) or permanent.
package cpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	cm "google.golang.org/api/chromemanagement/v1"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
)

// Scope is the OAuth scope of the Certificate Provisioning API (the generated
// client has no constant for it).
const Scope = "https://www.googleapis.com/auth/chrome.management.certprov.provisioningprocess"

// Process is the API's process resource.
type Process = cm.GoogleChromeManagementVersionsV1CertificateProvisioningProcess

// Client calls the API for one deployment.
type Client struct {
	procs   *cm.CustomersCertificateProvisioningProcessesService
	timeout time.Duration
}

// Options configure New.
type Options struct {
	// Endpoint overrides the API base URL (a Private Service Connect or other
	// non-default endpoint). Calls keep Application Default Credentials and
	// the API's scope. Empty: the default endpoint.
	Endpoint string
	// EmulatorHost is the host:port (or base URL) of an API emulator. When
	// set, calls go there without credentials, whatever Endpoint says.
	EmulatorHost string
	// HTTPClient is used with EmulatorHost (tests, fault injection); a client
	// of one's own would bypass the credentials, so it is not used otherwise.
	HTTPClient *http.Client
	// ClientOptions are added last (tests: option.WithTokenSource).
	ClientOptions []option.ClientOption
	// Timeout bounds each call; default 30s.
	Timeout time.Duration
}

// EmulatorURL is the base URL of the emulator at host (host:port, or a URL).
func EmulatorURL(host string) string {
	if !strings.Contains(host, "://") {
		host = "http://" + host
	}
	return strings.TrimSuffix(host, "/") + "/"
}

// New returns a client.
func New(ctx context.Context, o Options) (*Client, error) {
	var opts []option.ClientOption
	if o.EmulatorHost != "" {
		opts = append(opts, option.WithEndpoint(EmulatorURL(o.EmulatorHost)), option.WithoutAuthentication())
		if o.HTTPClient != nil {
			opts = append(opts, option.WithHTTPClient(o.HTTPClient))
		}
	} else {
		opts = append(opts, option.WithScopes(Scope))
		if o.Endpoint != "" {
			opts = append(opts, option.WithEndpoint(o.Endpoint))
		}
	}
	opts = append(opts, o.ClientOptions...)
	svc, err := cm.NewService(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("cpapi: new chromemanagement service: %w", err)
	}
	t := o.Timeout
	if t <= 0 {
		t = 30 * time.Second
	}
	return &Client{procs: svc.Customers.CertificateProvisioningProcesses, timeout: t}, nil
}

// Get reads a process.
func (c *Client) Get(ctx context.Context, name string) (*Process, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	p, err := c.procs.Get(name).Context(ctx).Do()
	if err != nil {
		return nil, wrap("get", name, err)
	}
	return p, nil
}

// ErrClaimRefused says the API refused the claim (another caller instance id holds it).
var ErrClaimRefused = errors.New("claim refused: the process is claimed by another adapter")

// Claim claims the process for callerID. A 400 answer is ErrClaimRefused.
func (c *Client) Claim(ctx context.Context, name, callerID string) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	_, err := c.procs.Claim(name, &cm.GoogleChromeManagementVersionsV1ClaimCertificateProvisioningProcessRequest{CallerInstanceId: callerID}).Context(ctx).Do()
	if err != nil {
		var ge *googleapi.Error
		if errors.As(err, &ge) && ge.Code == http.StatusBadRequest {
			return &Error{Method: "claim", Name: name, Code: ge.Code, Err: fmt.Errorf("%w (%s)", ErrClaimRefused, ge.Message)}
		}
		return wrap("claim", name, err)
	}
	return nil
}

// SignData asks the client to sign data and returns the operation's name.
func (c *Client) SignData(ctx context.Context, name string, data []byte, algorithm string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	op, err := c.procs.SignData(name, &cm.GoogleChromeManagementVersionsV1SignDataRequest{
		SignData:           base64.StdEncoding.EncodeToString(data),
		SignatureAlgorithm: algorithm,
	}).Context(ctx).Do()
	if err != nil {
		return "", wrap("signData", name, err)
	}
	if op.Name == "" {
		return "", &Error{Method: "signData", Name: name, Transient: false, Err: errors.New("the operation has no name")}
	}
	return op.Name, nil
}

// Operation is the state of a signData operation.
type Operation struct {
	Done bool
	// Signature is set when Done and the client signed.
	Signature []byte
	// ErrorCode and ErrorMessage are set when Done with an error: the API has
	// failed the process already.
	ErrorCode    int64
	ErrorMessage string
}

// GetOperation reads a signData operation.
func (c *Client) GetOperation(ctx context.Context, opName string) (*Operation, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	op, err := c.procs.Operations.Get(opName).Context(ctx).Do()
	if err != nil {
		return nil, wrap("operations.get", opName, err)
	}
	out := &Operation{Done: op.Done}
	if !op.Done {
		return out, nil
	}
	if op.Error != nil {
		out.ErrorCode, out.ErrorMessage = op.Error.Code, op.Error.Message
		if out.ErrorCode == 0 {
			out.ErrorCode = 2 // UNKNOWN
		}
		return out, nil
	}
	var resp cm.GoogleChromeManagementVersionsV1SignDataResponse
	if len(op.Response) == 0 {
		return nil, &Error{Method: "operations.get", Name: opName, Err: errors.New("done operation without response or error")}
	}
	if err := json.Unmarshal(op.Response, &resp); err != nil {
		return nil, &Error{Method: "operations.get", Name: opName, Err: fmt.Errorf("decode response: %w", err)}
	}
	if resp.CertificateProvisioningProcess == nil || resp.CertificateProvisioningProcess.Signature == "" {
		return nil, &Error{Method: "operations.get", Name: opName, Err: errors.New("done operation without a signature")}
	}
	sig, err := base64.StdEncoding.DecodeString(resp.CertificateProvisioningProcess.Signature)
	if err != nil {
		return nil, &Error{Method: "operations.get", Name: opName, Err: fmt.Errorf("decode signature: %w", err)}
	}
	out.Signature = sig
	return out, nil
}

// UploadCertificate uploads one PEM certificate.
func (c *Client) UploadCertificate(ctx context.Context, name, certPEM string) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	_, err := c.procs.UploadCertificate(name, &cm.GoogleChromeManagementVersionsV1UploadCertificateRequest{CertificatePem: certPEM}).Context(ctx).Do()
	return wrap("uploadCertificate", name, err)
}

// SetFailure fails the process with a message the device shows.
func (c *Client) SetFailure(ctx context.Context, name, message string) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	_, err := c.procs.SetFailure(name, &cm.GoogleChromeManagementVersionsV1SetFailureRequest{ErrorMessage: message}).Context(ctx).Do()
	return wrap("setFailure", name, err)
}

// Error is a failed call.
type Error struct {
	Method string
	Name   string
	// Code is the HTTP status, 0 for a transport failure.
	Code      int
	Transient bool
	Err       error
}

func (e *Error) Error() string {
	return fmt.Sprintf("cpapi: %s %s: %v", e.Method, e.Name, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

func wrap(method, name string, err error) error {
	if err == nil {
		return nil
	}
	e := &Error{Method: method, Name: name, Err: err, Transient: true}
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		e.Code = ge.Code
		e.Transient = ge.Code == http.StatusTooManyRequests || ge.Code == http.StatusRequestTimeout || ge.Code >= 500
		return e
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) {
		e.Transient = true
	}
	return e
}

// Transient reports whether err is worth retrying: 429, 408, 5xx, timeouts and
// transport failures. Unknown errors count as transient; a bounded retry budget
// then ends them.
func Transient(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Transient
	}
	return true
}

// IsNotFound reports whether err is a 404.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == http.StatusNotFound
}
