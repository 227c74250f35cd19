package backend

import (
	"context"

	"github.com/raind/condenser/rest"
	"github.com/raind/condenser/rest/api"
	"github.com/raind/condenser/supervisor"
)

// ExecContainer starts a process in the running container ref.
func (b *Backend) ExecContainer(ctx context.Context, ref string, r api.ExecRequest) (string, error) {
	return b.sup.Exec(ctx, ref, execRequest(r))
}

// ListExecs lists the exec processes of container ref, oldest first.
func (b *Backend) ListExecs(ctx context.Context, ref string) ([]api.ExecInfo, error) {
	es, c, err := b.sup.Execs(ctx, ref)
	if err != nil {
		return nil, err
	}
	out := make([]api.ExecInfo, 0, len(es))
	for _, e := range es {
		out = append(out, execInfo(e, c))
	}
	return out, nil
}

func (b *Backend) InspectExec(ctx context.Context, ref, exec string) (*api.ExecInfo, error) {
	e, c, err := b.sup.ExecState(ctx, ref, exec)
	if err != nil {
		return nil, err
	}
	info := execInfo(e, c)
	return &info, nil
}

// Attach attaches to a process's standard streams through its shim: the
// supervisor's stream is the attachment.
func (b *Backend) Attach(ctx context.Context, ref string, o rest.AttachOptions) (rest.Attachment, error) {
	s, err := b.sup.Attach(ctx, ref, supervisor.AttachOptions{Exec: o.Exec, Stdin: o.Stdin})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// A shim's stream is an attachment as it is.
var _ rest.Attachment = supervisor.Stream(nil)

// ResizeTerminal resolves ref first, so that the size goes to the
// container whose id it returns.
func (b *Backend) ResizeTerminal(ctx context.Context, ref, exec string, rows, cols uint16) (string, error) {
	c, err := b.sup.Get(ctx, ref)
	if err != nil {
		return "", err
	}
	if err := b.sup.Resize(ctx, c.ID, exec, rows, cols); err != nil {
		return "", err
	}
	if exec != "" {
		return exec, nil
	}
	return c.ID, nil
}
