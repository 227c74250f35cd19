package main

import (
	"context"
	"io"
	"os"
	"runtime"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/raind/condenser/imagestore"
	"github.com/raind/condenser/rest"
	"github.com/raind/condenser/shim/logging"
	"github.com/raind/condenser/supervisor"
)

// backend adapts the supervisor and the image store to rest.Backend: field
// copies only.
type backend struct {
	sup     *supervisor.Supervisor
	images  *imagestore.Store
	info    rest.SystemInfo
	version string
}

var _ rest.Backend = (*backend)(nil)

func (b *backend) CreateContainer(ctx context.Context, r rest.CreateContainerRequest) (string, error) {
	req := supervisor.CreateRequest{
		Image: r.Image, Name: r.Name, Entrypoint: r.Entrypoint, Command: r.Command, Env: r.Env, Mounts: r.Mount,
		WorkingDir: r.Workdir, User: r.User, Hostname: r.Hostname, Labels: r.Labels, Network: r.Network,
		RestartPolicy: r.RestartPolicy, ReadOnly: r.ReadOnly, AutoRemove: r.AutoRemove,
	}
	if r.Resources != nil {
		req.Memory, req.CPUs, req.PidsLimit = r.Resources.Memory, r.Resources.CPUs, r.Resources.Pids
	}
	c, err := b.sup.Create(ctx, req)
	if err != nil {
		return "", err
	}
	return c.ID, nil
}

func summary(c *supervisor.Container) rest.ContainerSummary {
	ref, _ := imagestore.ParseReference(c.Image)
	s := rest.ContainerSummary{
		ContainerID: c.ID, Name: c.Name, State: string(c.State), ImageRepository: ref.Repository(), ImageReference: ref.Identifier(),
		Command: c.Args, Forwards: []rest.Forward{}, CreatingAt: c.CreatingAt, CreatedAt: c.CreatedAt, StartedAt: c.StartedAt, StoppedAt: c.StoppedAt,
	}
	if c.State == supervisor.StateRunning {
		s.Pid = c.Pid
	}
	return s
}

func (b *backend) ListContainers(ctx context.Context, all bool, labels map[string]string) ([]rest.ContainerSummary, error) {
	cs, err := b.sup.List(ctx)
	if err != nil {
		return nil, err
	}
	out := []rest.ContainerSummary{}
next:
	for _, c := range cs {
		if !all && c.State != supervisor.StateRunning {
			continue
		}
		for k, v := range labels {
			if got, ok := c.Request.Labels[k]; !ok || (v != "" && got != v) {
				continue next
			}
		}
		out = append(out, summary(c))
	}
	return out, nil
}

func (b *backend) InspectContainer(ctx context.Context, ref string) (*rest.ContainerDetail, error) {
	c, err := b.sup.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	d := &rest.ContainerDetail{
		ContainerSummary: summary(c), ExitCode: c.ExitCode, OOMKilled: c.OOMKilled, RestartCount: c.RestartCount,
		ShimPid: c.ShimPid, Bundle: c.Bundle, Rootfs: c.Bundle + "/rootfs", ImageDigest: c.ImageDigest,
		Config: rest.ContainerConfig{
			Args: c.Args, Env: c.Request.Env, Workdir: c.Request.WorkingDir, User: c.Request.User, Mounts: []rest.Mount{},
			Hostname: c.Request.Hostname, Network: c.Request.Network, Labels: c.Request.Labels, RestartPolicy: c.Request.RestartPolicy,
			ReadOnly: c.Request.ReadOnly, AutoRemove: c.Request.AutoRemove,
		},
	}
	if c.State == supervisor.StateStopped && c.ExitCode == nil {
		code := rest.ExitUnknown
		d.ExitCode, d.Error = &code, "exit status unknown: the container's shim was killed or crashed (or the host rebooted) while it ran; what was left of it has been killed"
	}
	for _, m := range c.Request.Mounts {
		parts := strings.Split(m, ":")
		if len(parts) >= 2 {
			d.Config.Mounts = append(d.Config.Mounts, rest.Mount{Source: parts[0], Destination: parts[1], ReadOnly: len(parts) > 2 && parts[2] == "ro"})
		}
	}
	if c.Request.Memory != 0 || c.Request.CPUs != 0 || c.Request.PidsLimit != 0 {
		d.Config.Resources = &rest.Resources{Memory: c.Request.Memory, CPUs: c.Request.CPUs, Pids: c.Request.PidsLimit}
	}
	return d, nil
}

