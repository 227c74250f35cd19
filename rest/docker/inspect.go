package docker

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"

	"github.com/raind/condenser/imagestore"
	"github.com/raind/condenser/supervisor"
)

// The listing and inspection of containers: a record seen as Docker shows
// it. What the record does not keep (the Attach* flags, ExposedPorts,
// StdinOnce, the image's part of Env and Labels) is not shown.

// dockerState is the Docker state of c.
func dockerState(c *supervisor.Container) container.ContainerState {
	switch c.State {
	case supervisor.StateRunning:
		return container.StateRunning
	case supervisor.StateStopped:
		return container.StateExited
	case supervisor.StateRestarting:
		return container.StateRestarting
	case supervisor.StateRemoving:
		return container.StateRemoving
	}
	return container.StateCreated // created, creating
}

func exitCode(c *supervisor.Container) int {
	if c.ExitCode == nil {
		if c.State == supervisor.StateStopped {
			return -1 // exited, status unknown (its shim was lost)
		}
		return 0
	}
	return *c.ExitCode
}

// status is the list's Status column: "Up 3 seconds", "Exited (0) 2
// seconds ago", "Created".
func status(c *supervisor.Container, now time.Time) string {
	switch c.State {
	case supervisor.StateRunning:
		return "Up " + humanDuration(now.Sub(c.StartedAt))
	case supervisor.StateStopped:
		if c.StoppedAt.IsZero() {
			return fmt.Sprintf("Exited (%d)", exitCode(c))
		}
		return fmt.Sprintf("Exited (%d) %s ago", exitCode(c), humanDuration(now.Sub(c.StoppedAt)))
	case supervisor.StateRestarting:
		return fmt.Sprintf("Restarting (%d) %s ago", exitCode(c), humanDuration(now.Sub(c.StoppedAt)))
	case supervisor.StateRemoving:
		return "Removal In Progress"
	}
	return "Created"
}

// humanDuration writes d as Docker does (go-units' HumanDuration).
func humanDuration(d time.Duration) string {
	if s := int(d.Seconds()); s < 1 {
		return "Less than a second"
	} else if s == 1 {
		return "1 second"
	} else if s < 60 {
		return fmt.Sprintf("%d seconds", s)
	} else if m := int(d.Minutes()); m == 1 {
		return "About a minute"
	} else if m < 60 {
		return fmt.Sprintf("%d minutes", m)
	} else if h := int(d.Round(time.Hour).Hours()); h == 1 {
		return "About an hour"
	} else if h < 48 {
		return fmt.Sprintf("%d hours", h)
	} else if h < 24*7*2 {
		return fmt.Sprintf("%d days", h/24)
	} else if h < 24*30*2 {
		return fmt.Sprintf("%d weeks", h/24/7)
	} else if h < 24*365*2 {
		return fmt.Sprintf("%d months", h/24/30)
	} else {
		return fmt.Sprintf("%d years", int(d.Hours())/24/365)
	}
}

// dockerNetwork is the name Docker clients know a network by: raind0 is
// their "bridge".
func dockerNetwork(n string) string {
	if n == "" || n == "raind0" {
		return "bridge"
	}
	return n
}

// endpointSettings is c's place on its network, nil when it has none.
func endpointSettings(c *supervisor.Container) (string, *network.EndpointSettings) {
	name := dockerNetwork(c.Request.Network)
	es := &network.EndpointSettings{}
	if ep := c.Endpoint; ep != nil {
		name = dockerNetwork(ep.Network)
		es.NetworkID = ep.Network
		es.EndpointID = c.ID
		es.IPAddress, es.Gateway, es.IPPrefixLen = ep.IP, ep.Gateway, ep.Prefix.Bits()
		if mac, err := net.ParseMAC(ep.MAC); err == nil {
			es.MacAddress = network.HardwareAddr(mac)
		}
		es.DNSNames = []string{c.Name, c.ShortID()}
	}
	return name, es
}

