package pipeline

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/progress"
)

// Issue handles one issue task: it asks the CA for the certificate (once per
// process), stores it, checks it and uploads it, or reports the failure.
// d.Body is a TaskBody. It returns an error only when the queue should
// deliver the task again.
func (p *Pipeline) Issue(ctx context.Context, d Delivery) error {
	p.init()
	attempt := d.Attempt
	tb, ok := decodeTask(d.Body)
	var rec *progress.Record
	var err error
	holder, leased := newHolder("issue"), false
	if ok && tb.Key != "" {
		// The first transaction is the step's one read: it takes the
		// issue lease when nothing stands in the way (the common case),
		// and otherwise hands back the record as it is. A task that
		// carries the signature finds the record in POLLING and stores
		// the verified signature and the CSR in the same write.
		from, path := []progress.State{progress.StateSigned}, []progress.State{progress.StateIssuing}
		if len(tb.Sig) > 0 {
			from, path = []progress.State{progress.StatePolling}, []progress.State{progress.StateSigned, progress.StateIssuing}
		}
		rec, err = p.transitionPath(ctx, tb.Key, from, path, func(r *progress.Record) error {
			if !p.issueReady(r) {
				return &progress.StateError{Key: r.Key, Want: from, Current: r.Clone()}
			}
			if r.State == progress.StatePolling {
				if u := p.storeCSR(r, tb); u != nil {
					return u
				}
			}
			if err := p.takeLease(r, holder, p.Now().UTC()); err != nil {
				return err
			}
			r.IssueAttempts++
			return nil
		})
		var u *unusable
		if err == nil {
			leased = true
		} else if errors.As(err, &u) {
			ctx = withProcess(ctx, p.logger(ctx), u.rec.Customer, u.rec.ProcessID)
			_, ferr := p.fail(ctx, u.rec, attempt, u.reason, u.message)
			return ferr
		} else if cur, ok := stale(err); ok {
			rec, err = cur, nil
		} else if p.unreadable(ctx, "issue", tb.Key, err) {
			return nil
		} else {
			return fmt.Errorf("issue %s: read progress: %w", tb.Key, err)
		}
	} else {
		rec, err = p.read(ctx, tb, ok, len(d.Body), "issue")
	}
	if rec == nil {
		return err
	}
	ctx = withProcess(ctx, p.logger(ctx), rec.Customer, rec.ProcessID)
	if p.noLongerServed(rec) {
		_, err := p.fail(ctx, rec, attempt, "the customer is no longer in allowedCustomers", msgNoLongerServed)
		return err
	}
	for range 4 {
		before := rec
		switch {
		case leased:
			leased = false
			rec, err = p.callCA(ctx, rec, holder, attempt)
		case rec.State == progress.StatePolling && len(tb.Sig) > 0:
			// Not ready to ask the CA (issue decides why: a failure,
			// contention): the signature is stored first, on its own.
			rec, err = p.signed(ctx, rec, tb, attempt)
		case rec.State == progress.StateSigned, rec.State == progress.StateIssuing:
			rec, err = p.issue(ctx, rec, attempt)
		case rec.State == progress.StateIssued:
			rec, err = p.upload(ctx, rec, attempt)
		case rec.State == progress.StateFailing:
			_, err = p.reportFailure(ctx, rec, attempt)
			return err
		default:
			return nil // terminal, or not this function's turn: a duplicate
		}
		if err != nil {
			if cur, ok := stale(err); ok {
				rec = cur
				continue
			}
			if errors.Is(err, errBusy) && p.lastAttempt(attempt) {
				// Contention (a lease left by an earlier attempt) is not
				// the process's failure: a fresh task carries on.
				return p.continueLater(ctx, before, err)
			}
			return err
		}
		if rec == nil {
			return nil
		}
	}
	return nil
}

