package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/coder/websocket"

	"github.com/raind/condenser/internal/frame"
)

// Terminals and exec (Condenser only): the latency of `exec true` in a
// running container next to bare `runc exec` of the same container, and a
// shim's memory while a client is attached to its container's terminal.

// execTrue runs `true` in container id as a client of the API does it —
// POST …/execs, then its stdio WebSocket until the Exit frame — and
// returns how long that took.
func (c *Condenser) execTrue(ctx context.Context, id string) (time.Duration, error) {
	t0 := time.Now()
	var out struct{ ID string }
	if err := c.do(ctx, "POST", "/v1/containers/"+id+"/execs", map[string]any{"command": []string{"true"}}, &out); err != nil {
		return 0, err
	}
	ws, _, err := websocket.Dial(ctx, "ws://condenser/v1/containers/"+id+"/execs/"+out.ID+"/stdio", &websocket.DialOptions{HTTPClient: c.http})
	if err != nil {
		return 0, fmt.Errorf("exec stdio: %w", err)
	}
	defer ws.CloseNow()
	for {
		_, msg, err := ws.Read(ctx)
		if err != nil {
			return 0, fmt.Errorf("exec stdio: %w", err)
		}
		if len(msg) >= frame.HeaderSize && msg[0] == frame.Exit {
			code, err := frame.ParseExit(msg[frame.HeaderSize:])
			if err != nil {
				return 0, err
			}
			if code != 0 {
				return 0, fmt.Errorf("exec true exited with %d", code)
			}
			return time.Since(t0), nil
		}
	}
}

// execBench runs `true` runs times in a running container, each followed
// by a bare `runc exec` of it.
func (c *Condenser) execBench(ctx context.Context, runs int) (condenser, runc []time.Duration, err error) {
	id, err := c.create(ctx, "exec-bench", "sleep", "3600")
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		err = errors.Join(err, c.do(context.WithoutCancel(ctx), "DELETE", "/v1/containers/"+id+"/actions/delete?force=1", nil, nil))
	}()
	if err := c.do(ctx, "POST", "/v1/containers/"+id+"/actions/start", nil, nil); err != nil {
		return nil, nil, err
	}
	const warmup = 3
	for i := range runs + warmup {
		d, err := c.execTrue(ctx, id)
		if err != nil {
			return nil, nil, err
		}
		t0 := time.Now()
		if out, err := exec.CommandContext(ctx, "runc", "--root", filepath.Join(c.state, "runtime"), "exec", id, "true").CombinedOutput(); err != nil {
			return nil, nil, fmt.Errorf("runc exec: %w: %s", err, out)
		}
		if i >= warmup {
			condenser, runc = append(condenser, d), append(runc, time.Since(t0))
		}
	}
	return condenser, runc, nil
}

// terminalShimMemory starts a container with a terminal running sh,
// attaches a client to it, has the shell print a screenful, and reads its
// shim's memory while the client stays attached.
func (c *Condenser) terminalShimMemory(ctx context.Context) (_ memory, err error) {
	var out struct{ ID string }
	req := map[string]any{"image": c.img.Small, "command": []string{"sh"}, "network": "none", "tty": true, "name": "tty-bench"}
	if err := c.do(ctx, "POST", "/v1/containers", req, &out); err != nil {
		return memory{}, err
	}
	id := out.ID
	defer func() {
		err = errors.Join(err, c.do(context.WithoutCancel(ctx), "DELETE", "/v1/containers/"+id+"/actions/delete?force=1", nil, nil))
	}()
	if err := c.do(ctx, "POST", "/v1/containers/"+id+"/actions/start", nil, nil); err != nil {
		return memory{}, err
	}
	ws, _, err := websocket.Dial(ctx, "ws://condenser/v1/containers/"+id+"/stdio?stdin=1", &websocket.DialOptions{HTTPClient: c.http})
	if err != nil {
		return memory{}, fmt.Errorf("attach: %w", err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(frame.HeaderSize + frame.MaxPayload)
	cmd := frame.Append(nil, frame.Stdin, []byte("seq 1 2000; echo done-$((6*7))\r"))
	if err := ws.Write(ctx, websocket.MessageBinary, cmd); err != nil {
		return memory{}, err
	}
	var seen []byte
	for !bytes.Contains(seen, []byte("done-42")) {
		_, msg, err := ws.Read(ctx)
		if err != nil {
			return memory{}, fmt.Errorf("attach: %w", err)
		}
		if len(msg) > frame.HeaderSize {
			seen = append(seen, msg[frame.HeaderSize:]...)
			if len(seen) > 64<<10 {
				seen = seen[len(seen)-64:]
			}
		}
	}
	pids, err := pidsOf(filepath.Join(c.Bin, "condenser-shim"), []string{"\x00serve\x00", id})
	if err != nil {
		return memory{}, err
	}
	if len(pids) != 1 {
		return memory{}, fmt.Errorf("%d shims serve container %s", len(pids), id)
	}
	return memoryOf(pids[0])
}
