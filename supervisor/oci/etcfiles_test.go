package oci

import (
	"os"
	"path/filepath"
	"testing"
)

func TestContainerResolvConf(t *testing.T) {
	tests := []struct{ in, want string }{
		{"nameserver 127.0.0.53\noptions edns0\n", "options edns0\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"},
		{"search lan\nnameserver 10.0.0.1\nnameserver ::1\n", "search lan\nnameserver 10.0.0.1\n"},
		{"", "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"},
	}
	for _, tc := range tests {
		if got := string(containerResolvConf([]byte(tc.in))); got != tc.want {
			t.Errorf("containerResolvConf(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestWriteEtcFiles(t *testing.T) {
	host := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(host, []byte("nameserver 127.0.0.1\nnameserver 192.0.2.1\n"), 0o644)
	old := hostResolvConf
	hostResolvConf = host
	t.Cleanup(func() { hostResolvConf = old })
	for _, hostNet := range []bool{false, true} {
		dir := t.TempDir()
		f, err := WriteEtcFiles(dir, "web", hostNet)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{
			f.Hostname:   "web\n",
			f.Hosts:      "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tweb\n",
			f.ResolvConf: map[bool]string{false: "nameserver 192.0.2.1\n", true: "nameserver 127.0.0.1\nnameserver 192.0.2.1\n"}[hostNet],
		}
		for p, w := range want {
			if b, err := os.ReadFile(p); err != nil || string(b) != w {
				t.Errorf("host network %v: %s = %q (%v), want %q", hostNet, filepath.Base(p), b, err, w)
			}
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 3 {
			t.Errorf("%d files in %s, want 3 (no temp files)", len(ents), dir)
		}
	}
}