// portSummaries are c's published ports as the list shows them.
func portSummaries(c *supervisor.Container) []container.PortSummary {
	out := []container.PortSummary{}
	if c.Endpoint == nil {
		return out
	}
	for _, p := range c.Endpoint.Ports {
		ip := p.HostIP
		if !ip.IsValid() {
			ip = netip.IPv4Unspecified()
		}
		out = append(out, container.PortSummary{IP: ip, PrivatePort: p.ContainerPort, PublicPort: p.HostPort, Type: p.Protocol})
	}
	return out
}

// portMap is c's published ports as inspect shows them.
func portMap(c *supervisor.Container) network.PortMap {
	pm := network.PortMap{}
	if c.Endpoint == nil {
		return pm
	}
	for _, p := range c.Endpoint.Ports {
		port, ok := network.PortFrom(p.ContainerPort, network.IPProtocol(p.Protocol))
		if !ok {
			continue
		}
		ip := p.HostIP
		if !ip.IsValid() {
			ip = netip.IPv4Unspecified()
		}
		pm[port] = append(pm[port], network.PortBinding{HostIP: ip, HostPort: strconv.Itoa(int(p.HostPort))})
	}
	return pm
}

// requestedPorts are the PortBindings c was created with.
func requestedPorts(c *supervisor.Container) network.PortMap {
	pm := network.PortMap{}
	for _, spec := range c.Request.Ports {
		rest, proto, _ := strings.Cut(spec, "/")
		if proto == "" {
			proto = "tcp"
		}
		parts := strings.Split(rest, ":")
		if len(parts) < 2 {
			continue
		}
		n, err := strconv.ParseUint(parts[len(parts)-1], 10, 16)
		if err != nil {
			continue
		}
		port, ok := network.PortFrom(uint16(n), network.IPProtocol(proto))
		if !ok {
			continue
		}
		b := network.PortBinding{HostPort: parts[len(parts)-2]}
		if len(parts) == 3 {
			b.HostIP, _ = netip.ParseAddr(parts[0])
		}
		pm[port] = append(pm[port], b)
	}
	return pm
}

// volumeNames maps the directories of the named volumes to their names,
// so that a mount of one shows as a volume.
func (s *server) volumeNames(ctx context.Context) map[string]string {
	out := map[string]string{}
	if s.Volumes == nil {
		return out
	}
	vols, err := s.Volumes.List(ctx)
	if err != nil {
		s.log.Warn("list volumes for a container's mounts", "err", err)
		return out
	}
	for _, v := range vols {
		out[filepath.Clean(v.Mountpoint)] = v.Name
	}
	return out
}

// mountPoints are c's bind mounts (volumes among them, by name).
func mountPoints(c *supervisor.Container, vols map[string]string) []container.MountPoint {
	out := []container.MountPoint{}
	for _, m := range c.Request.Mounts {
		parts := strings.Split(m, ":")
		if len(parts) < 2 {
			continue
		}
		mp := container.MountPoint{Type: mount.TypeBind, Source: parts[0], Destination: parts[1], RW: true, Propagation: mount.PropagationRPrivate}
		if len(parts) > 2 {
			mp.Mode = parts[2]
			mp.RW = parts[2] != "ro"
		}
		if name, ok := vols[filepath.Clean(parts[0])]; ok {
			mp.Type, mp.Name, mp.Driver, mp.Propagation = mount.TypeVolume, name, "local", ""
			if mp.Mode == "" {
				mp.Mode = "z"
			}
		}
		out = append(out, mp)
	}
	return out
}

// binds are c's mounts as HostConfig.Binds: volumes by name.
func binds(c *supervisor.Container, vols map[string]string) []string {
	var out []string
	for _, m := range c.Request.Mounts {
		src, rest, _ := strings.Cut(m, ":")
		if name, ok := vols[filepath.Clean(src)]; ok {
			src = name
		}
		out = append(out, src+":"+rest)
	}
	return out
}

