package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/containerd/cgroups/v3"

	"github.com/raind/condenser/imagestore"
	"github.com/raind/condenser/internal/backend"
	"github.com/raind/condenser/internal/cgwarm"
	"github.com/raind/condenser/internal/listen"
	"github.com/raind/condenser/internal/volumes"
	"github.com/raind/condenser/rest"
	"github.com/raind/condenser/rest/api"
	"github.com/raind/condenser/rest/docker"
	"github.com/raind/condenser/rootfs"
	"github.com/raind/condenser/supervisor"
	"github.com/raind/condenser/supervisor/network"
	"github.com/raind/condenser/supervisor/network/nat"
)

// daemonConfig is the daemon's configuration from its flags.
type daemonConfig struct {
	root, state, runtime, shim string
	cgroupParent               string
	spareShim                  bool
	listen                     listen.Options
	// docker is where the Docker Engine API listens when systemd passed
	// no socket (no Addresses and no Defaults: nowhere).
	docker   listen.Options
	log      *slog.Logger
	images   *imagestore.Store
	network  network.Config // Root, State and Logger set by runDaemon
	natTable string
	// certDir holds the Raind certificates: the TLS files of the default
	// TCP listener and of TCP sockets systemd passes, made when missing.
	certDir string
}

// shutdownGrace bounds how long in-flight requests may finish at shutdown.
const shutdownGrace = 10 * time.Second

