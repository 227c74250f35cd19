package imagestore

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/raind/condenser/internal/testutil"
)

const helperEnv = "CONDENSER_TEST_PULL_HELPER"

// TestMain lets the test binary act as a pulling process that a test kills.
func TestMain(m *testing.M) {
	if arg := os.Getenv(helperEnv); arg != "" {
		root, ref, _ := strings.Cut(arg, "|")
		os.Exit(pullHelper(root, ref))
	}
	os.Exit(m.Run())
}

func pullHelper(root, ref string) int {
	ctx := context.Background()
	s, err := Open(ctx, Options{Root: root})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	enc := json.NewEncoder(os.Stdout)
	_, err = s.Pull(ctx, ref, PullOptions{Progress: func(p Progress) { enc.Encode(p) }})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// stallingProxy forwards to the registry but sends only the first half of
// the blob stall, then holds the connection until the client goes away.
func stallingProxy(t *testing.T, registry, stall string) *httptest.Server {
	t.Helper()
	target, _ := url.Parse("http://" + registry)
	rp := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/blobs/"+stall) {
			rp.ServeHTTP(w, r)
			return
		}
		resp, err := http.Get(target.String() + r.URL.Path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Length", fmt.Sprint(resp.ContentLength))
		w.WriteHeader(resp.StatusCode)
		io.CopyN(w, resp.Body, resp.ContentLength/2)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestKillMidPullLeavesStoreConsistent(t *testing.T) {
	testutil.RequireRoot(t)
	reg := testutil.StartRegistry(t)
	noise := make([]byte, 8<<20) // incompressible: a large blob on the wire
	rand.Read(noise)
	big := testutil.Layer(t, testutil.Entry{Name: "big/noise", Content: noise})
	img := testutil.Image(t, nil, testutil.Layer(t, testutil.BusyboxEntries(t)...), big, testutil.Layer(t, testutil.Entry{Name: "top", Content: []byte("top")}))
	reg.Push(t, reg.Ref("test/big:1"), img)
	bigDigest, _ := big.Digest()
	proxy := stallingProxy(t, reg.Host, bigDigest.String())
	proxied := strings.TrimPrefix(proxy.URL, "http://") + "/test/big:1"

	root := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+root+"|"+proxied)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// Wait until the big layer is being downloaded (the proxy holds its
	// second half), then kill the puller.
	stop := time.AfterFunc(time.Minute, func() { cmd.Process.Kill() })
	defer stop.Stop()
	sc := bufio.NewScanner(out)
	seen := false
	for !seen && sc.Scan() {
		var p Progress
		seen = json.Unmarshal(sc.Bytes(), &p) == nil && p.Layer == bigDigest.String() && p.Status == StatusDownloading && p.Current > 0
	}
	if !seen {
		t.Fatal("the puller ended without downloading the big layer")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	// Killed mid-pull: partial files exist, but none is visible as a blob or
	// layer of an image.
	if countDir(t, root+"/content/ingest") == 0 || countDir(t, root+"/layers/tmp") == 0 {
		t.Fatal("the puller was not killed mid-download: no partial files")
	}
	s := openStore(t, Options{Root: root})
	checkClean(t, s)
	if n := countDir(t, s.layers.dir); n != 0 {
		t.Errorf("%d unreferenced layers kept", n)
	}
	if imgs, _ := s.List(context.Background()); len(imgs) != 0 {
		t.Fatalf("records after a killed pull: %+v", imgs)
	}
	// The next pull completes.
	got, err := s.Pull(context.Background(), reg.Ref("test/big:1"), PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(s.LayerDirs(got)[1] + "/big/noise")
	if err != nil || string(b) != string(noise) {
		t.Errorf("big layer content after the second pull: %d bytes, %v", len(b), err)
	}
	checkClean(t, s)
}
