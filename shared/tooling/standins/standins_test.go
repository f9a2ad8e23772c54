package standins_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"sync"
	"testing"
	"time"

	cloudtasks "cloud.google.com/go/cloudtasks/apiv2"
	"cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"

	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/progress"
	tcloud "github.com/chromeos-certprov/adapter/shared/tasks/cloudtasks"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
	"github.com/chromeos-certprov/adapter/shared/tooling/standins"
	"github.com/chromeos-certprov/adapter/shared/tooling/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestEnrollOverRealStandIns: the Pub/Sub emulator pushes each notification
// to ClaimProcess served by functions-framework-go; the Cloud Tasks emulator
// dispatches PollSignature and IssueCertificate over HTTP; progress lives in
// the Firestore emulator; the API is the emulator. Every process ends with an
// uploaded certificate that chains to the development CA.
func TestEnrollOverRealStandIns(t *testing.T) {
	hosts := standins.Hosts{Firestore: testenv.Firestore(t), PubSub: testenv.PubSub(t), Tasks: testenv.CloudTasks(t)}
	ctx := context.Background()
	project := fmt.Sprintf("standins%d", time.Now().UnixNano()%1e9)
	env, err := standins.Start(ctx, hosts, standins.Options{
		Project: project, Customer: "C0standins", Dir: t.TempDir(),
		Schedule: pipeline.PollSchedule{Initial: 300 * time.Millisecond, Multiplier: 1.5, Max: 2 * time.Second, Jitter: 0.2, Deadline: 2 * time.Minute},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Close)

	// A malformed message on the topic is acknowledged and changes nothing.
	ps, err := pubsub.NewClient(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	pub := ps.Publisher(env.Topic)
	defer pub.Stop()
	if _, err := pub.Publish(ctx, &pubsub.Message{Data: []byte("this is not a notification")}).Get(ctx); err != nil {
		t.Fatal(err)
	}

	const n = 24
	var names []string
	for i := range n {
		spec := cpemulator.ClientSpec{Customer: env.Customer, SignDelay: time.Duration(i%4) * 300 * time.Millisecond}
		if i%2 == 1 {
			spec.Key = cpemulator.ECP256
		}
		if i%3 == 0 {
			spec.Kind = cpemulator.User
		}
		name, err := env.Emu.AddClient(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	// A duplicate Pub/Sub delivery of the first notification.
	if err := env.Emu.Notify(ctx, names[0]); err != nil {
		t.Fatal(err)
	}

	keys := make([]string, n)
	for i, name := range names {
		s, _ := env.Emu.Process(name)
		keys[i] = progress.Key(s.Customer, s.ID)
	}
	waitAll(t, env, keys, 3*time.Minute)

	// A duplicate dispatch of an issue task, after the end: a no-op.
	dupIssueTask(t, ctx, hosts.Tasks, project, env, keys[1])
	time.Sleep(time.Second)

	pool := x509.NewCertPool()
	pool.AddCert(env.CA)
	for i, name := range names {
		s, _ := env.Emu.Process(name)
		rec, err := env.Store.Get(ctx, keys[i])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if rec.State != progress.StateUploaded || s.State != cpemulator.StateUploaded {
			t.Errorf("%s: record %s, API %s; want uploaded (last error %q)", name, rec.State, s.State, rec.LastError)
			continue
		}
		if s.SignDataCalls != 1 || s.UploadCalls != 1 {
			t.Errorf("%s: signData %d, uploads %d", name, s.SignDataCalls, s.UploadCalls)
		}
		block, _ := pem.Decode([]byte(s.UploadedPEM))
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			t.Errorf("%s: does not chain to the development CA: %v", name, err)
		}
		if string(cert.RawSubjectPublicKeyInfo) != string(s.SPKI) {
			t.Errorf("%s: certificate key is not the client's", name)
		}
		if rec.ExpireAt == nil || len(rec.SignData) == 0 || len(rec.CSR) == 0 || rec.OperationName == "" {
			t.Errorf("%s: record lacks expireAt, signData, CSR or operation name", name)
		}
	}
	calls := env.Emu.Calls()
	if calls["signData"] != n || calls["uploadCertificate"] != n || calls["setFailure"] != 0 {
		t.Errorf("API calls %v: want %d signData and uploads, no setFailure", calls, n)
	}
	if v := env.Emu.Violations(); len(v) > 0 {
		t.Errorf("API misuse: %+v", v)
	}
	// The malformed message was acknowledged: nothing is left on the subscription.
	sub, err := ps.SubscriptionAdminClient.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: "projects/" + project + "/subscriptions/certprov-claim"})
	if err != nil || sub.PushConfig.GetPushEndpoint() == "" {
		t.Errorf("subscription: %v", err)
	}
}

// TestClaimQueueOverRealStandIns: every process's first claim meets the API's
// quota (429). ClaimProcess hands it to the claim queue and acknowledges the
// push; the Cloud Tasks emulator dispatches the claim task to PollSignature's
// /claim path over HTTP, which claims and signs; every process ends uploaded
// with one signData, and no Pub/Sub redelivery was spent on the quota.
func TestClaimQueueOverRealStandIns(t *testing.T) {
	hosts := standins.Hosts{Firestore: testenv.Firestore(t), PubSub: testenv.PubSub(t), Tasks: testenv.CloudTasks(t)}
	ctx := context.Background()
	project := fmt.Sprintf("standins%d", time.Now().UnixNano()%1e9)
	var mu sync.Mutex
	refused := map[string]bool{}
	env, err := standins.Start(ctx, hosts, standins.Options{
		Project: project, Customer: "C0standins", Dir: t.TempDir(),
		Schedule: pipeline.PollSchedule{Initial: 300 * time.Millisecond, Multiplier: 1.5, Max: 2 * time.Second, Jitter: 0.2, Deadline: 2 * time.Minute},
		Measure:  true, // its own pipelines and paths: one deployed-style Env per process
		Emulator: cpemulator.Options{Fault: func(method, name string) cpemulator.Fault {
			mu.Lock()
			defer mu.Unlock()
			if method != cpemulator.MethodClaim || refused[name] {
				return cpemulator.NoFault
			}
			refused[name] = true
			return cpemulator.FaultResourceExhausted
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Close)

	const n = 6
	keys := make([]string, n)
	names := make([]string, n)
	for i := range n {
		name, err := env.Emu.AddClient(ctx, cpemulator.ClientSpec{Customer: env.Customer, Key: cpemulator.ECP256})
		if err != nil {
			t.Fatal(err)
		}
		s, _ := env.Emu.Process(name)
		names[i], keys[i] = name, progress.Key(s.Customer, s.ID)
	}
	waitAll(t, env, keys, 2*time.Minute)
	for i, name := range names {
		s, _ := env.Emu.Process(name)
		rec, err := env.Store.Get(ctx, keys[i])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if rec.State != progress.StateUploaded || s.State != cpemulator.StateUploaded || s.SignDataCalls != 1 {
			t.Errorf("%s: record %s, API %s, signData %d; want uploaded after one signData (last error %q)", name, rec.State, s.State, s.SignDataCalls, rec.LastError)
		}
	}
	if calls := env.Emu.Calls(); calls["claim"] != 2*n {
		t.Errorf("API calls %v: want %d claims, one refused with 429 and one from the claim queue per process", calls, 2*n)
	}
	if v := env.Emu.Violations(); len(v) > 0 {
		t.Errorf("API misuse: %+v", v)
	}
}

func waitAll(t *testing.T, env *standins.Env, keys []string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		done := 0
		var states []string
		for _, k := range keys {
			rec, err := env.Store.Get(context.Background(), k)
			if err == nil && rec.State.Terminal() {
				done++
			} else if err == nil {
				states = append(states, string(rec.State))
			}
		}
		if done == len(keys) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d processes finished after %s; others in %v", done, len(keys), timeout, states)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// dupIssueTask dispatches an issue task for key a second time, under a new
// task name, as a duplicate delivery would.
func dupIssueTask(t *testing.T, ctx context.Context, host, project string, env *standins.Env, key string) {
	t.Helper()
	opts, err := tcloud.Dial(ctx, host)
	if err != nil {
		t.Fatal(err)
	}
	c, err := cloudtasks.NewClient(ctx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := fmt.Sprintf(`{"key":%q}`, key)
	_, err = c.CreateTask(ctx, &cloudtaskspb.CreateTaskRequest{
		Parent: "projects/" + project + "/locations/us-central1/queues/issue-" + project,
		Task: &cloudtaskspb.Task{MessageType: &cloudtaskspb.Task_HttpRequest{HttpRequest: &cloudtaskspb.HttpRequest{
			Url: env.Functions + "/IssueCertificate", HttpMethod: cloudtaskspb.HttpMethod_POST, Body: []byte(body),
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
}
