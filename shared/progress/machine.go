package progress

import (
	"errors"
	"fmt"
	"slices"
)

// machine is the state machine: for each state, the states a Transition may
// move a record to from it. It is the README's state diagram (and the one in
// this package's doc) as data; TestMachineIsTheDiagram checks the two agree
// both ways. A state's own entry is a re-entry: a later delivery takes the
// lease again (RECEIVED, SIGNING, ISSUING, ISSUED), counts a poll (POLLING) or
// keeps the first failure decided (FAILING). Terminal states have none.
var machine = map[State][]State{
	StateReceived: {StateReceived, StateClaimed, StateClaimedElsewhere, StateFailing, StateFailed},
	StateClaimed:  {StateSigning, StateFailing, StateFailed},
	StateSigning:  {StateSigning, StatePolling, StateFailing, StateFailed},
	StatePolling:  {StatePolling, StateSigned, StateFailing, StateFailed},
	StateSigned:   {StateIssuing, StateFailing, StateFailed},
	StateIssuing:  {StateIssuing, StateIssued, StateFailing, StateFailed},
	StateIssued:   {StateIssued, StateUploaded, StateFailing, StateFailed},
	// The device is told (FAILED), or the claim that setFailure needs was
	// refused: another adapter holds the process (CLAIMED_ELSEWHERE).
	StateFailing: {StateFailing, StateFailed, StateClaimedElsewhere},
}

// States are all the states, in pipeline order.
var States = []State{
	StateReceived, StateClaimed, StateSigning, StatePolling, StateSigned, StateIssuing, StateIssued,
	StateUploaded, StateFailing, StateFailed, StateClaimedElsewhere,
}

// Allowed reports whether the state machine has an edge from one state to
// another (a re-entry when they are the same).
func Allowed(from, to State) bool { return slices.Contains(machine[from], to) }

// ErrNotInMachine says a Transition asked for an edge that the state machine
// does not have: a programming error, not a duplicate delivery (which gets a
// *StateError). Nothing is written.
var ErrNotInMachine = errors.New("transition not in the state machine")

// checkEdges returns an error wrapping ErrNotInMachine unless every state of
// from may move to to.
func checkEdges(from []State, to State) error {
	if len(from) == 0 {
		return fmt.Errorf("%w: no state to start from for %s", ErrNotInMachine, to)
	}
	for _, f := range from {
		if !Allowed(f, to) {
			return fmt.Errorf("%w: %s to %s", ErrNotInMachine, f, to)
		}
	}
	return nil
}
