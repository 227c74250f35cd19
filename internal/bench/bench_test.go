package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/raind/condenser/internal/testutil"
)

var (
	binFlag        = flag.String("bin", "../../bin", "directory with the condenser and condenser-shim binaries (make build)")
	runsFlag       = flag.Int("runs", 50, "runs of `true`")
	pullsFlag      = flag.Int("pulls", 5, "cold pulls")
	restartsFlag   = flag.Int("restarts", 5, "daemon restarts")
	containersFlag = flag.Int("containers", 100, "containers started (one after another, then concurrently)")
	idleFlag       = flag.Int("idle", 50, "running containers when monitor memory is read")
	clientsFlag    = flag.Int("clients", 8, "concurrent clients")
	listFlag       = flag.Int("list-requests", 20000, "list requests under load (at most 30 s)")
)

// BenchmarkTable runs every workload once per engine (Condenser, and the
// peers with -peers) and prints one table. b.N is ignored: the workloads
// have their own repetition counts (flags), and the table reports medians
// and tail percentiles rather than means. Run it with -benchtime 1x.
func BenchmarkTable(b *testing.B) {
	testutil.RequireRoot(b)
	testutil.RequireBinary(b, "runc")
	bin, err := filepath.Abs(*binFlag)
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range []string{"condenser", "condenser-shim"} {
		if _, err := os.Stat(filepath.Join(bin, f)); err != nil {
			b.Fatalf("%v (run make build, or pass -bin)", err)
		}
	}
	reg := testutil.StartRegistry(b)
	img := Images{Registry: reg.Host, Small: reg.Ref("library/busybox:latest"), Large: reg.Ref("bench/debian:1")}
	reg.Push(b, img.Small, testutil.BusyboxImage(b))
	reg.Push(b, img.Large, testutil.HostFilesImage(b, 122<<20, 3))

	engines := []Engine{NewCondenser(bin, testutil.Network(b).Args()...)}
	if *peersFlag {
		// Podman's bridge network for row 8, one after the other on the
		// same subnet; the CNI bridge plugin turns ip_forward on.
		subnet := testutil.ReserveSubnet(b, 220, 239)
		testutil.HoldIPForward(b)
		engines = append(engines, NewPodman("crun", subnet), NewPodman("runc", subnet), NewContainerd())
	}
	all := measureEngines(b, engines, img, measure)
	printTable(os.Stdout, all)
	b.ReportMetric(float64(quantile(all[0].runTrue, 0.5))/1e6, "ms/run-true")
}

// BenchmarkScale runs rows 6 and 9 alone (-scale containers at once, and
// the listing of -containers), for profiling the daemon under them; -peers
// adds the peers. Run it with -benchtime 1x.
func BenchmarkScale(b *testing.B) {
	testutil.RequireRoot(b)
	testutil.RequireBinary(b, "runc")
	bin, err := filepath.Abs(*binFlag)
	if err != nil {
		b.Fatal(err)
	}
	reg := testutil.StartRegistry(b)
	img := Images{Registry: reg.Host, Small: reg.Ref("library/busybox:latest")}
	reg.Push(b, img.Small, testutil.BusyboxImage(b))
	// The daemon's own bridge and NAT table: it never touches the host's.
	engines := []Engine{NewCondenser(bin, testutil.Network(b).Args()...)}
	if *peersFlag {
		engines = append(engines, NewPodman("crun", netip.Prefix{}), NewPodman("runc", netip.Prefix{}), NewContainerd())
	}
	all := measureEngines(b, engines, img, measureRows69)
	rs := slices.DeleteFunc(append(rows(), scaleRows()...), func(rw row) bool {
		return !strings.HasPrefix(rw.label, "6.") && !strings.HasPrefix(rw.label, "9.")
	})
	printRows(os.Stdout, all, rs)
}

// measureEngines measures each engine in turn with fn and returns their
// results, in order.
func measureEngines(b *testing.B, engines []Engine, img Images, fn func(ctx context.Context, b *testing.B, e Engine, img Images, dir string) (*results, error)) []*results {
	var all []*results
	for _, e := range engines {
		b.Logf("measuring %s", e.Name())
		r, err := setUpAndMeasure(b, e, img, fn)
		if err != nil {
			b.Fatalf("%s: %v", e.Name(), err)
		}
		all = append(all, r)
	}
	return all
}

// setUpAndMeasure sets e up in a directory of its own, measures it with fn
// (bounded to 20 minutes), and closes it.
func setUpAndMeasure(b *testing.B, e Engine, img Images, fn func(ctx context.Context, b *testing.B, e Engine, img Images, dir string) (*results, error)) (_ *results, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	dir := b.TempDir()
	if err := e.Setup(ctx, dir, img); err != nil {
		e.Close(ctx)
		return nil, fmt.Errorf("setup: %w", err)
	}
	defer func() {
		if cerr := e.Close(context.WithoutCancel(ctx)); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close: %w", cerr))
		}
	}()
	return fn(ctx, b, e, img, dir)
}

