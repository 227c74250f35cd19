// Package backend adapts the supervisor and the image store to rest.Backend:
// what the REST layer asks, in the contract's wire types (rest/api), turned
// into calls of the supervisor and the image store and back. It holds no
// container logic: field copies, the few views the contract defines (a
// summary, a detail, a stats sample, an event, an exec process, a network)
// and label filtering. An attachment to a process's standard streams is the
// supervisor's stream itself (supervisor.Stream is a rest.Attachment).
//
// It depends on two small interfaces of its own, Supervisor and Images, so
// that it is tested with fakes; *supervisor.Supervisor and
// *imagestore.Store satisfy them. Errors of both pass through unchanged,
// their errdefs kinds included, for rest/ to map to status codes.
package backend

import (
	"context"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/raind/condenser/imagestore"
	"github.com/raind/condenser/rest"
	"github.com/raind/condenser/rest/api"
	"github.com/raind/condenser/shim/logging"
	"github.com/raind/condenser/supervisor"
)

// Images is what the adapter uses of the image store (*imagestore.Store).
type Images interface {
	Pull(ctx context.Context, ref string, o imagestore.PullOptions) (imagestore.Image, error)
	List(ctx context.Context) ([]imagestore.Image, error)
	Inspect(ctx context.Context, ref string) (imagestore.Image, error)
	Remove(ctx context.Context, ref string, o imagestore.RemoveOptions) ([]string, error)
	Config(ctx context.Context, img imagestore.Image) (*v1.ConfigFile, error)
	DiskUsage(ctx context.Context) (imagestore.Usage, error)
	Import(ctx context.Context, r io.Reader, o imagestore.ImportOptions) ([]imagestore.Image, error)
}

var _ Images = (*imagestore.Store)(nil)

// ExitUnknownError is the detail's "error" of a stopped container whose
// exit status is unknown (exitCode api.ExitUnknown).
const ExitUnknownError = "exit status unknown: the container's shim was killed or crashed (or the host rebooted) while it ran; what was left of it has been killed"

// Backend is the rest.Backend of the daemon.
type Backend struct {
	sup     Supervisor
	images  Images
	version string
	info    api.SystemInfo
	now     func() time.Time // the time of a stats sample
	list    lister           // GET /v1/containers, kept encoded (list.go)
}

var _ rest.Backend = (*Backend)(nil)

// New returns the backend over sup and images. version is the daemon's
// version; info holds the fixed part of GET /v1/info (runtime, cgroup mode,
// storage driver, directories, OS and architecture), to which Info adds the
// counts and the host's figures.
func New(sup Supervisor, images Images, version string, info api.SystemInfo) *Backend {
	return &Backend{sup: sup, images: images, version: version, info: info, now: func() time.Time { return time.Now().UTC() }}
}

func (b *Backend) CreateContainer(ctx context.Context, r api.CreateContainerRequest) (string, error) {
	return idOf(b.sup.Create(ctx, createRequest(r)))
}

// summary is a container as GET /v1/containers lists it.
func summary(c *supervisor.Container) api.ContainerSummary {
	ref, _ := imagestore.ParseReference(c.Image)
	s := api.ContainerSummary{
		ContainerID: c.ID, Name: c.Name, State: string(c.State), ImageRepository: imageRepository(ref), ImageReference: ref.Identifier(),
		Command: c.Args, Forwards: forwards(c.Endpoint), CreatingAt: c.CreatingAt, CreatedAt: c.CreatedAt, StartedAt: c.StartedAt, StoppedAt: c.StoppedAt,
	}
	if c.Endpoint != nil {
		s.Address = addr(c.Endpoint.IP)
	}
	if c.State == supervisor.StateRunning {
		s.Pid = c.Pid
	}
	return s
}

