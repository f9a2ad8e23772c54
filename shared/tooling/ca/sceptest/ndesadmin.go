package sceptest

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"
)

// NDESAdmin fakes NDES's mscep_admin page, the one part of NDES the
// adapter reads besides SCEP. (NDES itself needs Windows Server and AD CS:
// it cannot run here.) Like NDES it hands out one-time 16-hex-digit
// passwords that expire, in an HTML page encoded in UTF-16LE, to an account
// given by HTTP basic authentication; Use consumes a password the way NDES's
// SCEP side does, so a Responder can check challenges against it.
type NDESAdmin struct {
	// URL is the admin page, ".../certsrv/mscep_admin/".
	URL string
	// Username and Password is the account allowed to fetch passwords.
	Username, Password string

	mu        sync.Mutex
	now       func() time.Time
	validity  time.Duration
	issued    map[string]time.Time // password -> expiry
	used      map[string]bool
	fetches   int
	cacheFull bool
	denied    bool
}

// StartNDESAdmin starts the fake and stops it when t ends.
func StartNDESAdmin(t testing.TB) *NDESAdmin {
	t.Helper()
	n := &NDESAdmin{
		Username: `CORP\ndes-admin`,
		Password: "admin-pass",
		now:      time.Now,
		validity: 60 * time.Minute,
		issued:   map[string]time.Time{},
		used:     map[string]bool{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/certsrv/mscep_admin/", n.serve)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	n.URL = srv.URL + "/certsrv/mscep_admin/"
	return n
}

// SetCacheFull makes the page answer like NDES when its password cache is full.
func (n *NDESAdmin) SetCacheFull(full bool) { n.mu.Lock(); n.cacheFull = full; n.mu.Unlock() }

// SetDenied makes the page answer like NDES to an account without the
// right to enroll (HTTP 200, no password).
func (n *NDESAdmin) SetDenied(denied bool) { n.mu.Lock(); n.denied = denied; n.mu.Unlock() }

// Fetches counts the pages that handed out a password.
func (n *NDESAdmin) Fetches() int { n.mu.Lock(); defer n.mu.Unlock(); return n.fetches }

// Passwords returns the passwords handed out so far.
func (n *NDESAdmin) Passwords() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for pw := range n.issued {
		out = append(out, pw)
	}
	return out
}

// Use consumes pw: true once for a password handed out and not expired.
func (n *NDESAdmin) Use(pw string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	exp, ok := n.issued[pw]
	if !ok || n.used[pw] || n.now().After(exp) {
		return false
	}
	n.used[pw] = true
	return true
}

func (n *NDESAdmin) serve(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(n.Username)) != 1 || subtle.ConstantTimeCompare([]byte(pass), []byte(n.Password)) != 1 {
		w.Header().Set("WWW-Authenticate", `Basic realm="ndes"`)
		http.Error(w, "401 - Unauthorized: Access is denied due to invalid credentials.", http.StatusUnauthorized)
		return
	}
	n.mu.Lock()
	var body string
	switch {
	case n.denied:
		body = `<P> You do not have sufficient permission to enroll with SCEP. Please contact your system administrator. </P>`
	case n.cacheFull:
		body = `<P> The password cache is full. Use one of the existing passwords in the cache, or wait until one of them expires. </P>`
	default:
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		pw := strings.ToUpper(hex.EncodeToString(b))
		n.issued[pw] = n.now().Add(n.validity)
		n.fetches++
		body = fmt.Sprintf(`<P> To complete certificate enrollment for your network device you will need the following information:
<P> The thumbprint (hash value) for the CA certificate is: <B> 0C53F1B5 6C2A4A4B 0F5A4A8B 3C4C3B0A 1D2E3F40 </B>
<P> The enrollment challenge password is: <B> %s </B>
<P> This password can be used only once and will expire within %d minutes.
<P> Each enrollment requires a new challenge password. You can refresh this web page to obtain a new challenge password. </P>`, pw, int(n.validity.Minutes()))
	}
	n.mu.Unlock()
	page := `<HTML><Head><Meta HTTP-Equiv="Content-Type" Content="text/html; charset=Unicode">
<Title>Network Device Enrollment Service</Title></Head>
<Body BgColor=#FFFFFF><Font ID=locPageFont Face="Arial">
<P> Network Device Enrollment Service allows you to obtain certificates for routers or other network devices using the Simple Certificate Enrollment Protocol (SCEP). </P>
` + body + `
</Font></Body></HTML>`
	w.Header().Set("Content-Type", "text/html")
	_, _ = w.Write(UTF16LE(page))
}

// UTF16LE encodes s as NDES does its pages: UTF-16LE after a byte-order mark.
func UTF16LE(s string) []byte {
	u := utf16.Encode([]rune(s))
	out := make([]byte, 2+2*len(u))
	out[0], out[1] = 0xFF, 0xFE
	for i, c := range u {
		binary.LittleEndian.PutUint16(out[2+2*i:], c)
	}
	return out
}