// issue calls the CA with the process's request id. It returns the record in
// ISSUED, or nil when the CA answered "pending" and a later task asks again.
func (p *Pipeline) issue(ctx context.Context, rec *progress.Record, attempt int) (*progress.Record, error) {
	now := p.Now().UTC()
	if rec.State == progress.StateIssuing && rec.Leased(now) {
		return nil, errBusy
	}
	if _, ok := p.CAs[rec.CAConnectionRef]; !ok {
		return p.fail(ctx, rec, attempt, fmt.Sprintf("unknown CA connection reference %q", rec.CAConnectionRef),
			fmt.Sprintf("The certificate authority connection %q is not configured in the adapter. Ask your administrator to add it.", rec.CAConnectionRef))
	}
	if !rec.ChallengeExpiresAt.IsZero() && now.After(rec.ChallengeExpiresAt) {
		return p.fail(ctx, rec, attempt, "the SCEP challenge expired at "+rec.ChallengeExpiresAt.Format(time.RFC3339)+" before the device signed",
			"The device signed too late: the enrollment challenge had expired. The device will try again; keep it online.")
	}
	// The CA's deadline (for a CA that keeps answering pending) runs from the
	// signature: a client that signed just before the poll deadline still
	// gets the CA's retries.
	caDeadline := rec.Deadline
	if !rec.SignedAt.IsZero() {
		caDeadline = rec.SignedAt.Add(p.Schedule.Deadline)
	}
	if !now.Before(caDeadline) && rec.State == progress.StateIssuing {
		return p.fail(ctx, rec, attempt, "the CA had not issued by the deadline", "The certificate authority did not issue the certificate in time. Contact your administrator.")
	}
	holder := newHolder("issue")
	rec, err := p.transition(ctx, rec.Key, []progress.State{progress.StateSigned, progress.StateIssuing}, progress.StateIssuing, func(r *progress.Record) error {
		if err := p.takeLease(r, holder, now); err != nil {
			return err
		}
		r.IssueAttempts++
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p.callCA(ctx, rec, holder, attempt)
}

// issueReady reports whether r may go from SIGNED (or POLLING, with the
// signature its task carries) to ISSUING with nothing else to decide first
// (issue decides the rest: a failure, contention).
func (p *Pipeline) issueReady(r *progress.Record) bool {
	_, known := p.CAs[r.CAConnectionRef]
	expired := !r.ChallengeExpiresAt.IsZero() && p.Now().After(r.ChallengeExpiresAt)
	return (r.State == progress.StateSigned || r.State == progress.StatePolling) && !p.noLongerServed(r) && known && !expired
}

// storeCSR verifies the signature that issue task tb carries against r's key
// and request and stores the CSR in r (in POLLING, inside a transition to
// SIGNED), or says why the signature cannot be used.
func (p *Pipeline) storeCSR(r *progress.Record, tb TaskBody) *unusable {
	// The poll that found the signature counts, also when it cannot be used.
	r.PollCount = max(r.PollCount, tb.Poll) + 1
	der, u := p.assemble(r, tb.Sig)
	if u != nil {
		return u
	}
	r.CSR = der
	r.SignedAt = tb.SignedAt
	if r.SignedAt.IsZero() {
		r.SignedAt = p.Now().UTC()
	}
	return nil
}

// signed stores the signature that issue task tb carries (POLLING to SIGNED)
// on its own, for a record that issue cannot take straight to ISSUING.
func (p *Pipeline) signed(ctx context.Context, rec *progress.Record, tb TaskBody, attempt int) (*progress.Record, error) {
	next, err := p.transition(ctx, rec.Key, []progress.State{progress.StatePolling}, progress.StateSigned, func(r *progress.Record) error {
		if u := p.storeCSR(r, tb); u != nil {
			return u
		}
		return nil
	})
	var u *unusable
	if errors.As(err, &u) {
		return p.fail(ctx, u.rec, attempt, u.reason, u.message)
	}
	return next, err
}

// callCA asks the CA for rec's certificate under holder's lease (rec is in
// ISSUING), then stores, checks and uploads it.
func (p *Pipeline) callCA(ctx context.Context, rec *progress.Record, holder string, attempt int) (*progress.Record, error) {
	if err := p.crash(ctx, rec.Key, "issue:before-ca"); err != nil {
		return nil, err
	}
	issuer := p.CAs[rec.CAConnectionRef]
	var validity time.Duration
	var template string
	if prof, ok := p.Profiles[rec.ProfileRef]; ok {
		validity, template = prof.ValidityDuration(), prof.TemplateName
	}
	csrDER, err := p.plain(rec.Key, rec.CSR)
	if err != nil {
		return p.fail(ctx, rec, attempt, "open the CSR: "+err.Error(), "The adapter could not read its own request. Contact your administrator.")
	}
	caCtx, cancel := p.caContext(ctx)
	defer cancel()
	start := time.Now()
	issued, err := issuer.Issue(caCtx, ca.Request{CSR: csrDER, RequestID: rec.RequestID, Validity: validity, TemplateName: template})
	caTime := time.Since(start)
	if err != nil {
		return p.caFailure(ctx, rec, err, attempt)
	}
	if err := p.crash(ctx, rec.Key, "issue:after-ca"); err != nil {
		return nil, err
	}
	// Nothing is uploaded that was not checked.
	if err := p.check(caCtx, issuer, rec, issued); err != nil {
		return p.fail(ctx, rec, attempt, "the issued certificate failed its check: "+err.Error(),
			"The certificate authority returned a certificate that does not match this device. Contact your administrator.")
	}
	if missing, err := missingFromCertificate(csrDER, issued.Leaf); err != nil {
		p.logger(ctx).Warn("could not compare the issued certificate with the request", slog.String("reason", err.Error()))
	} else if len(missing) > 0 {
		p.logger(ctx).Warn(MsgIncompleteCertificate, slog.String("ca_connection_ref", rec.CAConnectionRef),
			slog.String("profile_ref", rec.ProfileRef), slog.Any("missing", missing), slog.Bool("refused", p.RefuseIncomplete[rec.CAConnectionRef]))
		if p.RefuseIncomplete[rec.CAConnectionRef] {
			return p.fail(ctx, rec, attempt, "the issued certificate lacks what the request asked for: "+strings.Join(missing, ", "),
				"The certificate authority issued a certificate without "+strings.Join(missing, ", ")+", which this network needs. Contact your administrator.")
		}
	}
	leaf := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: issued.Leaf.Raw}))
	rec, err = p.transition(ctx, rec.Key, []progress.State{progress.StateIssuing}, progress.StateIssued, func(r *progress.Record) error {
		r.CertificatePEM = leaf
		r.CertificateSerial, r.CertificateSubject = fmt.Sprintf("%X", issued.Leaf.SerialNumber), issued.Leaf.Subject.String()
		r.CertificateNotBefore, r.CertificateNotAfter = issued.Leaf.NotBefore.UTC(), issued.Leaf.NotAfter.UTC()
		r.IssuedAt = p.Now().UTC()
		r.CADuration = caTime
		// This delivery goes on to upload: its lease, renewed, keeps a
		// duplicate away (and if another delivery took the lease over
		// meanwhile, that one stores the same certificate instead).
		return p.takeLease(r, holder, p.Now().UTC())
	})
	if err != nil {
		return nil, err
	}
	return p.uploadLeased(ctx, rec, attempt)
}

