package imagestore

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/testutil"
)

// dockerConfigDir returns a new directory holding a Docker config.json with
// basic-auth credentials for registry host, as docker login writes them.
func dockerConfigDir(t *testing.T, host, user, password string) string {
	t.Helper()
	cfg := map[string]any{"auths": map[string]any{
		host: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + password))},
	}}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestPullUsesKeychainCredentials pulls from a registry that requires basic
// authentication with a store whose keychain is the default one, which reads
// Docker's config.json from $DOCKER_CONFIG.
func TestPullUsesKeychainCredentials(t *testing.T) {
	testutil.RequireRoot(t)
	const user, password = "condenser", "pull-secret"
	reg := testutil.StartRegistryWithAuth(t, user, password)
	ref := reg.Ref("test/busybox:1")
	digest := reg.Push(t, ref, testutil.BusyboxImage(t))

	// Only $DOCKER_CONFIG may supply credentials: no config.json in $HOME,
	// and no Podman auth file, which the default keychain falls back to.
	noAuth := t.TempDir()
	t.Setenv("HOME", noAuth)
	t.Setenv("XDG_CONFIG_HOME", noAuth)
	t.Setenv("XDG_RUNTIME_DIR", noAuth)
	t.Setenv("REGISTRY_AUTH_FILE", filepath.Join(noAuth, "auth.json"))

	pull := func(dockerConfig string) (*Store, Image, error) {
		t.Helper()
		t.Setenv("DOCKER_CONFIG", dockerConfig)
		s := openStore(t, Options{})
		img, err := s.Pull(context.Background(), ref, PullOptions{})
		return s, img, err
	}
	refused := func(what string, s *Store, err error) {
		t.Helper()
		if !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("pull %s: %v, want ErrNotFound", what, err)
		} else if msg := err.Error(); !strings.Contains(msg, "credentials") && !strings.Contains(msg, "login") {
			t.Errorf("pull %s: %q does not mention credentials or login", what, msg)
		}
		if imgs, err := s.List(context.Background()); err != nil || len(imgs) != 0 {
			t.Errorf("after pull %s: images %v (%v), want none", what, imgs, err)
		}
	}

	// (a) No credentials: the registry refuses the anonymous pull.
	s, _, err := pull(t.TempDir())
	refused("without credentials", s, err)

	// (b) docker login's config.json for the registry: the pull succeeds.
	s, img, err := pull(dockerConfigDir(t, reg.Host, user, password))
	if err != nil {
		t.Fatalf("pull with credentials in $DOCKER_CONFIG: %v", err)
	}
	if img.Name != ref || img.Digest != digest.String() || len(img.Layers) != 1 {
		t.Errorf("record %+v, want %s at %s with one layer", img, ref, digest)
	}
	if got, err := s.Inspect(context.Background(), ref); err != nil || got.ID != img.ID {
		t.Errorf("inspect %s: %v %v", ref, got.ID, err)
	}

	// (c) A wrong password: refused again.
	s, _, err = pull(dockerConfigDir(t, reg.Host, user, "wrong-"+password))
	refused("with a wrong password", s, err)
}
