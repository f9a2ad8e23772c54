package simulation

import (
	"bytes"
	"math"
	"sync/atomic"
	"time"
)

// Prices are the list prices (USD) of what an enrollment uses, beyond the
// free tiers, as read on PricesRead from the services' pricing pages. They
// are the one place the cost model's prices live: update the date with them.
var Prices = PriceTable{
	PricesRead: "2026-12-06",
	// https://cloud.google.com/firestore/pricing (Standard edition): a US
	// region, where terraform puts the database by default (var.region); a
	// multi-region location (firestore_location nam5, eur3) costs twice as
	// much ($0.06, $0.18, $0.02). The certprov database is a named one: no
	// free quota, and TTL deletes are billed.
	FirestoreReadsPer100k:   0.03,
	FirestoreWritesPer100k:  0.09,
	FirestoreDeletesPer100k: 0.01,
	// https://cloud.google.com/run/pricing, Tier 1 regions, CPU allocated
	// only during requests (Cloud Run functions): billed time is rounded up
	// to 100 ms.
	RunRequestsPerMillion: 0.40,
	RunVCPUSecond:         0.000024,
	RunGiBSecond:          0.0000025,
	// https://cloud.google.com/tasks/pricing: an operation is an API call
	// (a task created) or a push delivery attempt.
	TasksPerMillionOps: 0.40,
	// https://cloud.google.com/pubsub/pricing: throughput, at least 1000
	// bytes per publish and per push.
	PubSubPerTiB:          40,
	PubSubMinRequestBytes: 1000,
	// https://cloud.google.com/stackdriver/pricing: ingestion beyond 50 GiB
	// per project and month.
	LoggingPerGiB: 0.50,
}

// PriceTable is a set of list prices (USD) and the date they were read.
type PriceTable struct {
	PricesRead              string  `json:"prices_read"`
	FirestoreReadsPer100k   float64 `json:"firestore_reads_per_100k"`
	FirestoreWritesPer100k  float64 `json:"firestore_writes_per_100k"`
	FirestoreDeletesPer100k float64 `json:"firestore_deletes_per_100k"`
	RunRequestsPerMillion   float64 `json:"run_requests_per_million"`
	RunVCPUSecond           float64 `json:"run_vcpu_second"`
	RunGiBSecond            float64 `json:"run_gib_second"`
	TasksPerMillionOps      float64 `json:"tasks_per_million_ops"`
	PubSubPerTiB            float64 `json:"pubsub_per_tib"`
	PubSubMinRequestBytes   float64 `json:"pubsub_min_request_bytes"`
	LoggingPerGiB           float64 `json:"logging_per_gib"`
}

// FunctionSize is a function's configured size.
type FunctionSize struct {
	VCPU float64 `json:"vcpu"`
	GiB  float64 `json:"gib"`
}

// DeployedSizes are what terraform deploys each function with by default
// (terraform/locals.tf, function_defaults; TestTerraformFunctionSizes holds
// the two together): PollSignature, which serves one request at a time, at
// a quarter of a vCPU and 256 MiB; the others at 1 vCPU and 512 MiB.
var DeployedSizes = map[string]FunctionSize{
	"ClaimProcess":     {VCPU: 1, GiB: 0.5},
	"PollSignature":    {VCPU: 0.25, GiB: 0.25},
	"IssueCertificate": {VCPU: 1, GiB: 0.5},
}

// Cost is what a run's enrollments cost at list prices: the usage per
// enrollment it was computed from, and dollars per 10,000 enrollments by
// service.
type Cost struct {
	Prices PriceTable              `json:"prices"`
	Sizes  map[string]FunctionSize `json:"function_sizes"`
	// Per enrollment.
	FirestoreReads   float64 `json:"firestore_reads"`
	FirestoreWrites  float64 `json:"firestore_writes"`
	FirestoreDeletes float64 `json:"firestore_deletes"`
	RunRequests      float64 `json:"run_requests"`
	// RunSeconds is the billed request time (each request's duration as
	// measured here, rounded up to 100 ms), as if every request had its
	// instance to itself, and RunSecondsBy the same by function. An
	// instance of a function that serves several requests at once is billed
	// once for the time they overlap, so for those this is an upper bound;
	// but the durations measured here have no network latency (the API, the
	// store and the queues answer in process), which on Cloud Run a request
	// waits for: there it lasts longer.
	RunSeconds   float64            `json:"run_seconds"`
	RunSecondsBy map[string]float64 `json:"run_seconds_by_function"`
	TaskOps      float64            `json:"task_ops"`
	PubSubBytes  float64            `json:"pubsub_bytes"`
	LogBytes     float64            `json:"log_bytes"`
	LogEntries   float64            `json:"log_entries"`
	Per10k       map[string]float64 `json:"usd_per_10k"`
	TotalPer10k  float64            `json:"usd_per_10k_total"`
}

// The services of the cost model, in the order they are printed.
const (
	CostFirestore   = "Firestore"
	CostRunRequests = "Cloud Run requests"
	CostRunCompute  = "Cloud Run CPU and memory"
	CostTasks       = "Cloud Tasks"
	CostPubSub      = "Pub/Sub"
	CostLogging     = "Cloud Logging"
)

// CostServices lists the services of Cost.Per10k in order.
var CostServices = []string{CostFirestore, CostRunRequests, CostRunCompute, CostTasks, CostPubSub, CostLogging}

// billed is d rounded up to Cloud Run's 100 ms billing unit.
func billed(d time.Duration) time.Duration {
	const unit = 100 * time.Millisecond
	return time.Duration(math.Ceil(float64(d)/float64(unit))) * unit
}

// costOf prices the usage of one enrollment (fields of c already set) with
// its prices and each function's size, filling Per10k and TotalPer10k.
func costOf(c Cost) Cost {
	p := c.Prices
	per := func(perEnrollment, unitPrice, unit float64) float64 { return perEnrollment * 10_000 * unitPrice / unit }
	c.Per10k = map[string]float64{
		CostFirestore: per(c.FirestoreReads, p.FirestoreReadsPer100k, 1e5) + per(c.FirestoreWrites, p.FirestoreWritesPer100k, 1e5) +
			per(c.FirestoreDeletes, p.FirestoreDeletesPer100k, 1e5),
		CostRunRequests: per(c.RunRequests, p.RunRequestsPerMillion, 1e6),
		CostRunCompute:  0,
		CostTasks:       per(c.TaskOps, p.TasksPerMillionOps, 1e6),
		CostPubSub:      per(c.PubSubBytes, p.PubSubPerTiB, 1<<40),
		CostLogging:     per(c.LogBytes, p.LoggingPerGiB, 1<<30),
	}
	for f, sec := range c.RunSecondsBy {
		size := c.Sizes[f]
		c.Per10k[CostRunCompute] += per(sec, size.VCPU*p.RunVCPUSecond+size.GiB*p.RunGiBSecond, 1)
	}
	c.TotalPer10k = 0
	for _, v := range c.Per10k {
		c.TotalPer10k += v
	}
	return c
}

// logCounter counts the bytes and lines written to it and keeps none.
type logCounter struct{ bytes, lines atomic.Int64 }

func (l *logCounter) Write(p []byte) (int, error) {
	l.bytes.Add(int64(len(p)))
	l.lines.Add(int64(bytes.Count(p, []byte{'\n'})))
	return len(p), nil
}
