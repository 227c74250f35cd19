package shim

import (
	"context"
	"fmt"
	"net"
	goruntime "runtime"

	"github.com/containerd/ttrpc"

	"github.com/raind/condenser/shim/api"
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
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", o.socket())
	if err != nil {
		return "", err
	}
	c := ttrpc.NewClient(conn)
	defer c.Close()
	r, err := api.NewShimClient(c).Stacks(ctx, &api.StacksRequest{})
	if err != nil {
		return "", api.FromStatus(err)
	}
	return r.Dump, nil
}
