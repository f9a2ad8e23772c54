package simulation

import (
	"context"
	"fmt"
)

// StartFunctionCPU starts sampling a CPU profile so that the CPU time spent
// inside InFunction calls is attributed to the function they name. The
// returned stop ends the profile and returns CPU seconds by function name
// ("other": everything else). Only one profile per process may run at a time.
// Runs whose functions are not invoked in-process (the stand-ins mode) use it
// to report Report.FunctionCPUSeconds as Run does.
func StartFunctionCPU() (stop func() map[string]float64, err error) {
	stop, err = startCPUProfile()
	if err != nil {
		return nil, fmt.Errorf("simulation: %w", err)
	}
	return stop, nil
}

// InFunction runs f as part of function (one of ClaimProcess, PollSignature,
// IssueCertificate) for StartFunctionCPU's attribution; without a running
// profile it just calls f.
func InFunction(ctx context.Context, function string, f func(ctx context.Context)) {
	labelled(ctx, function, f)
}
