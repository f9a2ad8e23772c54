// Package strictjson decodes JSON that people write by hand (the adapter
// config, a CA connection's settings) so that a typo is an error instead of a
// setting silently left at its default.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// Unmarshal decodes data into v like json.Unmarshal, but a field that v does
// not have is an error, and so is anything after the first JSON value.
func Unmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}
