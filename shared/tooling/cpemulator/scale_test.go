package cpemulator

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// TestScale drives 10,000 processes (1,000 with -short) through claim,
// signData and operations.get over HTTP with concurrent workers, and checks
// every process ends signed with exact call counts.
func TestScale(t *testing.T) {
	t.Parallel()
	n := 10000
	if testing.Short() {
		n = 1000
	}
	f := newFixture(t, Options{KeyPoolSize: 2})
	names := make([]string, n)
	for i := range names {
		spec := ClientSpec{Key: ECP256, Kind: ClientKind(i % 2)}
		if i%10 == 0 {
			spec.Key = RSA2048
		}
		names[i] = f.add(spec)
	}
	if got := f.emu.Len(); got != n {
		t.Fatalf("Len = %d, want %d", got, n)
	}

	const workers = 8
	work := make(chan string)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for name := range work {
				op := f.claimAndSign(name, []byte(name))
				o, err := f.op(op.Name)
				if err == nil && !o.Done {
					err = fmt.Errorf("%s: not done", op.Name)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for _, name := range names {
		work <- name
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	snaps := f.emu.Processes()
	if len(snaps) != n {
		t.Fatalf("Processes() has %d, want %d", len(snaps), n)
	}
	for i, s := range snaps {
		if s.Name != names[i] {
			t.Fatalf("Processes()[%d] = %s, want creation order (%s)", i, s.Name, names[i])
		}
		if s.State != StateSigned || s.SignDataCalls != 1 || verify(s.SPKI, []byte(s.Name), s.Signature) != nil {
			t.Fatalf("process %s: state=%s signDataCalls=%d", s.Name, s.State, s.SignDataCalls)
		}
	}
	// claimAndSign reads the snapshot, not the API: one call of each.
	want := map[string]int{"get": 0, "claim": n, "signData": n, "operations.get": n, "uploadCertificate": 0, "setFailure": 0}
	for k, v := range f.emu.Calls() {
		if want[k] != v {
			t.Errorf("Calls[%s] = %d, want %d", k, v, want[k])
		}
	}
	if v := f.emu.Violations(); len(v) != 0 {
		t.Errorf("violations: %v", v[:min(len(v), 5)])
	}
}

// serve runs one request through the handler without a network.
func serve(b *testing.B, h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		b.Fatalf("%s %s: %d %s", method, path, w.Code, w.Body)
	}
	return w
}

// BenchmarkEnrollment is one EC P-256 process from creation to the signed
// operation: AddClient, claim, signData, operations.get.
func BenchmarkEnrollment(b *testing.B) {
	emu := New(Options{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		name, err := emu.AddClient(ctx, ClientSpec{Customer: "c", Key: ECP256})
		if err != nil {
			b.Fatal(err)
		}
		serve(b, emu, http.MethodPost, "/v1/"+name+":claim?prettyPrint=false", `{"callerInstanceId":"a"}`)
		serve(b, emu, http.MethodPost, "/v1/"+name+":signData?prettyPrint=false", `{"signData":"ZGF0YQ==","signatureAlgorithm":"SIGNATURE_ALGORITHM_ECDSA_SHA256"}`)
		s, _ := emu.Process(name)
		serve(b, emu, http.MethodGet, "/v1/"+s.Operations[0]+"?prettyPrint=false", "")
	}
}

// BenchmarkGetAmong10k shows that a read does not depend on the number of
// processes.
func BenchmarkGetAmong10k(b *testing.B) {
	emu := New(Options{})
	ctx := context.Background()
	var last string
	for range 10000 {
		name, err := emu.AddClient(ctx, ClientSpec{Customer: "c", Key: ECP256})
		if err != nil {
			b.Fatal(err)
		}
		last = name
	}
	b.ReportAllocs()
	for b.Loop() {
		serve(b, emu, http.MethodGet, "/v1/"+last+"?prettyPrint=false", "")
	}
}
