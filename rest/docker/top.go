package docker

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/supervisor"
)

// topContainer lists the processes of a running container: those in its
// init's pid namespace. Without ps_args they are read from /proc (ps -ef's
// columns); with ps_args, ps runs with them on the host and its rows are
// kept for the container's pids, as Docker does.
func (s *server) topContainer(w http.ResponseWriter, r *http.Request) error {
	c, err := s.container(r)
	if err != nil {
		return err
	}
	if c.State != supervisor.StateRunning || c.Pid <= 0 {
		return &httpError{status: http.StatusConflict, msg: fmt.Sprintf("container %s is not running", c.ID), err: errdefs.ErrConflict}
	}
	pids, err := namespacePids("/proc", c.Pid)
	if err != nil {
		return err
	}
	var top container.TopResponse
	if args := strings.Fields(r.URL.Query().Get("ps_args")); len(args) > 0 {
		top, err = psTop(r.Context(), args, pids)
	} else {
		top, err = procTop("/proc", pids, time.Now())
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, top)
}

// namespacePids lists the processes of proc (a procfs) in the pid
// namespace of init, init first.
func namespacePids(proc string, init int) ([]int, error) {
	ns, err := os.Readlink(filepath.Join(proc, strconv.Itoa(init), "ns", "pid"))
	if err != nil {
		return nil, fmt.Errorf("the container's pid namespace: %w", err)
	}
	entries, err := os.ReadDir(proc)
	if err != nil {
		return nil, err
	}
	pids := []int{init}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == init {
			continue
		}
		if l, err := os.Readlink(filepath.Join(proc, e.Name(), "ns", "pid")); err == nil && l == ns {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids[1:])
	return pids, nil
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// procStat is what top reads of /proc/PID/stat.
type procStat struct {
	comm       string
	ppid       int
	ttyNr      int
	utime      uint64
	stime      uint64
	startTicks uint64
}

// parseStat reads /proc/PID/stat: "pid (comm) state ppid pgrp session
// tty_nr … utime(14) stime(15) … starttime(22)"; comm may hold spaces and
// parentheses, so the fields are counted from its last ')'.
func parseStat(b []byte) (procStat, error) {
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("malformed stat")
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 20 {
		return procStat{}, fmt.Errorf("malformed stat: %d fields", len(f))
	}
	// f[0] is field 3 (state).
	var st procStat
	var err error
	st.comm = s[open+1 : end]
	if st.ppid, err = strconv.Atoi(f[1]); err != nil {
		return st, err
	}
	if st.ttyNr, err = strconv.Atoi(f[4]); err != nil {
		return st, err
	}
	if st.utime, err = strconv.ParseUint(f[11], 10, 64); err != nil {
		return st, err
	}
	if st.stime, err = strconv.ParseUint(f[12], 10, 64); err != nil {
		return st, err
	}
	if st.startTicks, err = strconv.ParseUint(f[19], 10, 64); err != nil {
		return st, err
	}
	return st, nil
}

// bootTime reads the boot time (btime) from proc's stat.
func bootTime(proc string) (time.Time, error) {
	b, err := os.ReadFile(filepath.Join(proc, "stat"))
	if err != nil {
		return time.Time{}, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}, err
			}
			return time.Unix(n, 0), nil
		}
	}
	return time.Time{}, fmt.Errorf("no btime in %s/stat", proc)
}

var topTitles = []string{"UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"}