// caContext bounds one call to the CA by CATimeout, which is at most (and by
// default) half the lease: a CA slower than that is given up, with a
// transient error, while this delivery still holds the lease.
func (p *Pipeline) caContext(ctx context.Context) (context.Context, context.CancelFunc) {
	d := p.Lease / 2
	if d <= 0 {
		d = time.Minute // half the default lease, before init
	}
	if p.CATimeout > 0 && p.CATimeout < d {
		d = p.CATimeout
	}
	return context.WithTimeout(ctx, d)
}

// check verifies that the leaf chains to the CA's roots and holds the
// process's key.
func (p *Pipeline) check(ctx context.Context, issuer Issuer, rec *progress.Record, issued *ca.Issued) error {
	if issued == nil || issued.Leaf == nil {
		return errors.New("the CA returned no certificate")
	}
	if !bytes.Equal(issued.Leaf.RawSubjectPublicKeyInfo, rec.SPKI) {
		return errors.New("its public key is not the device's key")
	}
	roots, err := issuer.Roots(ctx)
	if err != nil {
		return fmt.Errorf("read the CA's certificates: %w", err)
	}
	opts := x509.VerifyOptions{Roots: x509.NewCertPool(), Intermediates: x509.NewCertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}, CurrentTime: p.Now()}
	for _, r := range roots {
		opts.Roots.AddCert(r)
	}
	for _, c := range issued.Chain {
		opts.Intermediates.AddCert(c)
	}
	if _, err := issued.Leaf.Verify(opts); err != nil {
		return fmt.Errorf("it does not chain to the configured CA: %w", err)
	}
	return nil
}

