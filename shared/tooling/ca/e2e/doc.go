// Package e2e holds end-to-end tests of the CA connectors: whole enrollments
// through the adapter (the Certificate Provisioning API emulator and its
// simulated clients, the three functions' handlers, the task dispatcher, the
// store; simulation.RunWithEmulator) against each real CA server that runs
// here -- micromdm's scepserver, step-ca's SCEP provisioner, globalsign's
// estserver, the Google CAS fake driven by Google's own client -- and the
// NDES stand-in of sceptest.
//
// For each connector they show one issuance and one signData per process
// under duplicate deliveries, crashes and API errors; a refusal by the CA
// (the message the device shows); an outage that ends and one that outlasts
// the retries; SCEP PENDING and EST 202 finishing without a second
// signData; the UPN and certificate-template extensions of a SCEP profile in
// the issued certificate; and that the example adapter configs in testdata
// (the README's examples) work, through the local run too.
//
// The package has no non-test code. Where a server cannot be built or
// started, the tests skip, or fail under CERTPROV_INTEGRATION=require.
package e2e
