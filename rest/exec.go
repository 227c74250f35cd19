package rest

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/julienschmidt/httprouter"

	"github.com/raind/condenser/rest/api"
)

// execContainer is POST …/actions/exec (the Raind contract): without a
// terminal the process runs detached, since the Raind CLI attaches only to
// one with a terminal (GET …/exec/attach).
func (s *server) execContainer(w http.ResponseWriter, r *http.Request, p httprouter.Params) (*reply, error) {
	return s.exec(w, r, p.ByName("id"), func(req *api.ExecRequest) bool { return !req.Tty })
}

// createExec is POST …/execs (Condenser's): the process's output is held
// until a client attaches to GET …/execs/{exec}/stdio, unless detached.
func (s *server) createExec(w http.ResponseWriter, r *http.Request, p httprouter.Params) (*reply, error) {
	return s.exec(w, r, p.ByName("id"), func(*api.ExecRequest) bool { return false })
}

// exec starts an exec process; detach gives the endpoint's default for a
// request that does not say.
func (s *server) exec(w http.ResponseWriter, r *http.Request, ref string, detach func(*api.ExecRequest) bool) (*reply, error) {
	var req api.ExecRequest
	if err := decodeBody(w, r, &req, false); err != nil {
		return nil, err
	}
	if len(req.Command) == 0 {
		return nil, invalidf("command is required: the program to run and its arguments, e.g. [\"sh\"]")
	}
	if req.Detach == nil {
		d := detach(&req)
		req.Detach = &d
	}
	id, err := s.b.ExecContainer(r.Context(), ref, req)
	if err != nil {
		return nil, err
	}
	return &reply{"exec process started", api.IDResponse{ID: id}}, nil
}

// listExecs is GET …/execs: oldest first.
func (s *server) listExecs(_ http.ResponseWriter, r *http.Request, p httprouter.Params) (*reply, error) {
	list, err := s.b.ListExecs(r.Context(), p.ByName("id"))
	if err != nil {
		return nil, err
	}
	if list == nil {
		list = []api.ExecInfo{}
	}
	return &reply{fmt.Sprintf("%d exec processes", len(list)), list}, nil
}

// inspectExec is GET …/execs/{exec}.
func (s *server) inspectExec(_ http.ResponseWriter, r *http.Request, p httprouter.Params) (*reply, error) {
	info, err := s.b.InspectExec(r.Context(), p.ByName("id"), p.ByName("exec"))
	if err != nil {
		return nil, err
	}
	if info == nil {
		return nil, fmt.Errorf("backend: InspectExec returned neither an exec process nor an error")
	}
	return &reply{"exec process " + info.ID, info}, nil
}

// resizeContainer is POST …/actions/resize?h=ROWS&w=COLS: the init's
// terminal.
func (s *server) resizeContainer(w http.ResponseWriter, r *http.Request, p httprouter.Params) (*reply, error) {
	return s.resize(w, r, p.ByName("id"), "")
}

// resizeExec is POST …/execs/{exec}/resize?h=ROWS&w=COLS.
func (s *server) resizeExec(w http.ResponseWriter, r *http.Request, p httprouter.Params) (*reply, error) {
	return s.resize(w, r, p.ByName("id"), p.ByName("exec"))
}

func (s *server) resize(w http.ResponseWriter, r *http.Request, ref, exec string) (*reply, error) {
	if err := noBody(w, r); err != nil {
		return nil, err
	}
	q := r.URL.Query()
	rows, err := querySize(q, "h", "rows")
	if err != nil {
		return nil, err
	}
	cols, err := querySize(q, "w", "columns")
	if err != nil {
		return nil, err
	}
	id, err := s.b.ResizeTerminal(r.Context(), ref, exec, rows, cols)
	if err != nil {
		return nil, err
	}
	return &reply{"terminal resized", api.IDResponse{ID: id}}, nil
}

// querySize reads a required terminal dimension, 0-65535: what names it
// in the message.
func querySize(q url.Values, key, what string) (uint16, error) {
	v := q.Get(key)
	n, err := strconv.ParseUint(v, 10, 16)
	if err != nil {
		return 0, invalidf("query parameter %s=%q: want the terminal's %s, a number from 0 to 65535 (?h=ROWS&w=COLS)", key, v, what)
	}
	return uint16(n), nil
}
