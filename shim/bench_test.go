package shim

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raind/condenser/internal/names"
	"github.com/raind/condenser/internal/testutil"
	"github.com/raind/condenser/rootfs"
	"github.com/raind/condenser/shim/client"
)

// benchRuntime is runc: the figures are compared with bare `runc run`.
func benchRuntime(b *testing.B) runtimeCase {
	testutil.RequireRoot(b)
	return runtimeCase{Name: "runc", Binary: testutil.RequireBinary(b, "runc")}
}

// BenchmarkShimStart measures `condenser-shim start` until the shim serves.
func BenchmarkShimStart(b *testing.B) {
	rt := benchRuntime(b)
	base := b.TempDir()
	bundle := filepath.Join(base, "bundle")
	os.MkdirAll(bundle, 0o700)
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		o := client.Options{Binary: shimBinary, ID: names.NewID(), Bundle: bundle, Runtime: rt.Binary, RuntimeRoot: filepath.Join(base, "rt")}
		addr, err := client.Launch(ctx, o)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		c, err := client.Dial(ctx, addr)
		if err != nil {
			b.Fatal(err)
		}
		pid := mustPid(b, c)
		c.Shutdown(ctx, true)
		c.Close()
		waitGone(b, pid)
		b.StartTimer()
	}
}

func mustPid(b *testing.B, c *client.Client) int {
	r, err := c.Connect(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return r.ShimPid
}

// BenchmarkRunTrue is create+start+wait of `true` through a shim that is
// already serving, next to bare `runc run` of the same bundle.
func BenchmarkRunTrue(b *testing.B) {
	rt := benchRuntime(b)
	lower := busyboxRootfs(b)
	b.Run("shim", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			c := newBenchContainer(b, rt, lower)
			b.StartTimer()
			ctx := context.Background()
			if _, err := c.client.Create(ctx, c.req); err != nil {
				b.Fatal(err)
			}
			if _, err := c.client.Start(ctx); err != nil {
				b.Fatal(err)
			}
			if e, err := c.client.Wait(ctx); err != nil || e.ExitCode != 0 {
				b.Fatal(e, err)
			}
			b.StopTimer()
			c.done(b)
			b.StartTimer()
		}
	})
	b.Run("bare-runc-run", func(b *testing.B) {
		base := b.TempDir()
		bundle := filepath.Join(base, "bundle")
		rootfsDir := filepath.Join(bundle, "rootfs")
		os.MkdirAll(rootfsDir, 0o755)
		if out, err := exec.Command("mount", "--bind", lower, rootfsDir).CombinedOutput(); err != nil {
			b.Fatalf("%v %s", err, out)
		}
		defer exec.Command("umount", rootfsDir).Run()
		for i := 0; i < b.N; i++ {
			id := names.NewID()
			spec, _ := json.Marshal(testSpec(id, []string{"true"}))
			os.WriteFile(filepath.Join(bundle, "config.json"), spec, 0o644)
			if out, err := exec.Command(rt.Binary, "--root", filepath.Join(base, "rt"), "run", "--bundle", bundle, id).CombinedOutput(); err != nil {
				b.Fatalf("runc run: %v %s", err, out)
			}
		}
	})
}

// idleShims is how many idle containers BenchmarkIdleShimMemory runs at
// once: shims share their binary's pages, so PSS depends on it (the
// benchmark table, docs/benchmarks.md, reads 50).
var idleShims = flag.Int("idle-shims", 10, "idle containers BenchmarkIdleShimMemory runs at once")

// idleSettle is how long the idle shims are left alone before they are
// measured: a shim trims its resident set once it has been quiet for a
// moment (cmd/condenser-shim, trimWhenIdle), and an idle shim is one that
// has been idle for more than an instant.
const idleSettle = 2 * time.Second

// BenchmarkIdleShimMemory reports the mean resident and proportional set
// size of the shims of idleShims sleeping containers, each with a Wait
// pending as the daemon keeps one.
func BenchmarkIdleShimMemory(b *testing.B) {
	rt := benchRuntime(b)
	lower := busyboxRootfs(b)
	var rssSum, pssSum float64
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		cs := make([]*benchContainer, *idleShims)
		waits := make(chan error, len(cs))
		for j := range cs {
			cs[j] = newBenchContainer(b, rt, lower)
			if _, err := cs[j].client.Create(ctx, cs[j].req); err != nil {
				b.Fatal(err)
			}
			if _, err := cs[j].client.Start(ctx); err != nil {
				b.Fatal(err)
			}
			go func(c *benchContainer) {
				_, err := c.client.Wait(ctx)
				waits <- err
			}(cs[j])
		}
		time.Sleep(idleSettle)
		for _, c := range cs {
			r, p := rss(b, c.pid)
			rssSum += float64(r)
			pssSum += float64(p)
		}
		for _, c := range cs {
			c.client.Kill(ctx, 9, false)
		}
		for range cs {
			if err := <-waits; err != nil {
				b.Fatal(err)
			}
		}
		for _, c := range cs {
			c.done(b)
		}
	}
	n := float64(b.N * *idleShims)
	b.ReportMetric(rssSum/n/(1<<20), "RSS-MiB")
	b.ReportMetric(pssSum/n/(1<<20), "PSS-MiB")
}

type benchContainer struct {
	client *client.Client
	req    client.CreateOptions
	pid    int
	opts   client.Options
}

func newBenchContainer(b *testing.B, rt runtimeCase, lower string) *benchContainer {
	base := b.TempDir()
	id := names.NewID()
	bundle := filepath.Join(base, "bundle")
	os.MkdirAll(bundle, 0o700)
	args := []string{"true"}
	if strings.HasPrefix(b.Name(), "BenchmarkIdleShimMemory") {
		args = []string{"sleep", "1000"}
	}
	spec, _ := json.Marshal(testSpec(id, args))
	os.WriteFile(filepath.Join(bundle, "config.json"), spec, 0o644)
	upper, work := filepath.Join(base, "upper"), filepath.Join(base, "work")
	os.Mkdir(upper, 0o755)
	os.Mkdir(work, 0o755)
	o := client.Options{Binary: shimBinary, ID: id, Bundle: bundle, Runtime: rt.Binary, RuntimeRoot: filepath.Join(base, "rt")}
	ctx := context.Background()
	addr, err := client.Launch(ctx, o)
	if err != nil {
		b.Fatal(err)
	}
	c, err := client.Dial(ctx, addr)
	if err != nil {
		b.Fatal(err)
	}
	return &benchContainer{client: c, opts: o, pid: mustPid(b, c), req: client.CreateOptions{
		Rootfs: []rootfs.Mount{{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=" + lower, "upperdir=" + upper, "workdir=" + work}}},
	}}
}

func (c *benchContainer) done(b *testing.B) {
	ctx := context.Background()
	if _, err := c.client.Delete(ctx); err != nil {
		b.Fatal(err)
	}
	c.client.Shutdown(ctx, false)
	c.client.Close()
	waitGone(b, c.pid)
}
