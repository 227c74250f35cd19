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
	return runMonitoredUntil(ctx, m, cmd, nil)
}

// runMonitoredUntil is runMonitored that also returns, with status 0, as
// soon as done is closed (a runtime that has written its pid file has done
// its work: what is left is its exit): cmd's exit is then waited for by a
// goroutine of its own, which ends with cmd. A nil done waits for the exit.
func runMonitoredUntil(ctx context.Context, m Monitor, cmd *exec.Cmd, done <-chan struct{}) (int, error) {
	ch, err := m.Start(cmd)
	if err != nil {
		return 0, err
	}
	type result struct {
		status int
		err    error
	}
	exited := make(chan result, 1)
	go func() {
		status, err := m.Wait(cmd, ch)
		exited <- result{status, err}
	}()
	select {
	case r := <-exited:
		return r.status, r.err
	case <-done:
		return 0, nil
	case <-ctx.Done():
		cmd.Process.Kill()
		r := <-exited
		return r.status, r.err
	}
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
