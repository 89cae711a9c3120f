package tollgate_test

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	tollgate "github.com/tollgate/tollgate/clients/go"
)

// The example app (examples/go-nethttp, its own module using this one by a
// replace directive) is built, started against the shared server, and hit,
// so it cannot rot.
func TestExampleGoNetHTTP(t *testing.T) {
	srv := sharedServer(t)
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	bin := filepath.Join(t.TempDir(), "go-nethttp")
	build := exec.Command(goTool, "build", "-o", bin, ".")
	build.Dir = filepath.Join(repoRoot, "examples", "go-nethttp")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the example: %v\n%s", err, out)
	}

	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "TOLLGATE_SERVER="+srv.url(), "ADDR=127.0.0.1:0")
	cmd.Stderr = &allLogs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			_, _ = allLogs.Write([]byte(sc.Text() + "\n"))
			if u, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				addr <- u
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	var base string
	select {
	case base = <-addr:
	case <-time.After(10 * time.Second):
		t.Fatal("the example did not say where it listens within 10 s")
	}

	c := newClient(t, srv.url(), tollgate.Options{})
	k := createKey(t, c, "acme-example", "orders:read")
	if r := call(t, "GET", base+"/healthz"); r.status != 200 {
		t.Fatalf("/healthz: %d", r.status)
	}
	if r := call(t, "GET", base+"/v1/orders", "x-api-key", k.GetSecret()); r.status != 200 || !strings.Contains(string(r.body), `"owner":"acme-example"`) {
		t.Fatalf("/v1/orders with a key: %d %s", r.status, r.body)
	}
	if r := call(t, "GET", base+"/v1/orders"); r.status != 401 || r.problem(t).Reason != "REASON_MISSING_KEY" {
		t.Fatalf("/v1/orders without a key: %d %s", r.status, r.body)
	}
	if r := call(t, "POST", base+"/v1/exports/q3", "x-api-key", k.GetSecret()); r.status != 403 {
		t.Fatalf("export without exports:run: %d %s", r.status, r.body)
	}
}
