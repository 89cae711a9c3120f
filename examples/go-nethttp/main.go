// Command go-nethttp is a small net/http API protected by Tollgate: every
// route but /healthz needs an API key (x-api-key), /v1/orders needs the
// orders:read scope (from the policy's endpoint), and the export route names
// its policy endpoint and scope with tollgate.Protect.
//
//	TOLLGATE_POLICY_FILE=examples/policy.yaml npm start   # in the repository root
//	cd examples/go-nethttp && go run .                    # listens on 127.0.0.1:3000
package main

import (
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"

	tollgate "github.com/tollgate/tollgate/clients/go"
)

func main() {
	// Server and management token come from TOLLGATE_SERVER and
	// TOLLGATE_MANAGEMENT_TOKEN(_FILE), like the tollgate CLI.
	client, err := tollgate.NewClient(tollgate.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /v1/orders", func(w http.ResponseWriter, r *http.Request) {
		id := tollgate.IdentityFrom(r.Context())
		writeJSON(w, map[string]any{"owner": id.Owner, "key_id": id.KeyID, "orders": []string{}})
	})
	mux.Handle("POST /v1/exports/{name}", tollgate.Protect("export", "exports:run")(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, map[string]any{"export": r.PathValue("name"), "by": tollgate.IdentityFrom(r.Context()).Owner})
		})))

	opts := tollgate.MiddlewareOptions{SkipPaths: []string{"/healthz"}}
	addr := os.Getenv("ADDR")
	if addr == "" {
		addr = "127.0.0.1:3000"
	}
	// Listening first lets ADDR=127.0.0.1:0 pick a free port and say which.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on http://%s\n", ln.Addr())
	log.Fatal(http.Serve(ln, tollgate.Middleware(client, opts)(mux)))
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