// imageRepository is the repository as the Raind CLI reads it: the path
// alone for Docker Hub ("library/alpine", which it splits on "/"), else
// registry[:port]/path.
func imageRepository(ref imagestore.Reference) string {
	if ref.Domain == "docker.io" {
		return ref.Path
	}
	return ref.Repository()
}

// ListContainers lists every container, or the running ones unless all;
// each must carry every label given (a label given with an empty value
// matches any value).
func (b *Backend) ListContainers(ctx context.Context, all bool, labels map[string]string) ([]api.ContainerSummary, error) {
	cs, err := b.sup.List(ctx)
	if err != nil {
		return nil, err
	}
	out := []api.ContainerSummary{}
	for _, c := range cs {
		if (all || c.State == supervisor.StateRunning) && hasLabels(c.Request.Labels, labels) {
			out = append(out, summary(c))
		}
	}
	return out, nil
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || (v != "" && got != v) {
			return false
		}
	}
	return true
}

func (b *Backend) InspectContainer(ctx context.Context, ref string) (*api.ContainerDetail, error) {
	c, err := b.sup.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	return detail(c), nil
}

// detail is a container as GET /v1/containers/{id} shows it.
func detail(c *supervisor.Container) *api.ContainerDetail {
	d := &api.ContainerDetail{
		ContainerSummary: summary(c), ExitCode: c.ExitCode, OOMKilled: c.OOMKilled, RestartCount: c.RestartCount,
		ShimPid: c.ShimPid, Bundle: c.Bundle, Rootfs: c.RootfsPath(), ImageDigest: c.ImageDigest,
		Config: config(c), NetworkSettings: networkSettings(c.Endpoint),
	}
	if c.State == supervisor.StateStopped && c.ExitCode == nil {
		code := api.ExitUnknown
		d.ExitCode, d.Error = &code, ExitUnknownError
	}
	return d
}

func idOf(c *supervisor.Container, err error) (string, error) {
	if err != nil {
		return "", err
	}
	return c.ID, nil
}

func (b *Backend) StartContainer(ctx context.Context, ref string) (string, error) {
	return idOf(b.sup.Start(ctx, ref))
}

func (b *Backend) StopContainer(ctx context.Context, ref string, timeout time.Duration) (string, error) {
	return idOf(b.sup.Stop(ctx, ref, timeout))
}

func (b *Backend) KillContainer(ctx context.Context, ref string, sig syscall.Signal) (string, error) {
	return idOf(b.sup.Kill(ctx, ref, sig))
}

func (b *Backend) RestartContainer(ctx context.Context, ref string, timeout time.Duration) (string, error) {
	return idOf(b.sup.Restart(ctx, ref, timeout))
}

func (b *Backend) WaitContainer(ctx context.Context, ref string) (int, error) {
	return b.sup.Wait(ctx, ref)
}

func (b *Backend) DeleteContainer(ctx context.Context, ref string, force bool) (string, error) {
	return idOf(b.sup.Delete(ctx, ref, force))
}

func (b *Backend) ContainerLogs(ctx context.Context, ref string, o rest.LogOptions, fn func(api.LogEntry) error) error {
	return b.sup.Logs(ctx, ref, supervisor.LogOptions{Follow: o.Follow, Since: o.Since, Tail: o.Tail, Stdout: o.Stdout, Stderr: o.Stderr},
		func(e logging.Entry) error { return fn(api.LogEntry{Log: e.Log, Stream: e.Stream, Time: e.Time}) })
}

func (b *Backend) ContainerStats(ctx context.Context, ref string) (*api.ContainerStats, error) {
	st, c, err := b.sup.Stats(ctx, ref)
	if err != nil {
		return nil, err
	}
	return statsOf(st, c, b.now()), nil
}

