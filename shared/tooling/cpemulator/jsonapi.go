package cpemulator

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// apiError is an error answer in Google's JSON error format.
type apiError struct {
	HTTP    int
	Status  string // google.rpc.Code name
	Message string
	Details []any
}

func errInvalid(msg string) *apiError {
	return &apiError{HTTP: http.StatusBadRequest, Status: "INVALID_ARGUMENT", Message: msg}
}

func errPrecondition(msg string) *apiError {
	return &apiError{HTTP: http.StatusBadRequest, Status: "FAILED_PRECONDITION", Message: msg}
}

func errNotFound(msg string) *apiError {
	return &apiError{HTTP: http.StatusNotFound, Status: "NOT_FOUND", Message: msg}
}

func errUnavailable() *apiError {
	return &apiError{HTTP: http.StatusServiceUnavailable, Status: "UNAVAILABLE", Message: "The service is currently unavailable."}
}

type errorBody struct {
	Error errorJSON `json:"error"`
}

type errorJSON struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Status  string `json:"status"`
	Details []any  `json:"details,omitempty"`
}

func writeError(w http.ResponseWriter, r *http.Request, e *apiError) {
	b, err := json.Marshal(errorBody{Error: errorJSON{Code: e.HTTP, Message: e.Message, Status: e.Status, Details: e.Details}})
	if err != nil {
		b = []byte(`{"error":{"code":500,"message":"Internal error encountered.","status":"INTERNAL"}}`)
		e = &apiError{HTTP: http.StatusInternalServerError}
	}
	writeBody(w, r, e.HTTP, b)
}

type fieldViolation struct {
	Field       string `json:"field,omitempty"`
	Description string `json:"description"`
}

type badRequest struct {
	Type            string           `json:"@type"`
	FieldViolations []fieldViolation `json:"fieldViolations"`
}

// badPayload is Google's answer to a body it cannot bind: INVALID_ARGUMENT
// with a google.rpc.BadRequest detail per problem.
func badPayload(v []fieldViolation) *apiError {
	msgs := make([]string, len(v))
	for i, fv := range v {
		msgs[i] = fv.Description
	}
	e := errInvalid(strings.Join(msgs, "\n"))
	e.Details = []any{badRequest{Type: "type.googleapis.com/google.rpc.BadRequest", FieldViolations: v}}
	return e
}

type fieldKind int

const (
	kindString fieldKind = iota
	kindBytes
	kindEnum
)

// reqField is one field of a request message: its proto3 JSON name and its
// proto name (proto3 JSON parsers accept both).
type reqField struct {
	json, proto string
	kind        fieldKind
	enumType    string
	enum        []string // index is the enum number
}

var signatureAlgorithms = []string{algUnspecified, AlgorithmRSA, AlgorithmECDSA}

var (
	claimRequest = []reqField{{json: "callerInstanceId", proto: "caller_instance_id"}}
	signRequest  = []reqField{
		{json: "signData", proto: "sign_data", kind: kindBytes},
		{json: "signatureAlgorithm", proto: "signature_algorithm", kind: kindEnum,
			enumType: "type.googleapis.com/google.chrome.management.versions.v1.SignatureAlgorithm", enum: signatureAlgorithms},
	}
	uploadRequest  = []reqField{{json: "certificatePem", proto: "certificate_pem"}}
	failureRequest = []reqField{{json: "errorMessage", proto: "error_message"}}
)

// requestValues holds a decoded request: string for string and enum fields,
// []byte for bytes fields; absent fields are missing.
type requestValues map[string]any

func (v requestValues) str(name string) string {
	s, _ := v[name].(string)
	return s
}

func (v requestValues) bytes(name string) []byte {
	b, _ := v[name].([]byte)
	return b
}

// decodeRequest binds a JSON body to a request message the way Google's
// front end does: unknown names and ill-typed values are INVALID_ARGUMENT, an
// empty body is the empty message.
func decodeRequest(body []byte, fields []reqField) (requestValues, *apiError) {
	out := requestValues{}
	if len(bytes.TrimSpace(body)) == 0 {
		return out, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return nil, badPayload([]fieldViolation{{Description: "Invalid JSON payload received. Expected an object."}})
		}
		return nil, badPayload([]fieldViolation{{Description: "Invalid JSON payload received. Unexpected token: " + err.Error()}})
	}
	names := slices.Sorted(maps.Keys(raw))
	var bad []fieldViolation
	for _, k := range names {
		f, ok := findField(fields, k)
		if !ok {
			bad = append(bad, fieldViolation{Description: fmt.Sprintf("Invalid JSON payload received. Unknown name %q: Cannot find field.", k)})
			continue
		}
		v := raw[k]
		if string(bytes.TrimSpace(v)) == "null" {
			continue
		}
		val, ok := bindValue(f, v)
		if !ok {
			bad = append(bad, fieldViolation{Field: f.proto, Description: invalidValue(f, v)})
			continue
		}
		out[f.json] = val
	}
	if len(bad) > 0 {
		return nil, badPayload(bad)
	}
	return out, nil
}

func findField(fields []reqField, name string) (reqField, bool) {
	for _, f := range fields {
		if f.json == name || f.proto == name {
			return f, true
		}
	}
	return reqField{}, false
}