func (p *Pipeline) caFailure(ctx context.Context, rec *progress.Record, err error, attempt int) (*progress.Record, error) {
	var ce *ca.Error
	errors.As(err, &ce)
	switch ca.KindOf(err) {
	case ca.Pending:
		wait := time.Minute
		if ce != nil && ce.RetryAfter > 0 {
			wait = ce.RetryAfter
		}
		next, uerr := p.transition(ctx, rec.Key, []progress.State{progress.StateIssuing}, progress.StateIssuing, func(r *progress.Record) error {
			if r.LeaseHolder == rec.LeaseHolder {
				progress.ReleaseLease(r) // the call is over; a lease taken over meanwhile stays
			}
			r.LastError = "the CA answered pending: " + err.Error()
			return nil
		})
		if uerr != nil {
			return nil, uerr
		}
		p.logger(ctx).Info("CA pending; asking again later", slog.Duration("retry_after", wait))
		return nil, p.enqueueIssue(ctx, next, p.Now().Add(wait))
	case ca.Permanent:
		msg := "The certificate authority refused the request. Contact your administrator."
		if ce != nil && ce.UserMessage != "" {
			msg = ce.UserMessage
		}
		return p.fail(ctx, rec, attempt, "CA refused: "+err.Error(), msg)
	}
	if p.lastAttempt(attempt) && isCAQuota(err) {
		return nil, p.caQuotaLater(ctx, rec, err) // quota.go
	}
	if p.lastAttempt(attempt) {
		return p.fail(ctx, rec, attempt, "CA unavailable on the last attempt: "+err.Error(),
			"The certificate authority could not be reached. The device will try again later.")
	}
	p.freeLease(ctx, rec, "CA: "+err.Error()) // the call is over: a retry may go ahead
	return nil, fmt.Errorf("issue %s: %w", rec.Key, err)
}

// upload resumes a record found in ISSUED: another delivery stored the
// certificate and may have uploaded it before it died. Once its lease has
// passed, the process tells whether the upload happened; if not, the stored
// certificate is uploaded (never a second one).
func (p *Pipeline) upload(ctx context.Context, rec *progress.Record, attempt int) (*progress.Record, error) {
	now := p.Now().UTC()
	if rec.Leased(now) {
		return nil, errBusy
	}
	// The lease first, then the process: an earlier upload whose answer was
	// lost (its delivery then freed the lease) is visible by now, whereas a
	// read before the lease could predate it and upload a second time.
	holder := newHolder("upload")
	rec, err := p.transition(ctx, rec.Key, []progress.State{progress.StateIssued}, progress.StateIssued, func(r *progress.Record) error {
		return p.takeLease(r, holder, now)
	})
	if err != nil {
		return nil, err
	}
	proc, err := p.API.Get(ctx, rec.ProcessName)
	if err != nil {
		if isTransientAPI(err) && !p.lastAttempt(attempt) {
			p.freeLease(ctx, rec, "read process: "+err.Error())
			return nil, fmt.Errorf("upload %s: read process: %w", rec.Key, err)
		}
		p.logger(ctx).Warn("could not read the process before uploading again; uploading the stored certificate",
			slog.String("reason", err.Error()))
	} else {
		if proc.IssuedCertificate != "" {
			p.recordInventory(ctx, rec)
			return p.transition(ctx, rec.Key, []progress.State{progress.StateIssued}, progress.StateUploaded, func(r *progress.Record) error {
				r.UploadedAt = now
				progress.ReleaseLease(r)
				return nil
			})
		}
		if proc.FailureMessage != "" {
			return p.apiFailed(ctx, rec, proc.FailureMessage)
		}
	}
	return p.uploadLeased(ctx, rec, attempt)
}

