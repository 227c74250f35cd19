package oci

import (
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Exec is a process to start in a running container (docker exec's
// choices). Zero values mean the container's.
type Exec struct {
	Args       []string // required
	Env        []string // KEY=VALUE, over the container's
	User       string   // as Config.User
	WorkingDir string   // absolute
	Tty        bool
	// ConsoleSize is the terminal's size at the start, [rows, cols]
	// (with Tty; nil: none, until a resize).
	ConsoleSize *[2]uint16
}

// Validate checks e: a command, env entries, an absolute working directory,
// the syntax of the user. Errors wrap errdefs.ErrInvalidArgument.
func (e *Exec) Validate() error {
	if len(e.Args) == 0 || e.Args[0] == "" {
		return invalid("command: no command specified")
	}
	for _, a := range e.Args {
		if strings.ContainsRune(a, 0) {
			return invalid("command %q: an argument contains a NUL byte", e.Args)
		}
	}
	for _, kv := range e.Env {
		if err := checkEnv(kv); err != nil {
			return err
		}
	}
	if d := e.WorkingDir; d != "" && !filepath.IsAbs(d) {
		return invalid("workdir %q: not an absolute path", d)
	}
	_, err := parseUserSpec(e.User)
	return err
}

// ExecProcess returns the OCI process of e in a container whose init runs
// init (its config.json's process): the init's capabilities, limits and
// security settings, with e's command line, terminal, working directory,
// user (resolved with readFile, the image's files, as at create) and
// environment (the init's, then e's entries replacing those with the same
// key; HOME follows a user given without HOME in e.Env).
func ExecProcess(init *specs.Process, e Exec, readFile fileReader) (*specs.Process, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	p := *init
	p.Args = slices.Clone(e.Args)
	p.Terminal = e.Tty
	p.ConsoleSize = nil
	if cs := e.ConsoleSize; e.Tty && cs != nil && cs[0] > 0 && cs[1] > 0 {
		p.ConsoleSize = &specs.Box{Height: uint(cs[0]), Width: uint(cs[1])}
	}
	if e.WorkingDir != "" {
		p.Cwd = e.WorkingDir
	}
	env := slices.Clone(init.Env)
	set := func(kv string) {
		key, _, _ := strings.Cut(kv, "=")
		for i, old := range env {
			if k, _, _ := strings.Cut(old, "="); k == key {
				env[i] = kv
				return
			}
		}
		env = append(env, kv)
	}
	if e.User != "" {
		if readFile == nil {
			readFile = noFiles
		}
		u, err := resolveUser(e.User, readFile)
		if err != nil {
			return nil, err
		}
		p.User = specs.User{UID: u.UID, GID: u.GID, AdditionalGids: u.AdditionalGids}
		set("HOME=" + u.Home)
	}
	for _, kv := range e.Env {
		set(kv)
	}
	p.Env = env
	return &p, nil
}
