package pipeline

// Delivery is one request to an entry point (Claim, Poll, Issue): the body of
// a Pub/Sub message or of a Cloud Tasks task, and which delivery of it this is.
// The platform adapter (shared/adapter) builds it from the request.
type Delivery struct {
	// Body is the message's data (Claim) or the task's body (Poll, Issue).
	Body []byte
	// Attempt counts the deliveries of this message or task, from 1 (Cloud
	// Tasks' X-CloudTasks-TaskRetryCount + 1; Pub/Sub's deliveryAttempt).
	// 0 means unknown: Pub/Sub sends no deliveryAttempt without a dead-letter
	// policy, and the Pub/Sub emulator never does. An unknown attempt is never
	// taken for the last one, so a failure is left to the platform's retries
	// (and, after them, to the sweep) rather than reported early.
	Attempt int
	// Name is the task name or the message id, for logs.
	Name string
}

// lastAttempt reports whether a failure of this delivery would not be
// retried by the platform (attempt is Delivery.Attempt).
func (p *Pipeline) lastAttempt(attempt int) bool { return attempt >= p.MaxAttempts }
