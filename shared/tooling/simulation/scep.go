package simulation

import (
	"context"
	"slices"

	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
)

// SCEPClients makes the simulated clients' processes SCEP ones: each carries
// scepCaConnection with CARef and Profile as its scepProfile, instead of a
// generic CA connection and profile, as when the administrator configured a
// SCEP profile in the Admin console. The profile's text may hold template
// variables (${USER_EMAIL}, ${DEVICE_SERIAL_NUMBER:USER_EMAIL}, ...), which
// the adapter fills in per process.
type SCEPClients struct {
	// CARef is the caConnectionAdapterConfigReference; default
	// cpemulator.DefaultCARef.
	CARef string
	// Profile is the scepProfile of every process.
	Profile cpemulator.ScepSpec
}

type scepClientsKey struct{}

// WithSCEPClients returns a context under which Run, RunWithEmulator and
// AddClients create SCEP processes (see SCEPClients) instead of generic ones.
func WithSCEPClients(ctx context.Context, s SCEPClients) context.Context {
	return context.WithValue(ctx, scepClientsKey{}, s)
}

// apply makes spec a SCEP process if ctx asks for SCEP clients.
func applySCEPClients(ctx context.Context, spec *cpemulator.ClientSpec) {
	s, ok := ctx.Value(scepClientsKey{}).(SCEPClients)
	if !ok {
		return
	}
	p := s.Profile
	p.OrganizationalUnits = slices.Clone(p.OrganizationalUnits)
	p.SubjectAltNames = slices.Clone(p.SubjectAltNames)
	p.KeyUsages = slices.Clone(p.KeyUsages)
	spec.SCEP = &p
	if s.CARef != "" {
		spec.CARef = s.CARef
	}
}

// RunWithEmulator is Run that also returns the API emulator the run used, so
// that a caller can read how each process ended (Emulator.Processes): the
// certificate uploaded, the failure message the device showed, how often the
// client was asked to sign.
func RunWithEmulator(ctx context.Context, o Options) (*Report, *cpemulator.Emulator, error) {
	w, err := Execute(ctx, &o)
	if err != nil {
		return nil, nil, err
	}
	return w.Report(&o), w.emu, nil
}
