package tollgate_test

// The test harness: a real Tollgate server from the repository's build
// (node dist/cli/main.js serve, embedded store, dev mode, ports chosen by the
// OS on 127.0.0.1), a log sink shared by every client, middleware and server
// of the run, and the list of every secret the tests saw, so TestMain can
// check that no key or token ever reached a log.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"

	tollgate "github.com/tollgate/tollgate/clients/go"
	tollgatev1 "github.com/tollgate/tollgate/clients/go/gen/tollgate/v1"
)

// repoRoot is the repository root, found from this file's location
// (clients/go/harness_test.go), so tests run from any directory.
var repoRoot = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}()

// lockedBuffer is an io.Writer safe for concurrent use.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var (
	// allLogs receives every log line of the run: clients, middleware, servers.
	allLogs lockedBuffer
	// secrets are every API key secret and token the tests handled.
	secretsMu sync.Mutex
	secrets   []string
)

func rememberSecret(s string) {
	secretsMu.Lock()
	defer secretsMu.Unlock()
	secrets = append(secrets, s)
}

// testLogger logs at debug level into allLogs (and into extra, if given).
func testLogger(extra ...io.Writer) *slog.Logger {
	w := io.MultiWriter(append([]io.Writer{&allLogs}, extra...)...)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

var shared struct {
	once sync.Once
	srv  *tollgateServer
	err  error
}

func TestMain(m *testing.M) {
	// The tests configure clients explicitly; a developer's environment must
	// not point them elsewhere or add a token.
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "TOLLGATE_") {
			os.Unsetenv(name)
		}
	}
	code := m.Run()
	if shared.srv != nil {
		shared.srv.stop()
	}
	logs := allLogs.String()
	secretsMu.Lock()
	for _, s := range secrets {
		if s != "" && strings.Contains(logs, s) {
			fmt.Fprintf(os.Stderr, "FAIL: a secret (%d bytes, starting %q) appears in the log output of this run\n", len(s), s[:min(8, len(s))])
			code = 1
		}
	}
	n := len(secrets)
	secretsMu.Unlock()
	if code == 0 {
		fmt.Printf("checked %d secrets against %d bytes of client, middleware and server logs: none found\n", n, len(logs))
	}
	os.Exit(code)
}

// tollgateServer is one `tollgate serve` process.
type tollgateServer struct {
	cmd       *exec.Cmd
	port      int
	httpPort  int
	adminPort int
	out       lockedBuffer
	exited    chan struct{}
}

// url is the main port's address, as TOLLGATE_SERVER would name it.
func (s *tollgateServer) url() string { return fmt.Sprintf("http://127.0.0.1:%d", s.port) }

// sharedServer is the run's common server (started on first use, stopped by
// TestMain). Tests that stop or reconfigure a server start their own.
func sharedServer(t testing.TB) *tollgateServer {
	t.Helper()
	shared.once.Do(func() { shared.srv, shared.err = launch(0) })
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.srv
}

// startServer starts a server of the test's own (stopped at cleanup) on
// port (0: any free one), with extra environment entries.
func startServer(t testing.TB, port int, env ...string) *tollgateServer {
	t.Helper()
	s, err := launch(port, env...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	return s
}

func launch(port int, env ...string) (*tollgateServer, error) {
	main := filepath.Join(repoRoot, "dist", "cli", "main.js")
	if _, err := os.Stat(main); err != nil {
		return nil, fmt.Errorf("the server build %s is missing: run `npm run build` at the repository root (%s) first", main, repoRoot)
	}
	cmd := exec.Command("node", main, "serve")
	cmd.Dir = repoRoot
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "TOLLGATE_") && !strings.HasPrefix(name, "REDIS_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env,
		fmt.Sprintf("TOLLGATE_ADDR=127.0.0.1:%d", port),
		"TOLLGATE_HTTP_ADDR=127.0.0.1:0",
		"TOLLGATE_ADMIN_ADDR=127.0.0.1:0",
		"TOLLGATE_LOG_LEVEL=info",
		"TOLLGATE_POLICY_FILE="+filepath.Join(repoRoot, "clients", "go", "testdata", "policy.yaml"),
		"TOLLGATE_SHUTDOWN_TIMEOUT_MS=2000",
	)
	cmd.Env = append(cmd.Env, env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	s := &tollgateServer{cmd: cmd, exited: make(chan struct{})}
	cmd.Stderr = io.MultiWriter(&s.out, &allLogs)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting node: %w", err)
	}
	serving := make(chan [3]int, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Bytes()
			_, _ = s.out.Write(append(line, '\n'))
			_, _ = allLogs.Write(append(line, '\n'))
			var l struct {
				Msg       string `json:"msg"`
				Port      int    `json:"port"`
				HTTPPort  int    `json:"httpPort"`
				AdminPort int    `json:"adminPort"`
			}
			if json.Unmarshal(line, &l) == nil && l.Msg == "tollgate serving" {
				serving <- [3]int{l.Port, l.HTTPPort, l.AdminPort}
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() { _ = cmd.Wait(); close(s.exited) }()
	select {
	case p := <-serving:
		s.port, s.httpPort, s.adminPort = p[0], p[1], p[2]
		return s, nil
	case <-s.exited:
		return nil, fmt.Errorf("tollgate exited before serving:\n%s", s.out.String())
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("tollgate did not log \"tollgate serving\" within 20 s:\n%s", s.out.String())
	}
}

// stop sends SIGTERM and waits (killing after 5 s). Idempotent.
func (s *tollgateServer) stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// newClient builds a client for server URL u, logging into the run's sink.
func newClient(t testing.TB, u string, o tollgate.Options) *tollgate.Client {
	t.Helper()
	o.Server = u
	if o.Logger == nil {
		o.Logger = testLogger()
	}
	c, err := tollgate.NewClient(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// createKey creates a key through the client and remembers its secret.
func createKey(t testing.TB, c *tollgate.Client, owner string, scopes ...string) *tollgatev1.CreateKeyResponse {
	t.Helper()
	resp, err := c.CreateKey(context.Background(), &tollgatev1.CreateKeyRequest{
		Owner:    owner,
		Scopes:   scopes,
		Metadata: map[string]string{"plan": "test"},
	})
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	rememberSecret(resp.GetSecret())
	return resp
}

// attempts counts the RPC attempts that reach the transport, per method.
type attempts struct {
	mu sync.Mutex
	n  map[string]int
}

func (a *attempts) dialOption() grpc.DialOption {
	return grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		a.mu.Lock()
		if a.n == nil {
			a.n = map[string]int{}
		}
		a.n[method]++
		a.mu.Unlock()
		return invoker(ctx, method, req, reply, cc, opts...)
	})
}

// streamDialOption counts the streams opened, as dialOption counts unary attempts.
func (a *attempts) streamDialOption() grpc.DialOption {
	return grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		a.mu.Lock()
		if a.n == nil {
			a.n = map[string]int{}
		}
		a.n[method]++
		a.mu.Unlock()
		return streamer(ctx, desc, cc, method, opts...)
	})
}

func (a *attempts) get(method string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n[method]
}

func (a *attempts) reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.n = nil
}
