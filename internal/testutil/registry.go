package testutil

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"
)

const (
	registryStartAttempts = 5
	registryStartTimeout  = 10 * time.Second
	registryPollInterval  = 20 * time.Millisecond
	registryStopTimeout   = 5 * time.Second
	// registryTokenHeader carries a per-instance random token in every response,
	// so the readiness check cannot be fooled by another process that grabbed
	// the port first.
	registryTokenHeader = "X-Testutil-Token"
	// registryLogTail bounds how much of the registry log is printed on failure.
	registryLogTail = 64 << 10
)

// Registry is a real Debian docker-registry (CNCF distribution v2) process
// serving plain HTTP on 127.0.0.1, with deletes enabled and filesystem
// storage; without authentication (StartRegistry) or with htpasswd basic
// authentication (StartRegistryWithAuth).
type Registry struct {
	Host string // "127.0.0.1:PORT"
	Dir  string // storage root directory (filesystem driver rootdirectory)

	// user and password are the credentials of a registry started by
	// StartRegistryWithAuth; Push and PushIndex use them. Empty otherwise.
	user, password string

	cmd     *exec.Cmd
	exited  chan struct{} // closed once cmd.Wait returned
	waitErr error         // valid once exited is closed
	logPath string
	stop    sync.Once
}

// StartRegistry starts docker-registry on a free 127.0.0.1 port with
// filesystem storage in a fresh t.TempDir() and waits until it answers
// GET /v2/. It retries with a new port when the process exits early (the port
// may have been taken between choosing and binding it). The process is
// stopped on cleanup and its log is printed if the test failed. The test is
// skipped (failed in CI) when docker-registry is not installed.
func StartRegistry(t testing.TB) *Registry {
	t.Helper()
	return startRegistryRetrying(t, "", "")
}

// StartRegistryWithAuth is StartRegistry for a registry that requires HTTP
// basic authentication as user with password (htpasswd with a bcrypt hash):
// every request without these credentials is answered 401. Push and
// PushIndex authenticate; other clients must bring the credentials
// themselves. user must be non-empty and contain no ':'.
func StartRegistryWithAuth(t testing.TB, user, password string) *Registry {
	t.Helper()
	if user == "" || strings.ContainsAny(user, ":\r\n") || strings.ContainsAny(password, "\r\n") {
		t.Fatalf("StartRegistryWithAuth: invalid user %q or password", user)
	}
	return startRegistryRetrying(t, user, password)
}

// startRegistryRetrying starts the registry, with authentication when user is
// not empty, retrying on early exits.
func startRegistryRetrying(t testing.TB, user, password string) *Registry {
	t.Helper()
	bin := RequireBinary(t, "docker-registry")
	var lastErr error
	for attempt := 1; attempt <= registryStartAttempts; attempt++ {
		r, err := startRegistry(t, bin, user, password)
		if err == nil {
			return r
		}
		lastErr = err
		var early *earlyExitError
		if !errors.As(err, &early) {
			break
		}
		t.Logf("docker-registry attempt %d/%d: %v", attempt, registryStartAttempts, err)
	}
	t.Fatalf("starting docker-registry: %v", lastErr)
	return nil
}

// earlyExitError reports a registry that exited before answering, typically
// because its port was taken; starting again on another port may succeed.
type earlyExitError struct {
	err error
	log string
}

func (e *earlyExitError) Error() string {
	return fmt.Sprintf("exited before becoming ready (%v); log:\n%s", e.err, e.log)
}

