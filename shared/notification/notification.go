// Package notification decodes the Pub/Sub message with which the Certificate
// Provisioning API announces a new process. The API does not document whether the
// body is binary protobuf or proto3 JSON, so both are accepted; anything else is
// an *Error that the caller logs and acknowledges (never retries).
package notification

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// Event says that a certificate provisioning process was created.
type Event struct {
	CustomerID string
	ProcessID  string
}

// Name is the process's resource name.
func (e Event) Name() string {
	return "customers/" + e.CustomerID + "/certificateProvisioningProcesses/" + e.ProcessID
}

// Format is the encoding a message arrived in.
type Format string

const (
	FormatBinary Format = "protobuf"
	FormatJSON   Format = "json"
)

// Error is a message that is not a valid notification. It is permanent: a retry
// would get the same bytes.
type Error struct {
	Reason string
}

func (e *Error) Error() string { return "malformed notification: " + e.Reason }

func malformed(format string, args ...any) error {
	return &Error{Reason: fmt.Sprintf(format, args...)}
}

// Field numbers of CertificateProvisioningPubsubNotification and of
// CertificateProvisioningProcessCreatedEventData.
const (
	fieldCreatedEvent = 1
	fieldProcessID    = 1
	fieldCustomerID   = 2
)

// maxIDLen bounds the ids: they name a Firestore document and a Cloud Tasks task.
const maxIDLen = 128

// Decode parses data as proto3 JSON (when it starts with '{' after white space)
// or else as binary protobuf, and checks both ids. On error the Event is zero.
func Decode(data []byte) (Event, Format, error) {
	if len(data) == 0 {
		return Event{}, "", malformed("empty message body")
	}
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		ev, err := decodeJSON(t)
		return ev, FormatJSON, err
	}
	ev, err := decodeBinary(data)
	return ev, FormatBinary, err
}

func decodeBinary(data []byte) (Event, error) {
	var ev Event
	found := false
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return Event{}, malformed("not protobuf or JSON: bad tag: %v", protowire.ParseError(n))
		}
		data = data[n:]
		if num == fieldCreatedEvent && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(data)
			if n < 0 {
				return Event{}, malformed("bad event field: %v", protowire.ParseError(n))
			}
			data = data[n:]
			inner, err := decodeEventData(v)
			if err != nil {
				return Event{}, err
			}
			ev, found = inner, true // proto semantics: the last one wins
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, data)
		if n < 0 {
			return Event{}, malformed("not protobuf or JSON: bad field %d: %v", num, protowire.ParseError(n))
		}
		data = data[n:]
	}
	if !found {
		return Event{}, malformed("no certificateProvisioningProcessCreatedEventData in the message")
	}
	return checked(ev)
}

func decodeEventData(data []byte) (Event, error) {
	var ev Event
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return Event{}, malformed("bad event data tag: %v", protowire.ParseError(n))
		}
		data = data[n:]
		if typ == protowire.BytesType && (num == fieldProcessID || num == fieldCustomerID) {
			v, n := protowire.ConsumeBytes(data)
			if n < 0 {
				return Event{}, malformed("bad event data field %d: %v", num, protowire.ParseError(n))
			}
			data = data[n:]
			if !utf8.Valid(v) {
				return Event{}, malformed("event data field %d is not UTF-8", num)
			}
			if num == fieldProcessID {
				ev.ProcessID = string(v)
			} else {
				ev.CustomerID = string(v)
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, data)
		if n < 0 {
			return Event{}, malformed("bad event data field %d: %v", num, protowire.ParseError(n))
		}
		data = data[n:]
	}
	return ev, nil
}

// jsonEventData accepts both the lowerCamelCase names proto3 JSON prints and the
// original field names, which proto3 JSON parsers also accept.
type jsonEventData struct {
	ProcessID      *string `json:"certificateProvisioningProcessId"`
	ProcessIDSnake *string `json:"certificate_provisioning_process_id"`
	Customer       *string `json:"customerId"`
	CustomerSnake  *string `json:"customer_id"`
}

func decodeJSON(data []byte) (Event, error) {
	var msg map[string]json.RawMessage
	if err := json.Unmarshal(data, &msg); err != nil {
		return Event{}, malformed("invalid JSON: %v", err)
	}
	raw, ok := msg["certificateProvisioningProcessCreatedEventData"]
	if snake, ok2 := msg["certificate_provisioning_process_created_event_data"]; ok2 {
		if ok {
			return Event{}, malformed("event data given twice")
		}
		raw, ok = snake, true
	}
	if !ok {
		return Event{}, malformed("no certificateProvisioningProcessCreatedEventData in the message")
	}
	var d jsonEventData
	if err := json.Unmarshal(raw, &d); err != nil {
		return Event{}, malformed("invalid event data: %v", err)
	}
	pick := func(name string, a, b *string) (string, error) {
		if a != nil && b != nil {
			return "", malformed("%s given twice", name)
		}
		if a != nil {
			return *a, nil
		}
		if b != nil {
			return *b, nil
		}
		return "", nil
	}
	var ev Event
	var err error
	if ev.ProcessID, err = pick("certificateProvisioningProcessId", d.ProcessID, d.ProcessIDSnake); err != nil {
		return Event{}, err
	}
	if ev.CustomerID, err = pick("customerId", d.Customer, d.CustomerSnake); err != nil {
		return Event{}, err
	}
	return checked(ev)
}

// checked returns ev if its ids are valid, and otherwise the zero Event, so
// that a refused id never reaches a caller.
func checked(ev Event) (Event, error) {
	if err := validate(ev); err != nil {
		return Event{}, err
	}
	return ev, nil
}

// validate keeps ids to the characters the API uses, so they are safe in a
// resource name, a document id and a task name.
func validate(ev Event) error {
	var errs []error
	for _, f := range []struct{ name, v string }{{"customer id", ev.CustomerID}, {"process id", ev.ProcessID}} {
		switch {
		case f.v == "":
			errs = append(errs, malformed("%s is missing", f.name))
		case len(f.v) > maxIDLen:
			errs = append(errs, malformed("%s is longer than %d characters", f.name, maxIDLen))
		case !idChars(f.v):
			errs = append(errs, malformed("%s %q has characters other than letters, digits, '-' and '_'", f.name, f.v))
		}
	}
	return errors.Join(errs...)
}

func idChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// EncodeBinary returns ev as a binary CertificateProvisioningPubsubNotification.
func EncodeBinary(ev Event) []byte {
	var inner []byte
	inner = protowire.AppendTag(inner, fieldProcessID, protowire.BytesType)
	inner = protowire.AppendString(inner, ev.ProcessID)
	inner = protowire.AppendTag(inner, fieldCustomerID, protowire.BytesType)
	inner = protowire.AppendString(inner, ev.CustomerID)
	var b []byte
	b = protowire.AppendTag(b, fieldCreatedEvent, protowire.BytesType)
	return protowire.AppendBytes(b, inner)
}

// EncodeJSON returns ev as proto3 JSON.
func EncodeJSON(ev Event) []byte {
	b, _ := json.Marshal(map[string]any{
		"certificateProvisioningProcessCreatedEventData": map[string]string{
			"certificateProvisioningProcessId": ev.ProcessID,
			"customerId":                       ev.CustomerID,
		},
	})
	return b
}