// summary is c as the list shows it.
func summary(c *supervisor.Container, vols map[string]string, now time.Time) container.Summary {
	labels := c.Request.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	sm := container.Summary{
		ID: c.ID, Names: []string{"/" + c.Name}, Image: c.Request.Image, ImageID: c.ImageID,
		Command: strings.Join(c.Args, " "), Created: created(c).Unix(), Ports: portSummaries(c), Labels: labels,
		State: dockerState(c), Status: status(c, now), Mounts: mountPoints(c, vols),
	}
	name, es := endpointSettings(c)
	sm.HostConfig.NetworkMode = networkModeOf(c)
	sm.NetworkSettings = &container.NetworkSettingsSummary{Networks: map[string]*network.EndpointSettings{name: es}}
	return sm
}

func networkModeOf(c *supervisor.Container) string {
	switch n := c.Request.Network; n {
	case "", "raind0":
		return "bridge"
	default:
		return n
	}
}

var listFilters = []string{"id", "name", "label", "label!", "status", "ancestor", "exited", "network", "before", "since", "volume", "publish", "expose"}

func (s *server) listContainers(w http.ResponseWriter, r *http.Request) error {
	if s.Containers == nil {
		return errNoContainers
	}
	f, err := parseFilters(r)
	if err != nil {
		return err
	}
	if err := f.validate(listFilters...); err != nil {
		return err
	}
	limit, err := intQuery(r, "limit", -1)
	if err != nil {
		return err
	}
	shared := s.Containers.Snapshot().Containers
	// The volume store is read only when some container has mounts.
	vols := map[string]string{}
	if slices.ContainsFunc(shared, func(c *supervisor.Container) bool { return len(c.Request.Mounts) > 0 }) {
		vols = s.volumeNames(r.Context())
	}
	match, err := s.containerFilter(r.Context(), f, vols)
	if err != nil {
		return err
	}
	// Docker lists stopped containers too when a status or exit code is
	// asked for.
	all := boolQuery(r, "all") || f.has("status") || f.has("exited")
	list := make([]*supervisor.Container, 0, len(shared))
	for _, c := range shared {
		if c.State == supervisor.StateCreating || (!all && !running(c)) || !match(c) {
			continue
		}
		list = append(list, c)
	}
	// Newest first, as Docker.
	slices.SortStableFunc(list, func(a, b *supervisor.Container) int { return created(b).Compare(created(a)) })
	if limit > 0 && len(list) > limit {
		list = list[:limit]
	}
	now := time.Now()
	out := make([]container.Summary, 0, len(list))
	for _, c := range list {
		out = append(out, summary(c, vols, now))
	}
	return writeJSON(w, http.StatusOK, out)
}

