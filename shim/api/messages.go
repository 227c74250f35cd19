package api

import (
	"strconv"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// The messages of the Shim service, kept by hand in step with shim.proto
// (see wire.go for why they are not generated, and TestWireMatchesProtobuf
// for the check that they encode as the .proto says).

// Status is a process's state.
type Status int32

const (
	Status_UNKNOWN Status = 0
	Status_CREATED Status = 1
	Status_RUNNING Status = 2
	Status_STOPPED Status = 3
)

var statusNames = [...]string{"UNKNOWN", "CREATED", "RUNNING", "STOPPED"}

func (s Status) String() string {
	if s >= 0 && int(s) < len(statusNames) {
		return statusNames[s]
	}
	return strconv.Itoa(int(s))
}

// Timestamp is google.protobuf.Timestamp.
type Timestamp struct {
	Seconds int64 `wire:"1"`
	Nanos   int32 `wire:"2"`
}

// NewTimestamp is t as a Timestamp.
func NewTimestamp(t time.Time) *Timestamp {
	return &Timestamp{Seconds: t.Unix(), Nanos: int32(t.Nanosecond())}
}

// AsTime is the time ts says, in UTC; the Unix epoch for nil, as
// timestamppb's AsTime.
func (ts *Timestamp) AsTime() time.Time {
	if ts == nil {
		return time.Unix(0, 0).UTC()
	}
	return time.Unix(ts.Seconds, int64(ts.Nanos)).UTC()
}

func (ts *Timestamp) ProtoReflect() protoreflect.Message { return wireMessage{m: ts} }
func (ts *Timestamp) Reset()                             { *ts = Timestamp{} }

type Mount struct {
	Type    string   `wire:"1"`
	Source  string   `wire:"2"`
	Options []string `wire:"3"`
}

type LogOptions struct {
	// path of the json-file log; default bundle/<id>-json.log
	Path string `wire:"1"`
	// bytes per file before rotation (0: default 10 MiB, <0: never rotate)
	MaxSize int64 `wire:"2"`
	// files kept (0: default 3)
	MaxFiles int32 `wire:"3"`
}

type CreateRequest struct {
	Rootfs []*Mount    `wire:"1"`
	Log    *LogOptions `wire:"2"`
	// the init gets a pseudo-terminal (config.json says process.terminal)
	Terminal bool `wire:"3"`
	// without a terminal: the init's stdin is a pipe the shim holds,
	// written by attached clients (else /dev/null)
	Stdin bool `wire:"4"`
}

type CreateResponse struct {
	Pid uint32 `wire:"1"`
}

type StartRequest struct {
}

type StartResponse struct {
	Pid uint32 `wire:"1"`
}

type StateRequest struct {
}

type StateResponse struct {
	Id     string `wire:"1"`
	Bundle string `wire:"2"`
	Status Status `wire:"3"`
	Pid    uint32 `wire:"4"`
	// set when STOPPED
	ExitCode  int32      `wire:"5"`
	ExitedAt  *Timestamp `wire:"6"`
	OomKilled bool       `wire:"7"`
}

type KillRequest struct {
	Signal uint32 `wire:"1"`
	All    bool   `wire:"2"`
}

type KillResponse struct {
}

type WaitRequest struct {
}

type WaitResponse struct {
	// exit code, or 128+n for signal n
	ExitCode  int32      `wire:"1"`
	ExitedAt  *Timestamp `wire:"2"`
	OomKilled bool       `wire:"3"`
}

type DeleteRequest struct {
}

type DeleteResponse struct {
	Pid       uint32     `wire:"1"`
	ExitCode  int32      `wire:"2"`
	ExitedAt  *Timestamp `wire:"3"`
	OomKilled bool       `wire:"4"`
}

type StatsRequest struct {
}

type StatsResponse struct {
	CpuUsageNanos   uint64 `wire:"1"`
	MemoryUsage     uint64 `wire:"2"`
	MemoryCache     uint64 `wire:"3"`
	MemoryLimit     uint64 `wire:"4"`
	MemoryMaxUsage  uint64 `wire:"5"`
	PidsCurrent     uint64 `wire:"6"`
	PidsLimit       uint64 `wire:"7"`
	BlkioReadBytes  uint64 `wire:"8"`
	BlkioWriteBytes uint64 `wire:"9"`
	OomKills        uint64 `wire:"10"`
}

type PidsRequest struct {
}

type PidsResponse struct {
	Pids []uint32 `wire:"1"`
}

type ConnectRequest struct {
}

type ConnectResponse struct {
	ShimPid uint32 `wire:"1"`
	TaskPid uint32 `wire:"2"`
	Version string `wire:"3"`
}

type ShutdownRequest struct {
	// stop even though the container was not deleted
	Now bool `wire:"1"`
}

type ShutdownResponse struct {
}

type ExecRequest struct {
	// the exec's id: [0-9a-f]{64}, unique in the container
	ExecId string `wire:"1"`
	// the process to run: an OCI runtime-spec Process as JSON
	Process []byte `wire:"2"`
	// the process gets a pseudo-terminal (process.terminal says the same)
	Terminal bool `wire:"3"`
	// without a terminal: stdin is a pipe written by attached clients
	Stdin bool `wire:"4"`
	// nobody is expected to attach: without a terminal, stdin, stdout and
	// stderr are /dev/null; with one, the process keeps its terminal
	// (closing it would hang the process up) but its output is not held
	Detach bool `wire:"5"`
}

type ExecResponse struct {
	Pid uint32 `wire:"1"`
}

type ExecStateRequest struct {
	ExecId string `wire:"1"`
}

type ExecProcess struct {
	ExecId   string `wire:"1"`
	Pid      uint32 `wire:"2"`
	Terminal bool   `wire:"3"`
	// RUNNING, or STOPPED with exit_code and exited_at
	Status   Status     `wire:"4"`
	ExitCode int32      `wire:"5"`
	ExitedAt *Timestamp `wire:"6"`
}

type ListExecsRequest struct {
}

type ListExecsResponse struct {
	Execs []*ExecProcess `wire:"1"`
}

type ResizeRequest struct {
	ExecId string `wire:"1"`
	Rows   uint32 `wire:"2"`
	Cols   uint32 `wire:"3"`
}

type ResizeResponse struct {
}

type StacksRequest struct {
}

type StacksResponse struct {
	// a header line counting the goroutines, then runtime.Stack's dump
	Dump string `wire:"1"`
}

func (m *Mount) ProtoReflect() protoreflect.Message { return wireMessage{m: m} }
func (m *Mount) Reset()                             { *m = Mount{} }
func (m *Mount) GetType() string {
	if m == nil {
		return ""
	}
	return m.Type
}
func (m *Mount) GetSource() string {
	if m == nil {
		return ""
	}
	return m.Source
}
func (m *Mount) GetOptions() []string {
	if m == nil {
		return nil
	}
	return m.Options
}

func (m *LogOptions) ProtoReflect() protoreflect.Message { return wireMessage{m: m} }
func (m *LogOptions) Reset()                             { *m = LogOptions{} }
func (m *LogOptions) GetPath() string {
	if m == nil {
		return ""
	}
	return m.Path
}
func (m *LogOptions) GetMaxSize() int64 {
	if m == nil {
		return 0
	}
	return m.MaxSize
}
func (m *LogOptions) GetMaxFiles() int32 {
	if m == nil {
		return 0
	}
	return m.MaxFiles
}

func (m *CreateRequest) ProtoReflect() protoreflect.Message { return wireMessage{m: m} }
func (m *CreateRequest) Reset()                             { *m = CreateRequest{} }
func (m *CreateRequest) GetRootfs() []*Mount {
	if m == nil {
		return nil
	}
	return m.Rootfs
}
func (m *CreateRequest) GetLog() *LogOptions {
	if m == nil {
		return nil
	}
	return m.Log
}
func (m *CreateRequest) GetTerminal() bool {
	if m == nil {
		return false
	}
	return m.Terminal
}
func (m *CreateRequest) GetStdin() bool {
	if m == nil {
		return false
	}
	return m.Stdin
}

func (m *CreateResponse) ProtoReflect() protoreflect.Message { return wireMessage{m: m} }
func (m *CreateResponse) Reset()                             { *m = CreateResponse{} }

func (m *StartRequest) ProtoReflect() protoreflect.Message { return wireMessage{m: m} }
func (m *StartRequest) Reset()                             { *m = StartRequest{} }

func (m *StartResponse) ProtoReflect() protoreflect.Message { return wireMessage{m: m} }
func (m *StartResponse) Reset()                             { *m = StartResponse{} }

func (m *StateRequest) ProtoReflect() protoreflect.Message { return wireMessage{m: m} }
func (m *StateRequest) Reset()                             { *m = StateRequest{} }

func (m *StateResponse) ProtoReflect() protoreflect.Message { return wireMessage{m: m} }
func (m *StateResponse) Reset()                             { *m = StateResponse{} }

func (m *KillRequest) ProtoReflect() protoreflect.Message { return wireMessage{m: m} }
func (m *KillRequest) Reset()                             { *m = KillRequest{} }
func (m *KillRequest) GetSignal() uint32 {
	if m == nil {
		return 0
	}
	return m.Signal
}
func (m *KillRequest) GetAll() bool {
	if m == nil {
		return false
	}
	return m.All
}

func (m *KillResponse) ProtoReflect() protoreflect.Message { return wireMessage{m: m} }
func (m *KillResponse) Reset()                             { *m = KillResponse{} }

func (m *WaitRequest) ProtoReflect() protoreflect.Message { return wireMessage{m: m} }
func (m *WaitRequest) Reset()                             { *m = WaitRequest{} }

func (m *WaitResponse) ProtoReflect() protoreflect.Message { return wireMessage{m: m} }
func (m *WaitResponse) Reset()                             { *m = WaitResponse{} }

func (m *DeleteRequest) ProtoReflect() protoreflect.Message { return wireMessage{m: m} }
func (m *DeleteRequest) Reset()                             { *m = DeleteRequest{} }

func (m *DeleteResponse) ProtoReflect() protoreflect.Message { return wireMessage{m: m} }
func (m *DeleteResponse) Reset()                             { *m = DeleteResponse{} }

func (m *StatsRequest) ProtoReflect() protoreflect.Message { return wireMessage{m: m} }
func (m *StatsRequest) Reset()                             { *m = StatsRequest{} }

func (m *StatsResponse) ProtoReflect() protoreflect.Message { return wireMessage{m: m} }
func (m *StatsResponse) Reset()                             { *m = StatsResponse{} }

func (m *PidsRequest) ProtoReflect() protoreflect.Message { return wireMessage{m: m} }
func (m *PidsRequest) Reset()                             { *m = PidsRequest{} }

func (m *PidsResponse) ProtoReflect() protoreflect.Message { return wireMessage{m: m} }
func (m *PidsResponse) Reset()                             { *m = PidsResponse{} }

func (m *ConnectRequest) ProtoReflect() protoreflect.Message { return wireMessage{m: m} }
func (m *ConnectRequest) Reset()                             { *m = ConnectRequest{} }

func (m *ConnectResponse) ProtoReflect() protoreflect.Message { return wireMessage{m: m} }
func (m *ConnectResponse) Reset()                             { *m = ConnectResponse{} }

func (m *ShutdownRequest) ProtoReflect() protoreflect.Message { return wireMessage{m: m} }
func (m *ShutdownRequest) Reset()                             { *m = ShutdownRequest{} }
func (m *ShutdownRequest) GetNow() bool {
	if m == nil {
		return false
	}
	return m.Now
}

func (m *ShutdownResponse) ProtoReflect() protoreflect.Message { return wireMessage{m: m} }
func (m *ShutdownResponse) Reset()                             { *m = ShutdownResponse{} }

func (m *ExecRequest) ProtoReflect() protoreflect.Message { return wireMessage{m: m} }
func (m *ExecRequest) Reset()                             { *m = ExecRequest{} }
func (m *ExecRequest) GetExecId() string {
	if m == nil {
		return ""
	}
	return m.ExecId
}
func (m *ExecRequest) GetProcess() []byte {
	if m == nil {
		return nil
	}
	return m.Process
}
func (m *ExecRequest) GetTerminal() bool {
	if m == nil {
		return false
	}
	return m.Terminal
}
func (m *ExecRequest) GetStdin() bool {
	if m == nil {
		return false
	}
	return m.Stdin
}
func (m *ExecRequest) GetDetach() bool {
	if m == nil {
		return false
	}
	return m.Detach
}

func (m *ExecResponse) ProtoReflect() protoreflect.Message { return wireMessage{m: m} }
func (m *ExecResponse) Reset()                             { *m = ExecResponse{} }

func (m *ExecStateRequest) ProtoReflect() protoreflect.Message { return wireMessage{m: m} }
func (m *ExecStateRequest) Reset()                             { *m = ExecStateRequest{} }
func (m *ExecStateRequest) GetExecId() string {
	if m == nil {
		return ""
	}
	return m.ExecId
}

func (m *ExecProcess) ProtoReflect() protoreflect.Message { return wireMessage{m: m} }
func (m *ExecProcess) Reset()                             { *m = ExecProcess{} }
func (m *ExecProcess) GetExecId() string {
	if m == nil {
		return ""
	}
	return m.ExecId
}
func (m *ExecProcess) GetTerminal() bool {
	if m == nil {
		return false
	}
	return m.Terminal
}

func (m *ListExecsRequest) ProtoReflect() protoreflect.Message { return wireMessage{m: m} }
func (m *ListExecsRequest) Reset()                             { *m = ListExecsRequest{} }

func (m *ListExecsResponse) ProtoReflect() protoreflect.Message { return wireMessage{m: m} }
func (m *ListExecsResponse) Reset()                             { *m = ListExecsResponse{} }

func (m *ResizeRequest) ProtoReflect() protoreflect.Message { return wireMessage{m: m} }
func (m *ResizeRequest) Reset()                             { *m = ResizeRequest{} }
func (m *ResizeRequest) GetExecId() string {
	if m == nil {
		return ""
	}
	return m.ExecId
}
func (m *ResizeRequest) GetRows() uint32 {
	if m == nil {
		return 0
	}
	return m.Rows
}
func (m *ResizeRequest) GetCols() uint32 {
	if m == nil {
		return 0
	}
	return m.Cols
}

func (m *ResizeResponse) ProtoReflect() protoreflect.Message { return wireMessage{m: m} }
func (m *ResizeResponse) Reset()                             { *m = ResizeResponse{} }

func (m *StacksRequest) ProtoReflect() protoreflect.Message { return wireMessage{m: m} }
func (m *StacksRequest) Reset()                             { *m = StacksRequest{} }

func (m *StacksResponse) ProtoReflect() protoreflect.Message { return wireMessage{m: m} }
func (m *StacksResponse) Reset()                             { *m = StacksResponse{} }