// uploadLeased uploads the stored certificate under this delivery's lease.
func (p *Pipeline) uploadLeased(ctx context.Context, rec *progress.Record, attempt int) (*progress.Record, error) {
	if err := p.crash(ctx, rec.Key, "upload:before-upload"); err != nil {
		return nil, err
	}
	err := p.API.UploadCertificate(ctx, rec.ProcessName, rec.CertificatePEM)
	if err != nil {
		if isTransientAPI(err) && !p.lastAttempt(attempt) {
			// The call is over: the retry may go ahead at once (it reads
			// the process before uploading again).
			p.freeLease(ctx, rec, "uploadCertificate: "+err.Error())
			return nil, fmt.Errorf("upload %s: %w", rec.Key, err)
		}
		if isQuota(err) {
			// A quota answer on the last attempt is not the process's
			// failure (invariant 7): a fresh task uploads the stored
			// certificate once the quota allows.
			p.freeLease(ctx, rec, "uploadCertificate: "+err.Error())
			return nil, p.continueLater(ctx, rec, err)
		}
		// Refused: maybe the process failed meanwhile on Google's side.
		if proc, gerr := p.API.Get(ctx, rec.ProcessName); gerr != nil {
			p.logger(ctx).Warn("uploadCertificate was refused and the process could not be read", slog.String("reason", gerr.Error()),
				slog.String("upload_error", err.Error()))
		} else {
			if proc.FailureMessage != "" {
				return p.apiFailed(ctx, rec, proc.FailureMessage)
			}
			if proc.IssuedCertificate != "" {
				err = nil // an earlier upload went through; its answer was lost
			}
		}
		if err != nil {
			return p.fail(ctx, rec, attempt, "uploadCertificate: "+err.Error(), "The certificate could not be delivered to this device. Try again later; if it repeats, contact your administrator.")
		}
	}
	if err := p.crash(ctx, rec.Key, "upload:after-upload"); err != nil {
		return nil, err
	}
	p.recordInventory(ctx, rec)
	return p.transition(ctx, rec.Key, []progress.State{progress.StateIssued}, progress.StateUploaded, func(r *progress.Record) error {
		r.UploadedAt = p.Now().UTC()
		progress.ReleaseLease(r)
		return nil
	})
}

// freeLease ends this delivery's lease on rec (as this delivery last wrote
// it: its state and lease holder) after a call that is over, so that the next
// delivery may act at once (invariant 9). A record that has moved on is left
// alone, and so is a lease another delivery took over meanwhile. It is best
// effort: a failed write leaves the lease to expire, and is logged.
func (p *Pipeline) freeLease(ctx context.Context, rec *progress.Record, lastError string) {
	key, state := rec.Key, rec.State
	_, err := p.Store.Update(ctx, key, func(r *progress.Record) error {
		if r.State != state {
			return errMoved
		}
		if r.LeaseHolder == rec.LeaseHolder {
			progress.ReleaseLease(r)
		}
		r.LastError = lastError
		r.UpdatedAt = p.Now().UTC()
		return nil
	})
	if err != nil && !errors.Is(err, errMoved) {
		p.logger(ctx).Warn("could not free the lease; it expires by itself", slog.String("state", string(state)),
			slog.String("reason", err.Error()))
	}
}

// note records lastError on the record, best effort (logged when it fails).
func (p *Pipeline) note(ctx context.Context, key, lastError string) {
	_, err := p.Store.Update(ctx, key, func(r *progress.Record) error {
		r.LastError = lastError
		r.UpdatedAt = p.Now().UTC()
		return nil
	})
	if err != nil {
		p.logger(ctx).Warn("could not record the last error", slog.String("last_error", lastError), slog.String("reason", err.Error()))
	}
}