// measureScaleRow is row 9, when -scale asks for it; an engine that
// reached fewer containers reports as many as it reached.
func measureScaleRow(ctx context.Context, b *testing.B, e Engine, r *results) error {
	if *scaleFlag <= 0 {
		return nil
	}
	var err error
	if r.scale, err = measureScale(ctx, e, *scaleFlag, *clientsFlag, *listFlag/4); err != nil {
		if r.scale == nil || r.scale.n == 0 {
			return fmt.Errorf("scale: %w", err)
		}
		b.Logf("%s: scale: %v", e.Name(), err) // as many as it reached
	}
	return nil
}

func measureRows69(ctx context.Context, b *testing.B, e Engine, img Images, _ string) (_ *results, err error) {
	r := &results{engine: e.Name()}
	if err := e.Pull(ctx, img.Small); err != nil {
		return nil, err
	}
	for i := range *containersFlag {
		if err := e.StartDetached(ctx, fmt.Sprint("list", i)); err != nil {
			return nil, err
		}
	}
	if r.lists, r.listTotal, err = listLoad(ctx, e, *listFlag, *clientsFlag); err != nil {
		return nil, err
	}
	if err := e.RemoveAll(ctx); err != nil {
		return nil, err
	}
	if err := measureScaleRow(ctx, b, e, r); err != nil {
		return nil, err
	}
	return r, nil
}

func measure(ctx context.Context, b *testing.B, e Engine, img Images, dir string) (_ *results, err error) {
	r := &results{engine: e.Name()}

	// 1. `true`, image present; for Condenser, interleaved with bare runc
	// runs of the bundle Condenser generates.
	if err := e.Pull(ctx, img.Small); err != nil {
		return nil, err
	}
	unix.Sync() // the registry's and the pull's writes are not pending
	if err := runTrue(ctx, e, r, filepath.Join(dir, "bare")); err != nil {
		return nil, err
	}

	// 3a. Containers started one after another; 2. memory once idleFlag
	// of them run.
	t0 := time.Now()
	for i := range *containersFlag {
		t1 := time.Now()
		if err := e.StartDetached(ctx, fmt.Sprint("seq", i)); err != nil {
			return nil, err
		}
		r.seqStarts = append(r.seqStarts, time.Since(t1))
		if i+1 == *idleFlag {
			paused := time.Now()
			if err := readMemory(ctx, e, r); err != nil {
				return nil, err
			}
			t0 = t0.Add(time.Since(paused))
		}
	}
	r.seqTotal = time.Since(t0)
	if err := e.RemoveAll(ctx); err != nil {
		return nil, err
	}

	// 3b. The same with concurrent clients; they stay running for 5 and 6.
	var mu sync.Mutex
	t0 = time.Now()
	err = forEach(ctx, *containersFlag, *clientsFlag, func(i int) error {
		t1 := time.Now()
		err := e.StartDetached(ctx, fmt.Sprint("con", i))
		mu.Lock()
		r.conStart = append(r.conStart, time.Since(t1))
		mu.Unlock()
		return err
	})
	r.conTotal = time.Since(t0)
	if err != nil {
		return nil, err
	}

	// 5. Daemon restarts.
	for range *restartsFlag {
		a, rc, err := e.Restart(ctx, *containersFlag)
		if errors.Is(err, ErrNotApplicable) {
			r.restartNA = true
			break
		}
		if err != nil {
			return nil, fmt.Errorf("restart: %w", err)
		}
		r.answer, r.reconnected = append(r.answer, a), append(r.reconnected, rc)
	}

	// 6. Listing under load, bounded in count and time.
	if r.lists, r.listTotal, err = listLoad(ctx, e, *listFlag, *clientsFlag); err != nil {
		return nil, err
	}
	if err := e.RemoveAll(ctx); err != nil {
		return nil, err
	}

	// 7. Exec and terminals (Condenser's own rows).
	if c, ok := e.(*Condenser); ok {
		if r.execTrue, r.runcExec, err = c.execBench(ctx, *runsFlag); err != nil {
			return nil, fmt.Errorf("exec: %w", err)
		}
		if r.terminalShim, err = c.terminalShimMemory(ctx); err != nil {
			return nil, fmt.Errorf("terminal: %w", err)
		}
		r.hasTerminalShim = true
	}

	// 8. `true` on a bridge network, alternating with no network.
	if n, ok := e.(NetworkRunner); ok {
		if err := runTrueNetworked(ctx, e, n, r); err != nil {
			return nil, err
		}
	}

	// 10. `run --rm busybox true` with the engine's CLI.
	if err := runTrueCLI(ctx, e, r, *runsFlag); err != nil {
		return nil, err
	}

	// 9. Many containers at once (-scale).
	if err := measureScaleRow(ctx, b, e, r); err != nil {
		return nil, err
	}

	// Last, so that the writeback of 122 MiB per pull slows no other
	// workload's fsyncs.
	// 4. Cold pulls of the large image; for Condenser each followed by
	// skopeo's download of the same image (no unpacking): the floor a
	// pull is measured against.
	_, isCondenser := e.(*Condenser)
	for range *pullsFlag {
		unix.Sync() // no writeback of the previous pull pending
		t0 := time.Now()
		if err := e.Pull(ctx, img.Large); err != nil {
			return nil, err
		}
		r.pulls = append(r.pulls, time.Since(t0))
		if err := e.RemoveImage(ctx, img.Large); err != nil {
			return nil, err
		}
		if isCondenser {
			d, err := downloadOnly(ctx, img.Large)
			if err != nil {
				return nil, err
			}
			r.downloads = append(r.downloads, d)
		}
	}
	return r, nil
}

