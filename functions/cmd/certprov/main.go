// Command certprov is the operator's command line: it checks an adapter
// config the way the functions do at start, renders what a profile would ask
// a device to sign, and reads the progress records of processes from
// Firestore (the deployed project or the emulator). Every command takes
// --json and --help; the exit codes are
//
//	0  ok
//	1  a problem was found, or the process was not found
//	2  usage error
//	3  the store or a service could not be reached
//
// Examples:
//
//	go run ./functions/cmd/certprov config check --config adapter-config.json
//	go run ./functions/cmd/certprov render --config adapter-config.json --profile device_profile --device-id D1 --serial S1
//	go run ./functions/cmd/certprov status PROCESS_ID
package main

import (
	"context"
	"os"
	"os/signal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv)
	stop()
	os.Exit(code)
}
