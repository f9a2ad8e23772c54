package simulation

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// TestCostOf: the model prices each service from the usage per enrollment;
// the figures (26.6 reads and 16.8 writes an enrollment) come to its
// $0.46 of Firestore per 10,000 enrollments at multi-region prices.
func TestCostOf(t *testing.T) {
	t.Parallel()
	p := PriceTable{
		FirestoreReadsPer100k: 0.06, FirestoreWritesPer100k: 0.18, FirestoreDeletesPer100k: 0.02,
		RunRequestsPerMillion: 0.40, RunVCPUSecond: 0.000024, RunGiBSecond: 0.0000025,
		TasksPerMillionOps: 0.40, PubSubPerTiB: 40, PubSubMinRequestBytes: 1000, LoggingPerGiB: 0.50,
	}
	got := costOf(Cost{
		Prices: p, Sizes: map[string]FunctionSize{"a": {VCPU: 1, GiB: 0.5}, "b": {VCPU: 0.25, GiB: 0.25}},
		FirestoreReads: 26.6, FirestoreWrites: 16.8, FirestoreDeletes: 1,
		RunRequests: 10, RunSeconds: 3, RunSecondsBy: map[string]float64{"a": 1, "b": 2}, TaskOps: 2, PubSubBytes: 1 << 20, LogBytes: 1 << 10,
	})
	want := map[string]float64{
		CostFirestore:   0.1596 + 0.3024 + 0.002,
		CostRunRequests: 0.04,
		CostRunCompute:  10_000 * ((0.000024 + 0.5*0.0000025) + 2*(0.25*0.000024+0.25*0.0000025)),
		CostTasks:       0.008,
		CostPubSub:      10_000 * 40.0 / (1 << 20),
		CostLogging:     10_000 * 0.5 / (1 << 20),
	}
	if diff := cmp.Diff(want, got.Per10k, cmpopts.EquateApprox(1e-9, 0)); diff != "" {
		t.Errorf("per 10,000 enrollments (-want +got):\n%s", diff)
	}
	var sum float64
	for _, v := range want {
		sum += v
	}
	if math.Abs(got.TotalPer10k-sum) > 1e-9 {
		t.Errorf("total %g, want %g", got.TotalPer10k, sum)
	}
	if len(CostServices) != len(got.Per10k) {
		t.Errorf("CostServices lists %d services, the model prices %d", len(CostServices), len(got.Per10k))
	}
}

// TestPricesAreDated: the price table says when it was read.
func TestPricesAreDated(t *testing.T) {
	t.Parallel()
	if _, err := time.Parse(time.DateOnly, Prices.PricesRead); err != nil {
		t.Errorf("Prices.PricesRead %q: %v", Prices.PricesRead, err)
	}
}

// TestRunHasACost: a small run reports a cost with every service and counts
// the adapter's log lines.
func TestRunHasACost(t *testing.T) {
	t.Parallel()
	o := &Options{Clients: 20, FastDelay: Range{Min: time.Millisecond, Max: 5 * time.Millisecond}, Seed: 1}
	o.Schedule.Initial, o.Schedule.Multiplier, o.Schedule.Max, o.Schedule.Deadline = 20*time.Millisecond, 1.5, 100*time.Millisecond, 10*time.Second
	w, err := Execute(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	r := w.Report(o)
	if r.Cost == nil || r.Cost.TotalPer10k <= 0 || r.Cost.LogEntries <= 0 || r.Cost.RunSeconds < 0.1 {
		t.Fatalf("cost %+v", r.Cost)
	}
	for _, s := range CostServices {
		if r.Cost.Per10k[s] <= 0 {
			t.Errorf("%s: $%g per 10,000 enrollments", s, r.Cost.Per10k[s])
		}
	}
	if sc := r.PerScenario[Online]; sc.StoreReads <= 0 || sc.StoreWrites <= 0 {
		t.Errorf("online clients: %g reads, %g writes each", sc.StoreReads, sc.StoreWrites)
	}
}

// TestTerraformFunctionSizes: the cost model prices each function at the
// size terraform deploys it with by default (terraform/locals.tf,
// function_defaults); a size changed in one place and not the other fails
// here.
func TestTerraformFunctionSizes(t *testing.T) {
	t.Parallel()
	path := filepath.Join("..", "..", "..", "terraform", "locals.tf")
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, diags := hclsyntax.ParseConfig(src, path, hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var defaults cty.Value
	for _, b := range f.Body.(*hclsyntax.Body).Blocks {
		if a, ok := b.Body.Attributes["function_defaults"]; b.Type == "locals" && ok {
			if defaults, diags = a.Expr.Value(nil); diags.HasErrors() {
				t.Fatalf("function_defaults: %v", diags)
			}
		}
	}
	if defaults.IsNull() {
		t.Fatal("terraform/locals.tf has no function_defaults local")
	}
	functions := map[string]string{"claim": "ClaimProcess", "poll": "PollSignature", "issue": "IssueCertificate"}
	got := map[string]FunctionSize{}
	for k, v := range defaults.AsValueMap() {
		cpu, err := strconv.ParseFloat(v.GetAttr("cpu").AsString(), 64)
		if err != nil {
			t.Fatalf("function_defaults.%s.cpu: %v", k, err)
		}
		mem := v.GetAttr("memory").AsString()
		mib, err := strconv.ParseFloat(strings.TrimSuffix(mem, "Mi"), 64)
		if err != nil {
			t.Fatalf("function_defaults.%s.memory %q: want a number of Mi", k, mem)
		}
		got[functions[k]] = FunctionSize{VCPU: cpu, GiB: mib / 1024}
	}
	if diff := cmp.Diff(DeployedSizes, got); diff != "" {
		t.Errorf("DeployedSizes differ from terraform/locals.tf function_defaults (-model +terraform):\n%s", diff)
	}
}