// AllContainerStats samples every running container; one that stops
// meanwhile is left out.
func (b *Backend) AllContainerStats(ctx context.Context) ([]api.ContainerStats, error) {
	cs, err := b.sup.List(ctx)
	if err != nil {
		return nil, err
	}
	out := []api.ContainerStats{}
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

func (b *Backend) PullImage(ctx context.Context, image, goos, arch string, progress func(api.PullProgress)) (*api.PullResult, error) {
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
	return &api.PullResult{Image: img.Name, OS: img.Platform.OS, Arch: img.Platform.Architecture, ID: img.ID, Digest: img.Digest}, nil
}

// progressTo passes the store's progress events on to the REST layer's.
func progressTo(progress func(api.PullProgress)) imagestore.ProgressFunc {
	if progress == nil {
		return nil
	}
	return func(p imagestore.Progress) {
		progress(api.PullProgress{Layer: p.Layer, Status: string(p.Status), Current: p.Current, Total: p.Total})
	}
}

func imageSummary(img imagestore.Image) api.ImageSummary {
	s := api.ImageSummary{CreatedAt: img.Created, ID: img.ID, Digest: img.Digest, Size: img.Size}
	if img.Name != "" {
		r := img.Reference()
		s.Repository, s.Reference = r.Repository(), r.Identifier()
	}
	return s
}

func imageSummaries(imgs []imagestore.Image) []api.ImageSummary {
	out := []api.ImageSummary{}
	for _, img := range imgs {
		out = append(out, imageSummary(img))
	}
	return out
}

func (b *Backend) ListImages(ctx context.Context) ([]api.ImageSummary, error) {
	imgs, err := b.images.List(ctx)
	if err != nil {
		return nil, err
	}
	return imageSummaries(imgs), nil
}

// RemoveImage removes an image name; the supervisor says which containers
// use the image, which makes the removal a conflict unless forced.
func (b *Backend) RemoveImage(ctx context.Context, image string, force bool) error {
	_, err := b.images.Remove(ctx, image, imagestore.RemoveOptions{Force: force, Users: b.sup})
	return err
}

func (b *Backend) ImageStatus(ctx context.Context, image string) (*api.ImageStatus, error) {
	img, err := b.images.Inspect(ctx, image)
	if err != nil {
		return nil, err
	}
	st := &api.ImageStatus{ID: img.ID, SizeBytes: img.Size, CreatedAt: img.Created, RepoTags: []string{}, RepoDigests: []string{}}
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

func (b *Backend) ImagesFS(ctx context.Context) (int64, error) {
	u, err := b.images.DiskUsage(ctx)
	return u.Total, err
}

func (b *Backend) ImportImage(ctx context.Context, r io.Reader, progress func(api.PullProgress)) ([]api.ImageSummary, error) {
	imgs, err := b.images.Import(ctx, r, imagestore.ImportOptions{Progress: progressTo(progress)})
	if err != nil {
		return nil, err
	}
	return imageSummaries(imgs), nil
}

func (b *Backend) Version(context.Context) api.VersionInfo {
	return api.VersionInfo{Version: b.version, GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
}

// Info is the fixed part given to New, the counts of containers and images,
// and the host's CPUs, memory and kernel.
func (b *Backend) Info(ctx context.Context) (*api.SystemInfo, error) {
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

// Events passes the supervisor's lifecycle events on until ctx is done. A
// "die" event carries the exit code in the attribute exitCode —
// api.ExitUnknown when the status was lost.
func (b *Backend) Events(ctx context.Context, fn func(api.Event) error) error {
	ch, stop := b.sup.Subscribe()
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-ch:
			if !ok {
				return nil
			}
			if err := fn(event(e)); err != nil {
				return err
			}
		}
	}
}

func event(e supervisor.Event) api.Event {
	re := api.Event{Type: e.Type, Action: e.Action, ID: e.ID, Name: e.Name, Time: e.Time}
	if e.ExitCode != nil {
		re.Attributes = map[string]string{"exitCode": strconv.Itoa(*e.ExitCode)}
	} else if e.Action == "die" {
		re.Attributes = map[string]string{"exitCode": strconv.Itoa(api.ExitUnknown)}
	}
	return re
}
