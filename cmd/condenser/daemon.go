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
	"strconv"
	"sync"
	"time"

	"github.com/containerd/cgroups/v3"

	"github.com/raind/condenser/imagestore"
	"github.com/raind/condenser/internal/backend"
	"github.com/raind/condenser/internal/listen"
	"github.com/raind/condenser/rest"
	"github.com/raind/condenser/rest/api"
	"github.com/raind/condenser/rootfs"
	"github.com/raind/condenser/supervisor"
)

// daemonConfig is the daemon's configuration from its flags.
type daemonConfig struct {
	root, state, runtime, shim string
	spareShim                  bool
	listen                     listen.Options
	log                        *slog.Logger
	images                     *imagestore.Store
}

// shutdownGrace bounds how long in-flight requests may finish at shutdown.
const shutdownGrace = 10 * time.Second

// runDaemon serves the REST API until ctx is done. Containers keep running
// when it returns.
func runDaemon(ctx context.Context, cfg daemonConfig) error {
	log := cfg.log
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
	sup, err := supervisor.Open(ctx, supervisor.Config{
		Root: cfg.root, State: cfg.state, Runtime: rt, ShimBinary: shimBin, Images: supervisor.StoreImages(cfg.images), Rootfs: rfs,
		CgroupV2: cgroups.Mode() == cgroups.Unified, Logger: log, SpareShim: cfg.spareShim,
	})
	if err != nil {
		return err
	}
	defer sup.Close()
	ls, err := listen.Listen(ctx, cfg.listen)
	if err != nil {
		return err
	}
	b := backend.New(sup, cfg.images, version, api.SystemInfo{
		Runtime: rt, CgroupMode: cgroupMode(), StorageDriver: rfs.Driver(), Root: cfg.root, State: cfg.state,
		OS: "linux", Arch: goruntime.GOARCH,
	})
	srv := &http.Server{Handler: rest.NewHandler(b, log), ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	errc := make(chan error, len(ls))
	for _, l := range ls {
		wg.Add(1)
		go func(l net.Listener) {
			defer wg.Done()
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}(l)
		log.Info("listening", "address", listen.Describe(l))
	}
	log.Info("condenser ready", "runtime", rt, "storage", rfs.Driver(), "cgroup", cgroupMode(), "startup", time.Since(start).Round(time.Millisecond))
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	log.Info("shutting down; containers keep running")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	srv.Shutdown(sctx)
	wg.Wait()
	return err
}

// pickRuntime returns the runtime to use: the one asked for, or the first of
// droplet, crun and runc on PATH (crun 1.8 refuses hybrid cgroup hosts, so
// it is passed over there).
func pickRuntime(want string, log *slog.Logger) (string, error) {
	if want != "" {
		p, err := exec.LookPath(want)
		if err != nil {
			return "", fmt.Errorf("runtime %q not found: install it (apt-get install runc) or pass --runtime: %w", want, err)
		}
		return p, nil
	}
	for _, name := range []string{"droplet", "crun", "runc"} {
		p, err := exec.LookPath(name)
		if err != nil {
			continue
		}
		if name == "crun" && cgroups.Mode() == cgroups.Hybrid {
			log.Info("crun refuses hybrid cgroup hosts; not using it", "path", p)
			continue
		}
		return p, nil
	}
	return "", errors.New("no OCI runtime found (droplet, crun or runc): install one, e.g. apt-get install runc")
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

func itoa(n int) string { return strconv.Itoa(n) }
