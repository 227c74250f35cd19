package shim

import (
	"context"
	"fmt"
	goruntime "runtime"

	"github.com/raind/condenser/shim/api"
	"github.com/raind/condenser/shim/client"
)

// StackDumpHeader starts the dump Stacks returns; %d is the number of
// goroutines.
const StackDumpHeader = "=== condenser-shim goroutine dump: %d goroutines ==="

// Stacks returns every goroutine's stack: what a stuck or leaking shim is
// doing. (containerd's shim writes it on SIGUSR1; a shim that handles a
// signal holds os/signal's three threads for life.)
func (s *service) Stacks(context.Context, *api.StacksRequest) (*api.StacksResponse, error) {
	buf := make([]byte, 64<<10)
	for {
		n := goruntime.Stack(buf, true)
		if n < len(buf) || len(buf) >= 64<<20 {
			dump := fmt.Sprintf(StackDumpHeader+"\n%s\n", goruntime.NumGoroutine(), buf[:n])
			return &api.StacksResponse{Dump: dump}, nil
		}
		buf = make([]byte, 2*len(buf))
	}
}

// Stacks asks the shim serving o's socket for its goroutines' stacks
// (`condenser-shim stacks`).
func Stacks(ctx context.Context, o Options) (string, error) {
	c, err := client.Dial(ctx, o.socket())
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.Stacks(ctx)
}
