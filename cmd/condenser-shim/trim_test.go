package main

import (
	"bufio"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

const sampleMaps = `00400000-006a5000 r-xp 00000000 fe:00 1234                               /usr/local/bin/condenser-shim
006a5000-009a6000 r--p 002a5000 fe:00 1234                               /usr/local/bin/condenser-shim
009a6000-009d0000 rw-p 005a6000 fe:00 1234                               /usr/local/bin/condenser-shim
009d0000-02a08000 rw-p 00000000 00:00 0 
7f58d685d000-7f58d68cf000 rw-p 00000000 00:00 0 
7f58d6900000-7f58d6910000 r--p 00000000 fe:00 999                        /usr/lib/other.so
7f58d6a35000-7f58d6a37000 r-xp 00000000 00:00 0                          [vdso]
7fff64bb3000-7fff64bd4000 rw-p 00000000 00:00 0                          [stack]
`

func TestExecutableMappings(t *testing.T) {
	tests := []struct {
		name    string
		maps    string
		pc      uint64
		want    []mapping
		wantErr bool
	}{
		{"text and rodata, not data", sampleMaps, 0x401000, []mapping{{0x400000, 0x6a5000}, {0x6a5000, 0x9a6000}}, false},
		{"pc in rodata", sampleMaps, 0x6a5000, []mapping{{0x400000, 0x6a5000}, {0x6a5000, 0x9a6000}}, false},
		{"deleted binary", strings.ReplaceAll(sampleMaps, "condenser-shim\n", "condenser-shim (deleted)\n"), 0x401000, []mapping{{0x400000, 0x6a5000}, {0x6a5000, 0x9a6000}}, false},
		{"pc in an anonymous mapping", sampleMaps, 0x7f58d685d000, nil, true},
		{"pc mapped nowhere", sampleMaps, 0x10, nil, true},
		{"pc in the writable data", sampleMaps, 0x9a6000, []mapping{{0x400000, 0x6a5000}, {0x6a5000, 0x9a6000}}, false},
		{"garbage", "not maps\n\n-\nzz-yy r-xp 0 fe:00 1 x\n", 0x401000, nil, true},
		{"empty", "", 0x401000, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out [4]mapping
			n, err := executableMappings([]byte(tc.maps), tc.pc, out[:])
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err == nil && !reflect.DeepEqual(out[:n], tc.want) {
				t.Errorf("mappings = %x, want %x", out[:n], tc.want)
			}
		})
	}
	// More read-only mappings than room: an error, not a partial answer.
	var one [1]mapping
	if _, err := executableMappings([]byte(sampleMaps), 0x401000, one[:]); err == nil {
		t.Error("2 mappings into room for 1: no error")
	}
}

func TestParseHex(t *testing.T) {
	for in, want := range map[string]uint64{"0": 0, "ff": 255, "FF": 255, "7fff64bb3000": 0x7fff64bb3000, "ffffffffffffffff": 1<<64 - 1} {
		if got, ok := parseHex([]byte(in)); !ok || got != want {
			t.Errorf("parseHex(%q) = %x, %v; want %x", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "g", "-1", "0x10", "10000000000000000"} {
		if _, ok := parseHex([]byte(in)); ok {
			t.Errorf("parseHex(%q) accepted", in)
		}
	}
}

// textRss is the resident KiB of this test binary's executable mapping.
func textRss(t *testing.T) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 6 && strings.Contains(fields[0], "-") {
			in = fields[1] == "r-xp" && fields[5] == exe
			continue
		}
		if in && len(fields) >= 2 && fields[0] == "Rss:" {
			n, _ := strconv.Atoi(fields[1])
			return n
		}
	}
	t.Fatal("no executable text mapping in smaps")
	return 0
}

// data is writable data of the binary: dropping the read-only pages must
// leave it alone.
var data = []int{1, 2, 3}

func TestDropExecutablePages(t *testing.T) {
	data[1] = 42
	before := textRss(t)
	buf, err := dropExecutablePages(nil)
	if err != nil {
		t.Fatal(err)
	}
	after := textRss(t)
	t.Logf("text resident: %d KiB before, %d KiB after", before, after)
	if after >= before {
		t.Errorf("text resident %d KiB after the drop, %d before", after, before)
	}
	if data[1] != 42 {
		t.Errorf("writable data lost: %v", data)
	}
	if _, err := dropExecutablePages(buf); err != nil {
		t.Fatal(err)
	}
}

func TestGOMAXPROCSHandOver(t *testing.T) {
	tests := []struct {
		name string
		set  bool
		val  string
	}{
		{"unset", false, ""},
		{"set", true, "3"},
		{"set empty", true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOMAXPROCS", "x") // restored by the test framework
			t.Setenv(outerGOMAXPROCS, "x")
			os.Unsetenv(outerGOMAXPROCS)
			if tc.set {
				os.Setenv("GOMAXPROCS", tc.val)
			} else {
				os.Unsetenv("GOMAXPROCS")
			}
			serveOnOneProc()
			if v := os.Getenv("GOMAXPROCS"); v != "1" {
				t.Fatalf("after start: GOMAXPROCS=%q, want 1", v)
			}
			restoreGOMAXPROCS()
			v, ok := os.LookupEnv("GOMAXPROCS")
			if ok != tc.set || v != tc.val {
				t.Errorf("after serve: GOMAXPROCS=%q (set %v), want %q (set %v)", v, ok, tc.val, tc.set)
			}
			if _, ok := os.LookupEnv(outerGOMAXPROCS); ok {
				t.Errorf("%s left in the environment", outerGOMAXPROCS)
			}
		})
	}
	// serve not started by start leaves the environment alone.
	t.Setenv("GOMAXPROCS", "5")
	restoreGOMAXPROCS()
	if v := os.Getenv("GOMAXPROCS"); v != "5" {
		t.Errorf("GOMAXPROCS=%q, want 5", v)
	}
}
