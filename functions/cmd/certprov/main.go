// Command certprov is the operator's command line: it checks an adapter
// config the way the functions do at start, renders what a profile would ask
// a device to sign, reads the progress records of processes from Firestore
// (the deployed project or the emulator), and re-drives or fails a process
// through the pipeline's own code paths. Every command takes
// --json and --help; the exit codes are
//
//	0  ok
//	1  a problem was found, the process was not found, or the action was refused
//	2  usage error
//	3  the store or a service could not be reached
//
// Examples:
//
//	go run ./functions/cmd/certprov config check --config adapter-config.json
//	go run ./functions/cmd/certprov render --config adapter-config.json --profile device_profile --device-id D1 --serial S1
//	go run ./functions/cmd/certprov status PROCESS_ID
//	go run ./functions/cmd/certprov retry PROCESS_ID
//	go run ./functions/cmd/certprov fail PROCESS_ID --message "Restart the device to try again."
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