// containerFilter compiles the list's filters into one predicate.
func (s *server) containerFilter(ctx context.Context, f filters, vols map[string]string) (func(*supervisor.Container) bool, error) {
	for _, st := range f.values("status") {
		switch st {
		case "created", "restarting", "running", "removing", "paused", "exited", "dead":
		default:
			return nil, invalid("invalid filter 'status=%s'", st)
		}
	}
	var exited []int
	for _, v := range f.values("exited") {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, invalid("invalid filter 'exited=%s'", v)
		}
		exited = append(exited, n)
	}
	var nameRes []*regexp.Regexp
	for _, v := range f.values("name") {
		re, err := regexp.Compile(strings.TrimPrefix(v, "/"))
		if err != nil {
			re = regexp.MustCompile(regexp.QuoteMeta(strings.TrimPrefix(v, "/")))
		}
		nameRes = append(nameRes, re)
	}
	// before and since name containers: those created before (after) them.
	bound := func(key string) (time.Time, error) {
		vals := f.values(key)
		if len(vals) == 0 {
			return time.Time{}, nil
		}
		c, err := s.Containers.Get(ctx, vals[0])
		if err != nil {
			return time.Time{}, noSuch("container", vals[0], err)
		}
		return created(c), nil
	}
	before, err := bound("before")
	if err != nil {
		return nil, err
	}
	since, err := bound("since")
	if err != nil {
		return nil, err
	}
	return func(c *supervisor.Container) bool {
		if f.has("id") && !slices.ContainsFunc(f.values("id"), func(p string) bool { return strings.HasPrefix(c.ID, p) }) {
			return false
		}
		if len(nameRes) > 0 && !slices.ContainsFunc(nameRes, func(re *regexp.Regexp) bool { return re.MatchString(c.Name) }) {
			return false
		}
		if !f.matchLabels(c.Request.Labels) || !f.allow("status", string(dockerState(c))) {
			return false
		}
		if len(exited) > 0 && (c.State != supervisor.StateStopped || !slices.Contains(exited, exitCode(c))) {
			return false
		}
		if f.has("ancestor") && !slices.ContainsFunc(f.values("ancestor"), func(a string) bool { return isAncestor(c, a) }) {
			return false
		}
		if f.has("network") && !f["network"][networkModeOf(c)] && !f["network"][c.Request.Network] {
			return false
		}
		if !before.IsZero() && !created(c).Before(before) {
			return false
		}
		if !since.IsZero() && !created(c).After(since) {
			return false
		}
		if f.has("volume") && !slices.ContainsFunc(mountPoints(c, vols), func(m container.MountPoint) bool {
			return f["volume"][m.Name] || f["volume"][m.Source] || f["volume"][m.Destination]
		}) {
			return false
		}
		if f.has("publish") && !slices.ContainsFunc(portSpecsOf(c), func(p [2]string) bool { return matchPort(f["publish"], p[0]) }) {
			return false
		}
		if f.has("expose") && !slices.ContainsFunc(portSpecsOf(c), func(p [2]string) bool { return matchPort(f["expose"], p[1]) }) {
			return false
		}
		return true
	}, nil
}

// portSpecsOf is c's published ports as pairs of "HOST/PROTO" and
// "CONTAINER/PROTO".
func portSpecsOf(c *supervisor.Container) [][2]string {
	var out [][2]string
	for port, bindings := range requestedPorts(c) {
		for _, b := range bindings {
			out = append(out, [2]string{b.HostPort + "/" + string(port.Proto()), strconv.Itoa(int(port.Num())) + "/" + string(port.Proto())})
		}
	}
	return out
}

// matchPort reports whether port ("8080/tcp") is among the filter's
// values, which may leave the protocol out (tcp).
func matchPort(values map[string]bool, port string) bool {
	if values[port] {
		return true
	}
	num, proto, _ := strings.Cut(port, "/")
	return proto == "tcp" && values[num]
}

// isAncestor reports whether c was created from image ref: the name it
// was given, its canonical name, or its id (or a prefix of it).
func isAncestor(c *supervisor.Container, ref string) bool {
	if ref == c.Request.Image || ref == c.Image || familiarWithTag(ref) == familiarWithTag(c.Request.Image) {
		return true
	}
	if strings.HasPrefix(c.Image, "docker.io/library/") && familiarWithTag("docker.io/library/"+ref) == c.Image {
		return true
	}
	id := strings.TrimPrefix(ref, "sha256:")
	return len(id) >= 4 && strings.HasPrefix(strings.TrimPrefix(c.ImageID, "sha256:"), id)
}

// legacyNetworkSettings is NetworkSettings with the fields API 1.52
// dropped and clients at 1.50 read (docker inspect --format
// '{{.NetworkSettings.IPAddress}}').
type legacyNetworkSettings struct {
	container.NetworkSettings
	Bridge                 string
	HairpinMode            bool
	LinkLocalIPv6Address   string
	LinkLocalIPv6PrefixLen int
	SecondaryIPAddresses   []string
	SecondaryIPv6Addresses []string
	EndpointID             string
	Gateway                string
	GlobalIPv6Address      string
	GlobalIPv6PrefixLen    int
	IPAddress              string
	IPPrefixLen            int
	IPv6Gateway            string
	MacAddress             string
}

