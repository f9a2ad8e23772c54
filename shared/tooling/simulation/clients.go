package simulation

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/tooling/clock"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
)

// Scenario is what a simulated client does, and so how its process must end.
type Scenario string

const (
	Online    Scenario = "online"
	Slow      Scenario = "slow"
	Silent    Scenario = "silent"
	Wrong     Scenario = "wrong"
	Elsewhere Scenario = "claimed_elsewhere"
)

// Expected is the outcome each scenario must end in.
func (s Scenario) Expected() progress.State {
	switch s {
	case Silent, Wrong:
		return progress.StateFailed
	case Elsewhere:
		return progress.StateClaimedElsewhere
	}
	return progress.StateUploaded
}

// Client is one simulated client: its process and what it was set to do.
type Client struct {
	// Name is the process's resource name; Key its progress record key.
	Name, Key string
	Scenario  Scenario
}

// AddClients creates o.Clients processes on emu for customer, in the mix of
// scenarios o asks for, at o.Arrival clients per second (0: at once). rng
// draws the mix and the delays; mu, when not nil, guards rng. Arrivals wait
// on o.Clock (which, if virtual, the caller holds). Under a context
// from WithSCEPClients the processes are SCEP ones.
func AddClients(ctx context.Context, emu *cpemulator.Emulator, customer string, o Options, rng *rand.Rand, mu *sync.Mutex) ([]Client, error) {
	if mu == nil {
		mu = &sync.Mutex{}
	}
	mu.Lock()
	scen := scenarios(o, rng)
	mu.Unlock()
	clients := make([]Client, 0, o.Clients)
	var errs []error
	clk := o.Clock
	if clk == nil {
		clk = clock.Real{}
	}
	start := clk.Now()
	for i := range o.Clients {
		if o.Arrival > 0 && i > 0 {
			due := start.Add(time.Duration(float64(i) / o.Arrival * float64(time.Second)))
			if d := due.Sub(clk.Now()); d > 0 {
				if err := clk.Sleep(ctx, d); err != nil {
					return nil, err
				}
			}
		}
		spec := cpemulator.ClientSpec{Customer: customer, Key: cpemulator.RSA2048}
		if i%2 == 1 {
			spec.Key = cpemulator.ECP256
		}
		if i%3 == 2 {
			spec.Kind = cpemulator.User
		}
		s := scen[i]
		mu.Lock()
		switch s {
		case Online:
			spec.SignDelay = o.FastDelay.Pick(rng)
		case Slow:
			if o.SlowAtCheckIns {
				// First online at one of the documented check-ins, a third
				// each, and at every one after it.
				k := rng.IntN(len(cpemulator.DocumentedCheckIns))
				spec.CheckIns = cpemulator.CheckInsFrom(k, 48*time.Hour, rng.Float64, o.TimeScale)
			} else {
				spec.SignDelay = o.SlowDelay.Pick(rng)
			}
		case Silent:
			spec.Behaviour = cpemulator.Silent
		case Wrong:
			spec.Behaviour = cpemulator.Wrong
			spec.SignDelay = o.FastDelay.Pick(rng)
		case Elsewhere:
			spec.ClaimedBy = "another-adapter"
		}
		mu.Unlock()
		applySCEPClients(ctx, &spec)
		name, err := emu.AddClient(ctx, spec)
		if err != nil {
			errs = append(errs, err)
			if name == "" {
				continue
			}
		}
		snap, _ := emu.Process(name)
		clients = append(clients, Client{Name: name, Key: progress.Key(customer, snap.ID), Scenario: s})
	}
	if err := errors.Join(errs...); err != nil {
		return clients, fmt.Errorf("add clients: %w", err)
	}
	return clients, nil
}

func scenarios(o Options, rng *rand.Rand) []Scenario {
	n := o.Clients
	s := make([]Scenario, 0, n)
	for _, share := range []struct {
		sc Scenario
		f  float64
	}{{Slow, o.Slow}, {Silent, o.Silent}, {Wrong, o.Wrong}, {Elsewhere, o.Elsewhere}} {
		for range int(share.f*float64(n) + 0.5) {
			if len(s) < n {
				s = append(s, share.sc)
			}
		}
	}
	for len(s) < n {
		s = append(s, Online)
	}
	rng.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	return s
}
