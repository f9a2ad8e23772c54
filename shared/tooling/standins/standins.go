// Package standins runs the adapter's three functions exactly as deployed --
// registered by their packages, served over HTTP by functions-framework-go,
// configured by environment variables -- against the real local stand-ins of
// the cloud: the Firestore, Pub/Sub and Cloud Tasks emulators, with the
// Certificate Provisioning API emulator in front. The integration tests use
// Start; Load is the load run on the stand-ins (functions/cmd/standins),
// which reports the in-process run's figures (simulation.Report).
//
// The functions read the process environment when they first run, so Envs
// follow one another in a process; a measured Env (Options.Measure) builds
// its functions' pipelines at Start and serves them at paths of its own.
package standins

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	cloudtasks "cloud.google.com/go/cloudtasks/apiv2"
	"cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	gfs "cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"
	"google.golang.org/protobuf/types/known/durationpb"

	// The three functions register themselves, as in a deployment.
	_ "github.com/chromeos-certprov/adapter/functions/claim"
	_ "github.com/chromeos-certprov/adapter/functions/issue"
	_ "github.com/chromeos-certprov/adapter/functions/poll"

	"github.com/chromeos-certprov/adapter/shared/adapter"
	"github.com/chromeos-certprov/adapter/shared/ca/devca"
	"github.com/chromeos-certprov/adapter/shared/config"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/profile"
	"github.com/chromeos-certprov/adapter/shared/store/firestore"
	tcloud "github.com/chromeos-certprov/adapter/shared/tasks/cloudtasks"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
)

// Hosts are the emulators' host:port addresses.
type Hosts struct {
	Firestore string `json:"firestore"`
	PubSub    string `json:"pubsub"`
	Tasks     string `json:"cloudtasks"`
}

// Options configure an Env.
type Options struct {
	// Project is a project id of this run's own (keeps data apart).
	Project string
	// Customer is the one allowed customer.
	Customer string
	// Emulator options for the API emulator (Publish is set by Start).
	Emulator cpemulator.Options
	// Schedule is the poll schedule given to the functions.
	Schedule pipeline.PollSchedule
	// Dir holds the development CA's files.
	Dir string
	// LogLevel of the functions' logs (stdout); default "warn".
	LogLevel string
	// Measure serves, beside the registered functions, measured twins of
	// them (same handlers, pipelines built by adapter.FromEnv from the same
	// environment) that count invocations, answers, store operations, task
	// creations and CA issuances, and points the push subscription and the
	// task URLs at the twins. See Env.Measures. The load run uses it.
	Measure bool
	// PushShards is the number of topics, each with its own push
	// subscription to ClaimProcess, that the API emulator's notifications
	// are spread over, round robin (default 1: Env.Topic alone). The Pub/Sub
	// emulator pushes at most two messages of a subscription at a time
	// (two push loops per subscription, each posting one message and
	// waiting for the answer), where Pub/Sub itself scales push
	// concurrency with the subscriber's throughput: shards lift that limit.
	PushShards int
	// Rate limits of the queues; zero: the Cloud Tasks maximum rate (500
	// dispatches/s) and 1000 concurrent dispatches.
	MaxDispatchesPerSecond  float64
	MaxConcurrentDispatches int32
}

// Env is a running set of functions and stand-ins.
type Env struct {
	Project   string
	Customer  string
	Emu       *cpemulator.Emulator
	Store     *firestore.Store
	CA        *x509.Certificate
	Functions string // base URL of the functions server
	Topic     string

	ps     *pubsub.Client
	pubs   []*pubsub.Publisher
	pubN   atomic.Int64
	topics []string
	subs   []string

	pubMu     sync.Mutex
	published []*pubsub.PublishResult
	fs        *gfs.Client
	tasks     *cloudtasks.Client
	emuSrv    *http.Server
	meter     *meter
	sub       string
	queues    []string
}