func idOf(c *supervisor.Container, err error) (string, error) {
	if err != nil {
		return "", err
	}
	return c.ID, nil
}

func (b *backend) StartContainer(ctx context.Context, ref string) (string, error) {
	return idOf(b.sup.Start(ctx, ref))
}

func (b *backend) StopContainer(ctx context.Context, ref string, timeout time.Duration) (string, error) {
	return idOf(b.sup.Stop(ctx, ref, timeout))
}

func (b *backend) KillContainer(ctx context.Context, ref string, sig syscall.Signal) (string, error) {
	return idOf(b.sup.Kill(ctx, ref, sig))
}

func (b *backend) RestartContainer(ctx context.Context, ref string, timeout time.Duration) (string, error) {
	return idOf(b.sup.Restart(ctx, ref, timeout))
}

func (b *backend) WaitContainer(ctx context.Context, ref string) (int, error) {
	return b.sup.Wait(ctx, ref)
}

func (b *backend) DeleteContainer(ctx context.Context, ref string, force bool) (string, error) {
	return idOf(b.sup.Delete(ctx, ref, force))
}

func (b *backend) ContainerLogs(ctx context.Context, ref string, o rest.LogOptions, fn func(rest.LogEntry) error) error {
	return b.sup.Logs(ctx, ref, supervisor.LogOptions{Follow: o.Follow, Since: o.Since, Tail: o.Tail, Stdout: o.Stdout, Stderr: o.Stderr},
		func(e logging.Entry) error { return fn(rest.LogEntry{Log: e.Log, Stream: e.Stream, Time: e.Time}) })
}

func (b *backend) ContainerStats(ctx context.Context, ref string) (*rest.ContainerStats, error) {
	st, c, err := b.sup.Stats(ctx, ref)
	if err != nil {
		return nil, err
	}
	return &rest.ContainerStats{
		ContainerID: c.ID, Name: c.Name, Time: time.Now().UTC(),
		CPU:    rest.CPUStats{UsageNanos: st.CpuUsageNanos},
		Memory: rest.MemoryStats{Usage: st.MemoryUsage, Limit: st.MemoryLimit, Cache: st.MemoryCache, MaxUsage: st.MemoryMaxUsage, OOMKills: st.OomKills},
		Pids:   rest.PidsStats{Current: st.PidsCurrent, Limit: st.PidsLimit},
		IO:     rest.IOStats{ReadBytes: st.BlkioReadBytes, WriteBytes: st.BlkioWriteBytes},
	}, nil
}

func (b *backend) AllContainerStats(ctx context.Context) ([]rest.ContainerStats, error) {
	cs, err := b.sup.List(ctx)
	if err != nil {
		return nil, err
	}
	out := []rest.ContainerStats{}
	for _, c := range cs {
		if c.State != supervisor.StateRunning {
			continue
		}
		if st, err := b.ContainerStats(ctx, c.ID); err == nil {
			out = append(out, *st)
		}
	}
	return out, nil
}

func (b *backend) PullImage(ctx context.Context, image, goos, arch string, progress func(rest.PullProgress)) (*rest.PullResult, error) {
	o := imagestore.PullOptions{Progress: progressTo(progress)}
	if goos != "" || arch != "" {
		p := imagestore.HostPlatform()
		if goos != "" {
			p.OS = goos
		}
		if arch != "" {
			p.Architecture, p.Variant = arch, ""
		}
		o.Platform = &v1.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}
	}
	img, err := b.images.Pull(ctx, image, o)
	if err != nil {
		return nil, err
	}
	return &rest.PullResult{Image: img.Name, OS: img.Platform.OS, Arch: img.Platform.Architecture, ID: img.ID, Digest: img.Digest}, nil
}

