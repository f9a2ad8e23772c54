// Package clock is the time source of the simulation, the fault campaign,
// the embedded task dispatcher and the API emulator: the real clock for a
// local run, or a virtual clock that jumps to the next timer whenever no work
// is in progress, so that a campaign whose clients sign after minutes and
// whose tasks back off for minutes runs in the CPU time it needs.
//
// The virtual clock knows work is in progress through holds: every piece of
// work that runs on the clock's behalf (a timer's function, a goroutine
// started by Go) holds it, and work handed to another goroutine is handed
// with a hold (Hold) that the receiver releases. Time stands still while
// anything holds the clock; when nothing does, the clock moves to the
// earliest timer and runs every timer due by then. Sleep releases the
// caller's hold while it waits.
package clock

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// Clock is a time source with timers.
type Clock interface {
	// Now is the current time.
	Now() time.Time
	// AfterFunc runs f in its own goroutine once d has passed (at once if
	// d <= 0). The virtual clock holds itself while f runs.
	AfterFunc(d time.Duration, f func()) Timer
	// Sleep waits d, or until ctx ends (then it returns ctx's error). On a
	// virtual clock the caller must hold the clock: Sleep releases the hold
	// while it waits and takes it again before it returns.
	Sleep(ctx context.Context, d time.Duration) error
	// Hold keeps the virtual clock from moving until release is called
	// (once). Take it before handing work to another goroutine, and release
	// it when that work is done. The real clock's hold does nothing.
	Hold() (release func())
	// Go runs f in a new goroutine that holds the clock until f returns.
	Go(f func())
}

// Timer is a pending AfterFunc.
type Timer interface {
	// Stop cancels the timer; false if its function has already started or
	// the timer was stopped.
	Stop() bool
}

// Real is the system clock.
type Real struct{}

func (Real) Now() time.Time { return time.Now() }

func (Real) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

func (Real) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (Real) Hold() func() { return func() {} }

func (Real) Go(f func()) { go f() }

// Virtual is a clock that moves only when nothing holds it, straight to its
// next timer. Create it with NewVirtual; Stop it when the run is over.
type Virtual struct {
	// Quantum, when positive, runs together the timers due within Quantum of
	// the earliest one (the clock moves to the last of them): they run
	// concurrently, as timers a little late would. Set it before the clock
	// is used.
	Quantum time.Duration

	mu      sync.Mutex
	wake    *sync.Cond
	now     time.Time
	timers  timerHeap
	seq     uint64
	holds   int
	stopped bool
	steps   int64
}

// NewVirtual returns a virtual clock at start and starts moving it.
func NewVirtual(start time.Time) *Virtual {
	v := &Virtual{now: start}
	v.wake = sync.NewCond(&v.mu)
	go v.drive()
	return v
}

// Now is the clock's current time.
func (v *Virtual) Now() time.Time {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.now
}

// Steps is how many times the clock has moved.
func (v *Virtual) Steps() int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.steps
}

// Stop stops the clock: pending timers never run, and sleepers wait for
// their contexts.
func (v *Virtual) Stop() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.stopped = true
	v.wake.Broadcast()
}

// AfterFunc runs f, holding the clock, once the clock reaches Now()+d.
func (v *Virtual) AfterFunc(d time.Duration, f func()) Timer {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.seq++
	t := &vtimer{v: v, when: v.now.Add(max(d, 0)), seq: v.seq, f: f, index: -1}
	heap.Push(&v.timers, t)
	v.wake.Broadcast()
	return t
}

// Hold keeps the clock where it is until release is called.
func (v *Virtual) Hold() func() {
	v.mu.Lock()
	v.holds++
	v.mu.Unlock()
	var once sync.Once
	return func() { once.Do(v.release) }
}

func (v *Virtual) release() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.holds--
	if v.holds <= 0 {
		v.wake.Broadcast()
	}
}

// Go runs f in a goroutine that holds the clock.
func (v *Virtual) Go(f func()) {
	release := v.Hold()
	go func() {
		defer release()
		f()
	}()
}

// Sleep waits until the clock reaches Now()+d, releasing the caller's hold
// meanwhile.
func (v *Virtual) Sleep(ctx context.Context, d time.Duration) error {
	woke := make(chan struct{})
	t := v.AfterFunc(d, func() {
		v.mu.Lock()
		v.holds++ // handed to the sleeper
		v.mu.Unlock()
		close(woke)
	})
	v.release()
	select {
	case <-woke:
		return nil
	case <-ctx.Done():
		if t.Stop() {
			v.mu.Lock()
			v.holds++
			v.mu.Unlock()
		} else {
			<-woke
		}
		return ctx.Err()
	}
}

// drive moves the clock whenever nothing holds it.
func (v *Virtual) drive() {
	v.mu.Lock()
	defer v.mu.Unlock()
	for {
		for !v.stopped && (v.holds > 0 || len(v.timers) == 0) {
			v.wake.Wait()
		}
		if v.stopped {
			return
		}
		first := v.timers[0].when
		var due []*vtimer
		for len(v.timers) > 0 && !v.timers[0].when.After(first.Add(v.Quantum)) {
			t := heap.Pop(&v.timers).(*vtimer)
			t.fired = true
			due = append(due, t)
		}
		if last := due[len(due)-1].when; last.After(v.now) {
			v.now = last
		}
		v.steps++
		v.holds += len(due)
		for _, t := range due {
			go func() {
				defer v.release()
				t.f()
			}()
		}
	}
}

// vtimer is a virtual timer.
type vtimer struct {
	v     *Virtual
	when  time.Time
	seq   uint64
	f     func()
	index int // in the heap; -1 when not in it
	fired bool
}

func (t *vtimer) Stop() bool {
	t.v.mu.Lock()
	defer t.v.mu.Unlock()
	if t.fired || t.index < 0 {
		return false
	}
	heap.Remove(&t.v.timers, t.index)
	return true
}

// timerHeap orders timers by time, then by creation.
type timerHeap []*vtimer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if !h[i].when.Equal(h[j].when) {
		return h[i].when.Before(h[j].when)
	}
	return h[i].seq < h[j].seq
}
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *timerHeap) Push(x any) {
	t := x.(*vtimer)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	t.index = -1
	*h = old[:len(old)-1]
	return t
}
