package shim

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"testing"
	"time"

	"github.com/raind/condenser/internal/frame"
	"github.com/raind/condenser/shim/api"
	"github.com/raind/condenser/shim/reaper"
)

// parseFrames splits held frames into their payloads, by type.
func parseFrames(t *testing.T, b []byte) (types []byte, payloads [][]byte) {
	t.Helper()
	fr := frame.NewReader(bytes.NewReader(b))
	for {
		typ, p, err := fr.Next()
		if errors.Is(err, io.EOF) {
			return types, payloads
		}
		if err != nil {
			t.Fatalf("held frames: %v", err)
		}
		types, payloads = append(types, typ), append(payloads, bytes.Clone(p))
	}
}

// newFrame is a frame of typ with payload p, as a pump makes it.
func newFrame(typ byte, p []byte) []byte { return frame.Append(nil, typ, p) }

// TestHoldDropOldest: a terminal's hold keeps the last maxHold bytes of
// frames, whole frames, and the output's end intact.
func TestHoldDropOldest(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var all bytes.Buffer
	var held []byte
	for i := range 400 {
		p := make([]byte, 1+rng.IntN(pumpChunk))
		for j := range p {
			p[j] = byte('a' + (i+j)%26)
		}
		all.Write(p)
		held = holdAppend(held, newFrame(frame.Stdout, p), true)
		if len(held) > maxHold || cap(held) > maxHold {
			t.Fatalf("hold of %d bytes (capacity %d), over %d", len(held), cap(held), maxHold)
		}
		types, payloads := parseFrames(t, held)
		got := bytes.Join(payloads, nil)
		if !bytes.HasSuffix(all.Bytes(), got) {
			t.Fatalf("after %d chunks the hold is not the output's end", i+1)
		}
		if len(got)+frame.HeaderSize*len(types) < maxHold-pumpChunk-frame.HeaderSize && all.Len() > maxHold {
			t.Fatalf("after %d chunks the hold has only %d bytes", i+1, len(got))
		}
		for _, typ := range types {
			if typ != frame.Stdout {
				t.Fatalf("frame type %d", typ)
			}
		}
	}
}

func TestTrimFrames(t *testing.T) {
	in := append(newFrame(frame.Stdout, []byte("abcdef")), newFrame(frame.Stderr, []byte("ghij"))...)
	for _, tc := range []struct {
		n     int
		types []byte
		want  []string
	}{
		{0, []byte{frame.Stdout, frame.Stderr}, []string{"abcdef", "ghij"}},
		{2, []byte{frame.Stdout, frame.Stderr}, []string{"cdef", "ghij"}},
		{6, []byte{frame.Stderr}, []string{"ghij"}},  // the whole first frame
		{11, []byte{frame.Stderr}, []string{"ghij"}}, // exactly the first frame
		{12, []byte{frame.Stderr}, []string{"hij"}},
		{30, nil, nil},
	} {
		types, payloads := parseFrames(t, trimFrames(bytes.Clone(in), tc.n))
		var got []string
		for _, p := range payloads {
			got = append(got, string(p))
		}
		if !bytes.Equal(types, tc.types) || len(got) != len(tc.want) || (len(got) > 0 && got[0] != tc.want[0]) {
			t.Errorf("trim %d: %v %q, want %v %q", tc.n, types, got, tc.types, tc.want)
		}
	}
}