// procTop is ps -ef's table of pids, read from proc. A process that ends
// meanwhile is left out.
func procTop(proc string, pids []int, now time.Time) (container.TopResponse, error) {
	boot, err := bootTime(proc)
	if err != nil {
		return container.TopResponse{}, err
	}
	users := map[string]string{}
	top := container.TopResponse{Titles: topTitles, Processes: [][]string{}}
	for _, pid := range pids {
		dir := filepath.Join(proc, strconv.Itoa(pid))
		b, err := os.ReadFile(filepath.Join(dir, "stat"))
		if err != nil {
			continue
		}
		st, err := parseStat(b)
		if err != nil {
			continue
		}
		uid := "?"
		if status, err := os.ReadFile(filepath.Join(dir, "status")); err == nil {
			uid = statusUID(status)
		}
		name, ok := users[uid]
		if !ok {
			name = uid
			if u, err := user.LookupId(uid); err == nil {
				name = u.Username
			}
			users[uid] = name
		}
		cmd := st.comm
		if raw, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil && len(raw) > 0 {
			cmd = strings.Join(strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00"), " ")
		} else {
			cmd = "[" + cmd + "]"
		}
		start := boot.Add(time.Duration(st.startTicks) * time.Second / clockTicks)
		cpu := time.Duration(st.utime+st.stime) * time.Second / clockTicks
		c := 0
		if up := now.Sub(start); up > 0 {
			c = int(cpu * 100 / up)
		}
		top.Processes = append(top.Processes, []string{
			name, strconv.Itoa(pid), strconv.Itoa(st.ppid), strconv.Itoa(c), stime(start, now), tty(st.ttyNr), cpuTime(cpu), cmd,
		})
	}
	return top, nil
}

// statusUID is the real uid of /proc/PID/status.
func statusUID(status []byte) string {
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "Uid:"); ok {
			if f := strings.Fields(v); len(f) > 0 {
				return f[0]
			}
		}
	}
	return "?"
}

// stime is ps's STIME: the time of day for a process started today, else
// the date.
func stime(start, now time.Time) string {
	if y1, m1, d1 := start.Date(); true {
		if y2, m2, d2 := now.Date(); y1 == y2 && m1 == m2 && d1 == d2 {
			return start.Format("15:04")
		}
	}
	if start.Year() == now.Year() {
		return start.Format("Jan02")
	}
	return start.Format("2006")
}

// tty is ps's TTY of a tty_nr: pts/N for a pseudo-terminal, ? for none.
func tty(nr int) string {
	if nr == 0 {
		return "?"
	}
	major, minor := (nr>>8)&0xfff, (nr&0xff)|((nr>>12)&0xfff00)
	switch {
	case major >= 136 && major <= 143:
		return "pts/" + strconv.Itoa((major-136)*256+minor)
	case major == 4 && minor < 64:
		return "tty" + strconv.Itoa(minor)
	case major == 4:
		return "ttyS" + strconv.Itoa(minor-64)
	}
	return "?"
}

// cpuTime is ps's TIME: [DD-]HH:MM:SS.
func cpuTime(d time.Duration) string {
	s := int(d.Seconds())
	days, h, m := s/86400, s/3600%24, s/60%60
	out := fmt.Sprintf("%02d:%02d:%02d", h, m, s%60)
	if days > 0 {
		out = fmt.Sprintf("%d-%s", days, out)
	}
	return out
}

// psTop runs ps with args on the host and keeps the rows of pids.
func psTop(ctx context.Context, args []string, pids []int) (container.TopResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "ps", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return container.TopResponse{}, invalid("ps %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return parsePS(out, pids)
}

// parsePS keeps the rows of ps's output whose PID is one of pids; the last
// column (the command) takes the rest of its line.
func parsePS(out []byte, pids []int) (container.TopResponse, error) {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	titles := strings.Fields(lines[0])
	col := slices.Index(titles, "PID")
	if col < 0 {
		return container.TopResponse{}, invalid("couldn't find PID field in ps output")
	}
	top := container.TopResponse{Titles: titles, Processes: [][]string{}}
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) < len(titles) {
			continue
		}
		pid, err := strconv.Atoi(f[col])
		if err != nil || !slices.Contains(pids, pid) {
			continue
		}
		row := append(f[:len(titles)-1:len(titles)-1], strings.Join(f[len(titles)-1:], " "))
		top.Processes = append(top.Processes, row)
	}
	return top, nil
}
