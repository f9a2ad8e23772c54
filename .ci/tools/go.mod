// Command-line tools that tests and CI build from pinned sources: the Cloud Tasks
// emulator and the EST server. A module of its own so their old dependencies
// (grpc and friends) stay out of the adapter's module.
module github.com/chromeos-certprov/adapter-ci-tools

go 1.26.8

tool (
	github.com/aertje/cloud-tasks-emulator
	github.com/globalsign/est/cmd/estserver
)

require (
	github.com/aertje/cloud-tasks-emulator v1.2.0 // indirect
	github.com/globalsign/est v1.0.6 // indirect
	github.com/globalsign/pemfile v1.0.0 // indirect
	github.com/go-chi/chi v4.1.2+incompatible // indirect
	github.com/golang-jwt/jwt v3.2.1+incompatible // indirect
	github.com/golang/protobuf v1.4.1 // indirect
	github.com/google/go-tpm v0.3.2 // indirect
	go.mozilla.org/pkcs7 v0.0.0-20200128120323-432b2356ecb1 // indirect
	golang.org/x/crypto v0.0.0-20200602180216-279210d13fed // indirect
	golang.org/x/net v0.0.0-20200226121028-0de0cce0169b // indirect
	golang.org/x/sys v0.0.0-20210220050731-9a76102bfb43 // indirect
	golang.org/x/text v0.3.2 // indirect
	golang.org/x/time v0.0.0-20210220033141-f8bda1e9f3ba // indirect
	google.golang.org/genproto v0.0.0-20200526211855-cb27e3aa2013 // indirect
	google.golang.org/grpc v1.27.0 // indirect
	google.golang.org/protobuf v1.25.0 // indirect
)
