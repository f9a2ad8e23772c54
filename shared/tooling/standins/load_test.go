package standins_test

import (
	"context"
	"testing"
	"time"

	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/tooling/simulation"
	"github.com/chromeos-certprov/adapter/shared/tooling/standins"
	"github.com/chromeos-certprov/adapter/shared/tooling/testenv"
)

// TestLoadOverRealStandIns runs the load mode at a small size: every client
// enrolls through the Pub/Sub push, the Cloud Tasks queues and the Firestore
// emulator, and the report has the in-process run's figures, counted.
func TestLoadOverRealStandIns(t *testing.T) {
	hosts := standins.Hosts{Firestore: testenv.Firestore(t), PubSub: testenv.PubSub(t), Tasks: testenv.CloudTasks(t)}
	const n = 30
	res, err := standins.Load(context.Background(), hosts, standins.LoadOptions{
		Options: simulation.Options{
			Clients:   n,
			FastDelay: simulation.Range{Min: 100 * time.Millisecond, Max: 800 * time.Millisecond},
			Schedule:  pipeline.PollSchedule{Initial: 300 * time.Millisecond, Multiplier: 1.5, Max: 2 * time.Second, Jitter: 0.2, Deadline: 2 * time.Minute},
			Timeout:   3 * time.Minute,
			Seed:      7,
		},
		Dir:        t.TempDir(),
		PushShards: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	r := res.Report
	if !r.OK() {
		t.Fatalf("not OK: unexpected %v, violations %v", r.Unexpected, r.Violations)
	}
	if r.Clients != n || r.Outcomes.Uploaded != n {
		t.Errorf("clients %d, uploaded %d; want %d", r.Clients, r.Outcomes.Uploaded, n)
	}
	for method, want := range map[string]int{"claim": n, "signData": n, "uploadCertificate": n, "setFailure": 0} {
		if got := r.APICalls[method]; got != want {
			t.Errorf("API %s calls: %d, want %d", method, got, want)
		}
	}
	if r.CertificatesIssued != n {
		t.Errorf("certificates issued %d, want %d", r.CertificatesIssued, n)
	}
	// Each process is created, claimed, signed and uploaded through the
	// store: at least four writes and as many reads.
	pe := r.PerEnrollment
	if pe.StoreReads < 4 || pe.StoreWrites < 4 || r.Store.Transactions == 0 {
		t.Errorf("store per enrollment: %.1f reads, %.1f writes, %d transactions; want at least 4 reads and writes", pe.StoreReads, pe.StoreWrites, r.Store.Transactions)
	}
	// One push per notification at least (more when redelivered), one issue
	// per process, and one poll per process at least.
	for fn, least := range map[string]float64{standins.ClaimProcess: 1, standins.PollSignature: 1, standins.IssueCertificate: 1} {
		if got := pe.ByFunction[fn]; got < least {
			t.Errorf("%s invocations per enrollment %.2f, want at least %g", fn, got, least)
		}
	}
	if r.PubSub.Deliveries < n || r.Tasks.Enqueued < 2*n || r.Tasks.Dispatched < 2*n {
		t.Errorf("deliveries %d, tasks created %d, dispatched %d; want at least %d, %d, %d", r.PubSub.Deliveries, r.Tasks.Enqueued, r.Tasks.Dispatched, n, 2*n, 2*n)
	}
	if r.TimeToCertificate.N != n || r.AddedLatency.N != n || r.TimeToCertificate.P50 <= 0 {
		t.Errorf("latencies: time to certificate %+v, added %+v; want %d samples each", r.TimeToCertificate, r.AddedLatency, n)
	}
	if r.CPUSeconds <= 0 || r.WallSeconds <= 0 || r.EnrollmentsPerSec <= 0 || r.PeakRSSMiB <= 0 {
		t.Errorf("cpu %gs, wall %gs, %g/s, peak RSS %g MiB: want all positive", r.CPUSeconds, r.WallSeconds, r.EnrollmentsPerSec, r.PeakRSSMiB)
	}
	// The emulators' CPU is read from /proc when they are this user's.
	if len(res.StandIns.Notes) == 0 {
		for _, name := range []string{"firestore", "pubsub", "cloudtasks"} {
			if u, ok := res.StandIns.Emulators[name]; !ok || u.PID == 0 {
				t.Errorf("emulator %s: no usage read (%+v)", name, res.StandIns.Emulators)
			}
		}
	}
	if got := res.StandIns.MaxInFlight[standins.ClaimProcess]; got < 1 || got > 4 {
		t.Errorf("ClaimProcess at most %d at once with 2 push subscriptions; want 1 to 4 (2 per subscription)", got)
	}
}

func TestLoadRefusesInProcessFaults(t *testing.T) {
	_, err := standins.Load(context.Background(), standins.Hosts{}, standins.LoadOptions{Options: simulation.Options{Clients: 1, CrashRate: 0.1}})
	if err == nil {
		t.Fatal("Load with CrashRate: no error")
	}
}
