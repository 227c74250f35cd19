package stats

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/raind/condenser/internal/errdefs"
)

// writeFiles writes files (name → content) below dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestParseUint(t *testing.T) {
	tests := []struct {
		in      string
		want    uint64
		wantErr bool
	}{
		{"", 0, false},
		{"\n", 0, false},
		{"42\n", 42, false},
		{"max\n", math.MaxUint64, false},
		{"9223372036854771712\n", 9223372036854771712, false},
		{"-1\n", 0, true},
		{"12 34\n", 0, true},
	}
	for _, tc := range tests {
		got, err := parseUint([]byte(tc.in))
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parseUint(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestReadKey(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"memory.stat": "cache 10\nrss 20\ntotal_cache 30\n",
		"memory.oom":  "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
		"bad.stat":    "file x\n",
		"nonl.stat":   "file 7",
		"spaced.stat": "  file   8  \n",
		"prefix.stat": "file_mapped 5\nfile 6\n",
	})
	tests := []struct {
		file, key string
		want      uint64
		found     bool
		wantErr   bool
	}{
		{"memory.stat", "total_cache", 30, true, false},
		{"memory.stat", "cache", 10, true, false},
		{"memory.stat", "missing", 0, false, false},
		{"memory.oom", "oom_kill", 3, true, false},
		{"absent", "x", 0, false, false},
		{"bad.stat", "file", 0, false, true},
		{"nonl.stat", "file", 7, true, false},
		{"prefix.stat", "file", 6, true, false},
		{"spaced.stat", "file", 8, true, false},
	}
	for _, tc := range tests {
		got, found, err := readKey(dir, tc.file, tc.key)
		if (err != nil) != tc.wantErr || got != tc.want || found != tc.found {
			t.Errorf("readKey(%s, %s) = %d, %v, %v; want %d, %v, error %v", tc.file, tc.key, got, found, err, tc.want, tc.found, tc.wantErr)
		}
	}
	if v, found, err := readKey("", "memory.stat", "cache"); v != 0 || found || err != nil {
		t.Errorf("readKey without a directory = %d, %v, %v", v, found, err)
	}
}

func TestBlkioV1(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"a": "8:0 Read 100\n8:0 Write 200\n8:0 Sync 300\n8:0 Async 0\n8:0 Total 300\n8:16 Read 1\n8:16 Write 2\nTotal 303\n",
		"b": "",
		"c": "8:0 Read x\n",
	})
	tests := []struct {
		file        string
		read, write uint64
		wantErr     bool
	}{
		{"a", 101, 202, false},
		{"b", 0, 0, false},
		{"absent", 0, 0, false},
		{"c", 0, 0, true},
	}
	for _, tc := range tests {
		r, w, err := blkioV1(filepath.Join(dir, tc.file))
		if (err != nil) != tc.wantErr || r != tc.read || w != tc.write {
			t.Errorf("blkioV1(%s) = %d, %d, %v; want %d, %d, error %v", tc.file, r, w, err, tc.read, tc.write, tc.wantErr)
		}
	}
}

