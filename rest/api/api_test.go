package api

import (
	"reflect"
	"strings"
	"testing"
)

func wireValues() []any {
	return []any{
		Envelope{}, CreateContainerRequest{}, Resources{}, StartContainerRequest{}, RemoveImageRequest{},
		PullImageRequest{}, IDResponse{}, WaitResponse{}, ImageResponse{}, ImagesFSResponse{}, Forward{},
		ContainerSummary{}, ContainerDetail{}, ContainerConfig{}, Mount{}, ContainerStats{}, CPUStats{},
		MemoryStats{}, PidsStats{}, IOStats{}, LogEntry{}, PullProgress{}, PullResult{}, ImageSummary{},
		ImageStatus{}, VersionInfo{}, SystemInfo{}, Event{}, ExecRequest{}, ExecInfo{},
		NetworkSettings{}, PortBinding{}, NetworkSummary{}, CreateNetworkRequest{}, NetworkResponse{},
	}
}

// jsonKeys lists t's JSON keys with their options, embedded structs
// flattened, in field order.
func jsonKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag, ok := f.Tag.Lookup("json")
		if f.Anonymous && !ok {
			keys = append(keys, jsonKeys(f.Type)...)
			continue
		}
		keys = append(keys, tag)
	}
	return keys
}

// The JSON keys are the contract: the real Raind CLI decodes them. A change
// here breaks clients; make it only with the contract.
var wantKeys = map[string]string{
	"Envelope":               "status message data,omitempty",
	"CreateContainerRequest": "image command,omitempty env,omitempty mount,omitempty port,omitempty network,omitempty tty,omitempty name,omitempty entrypoint workdir,omitempty user,omitempty hostname,omitempty labels,omitempty restartPolicy,omitempty resources,omitempty readOnly,omitempty autoRemove,omitempty openStdin,omitempty",
	"Resources":              "memory,omitempty cpus,omitempty pids,omitempty",
	"StartContainerRequest":  "tty",
	"RemoveImageRequest":     "image",
	"PullImageRequest":       "image os,omitempty arch,omitempty",
	"IDResponse":             "id",
	"WaitResponse":           "exitCode",
	"ImageResponse":          "image",
	"ImagesFSResponse":       "usedBytes",
	"Forward":                "source destination protocol hostIp,omitempty",
	"ContainerSummary":       "containerId name state pid imageRepository imageReference command address forwards creatingAt createdAt statedAt stoppedAt",
	"ContainerDetail":        "containerId name state pid imageRepository imageReference command address forwards creatingAt createdAt statedAt stoppedAt exitCode,omitempty error,omitempty oomKilled restartCount shimPid bundle rootfs config imageDigest networkSettings,omitempty",
	"ContainerConfig":        "args env workdir user mounts resources hostname,omitempty network,omitempty ports,omitempty tty,omitempty openStdin,omitempty labels,omitempty restartPolicy,omitempty readOnly,omitempty autoRemove,omitempty",
	"Mount":                  "source destination readOnly,omitempty",
	"ContainerStats":         "containerId name time cpu memory pids io",
	"CPUStats":               "usageNanos",
	"MemoryStats":            "usage limit cache maxUsage oomKills",
	"PidsStats":              "current limit",
	"IOStats":                "readBytes writeBytes",
	"LogEntry":               "log stream time",
	"PullProgress":           "layer status current total",
	"PullResult":             "image os arch id,omitempty digest,omitempty",
	"ImageSummary":           "repository reference createdAt id digest size",
	"ImageStatus":            "repository reference id repoTags repoDigests sizeBytes createdAt user",
	"VersionInfo":            "version apiVersion gitCommit,omitempty goVersion os arch",
	"SystemInfo":             "runtime runtimeVersion,omitempty cgroupMode storageDriver root state containers containersRunning containersStopped images kernelVersion,omitempty os arch ncpu memTotal",
	"Event":                  "type action id name,omitempty attributes,omitempty time",
	"ExecRequest":            "command tty stdin,omitempty env,omitempty user,omitempty workdir,omitempty consoleSize,omitempty detach,omitempty",
	"ExecInfo":               "id containerId pid tty running exitCode exitedAt",
	"NetworkSettings":        "network address prefixLen gateway mac ports",
	"PortBinding":            "hostIp hostPort containerPort protocol",
	"NetworkSummary":         "name driver bridge subnet gateway builtIn containers",
	"CreateNetworkRequest":   "name subnet,omitempty gateway,omitempty",
	"NetworkResponse":        "name",
}

func TestJSONKeysAreTheContract(t *testing.T) {
	seen := map[string]bool{}
	for _, v := range wireValues() {
		typ := reflect.TypeOf(v)
		seen[typ.Name()] = true
		got := strings.Join(jsonKeys(typ), " ")
		if want, ok := wantKeys[typ.Name()]; !ok || got != want {
			t.Errorf("%s keys:\n got %q\nwant %q", typ.Name(), got, want)
		}
	}
	for name := range wantKeys {
		if !seen[name] {
			t.Errorf("%s: no longer a wire type?", name)
		}
	}
	if Version != "v1" || StatusSuccess != "success" || StatusFail != "fail" || ExitUnknown != -1 {
		t.Errorf("constants changed: %q %q %q %d", Version, StatusSuccess, StatusFail, ExitUnknown)
	}
}
