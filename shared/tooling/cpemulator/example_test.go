package cpemulator_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"log"
	"net/http/httptest"

	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
	cm "google.golang.org/api/chromemanagement/v1"
	"google.golang.org/api/option"
)

// The emulator behind httptest, driven by the generated client.
func Example() {
	ctx := context.Background()
	emu := cpemulator.New(cpemulator.Options{
		Publish: func(_ context.Context, data []byte, _ map[string]string) error {
			return nil // hand data to Pub/Sub (or the function) here
		},
	})
	srv := httptest.NewServer(emu)
	defer srv.Close()

	name, err := emu.AddClient(ctx, cpemulator.ClientSpec{Customer: "C0123abc", Kind: cpemulator.Device, Key: cpemulator.ECP256})
	if err != nil {
		log.Fatal(err)
	}
	svc, err := cm.NewService(ctx, option.WithEndpoint(srv.URL+"/"), option.WithoutAuthentication(), option.WithHTTPClient(srv.Client()))
	if err != nil {
		log.Fatal(err)
	}
	procs := svc.Customers.CertificateProvisioningProcesses
	if _, err := procs.Claim(name, &cm.GoogleChromeManagementVersionsV1ClaimCertificateProvisioningProcessRequest{CallerInstanceId: "adapter-1"}).Do(); err != nil {
		log.Fatal(err)
	}
	op, err := procs.SignData(name, &cm.GoogleChromeManagementVersionsV1SignDataRequest{
		SignData:           base64.StdEncoding.EncodeToString([]byte("data to sign\n")),
		SignatureAlgorithm: cpemulator.AlgorithmECDSA,
	}).Do()
	if err != nil {
		log.Fatal(err)
	}
	op, err = procs.Operations.Get(op.Name).Do()
	if err != nil {
		log.Fatal(err)
	}
	s, _ := emu.Process(name)
	fmt.Println(op.Done, s.State, s.SignDataCalls, emu.Calls()["signData"])
	// Output: true signed 1 1
}
