module github.com/tollgate/tollgate/examples/go-nethttp

go 1.26.0

require github.com/tollgate/tollgate/clients/go v0.0.0

require (
	github.com/hashicorp/golang-lru/v2 v2.0.7 // indirect
	github.com/sony/gobreaker/v2 v2.4.0 // indirect
	golang.org/x/net v0.60.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
	golang.org/x/text v0.42.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260817212433-ac3dfec99bb1 // indirect
	google.golang.org/grpc v1.85.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)

// The client from this repository; outside it, drop this line and require a
// released version instead.
replace github.com/tollgate/tollgate/clients/go => ../../clients/go
