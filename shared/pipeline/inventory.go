package pipeline

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"

	"github.com/chromeos-certprov/adapter/shared/inventory"
	"github.com/chromeos-certprov/adapter/shared/progress"
)

// Inventory records uploaded certificates (inventory.Firestore,
// memory.Inventory): once per certificate, whatever the retries.
type Inventory interface {
	Record(ctx context.Context, e inventory.Entry) (created bool, err error)
}

// MsgInventoryFailed is the WARNING logged when a certificate could not be
// recorded in the inventory (the process goes on).
const MsgInventoryFailed = "could not record the certificate in the inventory"

// recordInventory records rec's certificate in the inventory once it is
// uploaded (before the record moves to UPLOADED). It is best effort: a
// failure is logged and never fails the process nor makes the device try
// again; a repeat keeps the first entry.
func (p *Pipeline) recordInventory(ctx context.Context, rec *progress.Record) {
	if p.Inventory == nil {
		return
	}
	err := func() error {
		block, _ := pem.Decode([]byte(rec.CertificatePEM))
		if block == nil {
			return errors.New("the stored certificate is not PEM")
		}
		leaf, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return err
		}
		e := inventory.NewEntry(leaf, inventory.Subject{
			Customer: rec.Customer, ProcessID: rec.ProcessID, DeviceID: rec.DeviceID, DeviceSerial: rec.DeviceSerial,
			UserEmail: rec.UserEmail, ProfileRef: rec.ProfileRef, CARef: rec.CAConnectionRef, RequestID: rec.RequestID,
		}, p.Now(), p.InventoryGrace)
		_, err = p.Inventory.Record(ctx, e)
		return err
	}()
	if err != nil {
		p.logger(ctx).Warn(MsgInventoryFailed, slog.String("reason", err.Error()),
			slog.String("certificate_serial", rec.CertificateSerial))
	}
}
