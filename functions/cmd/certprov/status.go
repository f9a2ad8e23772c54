package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"time"

	"github.com/chromeos-certprov/adapter/shared/progress"
)

// statusView is one process's status (the --json output is a list of them).
type statusView struct {
	Key         string `json:"key"`
	Customer    string `json:"customer"`
	ProcessID   string `json:"processId"`
	ProcessName string `json:"processName"`
	State       string `json:"state"`
	Finished    bool   `json:"finished"`
	// Meaning says in a sentence where the process stands.
	Meaning string `json:"meaning"`
	// DeviceID, DeviceSerial and UserEmail are the process's subject (empty
	// on a record of a release before they were kept).
	DeviceID        string     `json:"deviceId,omitempty"`
	DeviceSerial    string     `json:"deviceSerial,omitempty"`
	UserEmail       string     `json:"userEmail,omitempty"`
	ProfileRef      string     `json:"profileRef,omitempty"`
	CAConnectionRef string     `json:"caConnectionRef,omitempty"`
	KeyType         string     `json:"keyType,omitempty"`
	CreatedAt       time.Time  `json:"createdAt"`
	UpdatedAt       time.Time  `json:"updatedAt"`
	Elapsed         string     `json:"elapsed"`
	SignedAt        *time.Time `json:"signedAt,omitempty"`
	IssuedAt        *time.Time `json:"issuedAt,omitempty"`
	UploadedAt      *time.Time `json:"uploadedAt,omitempty"`
	CADuration      string     `json:"caDuration,omitempty"`
	Deadline        *time.Time `json:"deadline,omitempty"`
	NextPollAt      *time.Time `json:"nextPollAt,omitempty"`
	LeaseUntil      *time.Time `json:"leaseUntil,omitempty"`
	// LeaseHolder is the delivery holding the lease (none on a record of a
	// release before lease holders).
	LeaseHolder    string `json:"leaseHolder,omitempty"`
	PollCount      int    `json:"pollCount"`
	Attempts       int    `json:"attempts"`
	SignDataCalls  int    `json:"signDataCalls"`
	IssueAttempts  int    `json:"issueAttempts"`
	Sweeps         int    `json:"sweeps"`
	ReportHandoffs int    `json:"reportHandoffs"`
	LastError      string `json:"lastError,omitempty"`
	FailureMessage string `json:"failureMessage,omitempty"`
	// FailureReported: the device was told (setFailure accepted, or the API
	// had failed the process itself).
	FailureReported bool         `json:"failureReported"`
	Certificate     *certificate `json:"certificate,omitempty"`
	// CertificateError says why CertificatePEM did not parse.
	CertificateError string     `json:"certificateError,omitempty"`
	ExpireAt         *time.Time `json:"expireAt,omitempty"`
}

func newStatusView(r *progress.Record) statusView {
	v := statusView{
		Key: r.Key, Customer: r.Customer, ProcessID: r.ProcessID, ProcessName: r.ProcessName, State: string(r.State), Finished: r.State.Terminal(),
		DeviceID: r.DeviceID, DeviceSerial: r.DeviceSerial, UserEmail: r.UserEmail,
		ProfileRef: r.ProfileRef, CAConnectionRef: r.CAConnectionRef, KeyType: r.KeyType,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(), Elapsed: span(r.UpdatedAt.Sub(r.CreatedAt)),
		SignedAt: at(r.SignedAt), IssuedAt: at(r.IssuedAt), UploadedAt: at(r.UploadedAt),
		PollCount: r.PollCount, Attempts: r.Attempts, SignDataCalls: r.SignDataCalls, IssueAttempts: r.IssueAttempts,
		Sweeps: r.Sweeps, ReportHandoffs: r.ReportHandoffs,
		LastError: r.LastError, FailureMessage: r.FailureMessage, FailureReported: r.FailureReported,
	}
	v.Meaning = meanings[r.State]
	if r.CADuration > 0 {
		v.CADuration = span(r.CADuration)
	}
	if !r.State.Terminal() {
		v.Deadline, v.NextPollAt = at(r.Deadline), at(r.NextPollAt)
		v.LeaseUntil, v.LeaseHolder = at(r.LeaseUntil), r.LeaseHolder
	}
	if r.ExpireAt != nil {
		v.ExpireAt = at(*r.ExpireAt)
	}
	if r.CertificatePEM != "" {
		block, _ := pem.Decode([]byte(r.CertificatePEM))
		if block == nil {
			v.CertificateError = "certificatePem holds no PEM block"
		} else if c, err := x509.ParseCertificate(block.Bytes); err != nil {
			v.CertificateError = err.Error()
		} else {
			v.Certificate = describeCertificate(c)
		}
	}
	if v.Certificate == nil && r.CertificateSerial != "" {
		// What the record says of its certificate (the PEM is gone or bad).
		v.Certificate = &certificate{Serial: r.CertificateSerial, Subject: r.CertificateSubject,
			NotBefore: r.CertificateNotBefore.UTC(), NotAfter: r.CertificateNotAfter.UTC()}
	}
	return v
}

