package simulation

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/chromeos-certprov/adapter/shared/adapter"
)

// The simulation pushes what Pub/Sub pushes: deliveryAttempt at the top level
// of the body, not inside the message, where the claim function would not
// find it.
func TestPushBodyHasTheRealShape(t *testing.T) {
	t.Parallel()
	body := pushBody([]byte("note"), 7, 3, time.Now())
	var raw struct {
		Message         map[string]json.RawMessage `json:"message"`
		DeliveryAttempt *int                       `json:"deliveryAttempt"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	if raw.DeliveryAttempt == nil || *raw.DeliveryAttempt != 3 {
		t.Errorf("top-level deliveryAttempt %v, want 3: %s", raw.DeliveryAttempt, body)
	}
	if _, ok := raw.Message["deliveryAttempt"]; ok {
		t.Errorf("deliveryAttempt inside the message: %s", body)
	}
	for _, field := range []string{"data", "messageId", "message_id", "publishTime", "publish_time"} {
		if _, ok := raw.Message[field]; !ok {
			t.Errorf("message lacks %s: %s", field, body)
		}
	}
	p, err := adapter.DecodePush(body)
	if err != nil || string(p.Message.Data) != "note" || p.DeliveryAttempt != 3 || p.Message.MessageID != "7" {
		t.Errorf("decoded %+v, %v", p, err)
	}
}