func startRegistry(t testing.TB, bin, user, password string) (*Registry, error) {
	t.Helper()
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	token := randomToken()
	work := t.TempDir()
	r := &Registry{
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Dir:      filepath.Join(work, "storage"),
		user:     user,
		password: password,
		exited:   make(chan struct{}),
		logPath:  filepath.Join(work, "registry.log"),
	}
	if err := os.Mkdir(r.Dir, 0o755); err != nil {
		return nil, err
	}
	var htpasswd string
	if user != "" {
		htpasswd = filepath.Join(work, "htpasswd")
		if err := writeHtpasswd(htpasswd, user, password); err != nil {
			return nil, err
		}
	}
	configPath := filepath.Join(work, "config.yml")
	if err := os.WriteFile(configPath, []byte(registryConfig(r.Host, r.Dir, token, htpasswd)), 0o644); err != nil {
		return nil, err
	}
	logFile, err := os.Create(r.logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor

	r.cmd = exec.Command(bin, "serve", configPath)
	r.cmd.Dir = work
	r.cmd.Env = registryEnv()
	r.cmd.Stdout = logFile
	r.cmd.Stderr = logFile
	r.cmd.SysProcAttr = &syscall.SysProcAttr{}
	setParentDeathSignal(r.cmd.SysProcAttr)
	if err := r.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		r.waitErr = r.cmd.Wait()
		close(r.exited)
	}()

	if err := r.awaitReady(token); err != nil {
		r.terminate()
		return nil, err
	}
	t.Cleanup(func() {
		if err := r.stopAndReport(t); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("docker-registry %s log:\n%s", r.Host, r.logTail())
		}
	})
	return r, nil
}

// awaitReady polls GET /v2/ until this instance answers, it exits, or the
// start timeout passes. The (unauthenticated) request must be answered 200,
// or 401 with a basic-auth challenge when the registry requires
// authentication; either way with this instance's token.
func (r *Registry) awaitReady(token string) error {
	client := &http.Client{
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		Timeout:   time.Second,
	}
	url := "http://" + r.Host + "/v2/"
	deadline := time.NewTimer(registryStartTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(registryPollInterval)
	defer tick.Stop()
	var lastErr error
	for {
		resp, err := client.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			switch {
			case resp.Header.Get(registryTokenHeader) != token:
				err = fmt.Errorf("GET %s: answered by another server", url)
			case r.user == "" && resp.StatusCode != http.StatusOK:
				err = fmt.Errorf("GET %s: %s", url, resp.Status)
			case r.user != "" && (resp.StatusCode != http.StatusUnauthorized ||
				!strings.HasPrefix(strings.ToLower(resp.Header.Get("WWW-Authenticate")), "basic ")):
				err = fmt.Errorf("GET %s: %s (WWW-Authenticate %q), want 401 with a basic-auth challenge",
					url, resp.Status, resp.Header.Get("WWW-Authenticate"))
			default:
				return nil
			}
		}
		lastErr = err
		select {
		case <-r.exited:
			return &earlyExitError{err: r.waitErr, log: r.logTail()}
		case <-deadline.C:
			return fmt.Errorf("not ready after %v: %v; log:\n%s", registryStartTimeout, lastErr, r.logTail())
		case <-tick.C:
		}
	}
}

// Stop stops the registry now, e.g. to test behaviour when it is unreachable.
// It is idempotent; the cleanup registered by StartRegistry calls it too.
func (r *Registry) Stop(t testing.TB) {
	t.Helper()
	if err := r.stopAndReport(t); err != nil {
		t.Fatal(err)
	}
}

func (r *Registry) stopAndReport(t testing.TB) error {
	t.Helper()
	killed, err := r.terminate()
	if killed {
		t.Logf("docker-registry (pid %d) ignored SIGTERM for %v and was killed", r.cmd.Process.Pid, registryStopTimeout)
	}
	if err != nil {
		return fmt.Errorf("stopping docker-registry (pid %d): %w", r.cmd.Process.Pid, err)
	}
	return nil
}

// terminate sends SIGTERM, then SIGKILL if the process has not exited within
// registryStopTimeout, and waits for it. Only the first call does anything;
// it reports whether SIGKILL was needed.
func (r *Registry) terminate() (killed bool, err error) {
	r.stop.Do(func() {
		select {
		case <-r.exited:
			return
		default:
		}
		if err = r.cmd.Process.Signal(syscall.SIGTERM); errors.Is(err, os.ErrProcessDone) {
			err = nil
		}
		select {
		case <-r.exited:
			return
		case <-time.After(registryStopTimeout):
		}
		killed = true
		if kerr := r.cmd.Process.Kill(); kerr != nil && !errors.Is(kerr, os.ErrProcessDone) {
			err = kerr
		}
		<-r.exited
	})
	return killed, err
}