// unixPair returns the two ends of a connected unix socket.
func unixPair(t *testing.T) (a, b *net.UnixConn) {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: t.TempDir() + "/s", Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	a, err = net.DialUnix("unix", nil, l.Addr().(*net.UnixAddr))
	if err != nil {
		t.Fatal(err)
	}
	b, err = l.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// stdoutOf reads the Stdout frames of conn until it ends, in the
// background.
func stdoutOf(conn io.Reader) <-chan []byte {
	ch := make(chan []byte, 1)
	go func() {
		var out []byte
		fr := frame.NewReader(conn)
		for {
			typ, p, err := fr.Next()
			if err != nil {
				ch <- out
				return
			}
			if typ == frame.Stdout {
				out = append(out, p...)
			}
		}
	}()
	return ch
}

// waitState waits until cond holds of st (under its lock).
func waitState(t *testing.T, st *streams, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st.mu.Lock()
		ok := cond()
		st.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestHoldBlocks: an exec process's output past the hold waits for the
// first client (the process blocks on its pipe), and reaches it whole.
func TestHoldBlocks(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	st := newStreams(false, nil, nil, holdBlock, true)
	t.Cleanup(st.release)
	st.startPumps([]byte{frame.Stdout}, []*os.File{r})
	const size = 300 << 10
	written := make(chan error, 1)
	go func() {
		_, err := w.Write(bytes.Repeat([]byte("x"), size))
		w.Close()
		written <- err
	}()
	waitState(t, st, "the pump to wait for a client", func() bool { return st.blocked == 1 })
	// The hold (64 KiB), the pipe (64 KiB) and the pump's buffer cannot
	// take 300 KiB: the writer must still be blocked.
	select {
	case err := <-written:
		t.Fatalf("the writer finished (%v) before anyone attached", err)
	default:
	}
	waitState(t, st, "a full hold", func() bool { return len(st.held) > maxHold-pumpChunk-frame.HeaderSize && len(st.held) <= maxHold })
	client, server := unixPair(t)
	out := stdoutOf(client)
	c := newAttachment(server)
	c.wmu.Lock()
	held, ended := st.attach(c)
	c.writeLocked(held)
	c.wmu.Unlock()
	if ended {
		t.Fatal("ended")
	}
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	st.exit(0)
	<-st.endc
	server.Close()
	if got := <-out; len(got) != size {
		t.Errorf("the client got %d bytes, want %d", len(got), size)
	}
}

// TestStalledDrain: an exec process that exits while its pumps wait for a
// first client ends its session only once a client came and the output is
// drained.
func TestStalledDrain(t *testing.T) {
	old := logDrainWait
	logDrainWait = 50 * time.Millisecond
	t.Cleanup(func() { logDrainWait = old })
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	st := newStreams(false, nil, nil, holdBlock, true)
	t.Cleanup(st.release)
	st.startPumps([]byte{frame.Stdout}, []*os.File{r})
	const size = 100 << 10
	written := make(chan error, 1)
	go func() {
		_, err := w.Write(bytes.Repeat([]byte("y"), size))
		w.Close()
		written <- err
	}()
	waitState(t, st, "the pump to wait for a client", func() bool { return st.blocked == 1 })
	st.exit(3)
	waitState(t, st, "the drain to stall", func() bool { return st.stalled && !st.ended })
	client, server := unixPair(t)
	out := stdoutOf(client)
	c := newAttachment(server)
	c.wmu.Lock()
	held, _ := st.attach(c)
	c.writeLocked(held)
	c.wmu.Unlock()
	<-written
	<-st.endc
	if code, ok := st.exitStatus(); !ok || code != 3 {
		t.Errorf("exit status %d %v", code, ok)
	}
	server.Close()
	if got := <-out; len(got) != size {
		t.Errorf("the client got %d bytes, want %d", len(got), size)
	}
}

// TestSlowClient: a client that does not read is let go after
// clientWriteWait; the others get all the output.
func TestSlowClient(t *testing.T) {
	old := clientWriteWait
	// Long enough that the reading client, a goroutine of this test, is
	// never itself a stalled client, even on a loaded machine (100 ms
	// failed 2 runs in a loaded parallel suite: the good client was
	// dropped too); short enough for the test.
	clientWriteWait = 2 * time.Second
	t.Cleanup(func() { clientWriteWait = old })
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	st := newStreams(false, nil, nil, holdBlock, true)
	t.Cleanup(st.release)
	stuckClient, stuckServer := unixPair(t)
	_ = stuckClient // never read
	client, server := unixPair(t)
	out := stdoutOf(client)
	stuck, good := newAttachment(stuckServer), newAttachment(server)
	for _, c := range []*attachment{stuck, good} {
		if _, ended := st.attach(c); ended {
			t.Fatal("ended")
		}
	}
	st.startPumps([]byte{frame.Stdout}, []*os.File{r})
	const size = 8 << 20 // far more than a socket's buffer
	go func() {
		w.Write(bytes.Repeat([]byte("z"), size))
		w.Close()
	}()
	select {
	case <-stuck.dropped:
	case <-time.After(10 * time.Second):
		t.Fatal("the stuck client was not let go")
	}
	st.exit(0)
	<-st.endc
	server.Close()
	if got := <-out; len(got) != size {
		t.Errorf("the reading client got %d bytes, want %d", len(got), size)
	}
}

func TestExitWatch(t *testing.T) {
	w := newExitWatch()
	var got []reaper.Exit
	record := func(e reaper.Exit) { got = append(got, e) }

	w.deliver(reaper.Exit{Pid: 10, Status: 1}) // nobody expects: forgotten
	t1 := w.expect()
	w.deliver(reaper.Exit{Pid: 11, Status: 2}) // before its pid is known: kept
	w.register(t1, 11, record)
	if len(got) != 1 || got[0].Status != 2 {
		t.Fatalf("replayed %v", got)
	}
	if w.pending != nil {
		t.Errorf("exits kept with no registration expected: %v", w.pending)
	}

	t2 := w.expect()
	w.register(t2, 10, record) // 10 exited before t2 began: another process
	w.deliver(reaper.Exit{Pid: 10, Status: 3})
	if len(got) != 2 || got[1].Status != 3 {
		t.Fatalf("delivered %v", got)
	}

	t3 := w.expect()
	w.deliver(reaper.Exit{Pid: 12, Status: 4})
	t4 := w.expect()
	w.cancel(t3)
	w.register(t4, 12, record) // 12 exited before t4 began
	if len(got) != 2 {
		t.Fatalf("an exit older than the registration was replayed: %v", got)
	}
	w.deliver(reaper.Exit{Pid: 12, Status: 5})
	if len(got) != 3 || got[2].Status != 5 {
		t.Fatalf("delivered %v", got)
	}

	t5 := w.expect()
	for pid := range maxPending + 10 {
		w.deliver(reaper.Exit{Pid: 1000 + pid})
	}
	if len(w.pending) > maxPending {
		t.Errorf("%d exits kept", len(w.pending))
	}
	w.cancel(t5)
}

// TestFinishedExecsBounded: the shim keeps the last maxFinishedExecs
// finished exec processes, and every running one.
func TestFinishedExecsBounded(t *testing.T) {
	s := &service{execs: map[string]*execProcess{}}
	add := func(id string) *execProcess {
		x := &execProcess{id: id, pid: len(s.execOrder) + 100, io: newStreams(false, nil, nil, holdNone, true), status: api.Status_RUNNING}
		s.execs[id], s.execOrder = x, append(s.execOrder, x)
		return x
	}
	running := add("running")
	var xs []*execProcess
	for i := range maxFinishedExecs + 44 {
		xs = append(xs, add(string(rune('a'+i%26))+string(rune('0'+i/26))))
	}
	for i, x := range xs {
		s.execExited(x, reaper.Exit{Pid: x.pid, Status: i % 256, Timestamp: time.Now()})
	}
	if len(s.execOrder) != maxFinishedExecs+1 || len(s.execs) != maxFinishedExecs+1 {
		t.Fatalf("%d execs kept (%d by id), want %d", len(s.execOrder), len(s.execs), maxFinishedExecs+1)
	}
	if s.execOrder[0] != running || s.execOrder[1] != xs[44] || s.execOrder[len(s.execOrder)-1] != xs[len(xs)-1] {
		t.Errorf("kept the wrong ones")
	}
	for _, x := range xs[:44] {
		select {
		case <-x.io.gone:
		default:
			t.Errorf("the streams of a forgotten exec are not released")
		}
	}
}