func bindValue(f reqField, v json.RawMessage) (any, bool) {
	var s string
	isString := json.Unmarshal(v, &s) == nil
	switch f.kind {
	case kindString:
		return s, isString
	case kindBytes:
		if !isString {
			return nil, false
		}
		b, err := decodeBase64(s)
		return b, err == nil
	case kindEnum:
		if isString {
			for _, name := range f.enum {
				if name == s {
					return s, true
				}
			}
			return nil, false
		}
		var n int
		if json.Unmarshal(v, &n) == nil && n >= 0 && n < len(f.enum) {
			return f.enum[n], true
		}
		return nil, false
	}
	return nil, false
}

func invalidValue(f reqField, v json.RawMessage) string {
	val := string(bytes.TrimSpace(v))
	switch f.kind {
	case kindBytes:
		var s string
		if json.Unmarshal(v, &s) == nil {
			return fmt.Sprintf("Invalid value at '%s' (TYPE_BYTES), Base64 decoding failed for %q", f.proto, s)
		}
		return fmt.Sprintf("Invalid value at '%s' (TYPE_BYTES), %s", f.proto, val)
	case kindEnum:
		return fmt.Sprintf("Invalid value at '%s' (%s), %s", f.proto, f.enumType, val)
	default:
		return fmt.Sprintf("Invalid value at '%s' (TYPE_STRING), %s", f.proto, val)
	}
}

// decodeBase64 accepts what proto3 JSON parsers accept for bytes: standard or
// URL-safe alphabet, with or without padding.
func decodeBase64(s string) ([]byte, error) {
	t := strings.TrimRight(s, "=")
	if strings.ContainsAny(t, "-_") {
		return base64.RawURLEncoding.DecodeString(t)
	}
	return base64.RawStdEncoding.DecodeString(t)
}

// fieldMask is a parsed `fields` parameter: each name maps to its sub-mask,
// nil meaning the whole value.
type fieldMask map[string]fieldMask

// parseFieldMask parses the partial-response syntax: a,b/c,d(e,f).
func parseFieldMask(s string) (fieldMask, error) {
	m := fieldMask{}
	rest, err := parseMaskList(strings.ReplaceAll(s, " ", ""), m)
	if err != nil {
		return nil, err
	}
	if rest != "" {
		return nil, fmt.Errorf("unexpected %q", rest)
	}
	return m, nil
}

func parseMaskList(s string, into fieldMask) (string, error) {
	for {
		var err error
		if s, err = parseMaskItem(s, into); err != nil {
			return "", err
		}
		if !strings.HasPrefix(s, ",") {
			return s, nil
		}
		s = s[1:]
	}
}

func parseMaskItem(s string, into fieldMask) (string, error) {
	end := strings.IndexAny(s, ",()")
	if end < 0 {
		end = len(s)
	}
	path := s[:end]
	s = s[end:]
	if path == "" {
		return "", errors.New("empty field name")
	}
	parts := strings.Split(path, "/")
	node := into
	for i, p := range parts {
		if p == "" {
			return "", errors.New("empty field name")
		}
		last := i == len(parts)-1
		child, seen := node[p]
		if seen && child == nil {
			return s, skipSub(&s, last) // already selected whole
		}
		if last && !strings.HasPrefix(s, "(") {
			node[p] = nil
			return s, nil
		}
		if child == nil {
			child = fieldMask{}
			node[p] = child
		}
		node = child
	}
	// s starts with "(": a sub-selection.
	rest, err := parseMaskList(s[1:], node)
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(rest, ")") {
		return "", errors.New("missing )")
	}
	return rest[1:], nil
}

// skipSub skips a sub-selection of a field that is already selected whole.
func skipSub(s *string, last bool) error {
	if !last || !strings.HasPrefix(*s, "(") {
		return nil
	}
	rest, err := parseMaskList((*s)[1:], fieldMask{})
	if err != nil {
		return err
	}
	if !strings.HasPrefix(rest, ")") {
		return errors.New("missing )")
	}
	*s = rest[1:]
	return nil
}

// projectFields keeps only the selected fields of a JSON object.
func projectFields(b []byte, fields string) ([]byte, error) {
	m, err := parseFieldMask(fields)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return json.Marshal(applyMask(v, m))
}

func applyMask(v any, m fieldMask) any {
	if m == nil {
		return v
	}
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(m))
		for k, sub := range m {
			if fv, ok := t[k]; ok {
				out[k] = applyMask(fv, sub)
			}
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = applyMask(e, m)
		}
		return out
	}
	return v
}

// timestamp formats t as proto3 JSON does: UTC, 0, 3, 6 or 9 fractional digits.
func timestamp(t time.Time) string {
	t = t.UTC()
	ns := t.Nanosecond()
	base := t.Format("2006-01-02T15:04:05")
	switch {
	case ns == 0:
		return base + "Z"
	case ns%1e6 == 0:
		return base + "." + pad(ns/1e6, 3) + "Z"
	case ns%1e3 == 0:
		return base + "." + pad(ns/1e3, 6) + "Z"
	}
	return base + "." + pad(ns, 9) + "Z"
}

func pad(n, width int) string {
	s := strconv.Itoa(n)
	for len(s) < width {
		s = "0" + s
	}
	return s
}
