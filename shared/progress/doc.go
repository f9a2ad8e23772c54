// Package progress defines the record that tracks one certificate provisioning
// process through the pipeline, its states, the state machine of compare-and-set
// transitions between them, and the lease that guards a step with an external
// side effect. Stores persist Records; the pipeline advances them, and writes a
// state or a lease only through New, Transition, AcquireLease and ReleaseLease.
//
// The state machine (the table in machine.go; TestMachineIsTheDiagram checks
// it against this picture and the README's, which are the same text):
//
//	RECEIVED* -> CLAIMED -> SIGNING* -> POLLING* -> SIGNED -> ISSUING* -> ISSUED* -> UPLOADED
//	   |            |          |           |          |          |          |
//	   +------------+----------+-----------+----------+----------+----------+--> FAILING* -> FAILED
//	   |            |          |           |          |          |          |        (the device was told)
//	   +------------+----------+-----------+----------+----------+----------+--> FAILED
//	   |                                                      (the API failed the process, or it is gone)
//	   +--> CLAIMED_ELSEWHERE <- FAILING
//	        (another adapter claimed it; the claim before setFailure was refused)
//
// A state marked * is re-entered by a later delivery: to take the lease again
// (RECEIVED, SIGNING, ISSUING, ISSUED), to count a poll (POLLING), or to keep
// the first failure decided (FAILING). UPLOADED, FAILED and CLAIMED_ELSEWHERE
// are terminal.
//
// The lease: a step whose external call must not run twice at once (the
// claim, signData, the CA, the upload) holds a lease on the record, with a
// holder (LeaseHolder) and an expiry (LeaseUntil). While it is live another
// delivery backs off; once it has passed (the holder died, or its call hangs
// beyond it) another may take it over. A record written by an earlier release
// has a lease with no holder: it is an unknown delivery's until it expires.
package progress
