package docker

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeProc writes a procfs with processes (pid → pid namespace, stat,
// cmdline) under a temporary directory.
func fakeProc(t *testing.T, btime int64, procs map[int][3]string) string {
	t.Helper()
	root := t.TempDir()
	write := func(path, content string) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, "stat"), "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 50 0 50 400 0 0 0 0 0 0\ncpu1 50 0 50 400 0 0 0 0 0 0\nbtime "+strconv.FormatInt(btime, 10)+"\n")
	write(filepath.Join(root, "meminfo"), "MemTotal:        2048 kB\n")
	write(filepath.Join(root, "self", "x"), "") // not a pid
	for pid, p := range procs {
		dir := filepath.Join(root, strconv.Itoa(pid))
		write(filepath.Join(dir, "stat"), p[1])
		write(filepath.Join(dir, "cmdline"), p[2])
		write(filepath.Join(dir, "status"), "Name:\tx\nUid:\t0\t0\t0\t0\n")
		if err := os.MkdirAll(filepath.Join(dir, "ns"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(p[0], filepath.Join(dir, "ns", "pid")); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// stat is a /proc/PID/stat line: ppid, tty_nr, utime, stime, starttime.
func stat(pid int, comm string, ppid, tty, utime, stime, start int) string {
	f := []string{strconv.Itoa(pid), "(" + comm + ")", "S", strconv.Itoa(ppid), "1", "1", strconv.Itoa(tty), "-1", "0", "0", "0", "0", "0",
		strconv.Itoa(utime), strconv.Itoa(stime), "0", "0", "20", "0", "1", "0", strconv.Itoa(start), "1000", "100"}
	return strings.Join(f, " ") + "\n"
}

func TestTopFromProc(t *testing.T) {
	boot := time.Date(2026, 3, 4, 10, 0, 0, 0, time.Local)
	proc := fakeProc(t, boot.Unix(), map[int][3]string{
		100: {"pid:[4026532001]", stat(100, "sleep", 90, 0, 150, 50, 100), "sleep\x00300\x00"},
		101: {"pid:[4026532001]", stat(101, "sh) (x", 100, 34816+3, 0, 0, 200), "sh\x00-c\x00x y\x00"},
		102: {"pid:[4026532001]", stat(102, "kworker", 2, 0, 0, 0, 300), ""},
		200: {"pid:[4026531836]", stat(200, "other", 1, 0, 0, 0, 100), "other\x00"},
	})
	pids, err := namespacePids(proc, 100)
	if err != nil || !reflect.DeepEqual(pids, []int{100, 101, 102}) {
		t.Fatalf("namespacePids = %v, %v", pids, err)
	}
	now := boot.Add(10 * time.Second)
	top, err := procTop(proc, pids, now)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"root", "100", "90", "22", "10:00", "?", "00:00:02", "sleep 300"},
		{"root", "101", "100", "0", "10:00", "pts/3", "00:00:00", "sh -c x y"},
		{"root", "102", "2", "0", "10:00", "?", "00:00:00", "[kworker]"},
	}
	if !reflect.DeepEqual(top.Titles, topTitles) || !reflect.DeepEqual(top.Processes, want) {
		t.Fatalf("top = %q\nwant %q", top.Processes, want)
	}
	if _, err := namespacePids(proc, 999); err == nil {
		t.Fatal("namespacePids of a missing init")
	}
}

func TestTopHelpers(t *testing.T) {
	for nr, want := range map[int]string{0: "?", 34816: "pts/0", 34816 + 5: "pts/5", 1024 + 1: "tty1", 1024 + 64: "ttyS0", 5 << 8: "?"} {
		if got := tty(nr); got != want {
			t.Errorf("tty(%d) = %q, want %q", nr, got, want)
		}
	}
	for d, want := range map[time.Duration]string{0: "00:00:00", 61 * time.Second: "00:01:01", 26 * time.Hour: "1-02:00:00"} {
		if got := cpuTime(d); got != want {
			t.Errorf("cpuTime(%v) = %q, want %q", d, got, want)
		}
	}
	now := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	for start, want := range map[time.Time]string{now.Add(-time.Hour): "09:00", now.Add(-48 * time.Hour): "Mar02", now.AddDate(-1, 0, 0): "2025"} {
		if got := stime(start, now); got != want {
			t.Errorf("stime(%v) = %q, want %q", start, got, want)
		}
	}
	for _, bad := range []string{"", "1 (x", "1 (x) S 1"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) accepted", bad)
		}
	}
}

func TestParsePS(t *testing.T) {
	out := "  PID USER     COMMAND\n    1 root     init\n  100 root     sleep 300\n  101 nobody   sh -c  x\nbroken\n"
	top, err := parsePS([]byte(out), []int{100, 101})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"100", "root", "sleep 300"}, {"101", "nobody", "sh -c x"}}
	if !reflect.DeepEqual(top.Titles, []string{"PID", "USER", "COMMAND"}) || !reflect.DeepEqual(top.Processes, want) {
		t.Fatalf("parsePS = %q %q", top.Titles, top.Processes)
	}
	if _, err := parsePS([]byte("USER COMMAND\nroot x\n"), []int{1}); err == nil {
		t.Fatal("ps output without PID accepted")
	}
}

func FuzzParsePS(f *testing.F) {
	f.Add("PID CMD\n1 x\n", 1)
	f.Add("", 0)
	f.Add("UID PID\n\n a b c d", 2)
	f.Fuzz(func(t *testing.T, out string, pid int) {
		top, err := parsePS([]byte(out), []int{pid})
		if err == nil {
			for _, row := range top.Processes {
				if len(row) != len(top.Titles) {
					t.Fatalf("row %q for titles %q", row, top.Titles)
				}
			}
		}
	})
}

func FuzzParseStat(f *testing.F) {
	f.Add(stat(1, "init", 0, 0, 1, 2, 3))
	f.Add("1 ((x)) S")
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = parseStat([]byte(s)) // must not panic
	})
}

func TestStatsFromProc(t *testing.T) {
	proc := fakeProc(t, 0, nil)
	sys, cpus := systemCPU(proc)
	if sys != 1000*uint64(time.Second/clockTicks) || cpus != 2 {
		t.Fatalf("systemCPU = %d, %d", sys, cpus)
	}
	if got := hostMemory(proc); got != 2048*1024 {
		t.Fatalf("hostMemory = %d", got)
	}
	dev := filepath.Join(proc, "net_dev")
	os.WriteFile(dev, []byte("Inter-|   Receive                                                |  Transmit\n"+
		" face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n"+
		"    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n"+
		"  eth0:    2000      20    1    2    0     0          0         0     3000      30    3    4    0     0       0          0\n"), 0o644)
	got := netStats(dev)
	if len(got) != 1 || got["eth0"].RxBytes != 2000 || got["eth0"].TxPackets != 30 || got["eth0"].RxDropped != 2 || got["eth0"].TxErrors != 3 {
		t.Fatalf("netStats = %+v", got)
	}
}
