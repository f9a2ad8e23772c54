package store_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/store"
	"github.com/chromeos-certprov/adapter/shared/tooling/store/storetest"
)

// TestNormalizeEveryTime finds every time of a fully populated record by
// reflection, so a time field added to progress.Record without a line in
// Normalize fails here.
func TestNormalizeEveryTime(t *testing.T) {
	r := storetest.Full("C1:p1")
	store.Normalize(r)
	var walk func(path string, v reflect.Value)
	n := 0
	walk = func(path string, v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer:
			if !v.IsNil() {
				walk(path, v.Elem())
			}
		case reflect.Slice:
			for i := 0; i < v.Len(); i++ {
				walk(fmt.Sprintf("%s[%d]", path, i), v.Index(i))
			}
		case reflect.Struct:
			if tm, ok := v.Interface().(time.Time); ok {
				n++
				if tm.Location() != time.UTC || tm.Nanosecond()%1000 != 0 {
					t.Errorf("%s = %v: not UTC to the microsecond", path, tm)
				}
				return
			}
			for i := 0; i < v.NumField(); i++ {
				walk(path+"."+v.Type().Field(i).Name, v.Field(i))
			}
		}
	}
	walk("Record", reflect.ValueOf(r))
	if n < 10 {
		t.Errorf("found %d times, want every time of the record", n)
	}
}

func TestNormalize(t *testing.T) {
	zone := time.FixedZone("X", -7*3600)
	at := time.Date(2026, 1, 2, 3, 4, 5, 999999999, zone)
	exp := at
	in := &progress.Record{
		CreatedAt: at, UpdatedAt: time.Time{}.In(zone), ExpireAt: &exp,
		History: []progress.Change{}, SPKI: []byte{}, CSR: []byte{1},
	}
	store.Normalize(in)
	wantAt := time.Date(2026, 1, 2, 10, 4, 5, 999999000, time.UTC)
	want := &progress.Record{CreatedAt: wantAt, ExpireAt: &wantAt, CSR: []byte{1}}
	// reflect.DeepEqual, stricter than cmp's time.Equal: locations and nil slices too.
	if !reflect.DeepEqual(want, in) {
		t.Errorf("Normalize = %+v, want %+v (%s)", in, want, cmp.Diff(want, in))
	}
}

func TestTransient(t *testing.T) {
	base := errors.New("x")
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{base, false},
		{progress.ErrNotFound, false},
		{&store.Error{Transient: true, Err: base}, true},
		{&store.Error{Err: base}, false},
		{fmt.Errorf("step: %w", &store.Error{Transient: true, Err: base}), true},
	} {
		if got := store.Transient(tc.err); got != tc.want {
			t.Errorf("Transient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	e := &store.Error{Backend: "memory", Op: "get", Key: "C1:p1", Transient: true, Err: base}
	if got, want := e.Error(), "memory store get C1:p1 (transient): x"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(e, base) {
		t.Errorf("errors.Is(%v, its cause) = false", e)
	}
}

func TestCheckKey(t *testing.T) {
	for key, ok := range map[string]bool{
		"C1:p1":                   true,
		"C0abc123:proc-1_x.y":     true,
		"__x":                     true,
		"":                        false,
		"a/b":                     false,
		".":                       false,
		"..":                      false,
		"__x__":                   false,
		strings.Repeat("k", 1500): true,
		strings.Repeat("k", 1501): false,
	} {
		err := store.CheckKey("memory", "get", key)
		var se *store.Error
		if ok != (err == nil) || (err != nil && (!errors.As(err, &se) || se.Transient)) {
			t.Errorf("CheckKey(%.20q) = %v, want ok %v (else a permanent *store.Error)", key, err, ok)
		}
	}
}

func TestStatsSub(t *testing.T) {
	a := store.Stats{Reads: 5, Writes: 4, Transactions: 3, Conflicts: 2, Aborted: 1}
	if diff := cmp.Diff(store.Stats{Reads: 4, Writes: 3, Transactions: 2, Conflicts: 1}, a.Sub(store.Stats{Reads: 1, Writes: 1, Transactions: 1, Conflicts: 1, Aborted: 1})); diff != "" {
		t.Errorf("Sub (-want +got):\n%s", diff)
	}
}