// Start configures the environment, creates the topic, push subscription and
// queues, and serves the functions. Call Close when done.
func Start(ctx context.Context, h Hosts, o Options) (*Env, error) {
	if o.LogLevel == "" {
		o.LogLevel = "warn"
	}
	e := &Env{Project: o.Project, Customer: o.Customer}

	// The development CA, from files so that every function instance uses the same one.
	cert, key, err := devca.Generate("certprov stand-ins CA")
	if err != nil {
		return nil, err
	}
	e.CA = cert
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	certFile, keyFile := filepath.Join(o.Dir, "ca.pem"), filepath.Join(o.Dir, "ca.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, err
	}
	settings, _ := json.Marshal(devca.Settings{CertFile: certFile, KeyFile: keyFile})
	adapterCfg, _ := json.Marshal(config.Adapter{
		AllowedCustomers: []string{o.Customer},
		CAConnections:    map[string]config.CAConnection{cpemulator.DefaultCARef: {Type: devca.Type, Settings: settings}},
		Profiles:         Profiles(),
	})

	// The API emulator; new processes are announced on the Pub/Sub topic.
	e.Topic = "projects/" + o.Project + "/topics/certprov"
	emuOpts := o.Emulator
	// Publishing does not wait for the server's answer (the client batches),
	// so creating many clients at once is not paced by publish round trips;
	// WaitPublished collects the answers.
	emuOpts.Publish = func(ctx context.Context, data []byte, attrs map[string]string) error {
		pub := e.pubs[int(e.pubN.Add(1)-1)%len(e.pubs)]
		r := pub.Publish(ctx, &pubsub.Message{Data: data, Attributes: attrs})
		e.pubMu.Lock()
		e.published = append(e.published, r)
		e.pubMu.Unlock()
		return nil
	}
	e.Emu = cpemulator.New(emuOpts)
	emuLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e.emuSrv = &http.Server{Handler: e.Emu}
	go e.emuSrv.Serve(emuLn)

	fnPort, err := freePort()
	if err != nil {
		return nil, err
	}
	e.Functions = fmt.Sprintf("http://127.0.0.1:%d", fnPort)
	loc := "projects/" + o.Project + "/locations/us-central1"
	fnURL := func(name string) string { return e.Functions + "/" + name }
	if o.Measure {
		fnURL = func(name string) string { return e.Functions + measuredPath(o.Project, name) }
	}
	env := map[string]string{
		"GOOGLE_CLOUD_PROJECT":       o.Project,
		"CERTPROV_API_EMULATOR_HOST": emuLn.Addr().String(),
		"CERTPROV_CONFIG":            string(adapterCfg),
		"CALLER_INSTANCE_ID":         "certprov-standins",
		"FIRESTORE_EMULATOR_HOST":    h.Firestore,
		"FIRESTORE_COLLECTION":       "certprovProcesses",
		"CLOUD_TASKS_EMULATOR_HOST":  h.Tasks,
		"TASKS_POLL_QUEUE":           loc + "/queues/poll-" + o.Project,
		"TASKS_ISSUE_QUEUE":          loc + "/queues/issue-" + o.Project,
		// The claim queue, as terraform always makes it: claims are paced
		// (a claim that meets 429 waits there; PollSignature runs it at
		// /claim).
		"TASKS_CLAIM_QUEUE":     loc + "/queues/claim-" + o.Project,
		"POLL_SIGNATURE_URL":    fnURL(PollSignature),
		"ISSUE_CERTIFICATE_URL": fnURL(IssueCertificate),
		"TASKS_MAX_ATTEMPTS":    "10",
		"POLL_INITIAL_DELAY":    o.Schedule.Initial.String(),
		"POLL_MULTIPLIER":       strconv.FormatFloat(o.Schedule.Multiplier, 'f', -1, 64),
		"POLL_MAX_DELAY":        o.Schedule.Max.String(),
		"POLL_JITTER":           strconv.FormatFloat(o.Schedule.Jitter, 'f', -1, 64),
		"POLL_DEADLINE":         o.Schedule.Deadline.String(),
		"LOG_LEVEL":             o.LogLevel,
		"PUBSUB_EMULATOR_HOST":  h.PubSub,
	}
	// The late phase of the schedule, when it has one ("0" turns it off;
	// unset, the code's default would apply).
	env["POLL_LATE_AFTER"], env["POLL_FAST_FOR"] = "0", "0"
	if o.Schedule.FastFor > 0 {
		env["POLL_FAST_FOR"] = o.Schedule.FastFor.String()
	}
	if o.Schedule.LateAfter > 0 && o.Schedule.LateInterval > 0 {
		env["POLL_LATE_AFTER"] = o.Schedule.LateAfter.String()
		env["POLL_LATE_INTERVAL"] = o.Schedule.LateInterval.String()
	}
	for k, v := range env {
		if err := os.Setenv(k, v); err != nil {
			return nil, err
		}
	}
	os.Unsetenv("FUNCTION_TARGET") // serve every function at /<Name>

	// Cloud Tasks queues with a bounded retry config, as terraform makes them,
	// and rate limits of their own (terraform's defaults are kept low for the
	// API quota; here the API is an emulator).
	rate, concurrent := o.MaxDispatchesPerSecond, o.MaxConcurrentDispatches
	if rate <= 0 {
		rate = 500
	}
	if concurrent <= 0 {
		concurrent = 1000
	}
	topts, err := tcloud.Dial(ctx, h.Tasks)
	if err != nil {
		return nil, err
	}
	if e.tasks, err = cloudtasks.NewClient(ctx, topts...); err != nil {
		return nil, fmt.Errorf("standins: cloud tasks client: %w", err)
	}
	for _, q := range []string{env["TASKS_POLL_QUEUE"], env["TASKS_ISSUE_QUEUE"], env["TASKS_CLAIM_QUEUE"]} {
		_, err := e.tasks.CreateQueue(ctx, &cloudtaskspb.CreateQueueRequest{Parent: loc, Queue: &cloudtaskspb.Queue{
			Name:       q,
			RateLimits: &cloudtaskspb.RateLimits{MaxDispatchesPerSecond: rate, MaxConcurrentDispatches: concurrent},
			RetryConfig: &cloudtaskspb.RetryConfig{
				MaxAttempts: 10, MinBackoff: durationpb.New(100 * time.Millisecond), MaxBackoff: durationpb.New(5 * time.Second), MaxDoublings: 5,
			},
		}})
		if err != nil {
			return nil, fmt.Errorf("standins: create queue %s: %w", q, err)
		}
		e.queues = append(e.queues, q)
	}
	if o.Measure {
		if err := e.registerMeasured(ctx); err != nil {
			return nil, err
		}
	} else if err := registerPollPaths(ctx); err != nil {
		return nil, err
	}

	// Serve the functions, then point the push subscriptions at the claim function.
	go func() { _ = funcframework.StartHostPort("127.0.0.1", strconv.Itoa(fnPort)) }()
	if err := waitTCP(ctx, fmt.Sprintf("127.0.0.1:%d", fnPort)); err != nil {
		return nil, err
	}
	if e.ps, err = pubsub.NewClient(ctx, o.Project); err != nil {
		return nil, fmt.Errorf("standins: pubsub client: %w", err)
	}
	for i := range max(1, o.PushShards) {
		topic, sub := e.Topic, "projects/"+o.Project+"/subscriptions/certprov-claim"
		if i > 0 {
			topic, sub = fmt.Sprintf("%s-%d", topic, i), fmt.Sprintf("%s-%d", sub, i)
		}
		if _, err := e.ps.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topic}); err != nil {
			return nil, fmt.Errorf("standins: create topic: %w", err)
		}
		e.topics = append(e.topics, topic)
		if _, err := e.ps.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
			Name:               sub,
			Topic:              topic,
			PushConfig:         &pubsubpb.PushConfig{PushEndpoint: fnURL(ClaimProcess)},
			AckDeadlineSeconds: 30,
		}); err != nil {
			return nil, fmt.Errorf("standins: create push subscription: %w", err)
		}
		e.subs = append(e.subs, sub)
		e.pubs = append(e.pubs, e.ps.Publisher(topic))
	}

	if e.fs, err = gfs.NewClient(ctx, o.Project); err != nil {
		return nil, fmt.Errorf("standins: firestore client: %w", err)
	}
	e.Store = firestore.New(e.fs, env["FIRESTORE_COLLECTION"])
	return e, nil
}

