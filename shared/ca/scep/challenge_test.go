package scep

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/tooling/ca/sceptest"
)

const ndesPage = `<HTML><Head><Meta HTTP-Equiv="Content-Type" Content="text/html; charset=Unicode"><Title>Network Device Enrollment Service</Title></Head>
<Body><P> The thumbprint (hash value) for the CA certificate is: <B> 0C53F1B5 6C2A4A4B 0F5A4A8B 3C4C3B0A 1D2E3F40 </B>
<P> The enrollment challenge password is: <B> 2EA1D1F3C3E8B5C7 </B>
<P> This password can be used only once and will expire within 60 minutes.</Body></HTML>`

func utf16BE(s string) []byte {
	u := utf16.Encode([]rune(s))
	out := make([]byte, 2*len(u))
	for i, c := range u {
		binary.BigEndian.PutUint16(out[2*i:], c)
	}
	return out
}

func TestDecodeAndParseNDESAdminPage(t *testing.T) {
	le := sceptest.UTF16LE(ndesPage)
	for _, tc := range []struct {
		name        string
		body        []byte
		contentType string
		want        string
		wantKind    ca.Kind
		wantMsg     string
	}{
		{name: "UTF-16LE with BOM", body: le, contentType: "text/html", want: "2EA1D1F3C3E8B5C7"},
		{name: "UTF-16LE, charset=utf-16 header", body: le[2:], contentType: "text/html; charset=utf-16", want: "2EA1D1F3C3E8B5C7"},
		{name: "UTF-16LE, no BOM, no charset", body: le[2:], want: "2EA1D1F3C3E8B5C7"},
		{name: "UTF-16BE with BOM", body: append([]byte{0xFE, 0xFF}, utf16BE(ndesPage)...), want: "2EA1D1F3C3E8B5C7"},
		{name: "UTF-8", body: []byte(ndesPage), contentType: "text/html; charset=utf-8", want: "2EA1D1F3C3E8B5C7"},
		{name: "lower-case tags, line break", body: []byte("The enrollment challenge password is:\r\n<b>\r\n 9F00AA11BB22CC33\r\n</b>"), want: "9F00AA11BB22CC33"},
		{name: "German page", body: sceptest.UTF16LE(`<P> Der Fingerabdruck (Hashwert) des Zertifizierungsstellenzertifikats lautet: <B> 0C53F1B5 6C2A4A4B 0F5A4A8B 3C4C3B0A 1D2E3F40 </B>
<P> Das Kennwort für die Registrierungsaufforderung lautet: <B> 7A7B7C7D7E7F7071 </B>`), want: "7A7B7C7D7E7F7071"},
		{name: "cache full", body: sceptest.UTF16LE(`<P> The password cache is full. Use one of the existing passwords in the cache, or wait until one of them expires. </P>`),
			wantKind: ca.Transient, wantMsg: MsgChallengeCacheFull},
		{name: "no permission", body: sceptest.UTF16LE(`<P> You do not have sufficient permission to enroll with SCEP. Please contact your system administrator. </P>`),
			wantKind: ca.Permanent, wantMsg: MsgChallengeUnavailable},
		{name: "some other page", body: []byte(`<html><body>IIS Windows Server</body></html>`), wantKind: ca.Permanent, wantMsg: MsgChallengeUnavailable},
		// Found by FuzzNDESAdminPage (testdata/fuzz/FuzzNDESAdminPage/f6cd5257a57b28ba):
		// a damaged tag was taken for the password, NUL included.
		{name: "control character instead of the tag", body: []byte("The enrollment challenge password is: \x00B> 85B9DD736FD39C4D </B>"), wantKind: ca.Permanent, wantMsg: MsgChallengeUnavailable},
		{name: "password cut by a control character", body: []byte("The enrollment challenge password is: <B> 85B9DD73\x0036FD39C4D </B>"), wantKind: ca.Permanent, wantMsg: MsgChallengeUnavailable},
		{name: "two candidate passwords", body: []byte(`<B>0123456789ABCDEF</B> <B>FEDCBA9876543210</B>`), wantKind: ca.Permanent, wantMsg: MsgChallengeUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseNDESAdminPage(decodePage(tc.body, tc.contentType))
			if tc.wantKind == 0 {
				if err != nil || got != tc.want {
					t.Fatalf("= %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			e, ok := err.(*ca.Error)
			if !ok {
				t.Fatalf("= %q, %v; want a *ca.Error", got, err)
			}
			if diff := cmp.Diff([2]string{tc.wantKind.String(), tc.wantMsg}, [2]string{e.Kind.String(), e.UserMessage}); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func ndesConnector(t *testing.T, adminURL, user, pass string) *Connector {
	t.Helper()
	settings := fmt.Sprintf(`{"url": "http://127.0.0.1:1/scep", "challenge": {"type": "ndes", "adminUrl": %q, "usernameEnv": "U", "passwordEnv": "P", "validity": "45m"}, "timeout": "5s"}`, adminURL)
	c, err := New(context.Background(), json.RawMessage(settings), secretsFrom(map[string]string{"U": user, "P": pass}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestChallengeNDES(t *testing.T) {
	admin := sceptest.StartNDESAdmin(t)
	ctx := context.Background()

	t.Run("fetch", func(t *testing.T) {
		c := ndesConnector(t, admin.URL, admin.Username, admin.Password)
		fetched := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		c.now = func() time.Time { return fetched }
		pw, exp, err := c.Challenge(ctx, "c:p1")
		if err != nil {
			t.Fatal(err)
		}
		pw2, _, err := c.Challenge(ctx, "c:p2")
		if err != nil {
			t.Fatal(err)
		}
		if pw == pw2 {
			t.Error("two processes got the same one-time password")
		}
		if !admin.Use(pw) || !admin.Use(pw2) {
			t.Errorf("the fetched passwords %q, %q are not NDES's", pw, pw2)
		}
		if want := fetched.Add(45 * time.Minute); !exp.Equal(want) {
			t.Errorf("expires = %v, want %v (fetch time + validity)", exp, want)
		}
	})

	for _, tc := range []struct {
		name     string
		setup    func()
		user     string
		wantKind ca.Kind
		wantMsg  string
	}{
		{name: "wrong account", user: "CORP\\someone", wantKind: ca.Permanent, wantMsg: MsgChallengeUnavailable},
		{name: "cache full", setup: func() { admin.SetCacheFull(true) }, wantKind: ca.Transient, wantMsg: MsgChallengeCacheFull},
		{name: "denied", setup: func() { admin.SetDenied(true) }, wantKind: ca.Permanent, wantMsg: MsgChallengeUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
				t.Cleanup(func() { admin.SetCacheFull(false); admin.SetDenied(false) })
			}
			user := admin.Username
			if tc.user != "" {
				user = tc.user
			}
			_, _, err := ndesConnector(t, admin.URL, user, admin.Password).Challenge(ctx, "c:p")
			e, ok := err.(*ca.Error)
			if !ok {
				t.Fatalf("Challenge error = %v, want a *ca.Error", err)
			}
			if diff := cmp.Diff([2]string{tc.wantKind.String(), tc.wantMsg}, [2]string{e.Kind.String(), e.UserMessage}); diff != "" {
				t.Errorf("(-want +got):\n%s\nerror: %v", diff, err)
			}
			if strings.Contains(err.Error(), admin.Password) {
				t.Errorf("error %q reveals the NDES password", err)
			}
		})
	}

	t.Run("status codes", func(t *testing.T) {
		for _, tc := range []struct {
			status int
			want   ca.Kind
		}{{503, ca.Transient}, {500, ca.Transient}, {429, ca.Transient}, {404, ca.Permanent}, {403, ca.Permanent}} {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(tc.status) }))
			_, _, err := ndesConnector(t, srv.URL+"/certsrv/mscep_admin/", "u", "p").Challenge(ctx, "c:p")
			srv.Close()
			if got := ca.KindOf(err); err == nil || got != tc.want {
				t.Errorf("HTTP %d: Challenge error %v, kind %v; want %v", tc.status, err, got, tc.want)
			}
		}
	})

	t.Run("unreachable", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL + "/certsrv/mscep_admin/"
		srv.Close()
		_, _, err := ndesConnector(t, url, "u", "p").Challenge(ctx, "c:p")
		if err == nil || ca.KindOf(err) != ca.Transient {
			t.Errorf("Challenge = %v, want a transient error", err)
		}
	})
}

func TestChallengeStaticAndNone(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		settings, want string
	}{
		{`{"url": "http://x/scep", "challenge": {"type": "static", "secretEnv": "C"}}`, "the-secret"},
		{`{"url": "http://x/scep", "challenge": {"type": "none"}}`, ""},
	} {
		c, err := New(ctx, json.RawMessage(tc.settings), secretsFrom(map[string]string{"C": "the-secret"}))
		if err != nil {
			t.Fatal(err)
		}
		pw, exp, err := c.Challenge(ctx, "c:p")
		if err != nil || pw != tc.want || !exp.IsZero() {
			t.Errorf("%s: Challenge = %q, %v, %v; want %q, zero time", tc.settings, pw, exp, err, tc.want)
		}
	}
}
