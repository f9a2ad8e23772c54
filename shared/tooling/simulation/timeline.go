package simulation

import (
	"context"
	"time"

	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/tasks"
	"github.com/chromeos-certprov/adapter/shared/tooling/clock"
)

// Sample is the state of a run's processes at one time (Options.SampleEvery).
type Sample struct {
	// At is the clock time since the run started.
	At time.Duration `json:"at_ns"`
	// Started processes (the API created them); Waiting ones not claimed
	// yet (no record, or RECEIVED); InFlight ones claimed and not ended;
	// Uploaded and Failed (FAILED) ones.
	Started  int `json:"started"`
	Waiting  int `json:"waiting"`
	InFlight int `json:"in_flight"`
	Uploaded int `json:"uploaded"`
	Failed   int `json:"failed"`
}

// sampleEvery records a Sample every d of clock time from now on, until
// ctx ends: it reads every process's record (processes not in the store yet
// are waiting).
func (w *World) sampleEvery(ctx context.Context, clk clock.Clock, start time.Time, d time.Duration) {
	var tick func()
	tick = func() {
		if ctx.Err() != nil {
			return
		}
		w.sampleNow(ctx, clk.Now().Sub(start))
		clk.AfterFunc(d, tick)
	}
	clk.AfterFunc(0, tick)
}

func (w *World) sampleNow(ctx context.Context, at time.Duration) {
	customers, ids := w.emu.Keys()
	s := Sample{At: at, Started: len(ids)}
	for i := range ids {
		rec, err := w.store.Peek(ctx, progress.Key(customers[i], ids[i]))
		switch {
		case err != nil || rec.State == progress.StateReceived:
			s.Waiting++
		case rec.State == progress.StateUploaded:
			s.Uploaded++
		case rec.State == progress.StateFailed:
			s.Failed++
		case !rec.State.Terminal():
			s.InFlight++
		}
	}
	w.tmu.Lock()
	w.timeline = append(w.timeline, s)
	w.tmu.Unlock()
}

// Timeline is the run's samples, in time order (Options.SampleEvery).
func (w *World) Timeline() []Sample {
	w.tmu.Lock()
	defer w.tmu.Unlock()
	return append([]Sample(nil), w.timeline...)
}

// CAThrottled is how many issuances the development CAs' rate refused
// (Options.CAPerSecond).
func (w *World) CAThrottled() int {
	n := 0
	for _, d := range w.devcas {
		n += d.Throttled()
	}
	return n
}

// rates are the task queues' dispatch rates of a paced run (Options.Pace):
// pipeline.QueueRates, times the time scale; nil when not paced.
func (o *Options) rates() map[tasks.Queue]float64 {
	if !o.Pace || o.QuotaPerMinute <= 0 {
		return nil
	}
	r := pipeline.QueueRates(float64(o.QuotaPerMinute), float64(o.CAPerSecond))
	for q := range r {
		r[q] *= o.TimeScale
	}
	return r
}