// WaitPublished waits until the Pub/Sub emulator has accepted every
// notification published so far, and returns the failures.
func (e *Env) WaitPublished(ctx context.Context) error {
	e.pubMu.Lock()
	rs := e.published
	e.published = nil
	e.pubMu.Unlock()
	var errs []error
	for _, r := range rs {
		if _, err := r.Get(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("standins: %d of %d notifications not published: %w", len(errs), len(rs), errors.Join(errs...))
	}
	return nil
}

// Close stops what Start started (the functions server stays: funcframework
// cannot be stopped, and the process ends soon after). It deletes the push
// subscription, the topic and the queues, so that an emulator that outlives
// this process does not keep delivering to a server that is gone.
func (e *Env) Close() {
	for _, p := range e.pubs {
		p.Stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if e.ps != nil {
		for _, sub := range e.subs {
			_ = e.ps.SubscriptionAdminClient.DeleteSubscription(ctx, &pubsubpb.DeleteSubscriptionRequest{Subscription: sub})
		}
		for _, topic := range e.topics {
			_ = e.ps.TopicAdminClient.DeleteTopic(ctx, &pubsubpb.DeleteTopicRequest{Topic: topic})
		}
	}
	if e.tasks != nil {
		for _, q := range e.queues {
			_ = e.tasks.DeleteQueue(ctx, &cloudtaskspb.DeleteQueueRequest{Name: q})
		}
	}
	for _, c := range []interface{ Close() error }{e.ps, e.fs, e.tasks} {
		if c != nil {
			_ = c.Close()
		}
	}
	if e.emuSrv != nil {
		_ = e.emuSrv.Close()
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitTCP(ctx context.Context, addr string) error {
	for range 100 {
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return errors.New("standins: functions server did not start on " + addr)
}

// Profiles are the stand-ins' generic profiles (the local run's defaults).
func Profiles() map[string]profile.Profile {
	return map[string]profile.Profile{
		cpemulator.DefaultDeviceProfileRef: {
			Subject:         profile.Subject{CommonName: "${DEVICE_SERIAL_NUMBER}", Organization: []string{"Example Corp"}},
			SubjectAltNames: []profile.SAN{{Type: profile.SANURI, Value: "urn:chromeos:device:${DEVICE_DIRECTORY_ID}"}},
		},
		cpemulator.DefaultUserProfileRef: {
			Subject:         profile.Subject{CommonName: "${USER_EMAIL}"},
			SubjectAltNames: []profile.SAN{{Type: profile.SANEmail, Value: "${USER_EMAIL}"}},
		},
	}
}

// pollPaths registers, once per process, what serves PollSignature's own
// paths (/sweep, /claim) under its URL here. Deployed, each function is its
// own service and functions-framework-go serves it at "/", so those paths
// reach it; served together, each function has only the exact path of its
// name, and /PollSignature/claim would be answered 404.
var pollPaths struct {
	once sync.Once
	err  error
}

func registerPollPaths(ctx context.Context) error {
	pollPaths.once.Do(func() {
		base := "/" + PollSignature
		pollPaths.err = funcframework.RegisterHTTPFunctionContext(ctx, base+"/", http.StripPrefix(base, adapter.Poll(adapter.Lazy(PollSignature))).ServeHTTP)
	})
	return pollPaths.err
}
