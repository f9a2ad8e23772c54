package standins_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/chromeos-certprov/adapter/shared/adapter"
	"github.com/chromeos-certprov/adapter/shared/tooling/testenv"
)

// TestEmulatorPushShape: what the Pub/Sub emulator pushes to a subscription
// configured as terraform configures the claim subscription (dead-letter
// policy, retry policy, OIDC token) is decoded by adapter.DecodePush, and the
// emulator honours the dead-letter policy. What it was found to send (Cloud
// SDK 528, emulator 0.8.20): the wrapped message with messageId/message_id and
// publishTime/publish_time, but no top-level deliveryAttempt and no
// Authorization header; a message nacked max_delivery_attempts times goes to
// the dead-letter topic with CloudPubSubDeadLetterSourceDeliveryCount. Should
// a later emulator send deliveryAttempt, it must count the deliveries from 1.
func TestEmulatorPushShape(t *testing.T) {
	host := testenv.PubSub(t)
	t.Setenv("PUBSUB_EMULATOR_HOST", host)
	ctx := context.Background()
	project := fmt.Sprintf("pushshape%d", time.Now().UnixNano()%1e9)
	const maxAttempts = 5 // the least Pub/Sub accepts

	var mu sync.Mutex
	var pushes []adapter.Push
	var auth []string
	var bad []error
	endpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		p, err := adapter.DecodePush(body)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			bad = append(bad, fmt.Errorf("%w: %s", err, body))
		}
		pushes = append(pushes, p)
		auth = append(auth, r.Header.Get("Authorization"))
		http.Error(w, "retry", http.StatusServiceUnavailable) // never acknowledged: dead-lettered in the end
	}))
	defer endpoint.Close()

	ps, err := pubsub.NewClient(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	topic, dead := "projects/"+project+"/topics/notifications", "projects/"+project+"/topics/dead-letter"
	sub, deadSub := "projects/"+project+"/subscriptions/claim", "projects/"+project+"/subscriptions/dead-letter"
	for _, name := range []string{topic, dead} {
		if _, err := ps.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ps.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{Name: deadSub, Topic: dead}); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name: sub, Topic: topic, AckDeadlineSeconds: 30,
		PushConfig: &pubsubpb.PushConfig{PushEndpoint: endpoint.URL, AuthenticationMethod: &pubsubpb.PushConfig_OidcToken_{
			OidcToken: &pubsubpb.PushConfig_OidcToken{ServiceAccountEmail: "certprov-push@" + project + ".iam.gserviceaccount.com", Audience: endpoint.URL}}},
		RetryPolicy:      &pubsubpb.RetryPolicy{MinimumBackoff: durationpb.New(100 * time.Millisecond), MaximumBackoff: durationpb.New(time.Second)},
		DeadLetterPolicy: &pubsubpb.DeadLetterPolicy{DeadLetterTopic: dead, MaxDeliveryAttempts: maxAttempts},
	}); err != nil {
		t.Fatal(err)
	}
	pub := ps.Publisher(topic)
	defer pub.Stop()
	data := []byte("notification bytes")
	if _, err := pub.Publish(ctx, &pubsub.Message{Data: data, Attributes: map[string]string{"k": "v"}}).Get(ctx); err != nil {
		t.Fatal(err)
	}

	// The dead-lettered message, once every delivery failed.
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var deadCount string
	_ = ps.Subscriber(deadSub).Receive(rctx, func(_ context.Context, m *pubsub.Message) {
		deadCount = m.Attributes["CloudPubSubDeadLetterSourceDeliveryCount"]
		m.Ack()
		cancel()
	})
	if deadCount != fmt.Sprint(maxAttempts) {
		t.Errorf("dead-lettered after %q deliveries, want %d", deadCount, maxAttempts)
	}

	mu.Lock()
	defer mu.Unlock()
	for _, err := range bad {
		t.Errorf("push not decoded: %v", err)
	}
	if len(pushes) != maxAttempts {
		t.Errorf("%d pushes, want %d (the dead-letter policy's bound)", len(pushes), maxAttempts)
	}
	carried := 0
	for i, p := range pushes {
		if string(p.Message.Data) != string(data) || p.Message.MessageID == "" || p.Message.PublishTime.IsZero() ||
			p.Message.Attributes["k"] != "v" || p.Subscription != sub {
			t.Errorf("push %d decoded as %+v", i+1, p)
		}
		if p.DeliveryAttempt != 0 {
			carried++
			if p.DeliveryAttempt != i+1 {
				t.Errorf("push %d carries deliveryAttempt %d", i+1, p.DeliveryAttempt)
			}
		}
	}
	t.Logf("the emulator's pushes carry deliveryAttempt: %d of %d; Authorization headers: %q", carried, len(pushes), auth)
}