// inspectResponse is InspectResponse with the legacy network settings.
type inspectResponse struct {
	container.InspectResponse
	NetworkSettings *legacyNetworkSettings
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func timeString(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00Z"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// inspect is c as GET /containers/{id}/json shows it; img is its image's
// configuration (nil when unknown), which fills what the request left to
// the image (Cmd, Entrypoint, Env, WorkingDir, User, Labels, ExposedPorts),
// as Docker shows it.
func (s *server) inspect(c *supervisor.Container, vols map[string]string, img *v1.Config) inspectResponse {
	r := c.Request
	st := &container.State{
		Status: dockerState(c), Running: running(c), Restarting: c.State == supervisor.StateRestarting,
		OOMKilled: c.OOMKilled, Pid: c.Pid, ExitCode: exitCode(c),
		StartedAt: timeString(c.StartedAt), FinishedAt: timeString(c.StoppedAt),
	}
	if c.State != supervisor.StateRunning {
		st.Pid = 0
	}
	cfg := containerConfig(c, img)
	hc := &container.HostConfig{
		Binds: binds(c, vols), NetworkMode: container.NetworkMode(networkModeOf(c)), PortBindings: requestedPorts(c),
		AutoRemove: r.AutoRemove, ReadonlyRootfs: r.ReadOnly, LogConfig: container.LogConfig{Type: "json-file", Config: map[string]string{}},
	}
	hc.RestartPolicy.Name = container.RestartPolicyDisabled
	if r.RestartPolicy != "" {
		name, max, _ := strings.Cut(r.RestartPolicy, ":")
		hc.RestartPolicy.Name = container.RestartPolicyMode(name)
		hc.RestartPolicy.MaximumRetryCount, _ = strconv.Atoi(max)
	}
	hc.Memory, hc.MemoryReservation, hc.MemorySwap = r.Memory, r.MemoryReservation, r.MemorySwap
	hc.NanoCPUs = int64(r.CPUs * 1e9)
	hc.CPUShares = int64(r.CPUShares)
	if r.PidsLimit > 0 {
		n := r.PidsLimit
		hc.PidsLimit = &n
	}
	name, es := endpointSettings(c)
	ns := &legacyNetworkSettings{NetworkSettings: container.NetworkSettings{
		Ports: portMap(c), Networks: map[string]*network.EndpointSettings{name: es},
	}}
	if c.Endpoint != nil {
		ns.SandboxKey = "/proc/" + strconv.Itoa(st.Pid) + "/ns/net"
		ns.IPAddress, ns.Gateway, ns.IPPrefixLen = addrString(es.IPAddress), addrString(es.Gateway), es.IPPrefixLen
		ns.EndpointID, ns.Bridge = es.EndpointID, c.Endpoint.Bridge
		if len(es.MacAddress) > 0 {
			ns.MacAddress = net.HardwareAddr(es.MacAddress).String()
		}
	}
	driver := s.System.StorageDriver
	if driver == "" {
		driver = "overlay2"
	}
	var path string
	var args []string
	if len(c.Args) > 0 {
		path, args = c.Args[0], c.Args[1:]
	}
	if args == nil {
		args = []string{}
	}
	logPath := s.Containers.LogPath(c)
	etc := filepath.Join(filepath.Dir(logPath), "etc")
	resp := inspectResponse{InspectResponse: container.InspectResponse{
		ID: c.ID, Created: timeString(created(c)), Path: path, Args: args, State: st, Image: c.ImageID,
		ResolvConfPath: filepath.Join(etc, "resolv.conf"), HostnamePath: filepath.Join(etc, "hostname"), HostsPath: filepath.Join(etc, "hosts"),
		LogPath: logPath, Name: "/" + c.Name, RestartCount: c.RestartCount, Driver: driver,
		Platform: "linux", HostConfig: hc, Mounts: mountPoints(c, vols), Config: cfg,
	}, NetworkSettings: ns}
	return resp
}

// containerConfig is c's Config: its request over its image's (img, nil
// when unknown).
func containerConfig(c *supervisor.Container, img *v1.Config) *container.Config {
	r := c.Request
	if img == nil {
		img = &v1.Config{}
	}
	cfg := &container.Config{
		Hostname: r.Hostname, User: r.User, Tty: r.Tty, OpenStdin: r.OpenStdin, Image: r.Image, WorkingDir: r.WorkingDir,
		AttachStdout: true, AttachStderr: true, Labels: map[string]string{},
	}
	if cfg.Hostname == "" {
		cfg.Hostname = c.ShortID()
	}
	if cfg.User == "" {
		cfg.User = img.User
	}
	if cfg.WorkingDir == "" {
		cfg.WorkingDir = img.WorkingDir
	}
	// The request's Env wins over the image's, key by key.
	env := slices.Clone(img.Env)
	for _, e := range r.Env {
		k, _, _ := strings.Cut(e, "=")
		env = slices.DeleteFunc(env, func(ie string) bool { ik, _, _ := strings.Cut(ie, "="); return ik == k })
		env = append(env, e)
	}
	cfg.Env = env
	maps.Copy(cfg.Labels, img.Labels)
	maps.Copy(cfg.Labels, r.Labels)
	// oci.Config's rules: nil keeps the image's entrypoint, [""] clears
	// it and its Cmd, [] clears it and keeps the Cmd.
	switch {
	case r.Entrypoint == nil:
		cfg.Entrypoint = img.Entrypoint
	case len(r.Entrypoint) == 1 && r.Entrypoint[0] == "", len(r.Entrypoint) == 0:
	default:
		cfg.Entrypoint = r.Entrypoint
	}
	switch {
	case len(r.Command) > 0:
		cfg.Cmd = r.Command
	case len(r.Entrypoint) == 0 && (r.Entrypoint == nil || len(img.Cmd) > 0):
		cfg.Cmd = img.Cmd
	}
	if len(img.ExposedPorts) > 0 || len(r.Ports) > 0 {
		cfg.ExposedPorts = network.PortSet{}
		for p := range img.ExposedPorts {
			if port, err := network.ParsePort(p); err == nil {
				cfg.ExposedPorts[port] = struct{}{}
			}
		}
		for p := range requestedPorts(c) {
			cfg.ExposedPorts[p] = struct{}{}
		}
	}
	if len(img.Volumes) > 0 {
		cfg.Volumes = map[string]struct{}{}
		for v := range img.Volumes {
			cfg.Volumes[v] = struct{}{}
		}
	}
	return cfg
}

// imageConfigs reads a container's image configuration: the image store
// in Deps.Images (*imagestore.Store).
type imageConfigs interface {
	imageLookup
	Config(ctx context.Context, img imagestore.Image) (*v1.ConfigFile, error)
}

// imageConfig is the configuration of c's image, nil when it cannot be
// read (the image was removed, or the daemon has no image store).
func (s *server) imageConfig(ctx context.Context, c *supervisor.Container) *v1.Config {
	ic, ok := s.Images.(imageConfigs)
	if !ok {
		return nil
	}
	img, err := ic.Inspect(ctx, c.ImageID)
	if err != nil {
		return nil
	}
	cf, err := ic.Config(ctx, img)
	if err != nil || cf == nil {
		return nil
	}
	return &cf.Config
}

func (s *server) inspectContainer(w http.ResponseWriter, r *http.Request) error {
	c, err := s.container(r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.inspect(c, s.volumeNames(r.Context()), s.imageConfig(r.Context(), c)))
}