func (r *Registry) logTail() string {
	data, err := os.ReadFile(r.logPath)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", r.logPath, err)
	}
	if len(data) > registryLogTail {
		return "...\n" + string(data[len(data)-registryLogTail:])
	}
	return string(data)
}

// Ref returns the reference "HOST/" + repoAndTag, e.g. Ref("test/busybox:latest").
func (r *Registry) Ref(repoAndTag string) string {
	return r.Host + "/" + repoAndTag
}

// Push writes img to the registry under ref (a full reference such as
// r.Ref("x:1")) with remote.Write over plain HTTP and returns the manifest digest.
func (r *Registry) Push(t testing.TB, ref string, img v1.Image) v1.Hash {
	t.Helper()
	parsed := r.parseRef(t, ref)
	if err := remote.Write(parsed, img, r.remoteOptions(t)...); err != nil {
		t.Fatalf("pushing image %s: %v", ref, err)
	}
	digest, err := img.Digest()
	if err != nil {
		t.Fatalf("image digest: %v", err)
	}
	return digest
}

// PushIndex writes idx (and the images it references) to the registry under
// ref with remote.WriteIndex and returns the index manifest digest.
func (r *Registry) PushIndex(t testing.TB, ref string, idx v1.ImageIndex) v1.Hash {
	t.Helper()
	parsed := r.parseRef(t, ref)
	if err := remote.WriteIndex(parsed, idx, r.remoteOptions(t)...); err != nil {
		t.Fatalf("pushing index %s: %v", ref, err)
	}
	digest, err := idx.Digest()
	if err != nil {
		t.Fatalf("index digest: %v", err)
	}
	return digest
}

// remoteOptions are the options of Push and PushIndex: the test's context and,
// for a registry that requires authentication, its credentials.
func (r *Registry) remoteOptions(t testing.TB) []remote.Option {
	opts := []remote.Option{remote.WithContext(t.Context())}
	if r.user != "" {
		opts = append(opts, remote.WithAuth(&authn.Basic{Username: r.user, Password: r.password}))
	}
	return opts
}

func (r *Registry) parseRef(t testing.TB, ref string) name.Reference {
	t.Helper()
	parsed, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatalf("parsing reference %q: %v", ref, err)
	}
	if got := parsed.Context().RegistryStr(); got != r.Host {
		t.Fatalf("reference %q is not on this registry (%s)", ref, r.Host)
	}
	return parsed
}

// BlobPath returns the path of the data file of blob h in the registry's
// storage, so that tests can corrupt or remove it.
func (r *Registry) BlobPath(h v1.Hash) string {
	return filepath.Join(r.Dir, "docker", "registry", "v2", "blobs", h.Algorithm, h.Hex[:2], h.Hex, "data")
}

// registryConfig returns a docker-registry configuration for addr and the
// storage directory dir. Every response carries token in registryTokenHeader.
// When htpasswd is not empty, requests must authenticate with the
// credentials of that htpasswd file.
func registryConfig(addr, dir, token, htpasswd string) string {
	config := fmt.Sprintf(`version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: %q
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %q
  secret: %q
  headers:
    X-Content-Type-Options: [nosniff]
    %s: [%q]
`, dir, addr, token, registryTokenHeader, token)
	if htpasswd != "" {
		config += fmt.Sprintf(`auth:
  htpasswd:
    realm: %q
    path: %q
`, "testutil-registry", htpasswd)
	}
	return config
}

// writeHtpasswd writes an htpasswd file with one entry, user with a bcrypt
// hash of password (the only hash docker-registry accepts). The minimum cost
// keeps the registry fast: it checks the hash on every request.
func writeHtpasswd(path, user, password string) error {
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		return fmt.Errorf("htpasswd: %w", err)
	}
	return os.WriteFile(path, []byte(user+":"+string(hash)+"\n"), 0o600)
}

// registryEnv is the environment of the registry process: the test's,
// without REGISTRY_* variables, which would override the configuration file.
func registryEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REGISTRY_") {
			env = append(env, kv)
		}
	}
	return env
}

// freePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