// TestStatsV1Files reads a v1 cgroup laid out in a temporary directory:
// the files the kernel has, the unlimited values, the blkio fallback to
// the throttling counters, and a hierarchy missing.
func TestStatsV1Files(t *testing.T) {
	root := t.TempDir()
	const path = "/condenser/abc"
	writeFiles(t, root, map[string]string{
		"memory/condenser/abc/cgroup.procs":                    "12\n7\n",
		"memory/condenser/abc/child/cgroup.procs":              "30\n7\n",
		"memory/condenser/abc/memory.usage_in_bytes":           "4096\n",
		"memory/condenser/abc/memory.limit_in_bytes":           "9223372036854771712\n",
		"memory/condenser/abc/memory.max_usage_in_bytes":       "8192\n",
		"memory/condenser/abc/memory.stat":                     "cache 1\ntotal_cache 512\n",
		"memory/condenser/abc/memory.oom_control":              "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
		"cpuacct/condenser/abc/cpuacct.usage":                  "123456\n",
		"pids/condenser/abc/pids.current":                      "3\n",
		"pids/condenser/abc/pids.max":                          "max\n",
		"pids/condenser/abc/cgroup.procs":                      "12\n",
		"blkio/condenser/abc/blkio.io_service_bytes_recursive": "Total 0\n",
		"blkio/condenser/abc/blkio.throttle.io_service_bytes":  "8:0 Read 10\n8:0 Write 20\nTotal 30\n",
		"freezer/other/cgroup.procs":                           "",
	})
	c, err := loadV1(root, path)
	if err != nil {
		t.Fatal(err)
	}
	if c.V2() {
		t.Error("V2() = true")
	}
	st, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{CPUUsageNanos: 123456, MemoryUsage: 4096, MemoryCache: 512, MemoryMaxUsage: 8192,
		PidsCurrent: 3, BlkioReadBytes: 10, BlkioWriteBytes: 20, OOMKills: 2}
	if *st != want {
		t.Errorf("Stats = %+v\nwant    %+v", *st, want)
	}
	// pids is preferred; memory (with a child cgroup) when there is none.
	if pids, err := c.Pids(); err != nil || !slices.Equal(pids, []int{12}) {
		t.Errorf("Pids = %v, %v; want [12]", pids, err)
	}
	noPids := *c
	noPids.pidsDir1 = ""
	if pids, err := noPids.Pids(); err != nil || !slices.Equal(pids, []int{7, 12, 30}) {
		t.Errorf("Pids from memory = %v, %v; want [7 12 30]", pids, err)
	}

	// The CFQ counters win when they count something.
	writeFiles(t, root, map[string]string{"blkio/condenser/abc/blkio.io_service_bytes_recursive": "8:0 Read 1\n8:0 Write 2\nTotal 3\n"})
	if st, err := c.Stats(); err != nil || st.BlkioReadBytes != 1 || st.BlkioWriteBytes != 2 {
		t.Errorf("Stats with CFQ counters = %+v, %v; want read 1, write 2", st, err)
	}

	// A malformed counter is an error, not a zero.
	writeFiles(t, root, map[string]string{"pids/condenser/abc/pids.current": "three\n"})
	if _, err := c.Stats(); err == nil {
		t.Error("Stats with a malformed pids.current: no error")
	}

	// Gone from one hierarchy: deleted.
	if err := os.RemoveAll(filepath.Join(root, "cpuacct/condenser/abc")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stats(); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Stats of a removed cgroup: %v, want ErrNotFound", err)
	}
	if _, err := loadV1(root, "/condenser/missing"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("loadV1 of a missing cgroup: %v, want ErrNotFound", err)
	}
}

func TestStatsV2Files(t *testing.T) {
	mount := t.TempDir()
	const path = "/condenser/abc"
	writeFiles(t, mount, map[string]string{
		"condenser/abc/cgroup.procs":     "5\n",
		"condenser/abc/sub/cgroup.procs": "9\n",
		"condenser/abc/cpu.stat":         "usage_usec 250\nuser_usec 200\nsystem_usec 50\n",
		"condenser/abc/memory.current":   "65536\n",
		"condenser/abc/memory.max":       "max\n",
		"condenser/abc/memory.stat":      "anon 100\nfile 4096\nfile_mapped 12\n",
		"condenser/abc/memory.events":    "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n",
		"condenser/abc/pids.current":     "2\n",
		"condenser/abc/pids.max":         "64\n",
		"condenser/abc/io.stat":          "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n253:0 rbytes=1 wbytes=2 rios=1 wios=1 dbytes=0 dios=0\n\n",
	})
	c, err := loadV2(mount, path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	// No memory.peak (before Linux 5.19): 0.
	want := Stats{CPUUsageNanos: 250000, MemoryUsage: 65536, MemoryCache: 4096, PidsCurrent: 2, PidsLimit: 64,
		BlkioReadBytes: 101, BlkioWriteBytes: 202, OOMKills: 1}
	if *st != want {
		t.Errorf("Stats = %+v\nwant    %+v", *st, want)
	}
	if n, err := c.oomKillV2(); err != nil || n != 1 {
		t.Errorf("oomKillV2 = %d, %v; want 1", n, err)
	}
	if pids, err := c.Pids(); err != nil || !slices.Equal(pids, []int{5, 9}) {
		t.Errorf("Pids = %v, %v; want [5 9]", pids, err)
	}
	writeFiles(t, mount, map[string]string{"condenser/abc/memory.max": "1048576\n", "condenser/abc/memory.peak": "2048\n"})
	if st, err := c.Stats(); err != nil || st.MemoryLimit != 1<<20 || st.MemoryMaxUsage != 2048 {
		t.Errorf("Stats = %+v, %v; want limit 1 MiB, peak 2048", st, err)
	}
	// Without memory.events (no memory controller): ErrUnavailable.
	if err := os.Remove(filepath.Join(mount, "condenser/abc/memory.events")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.oomKillV2(); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("oomKillV2 without memory.events: %v, want ErrUnavailable", err)
	}
}

func TestCheckPath(t *testing.T) {
	for _, p := range []string{"/a", "/condenser/abc", "/a/b/c"} {
		if err := checkPath(p); err != nil {
			t.Errorf("checkPath(%q) = %v", p, err)
		}
	}
	for _, p := range []string{"", "/", "a", "/a/", "/a/../b", "/a//b", "/sys/fs/cgroup/x"} {
		if err := checkPath(p); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("checkPath(%q) = %v, want ErrInvalidArgument", p, err)
		}
	}
}