// downloadOnly times `skopeo copy` of ref into a new directory (the blobs
// downloaded and written, nothing unpacked), after a sync, and removes it.
func downloadOnly(ctx context.Context, ref string) (time.Duration, error) {
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		return 0, fmt.Errorf("row 4's download-only baseline needs skopeo (apt-get install skopeo): %w", err)
	}
	dir, err := os.MkdirTemp("", "bench-skopeo")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	unix.Sync()
	t0 := time.Now()
	out, err := exec.CommandContext(ctx, skopeo, "copy", "--quiet", "--src-tls-verify=false", "docker://"+ref, "dir:"+filepath.Join(dir, "image")).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("skopeo copy %s: %w: %s", ref, err, out)
	}
	return time.Since(t0), nil
}

// runTrue runs `true` runsFlag times (after a warm-up); for Condenser,
// each run is followed by a bare runc run of the bundle Condenser made.
func runTrue(ctx context.Context, e Engine, r *results, dir string) error {
	var runc *bareRunc
	if c, ok := e.(*Condenser); ok {
		bundle, rootfs, remove, err := c.CreatedBundle(ctx)
		if err != nil {
			return err
		}
		defer remove()
		if runc, err = newBareRunc(bundle, rootfs, dir); err != nil {
			return err
		}
		defer runc.close()
	}
	const warmup = 3
	for i := range *runsFlag + warmup {
		d, err := e.RunTrue(ctx)
		if err != nil {
			return fmt.Errorf("run true: %w", err)
		}
		if i >= warmup {
			r.runTrue = append(r.runTrue, d)
		}
		if runc == nil {
			continue
		}
		if d, err = runc.run(ctx); err != nil {
			return err
		}
		if i >= warmup {
			r.runcTrue = append(r.runcTrue, d)
		}
	}
	return nil
}

// runTrueNetworked runs `true` on the engine's bridge network and without
// a network, alternately, runsFlag times each after 3 warm-ups of each;
// an engine set up without a network is left out.
func runTrueNetworked(ctx context.Context, e Engine, n NetworkRunner, r *results) error {
	const warmup = 3
	for i := range *runsFlag + warmup {
		on, err := n.RunTrueNetworked(ctx)
		if errors.Is(err, ErrNotApplicable) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("run true on a network: %w", err)
		}
		off, err := e.RunTrue(ctx)
		if err != nil {
			return fmt.Errorf("run true: %w", err)
		}
		if i >= warmup {
			r.netTrue, r.noNetTrue = append(r.netTrue, on), append(r.noNetTrue, off)
		}
	}
	return nil
}

// readMemory records the monitors' and the daemon's memory.
func readMemory(ctx context.Context, e Engine, r *results) error {
	pids, err := e.Monitors(ctx)
	if err != nil {
		return err
	}
	if len(pids) != *idleFlag {
		return fmt.Errorf("%d monitor processes for %d running containers", len(pids), *idleFlag)
	}
	for _, pid := range pids {
		m, err := memoryOf(pid)
		if err != nil {
			return err
		}
		r.monitors = append(r.monitors, m)
	}
	var daemon []int
	if pid := e.DaemonPID(); pid != 0 {
		daemon = append(daemon, pid)
	}
	if x, ok := e.(interface {
		ExtraPIDs(context.Context) ([]int, error)
	}); ok {
		extra, err := x.ExtraPIDs(ctx)
		if err != nil {
			return err
		}
		daemon = append(daemon, extra...)
	}
	for _, pid := range daemon {
		m, err := memoryOf(pid)
		if err != nil {
			return err
		}
		r.hasDaemon = true
		r.daemon.rss += m.rss
		r.daemon.pss += m.pss
	}
	return nil
}
