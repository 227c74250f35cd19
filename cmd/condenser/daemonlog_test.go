package main

import (
	"regexp"
)

// panicInLog matches the marks a panic leaves in the daemon's log: one
// net/http recovered ("http: panic serving …"), one the router recovered
// (rest's "panic in handler"), or one that killed the process ("panic: …"
// and its goroutine dump).
var panicInLog = regexp.MustCompile(`panic serving|panic in handler|(?m)^panic: |goroutine \d+ \[running\]`)

// checkLog fails the test when the log of the daemon that just stopped
// shows a panic — even a recovered one: the contract says never a panic.
// stop calls it once the daemon has exited (its log is complete then), so
// every test that starts a daemon is checked.
func (d *daemonProc) checkLog() {
	if d.logs == nil {
		return
	}
	log := d.logs.String()
	loc := panicInLog.FindStringIndex(log)
	if loc == nil {
		return
	}
	start := max(0, loc[0]-200)
	end := min(len(log), loc[0]+2000)
	d.t.Errorf("the daemon's log shows a panic:\n%s", log[start:end])
}
