package store

import (
	"time"

	"github.com/chromeos-certprov/adapter/shared/progress"
)

// MaxQueryLimit bounds the records one query of the operator CLI reads.
const MaxQueryLimit = 1000

// Filter selects progress records for a store's List (the operator CLI's
// list and find); zero fields select everything.
type Filter struct {
	State      progress.State
	Customer   string
	ProfileRef string
	// DeviceID, DeviceSerial and UserEmail select the processes of a
	// device or a user (certprov find).
	DeviceID     string
	DeviceSerial string
	UserEmail    string
	// Since selects records created at or after it.
	Since time.Time
	// After continues a listing after this record (the last of the page
	// before): its createdAt and key.
	After *Cursor
}

// Cursor is a position in a listing, newest first: records created before
// CreatedAt, or at it with a key before Key, come after it.
type Cursor struct {
	CreatedAt time.Time
	Key       string
}
