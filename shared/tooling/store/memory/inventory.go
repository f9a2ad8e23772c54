package memory

import (
	"context"
	"sync"

	"github.com/chromeos-certprov/adapter/shared/inventory"
)

// Inventory is the certificate inventory in memory, with the semantics of
// inventory.Firestore (create-or-keep, revocation recorded once). It is safe
// for concurrent use.
type Inventory struct {
	mu      sync.Mutex
	entries map[string]inventory.Entry
}

// NewInventory returns an empty inventory.
func NewInventory() *Inventory { return &Inventory{entries: map[string]inventory.Entry{}} }

func clone(e inventory.Entry) *inventory.Entry {
	c := e
	c.SANs = append([]string(nil), e.SANs...)
	if e.Revocation != nil {
		r := *e.Revocation
		c.Revocation = &r
	}
	return &c
}

// Record creates e, or keeps the entry there; it reports whether it created it.
func (m *Inventory) Record(_ context.Context, e inventory.Entry) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.entries[e.ID]; ok {
		return false, nil
	}
	m.entries[e.ID] = *clone(e)
	return true, nil
}

// Get reads one entry.
func (m *Inventory) Get(_ context.Context, id string) (*inventory.Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[id]
	if !ok {
		return nil, inventory.ErrNotFound
	}
	return clone(e), nil
}

// List returns up to limit (0: all) entries matching f, sorted as inventory.Sort.
func (m *Inventory) List(_ context.Context, f inventory.Filter, limit int) ([]*inventory.Entry, error) {
	m.mu.Lock()
	var out []*inventory.Entry
	for _, e := range m.entries {
		if f.Match(&e) {
			out = append(out, clone(e))
		}
	}
	m.mu.Unlock()
	inventory.Sort(out)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// MarkRevoked records r on entry id unless it is revoked already (a
// report-only revocation is replaced by a real one).
func (m *Inventory) MarkRevoked(_ context.Context, id string, r inventory.Revocation) (*inventory.Entry, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[id]
	if !ok {
		return nil, false, inventory.ErrNotFound
	}
	if e.Revocation != nil && (!e.Revocation.ReportedOnly || r.ReportedOnly) {
		return clone(e), false, nil
	}
	e.Revocation = &r
	m.entries[id] = e
	return clone(e), true, nil
}

// Len is how many entries the inventory holds.
func (m *Inventory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}
