package embedded

import (
	"time"

	"github.com/chromeos-certprov/adapter/shared/tasks"
)

// pace is one queue's dispatch rate: the earliest time its next attempt may
// be dispatched. Each dispatch reserves the slot after the last one, one
// interval apart, so the queue never dispatches more than its rate in any
// interval (a burst of one; Cloud Tasks allows a burst of about one second's
// dispatches, which only moves work earlier within the same second).
type pace struct {
	interval time.Duration
	next     time.Time
}

func newPaces(rates map[tasks.Queue]float64) map[tasks.Queue]*pace {
	paces := make(map[tasks.Queue]*pace)
	for q, r := range rates {
		if r > 0 {
			paces[q] = &pace{interval: time.Duration(float64(time.Second) / r)}
		}
	}
	return paces
}

// wait reports whether the due attempt e must wait for its queue's rate: it
// is then put back with its slot as its time. An attempt put back once is
// dispatched at its slot. d.mu is held.
func (d *Dispatcher) wait(e *entry) bool {
	pc := d.paces[e.queue]
	if pc == nil || e.duplicate {
		return false
	}
	if e.paced {
		e.paced = false
		return false
	}
	now := d.clk.Now()
	slot := pc.next
	if slot.Before(now) {
		slot = now
	}
	pc.next = slot.Add(pc.interval)
	if !slot.After(now) {
		return false
	}
	e.eta, e.paced = slot, true
	d.push(e)
	return true
}

// Backlog returns how many attempts of each rate-limited queue wait for
// their slot.
func (d *Dispatcher) Backlog() map[tasks.Queue]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := make(map[tasks.Queue]int, len(d.paces))
	for _, e := range d.due {
		if e.paced {
			m[e.queue]++
		}
	}
	return m
}