func status(ctx context.Context, e env, args []string) int {
	fs, asJSON := flags(e, "status", "PROCESS_ID | CUSTOMER:PROCESS_ID [--project P] [--database D] [--collection C] [--json]",
		`  certprov status 3f0c8f7e-1d2a-4c55-9e4b-2b8f0e6a1c10
  certprov status C0abc1234:3f0c8f7e-1d2a-4c55-9e4b-2b8f0e6a1c10 --json
  FIRESTORE_EMULATOR_HOST=127.0.0.1:8085 certprov status p-1 --project demo
`)
	sf := addReadFlags(fs, e)
	pos, code, ok := parse(e, fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(e, fs, "want one PROCESS_ID, got %d arguments", len(pos))
	}
	ctx, cancel := context.WithTimeout(ctx, *sf.timeout)
	defer cancel()
	s, closeStore, err := sf.open(ctx)
	if err != nil {
		return storeFailure(e, "status", err)
	}
	defer closeStore()
	recs, err := findProcess(ctx, s, pos[0])
	if err != nil {
		return storeFailure(e, "status", err)
	}
	views := make([]statusView, len(recs))
	for i, r := range recs {
		views[i] = newStatusView(r)
	}
	if *asJSON {
		if err := writeJSON(e.stdout, views); err != nil {
			return exitProblem
		}
		return exitOK
	}
	for i, v := range views {
		if i > 0 {
			fmt.Fprintln(e.stdout)
		}
		v.write(e.stdout)
	}
	return exitOK
}

func (v statusView) write(w io.Writer) {
	line := func(k, format string, a ...any) { fmt.Fprintf(w, "%-18s %s\n", k+":", fmt.Sprintf(format, a...)) }
	tm := func(k string, t *time.Time) {
		if t != nil {
			line(k, "%s (+%s)", t.Format(time.RFC3339), span(t.Sub(v.CreatedAt)))
		}
	}
	state := v.State
	if v.Finished {
		state += " (finished)"
	}
	line("process", "%s", v.ProcessName)
	line("state", "%s: %s", state, v.Meaning)
	line("customer", "%s", v.Customer)
	if v.DeviceID != "" || v.DeviceSerial != "" {
		line("device", "%s (serial %s)", orDash(v.DeviceID), orDash(v.DeviceSerial))
	}
	if v.UserEmail != "" {
		line("user", "%s", v.UserEmail)
	}
	line("profile", "%s", orDash(v.ProfileRef))
	line("CA connection", "%s", orDash(v.CAConnectionRef))
	if v.KeyType != "" {
		line("key", "%s", v.KeyType)
	}
	line("created", "%s", v.CreatedAt.Format(time.RFC3339))
	line("updated", "%s (+%s)", v.UpdatedAt.Format(time.RFC3339), v.Elapsed)
	tm("signed", v.SignedAt)
	tm("issued", v.IssuedAt)
	if v.CADuration != "" {
		line("CA took", "%s", v.CADuration)
	}
	tm("uploaded", v.UploadedAt)
	tm("deadline", v.Deadline)
	tm("next poll", v.NextPollAt)
	tm("lease until", v.LeaseUntil)
	if v.LeaseHolder != "" {
		line("lease holder", "%s", v.LeaseHolder)
	}
	line("polls", "%d", v.PollCount)
	line("attempts", "%d (signData calls %d, CA attempts %d)", v.Attempts, v.SignDataCalls, v.IssueAttempts)
	line("sweeps", "%d (report hand-offs %d)", v.Sweeps, v.ReportHandoffs)
	if v.LastError != "" {
		line("last error", "%s", v.LastError)
	}
	if v.FailureMessage != "" {
		told := "NOT YET shown to the device"
		if v.FailureReported {
			told = "shown to the device"
		}
		line("failure", "%q (%s)", v.FailureMessage, told)
	}
	if c := v.Certificate; c != nil {
		line("certificate", "serial %s, subject %s", c.Serial, c.Subject)
		valid := fmt.Sprintf("%s to %s", c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339))
		if c.Issuer != "" {
			valid += " (issuer " + c.Issuer + ")"
		}
		line("  valid", "%s", valid)
	}
	if v.CertificateError != "" {
		line("certificate", "does not parse: %s", v.CertificateError)
	}
	if v.ExpireAt != nil {
		line("record expires", "%s", v.ExpireAt.Format(time.RFC3339))
	}
}

// meanings say where a process in each state stands.
var meanings = map[progress.State]string{
	progress.StateReceived:         "the notification was accepted; the process is being claimed, then asked to sign (signData at most once)",
	progress.StateClaimed:          "claimed; the request to sign is being built",
	progress.StateSigning:          "signData is being called (at most once)",
	progress.StatePolling:          "waiting for the device to sign; polled until the deadline",
	progress.StateSigned:           "the device's signature verified; the CA is next",
	progress.StateIssuing:          "the CA is being asked for the certificate",
	progress.StateIssued:           "the certificate is stored; its upload is pending",
	progress.StateFailing:          "failed; telling the device (setFailure) is pending",
	progress.StateUploaded:         "the certificate was uploaded to the device",
	progress.StateFailed:           "failed, and the device was told (or the API had failed it)",
	progress.StateClaimedElsewhere: "another adapter claimed this process",
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