// runDaemon serves the REST API until ctx is done. Containers keep running
// when it returns.
func runDaemon(ctx context.Context, cfg daemonConfig) error {
	log := cfg.log
	collectMoreOften()
	rt, err := pickRuntime(cfg.runtime, log)
	if err != nil {
		return err
	}
	shimBin, err := findShim(cfg.shim)
	if err != nil {
		return err
	}
	rfs, err := rootfs.NewManager(filepath.Join(cfg.root, "containers"))
	if err != nil {
		return err
	}
	start := time.Now()
	nets, err := openNetworks(ctx, cfg)
	if err != nil {
		return err
	}
	defer nets.Net.Close()
	defer nets.NAT.Close()
	warmer, err := cgwarm.New()
	if err != nil {
		log.Info("cgroup moves are not warmed up ahead of the runtime", "error", err)
	}
	sup, err := supervisor.Open(ctx, supervisor.Config{
		Root: cfg.root, State: cfg.state, Runtime: rt, ShimBinary: shimBin, Images: supervisor.StoreImages(cfg.images), Rootfs: rfs,
		CgroupV2: cgroups.Mode() == cgroups.Unified, Logger: log, SpareShim: cfg.spareShim,
		CgroupParent: cfg.cgroupParent, Networks: nets, WarmCgroups: warmer.Warm,
	})
	if err != nil {
		return err
	}
	defer sup.Close()
	defaultTLS := func() (string, string, string, error) { return ensureCerts(cfg.certDir, log) }
	lo := cfg.listen
	lo.DefaultTLS = defaultTLS
	ls, err := listen.Listen(ctx, lo)
	if err != nil {
		return err
	}
	ls, dls, err := dockerListeners(ctx, ls, cfg.docker, defaultTLS)
	if err != nil {
		for _, l := range ls {
			_ = l.Close()
		}
		return err
	}
	b := backend.New(sup, cfg.images, version, api.SystemInfo{
		Runtime: rt, CgroupMode: cgroupMode(), StorageDriver: rfs.Driver(), Root: cfg.root, State: cfg.state,
		OS: "linux", Arch: goruntime.GOARCH,
	})
	h := rest.NewHandler(b, log)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
		// net/http's own complaints (a recovered panic, a TLS handshake
		// error) go to the daemon's log like the rest.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelError)}
	// Shutdown waits for the requests in flight but cancels none: the
	// streams that last as long as their client (events, logs -f, wait)
	// are ended by the handler, so that they end cleanly and at once.
	srv.RegisterOnShutdown(h.Shutdown)
	dh := docker.NewHandler(dockerDeps(sup, cfg, rt, rfs.Driver()), log)
	dsrv := &http.Server{Handler: dh, ReadHeaderTimeout: 10 * time.Second, ErrorLog: srv.ErrorLog}
	dsrv.RegisterOnShutdown(dh.Shutdown)
	var wg sync.WaitGroup
	errc := make(chan error, len(ls)+len(dls))
	type listener struct {
		srv *http.Server
		l   net.Listener
		api string
	}
	var all []listener
	for _, l := range ls {
		all = append(all, listener{srv, l, "raind"})
	}
	for _, l := range dls {
		all = append(all, listener{dsrv, l, "docker"})
	}
	// Every listener is logged before any serves: a client that got an
	// answer reads them all in the log.
	for _, x := range all {
		log.Info("listening", "api", x.api, "address", listen.Describe(x.l))
	}
	for _, x := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := x.srv.Serve(x.l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	log.Info("condenser ready", "runtime", rt, "storage", rfs.Driver(), "cgroup", cgroupMode(), "startup", time.Since(start).Round(time.Millisecond))
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	log.Info("shutting down; containers keep running")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	var sg sync.WaitGroup
	for _, s := range []*http.Server{srv, dsrv} {
		sg.Go(func() { s.Shutdown(sctx) })
	}
	sg.Wait()
	h.Wait(sctx)  // the WebSocket sessions, hijacked: Shutdown does not wait for them
	dh.Wait(sctx) // the Docker API's attach and exec sessions, hijacked too
	wg.Wait()
	return err
}

// dockerListeners splits the Docker API's listeners off ls: the sockets
// systemd passed named listen.NameDocker or, when systemd passed none, new
// ones on o's addresses (with the Raind listener's TLS rules for TCP).
func dockerListeners(ctx context.Context, ls []net.Listener, o listen.Options, defaultTLS func() (string, string, string, error)) (api, dock []net.Listener, err error) {
	activated := false
	for _, l := range ls {
		name, ok := listen.Activated(l)
		activated = activated || ok
		if ok && name == listen.NameDocker {
			dock = append(dock, l)
		} else {
			api = append(api, l)
		}
	}
	if activated || (len(o.Addresses) == 0 && len(o.Defaults) == 0) {
		return api, dock, nil
	}
	o.DefaultTLS = defaultTLS
	dock, err = listen.Listen(ctx, o)
	if err != nil {
		return api, nil, fmt.Errorf("docker API: %w", err)
	}
	return api, dock, nil
}

// dockerDeps is what the Docker Engine API serves: the supervisor, the
// image store and the named volumes.
func dockerDeps(sup *supervisor.Supervisor, cfg daemonConfig, rt, storage string) docker.Deps {
	cgroupVersion := "1"
	if cgroups.Mode() == cgroups.Unified {
		cgroupVersion = "2"
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return docker.Deps{
		Containers: sup, Streams: sup, Images: cfg.images, Networks: sup,
		Volumes: volumes.New(filepath.Join(cfg.root, "volumes")),
		System: docker.System{Version: version, Runtime: rt, Root: cfg.root, State: cfg.state, StorageDriver: storage,
			CgroupVersion: cgroupVersion, KernelVersion: strings.TrimSpace(string(kernel))},
	}
}

// pickRuntime returns the runtime to use: the one asked for, or the first of
// droplet, crun and runc on PATH that can work on this host. A runtime that
// cannot (crun on a hybrid cgroup host, see runtimeUsable) is refused at
// start, saying why, rather than failing every create.
func pickRuntime(want string, log *slog.Logger) (string, error) {
	if want != "" {
		p, err := exec.LookPath(want)
		if err != nil {
			return "", fmt.Errorf("runtime %q not found: install it (apt-get install runc) or pass --runtime: %w", want, err)
		}
		if err := runtimeUsable(p, hostCgroups()); err != nil {
			return "", fmt.Errorf("--runtime %s: %w", want, err)
		}
		return p, nil
	}
	for _, name := range []string{"droplet", "crun", "runc"} {
		p, err := exec.LookPath(name)
		if err != nil {
			continue
		}
		if err := runtimeUsable(p, hostCgroups()); err != nil {
			log.Info("not using a runtime found on PATH", "path", p, "reason", err)
			continue
		}
		return p, nil
	}
	return "", errors.New("no OCI runtime found (droplet, crun or runc) that works on this host: install one, e.g. apt-get install runc")
}

// cgroupHost is what decides whether a runtime can work here: the cgroup
// mode, and on a hybrid host the controllers of its cgroup2 hierarchy.
type cgroupHost struct {
	mode               cgroups.CGMode
	unifiedControllers string // /sys/fs/cgroup/unified/cgroup.controllers (hybrid hosts)
}

func hostCgroups() cgroupHost {
	h := cgroupHost{mode: cgroups.Mode()}
	if h.mode == cgroups.Hybrid {
		b, _ := os.ReadFile("/sys/fs/cgroup/unified/cgroup.controllers")
		h.unifiedControllers = strings.TrimSpace(string(b))
	}
	return h
}

// runtimeUsable returns why the runtime at path cannot run containers on
// host, or nil. crun (1.8, Debian 12's) refuses a hybrid host whose cgroup2
// hierarchy has controllers ("cgroups in hybrid mode not supported, drop
// all controllers from cgroupv2") on every create. crun is told by its
// name or, for another name, by its --version (only run when the host is
// such a host).
func runtimeUsable(path string, host cgroupHost) error {
	if host.mode != cgroups.Hybrid || host.unifiedControllers == "" {
		return nil
	}
	isCrun := filepath.Base(path) == "crun"
	if !isCrun && filepath.Base(path) != "runc" && filepath.Base(path) != "droplet" {
		out, _ := exec.Command(path, "--version").Output()
		isCrun = strings.HasPrefix(string(out), "crun ")
	}
	if !isCrun {
		return nil
	}
	return fmt.Errorf("%s is crun, which refuses this host's hybrid cgroup layout (cgroup v1 hierarchies plus a cgroup2 hierarchy with controllers: %s) on every create: use runc (--runtime runc)",
		path, host.unifiedControllers)
}

// findShim returns condenser-shim: the one given, else the one next to this
// binary, else on PATH.
func findShim(want string) (string, error) {
	if want != "" {
		return exec.LookPath(want)
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "condenser-shim")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("condenser-shim")
	if err != nil {
		return "", errors.New("condenser-shim not found next to condenser or on PATH: build it with make build")
	}
	return p, nil
}

func cgroupMode() string {
	switch cgroups.Mode() {
	case cgroups.Unified:
		return "v2"
	case cgroups.Hybrid:
		return "hybrid"
	case cgroups.Legacy:
		return "v1"
	}
	return "unavailable"
}

// openNetworks opens the networks (namespaces, bridges, addresses under
// the state and root directories) and Condenser's NAT table.
func openNetworks(ctx context.Context, cfg daemonConfig) (*supervisor.NetworkManager, error) {
	nc := cfg.network
	nc.Root, nc.State, nc.Logger = filepath.Join(cfg.root, "network"), filepath.Join(cfg.state, "network"), cfg.log
	n, err := network.Open(ctx, nc)
	if err != nil {
		return nil, fmt.Errorf("networks: %w", err)
	}
	t, err := nat.Open(ctx, nat.Config{Table: cfg.natTable, Logger: cfg.log})
	if err != nil {
		n.Close()
		return nil, fmt.Errorf("NAT: %w", err)
	}
	return &supervisor.NetworkManager{Net: n, NAT: t}, nil
}

// daemonGCPercent is the daemon's GOGC: most of its heap is the state of
// the containers it watches (a connection, a goroutine and a record each),
// which lives as long as they do, so the garbage collector may run twice
// as often for the heap to grow half as far past it. With 1000 running
// containers: 53 MiB of RSS instead of 59–62, and no measurable change to
// the listing under load (make bench, row 9).
const daemonGCPercent = 50

// collectMoreOften sets daemonGCPercent, unless the operator set GOGC.
func collectMoreOften() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(daemonGCPercent)
	}
}
