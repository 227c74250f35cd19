package runtime

import (
	"context"
	"os"
	"os/exec"
	"strings"
)

// runMonitored starts cmd through m, kills it when ctx is done, and returns
// its exit status.
func runMonitored(ctx context.Context, m Monitor, cmd *exec.Cmd) (int, error) {
	ch, err := m.Start(cmd)
	if err != nil {
		return 0, err
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			cmd.Process.Kill()
		case <-done:
		}
	}()
	status, err := m.Wait(cmd, ch)
	close(done)
	return status, err
}

// CleanEnv is this process's environment without what systemd hands to a
// service (NOTIFY_SOCKET, LISTEN_*): a shim, runtime or container must not
// inherit it.
func CleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "NOTIFY_SOCKET=") || strings.HasPrefix(kv, "LISTEN_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}
