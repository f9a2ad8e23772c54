// Package tasks defines a task handed from one pipeline function to the next
// (the poll and issue hand-offs), independent of whether Cloud Tasks or the
// embedded dispatcher of the local run carries it.
package tasks

import (
	"net/http"
	"strconv"
	"time"
)

// Queue names the hand-off a task belongs to. Each queue has one target function.
type Queue string

const (
	// QueuePoll carries tasks for PollSignature.
	QueuePoll Queue = "poll"
	// QueueIssue carries tasks for IssueCertificate.
	QueueIssue Queue = "issue"
	// QueueClaim carries the claims that met the API's quota (429): a
	// rate-limited queue whose tasks PollSignature runs (it resumes a
	// process in any state), so that a burst of notifications is claimed at
	// the pace the quota allows instead of spending Pub/Sub redeliveries.
	QueueClaim Queue = "claim"
)

// Task is one invocation of a target function, at or after ScheduleTime.
type Task struct {
	Queue Queue
	// Name is unique per queue, made of [A-Za-z0-9_-] and at most 400 bytes.
	// Enqueueing a name that was used before is a harmless no-op: that is how a
	// duplicate delivery avoids doubling the work it hands off.
	Name string
	// Body is the request body (JSON), POSTed to the target.
	Body []byte
	// ScheduleTime is when the task becomes due; zero means now.
	ScheduleTime time.Time
}

// Headers that Cloud Tasks sets on an HTTP target request, and that the embedded
// dispatcher sets the same way.
const (
	HeaderTaskName       = "X-CloudTasks-TaskName"
	HeaderQueueName      = "X-CloudTasks-QueueName"
	HeaderRetryCount     = "X-CloudTasks-TaskRetryCount"
	HeaderExecutionCount = "X-CloudTasks-TaskExecutionCount"
	HeaderETA            = "X-CloudTasks-TaskETA"
)

// RetryCount is the number of earlier attempts of the task that r delivers
// (0 on the first), from the X-CloudTasks-TaskRetryCount header.
func RetryCount(r *http.Request) int {
	n, err := strconv.Atoi(r.Header.Get(HeaderRetryCount))
	if err != nil || n < 0 {
		return 0
	}
	return n
}