// progressTo passes the store's progress events on to the REST layer's.
func progressTo(progress func(rest.PullProgress)) imagestore.ProgressFunc {
	if progress == nil {
		return nil
	}
	return func(p imagestore.Progress) {
		progress(rest.PullProgress{Layer: p.Layer, Status: string(p.Status), Current: p.Current, Total: p.Total})
	}
}

func imageSummary(img imagestore.Image) rest.ImageSummary {
	s := rest.ImageSummary{CreatedAt: img.Created, ID: img.ID, Digest: img.Digest, Size: img.Size}
	if img.Name != "" {
		r := img.Reference()
		s.Repository, s.Reference = r.Repository(), r.Identifier()
	}
	return s
}

func (b *backend) ListImages(ctx context.Context) ([]rest.ImageSummary, error) {
	imgs, err := b.images.List(ctx)
	return imageSummaries(imgs), err
}

func imageSummaries(imgs []imagestore.Image) []rest.ImageSummary {
	out := []rest.ImageSummary{}
	for _, img := range imgs {
		out = append(out, imageSummary(img))
	}
	return out
}

func (b *backend) RemoveImage(ctx context.Context, image string, force bool) error {
	_, err := b.images.Remove(ctx, image, imagestore.RemoveOptions{Force: force, Users: b.sup})
	return err
}

func (b *backend) ImageStatus(ctx context.Context, image string) (*rest.ImageStatus, error) {
	img, err := b.images.Inspect(ctx, image)
	if err != nil {
		return nil, err
	}
	st := &rest.ImageStatus{ID: img.ID, SizeBytes: img.Size, CreatedAt: img.Created, RepoTags: []string{}, RepoDigests: []string{}}
	if img.Name != "" {
		r := img.Reference()
		st.Repository, st.Reference = r.Repository(), r.Identifier()
		st.RepoTags = append(st.RepoTags, img.Name)
		st.RepoDigests = append(st.RepoDigests, r.Repository()+"@"+img.Digest)
	}
	if cfg, err := b.images.Config(ctx, img); err == nil {
		st.User = cfg.Config.User
	}
	return st, nil
}

func (b *backend) ImagesFS(ctx context.Context) (int64, error) {
	u, err := b.images.DiskUsage(ctx)
	return u.Total, err
}

func (b *backend) ImportImage(ctx context.Context, r io.Reader, progress func(rest.PullProgress)) ([]rest.ImageSummary, error) {
	imgs, err := b.images.Import(ctx, r, imagestore.ImportOptions{Progress: progressTo(progress)})
	if err != nil {
		return nil, err
	}
	return imageSummaries(imgs), nil
}

func (b *backend) Version(ctx context.Context) rest.VersionInfo {
	return rest.VersionInfo{Version: b.version, GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
}

func (b *backend) Info(ctx context.Context) (*rest.SystemInfo, error) {
	info := b.info
	cs, err := b.sup.List(ctx)
	if err != nil {
		return nil, err
	}
	info.Containers = len(cs)
	for _, c := range cs {
		switch c.State {
		case supervisor.StateRunning:
			info.ContainersRunning++
		case supervisor.StateStopped:
			info.ContainersStopped++
		}
	}
	if imgs, err := b.images.List(ctx); err == nil {
		info.Images = len(imgs)
	}
	info.NCPU = runtime.NumCPU()
	var si syscall.Sysinfo_t
	if syscall.Sysinfo(&si) == nil {
		info.MemTotal = int64(si.Totalram) * int64(si.Unit)
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		info.KernelVersion = strings.TrimSpace(string(b))
	}
	return &info, nil
}

func (b *backend) Events(ctx context.Context, fn func(rest.Event) error) error {
	ch, stop := b.sup.Subscribe()
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-ch:
			re := rest.Event{Type: e.Type, Action: e.Action, ID: e.ID, Name: e.Name, Time: e.Time}
			if e.ExitCode != nil {
				re.Attributes = map[string]string{"exitCode": itoa(*e.ExitCode)}
			} else if e.Action == "die" {
				re.Attributes = map[string]string{"exitCode": itoa(rest.ExitUnknown)}
			}
			if err := fn(re); err != nil {
				return err
			}
		}
	}
}
