// Package rest serves the Raind v1 REST contract (../shared/api/raind-v1.md)
// on julienschmidt/httprouter. It is the HTTP layer only: it decodes and
// checks requests, calls a Backend (the interface it owns, implemented by
// internal/backend over the supervisor and the image store), and writes
// responses. It holds no container logic. The wire types — request bodies,
// the envelope, every response's data — are in rest/api, which clients
// import instead of this package.
//
// # Responses
//
// Every JSON response is an api.Envelope, {"status":"success"|"fail",
// "message":…,"data":…}, written by one wrapper: handlers return a reply or
// an error. Successes are 200 (creation included: the Raind CLI accepts 200
// and 202). Errors map to status codes in one place (statusOf), by their
// internal/errdefs kind:
//
//	ErrInvalidArgument                400
//	ErrPermissionDenied               403
//	ErrNotFound                       404
//	ErrAlreadyExists, ErrConflict     409
//	body over 1 MiB                   413
//	ErrNotImplemented                 501
//	ErrUnavailable                    503
//	ErrResourceExhausted (disk full)  507
//	anything else (ErrDataLoss too)   500
//
// For a 500 the client reads a generic "internal error (request N)" and the
// log has the detail under the same N; panics are recovered the same way
// (the stack goes to the log, never to the client). Unknown routes are an
// enveloped 404, a wrong method an enveloped 405 with an Allow header;
// OPTIONS answers 204 with Allow, and a path with a trailing slash is
// redirected to the one without.
//
// Request bodies are JSON, unknown fields are rejected (400), and bodies over
// 1 MiB get 413. A body is optional where the contract has none (start,
// stop, kill, restart, wait, delete): empty or {} is accepted. The import body
// is the exception: it is streamed to the backend with no limit but the
// request's context.
//
// Not enveloped: GET /v1/_ping ("OK"), the plain-text logs, the NDJSON
// streams and, once upgraded, the WebSocket sessions (see below). A stream's status line goes out with its first byte, so an error
// before that (no such container, image not found) still gets its status code
// and envelope; after it, the error can only end the stream (see the routes).
// Every stream is flushed per line, and ends when the client goes away: the
// request's context, which every Backend call receives, is then cancelled.
// Handler.Shutdown (registered with http.Server.RegisterOnShutdown) ends the
// requests that last as long as their client wants — events and followed
// logs end cleanly (the chunked response's end: the client reads EOF), a
// wait answers 503, WebSocket sessions close with 1001 — while other
// requests in flight finish. http.Server.Shutdown does not wait for the
// sessions (their connections are hijacked): Handler.Wait does.
//
// # Routes
//
// The types named are rest/api's.
//
//	GET    /v1/_ping                          "OK" (also HEAD)
//	GET    /v1/version                        VersionInfo
//	GET    /v1/info                           SystemInfo
//	GET    /v1/events                         NDJSON stream of Event, until the client goes away
//
//	POST   /v1/containers                     CreateContainerRequest → {"id"}
//	GET    /v1/containers?all=&label=K=V      []ContainerSummary
//	GET    /v1/containers/{id}                ContainerDetail
//	GET    /v1/containers/{id}/stats          ContainerStats
//	GET    /v1/containers/stats               []ContainerStats (running containers)
//	GET    /v1/containers/{id}/log?tail_lines=N              plain text, last N lines (default 100)
//	GET    /v1/containers/{id}/logs?follow=&since=&timestamps=&stdout=&stderr=&tail=   plain text, streamed
//	POST   /v1/containers/{id}/actions/start  {"tty":…} optional → {"id"}
//	POST   /v1/containers/{id}/actions/stop?timeout=SECONDS   (default 10) → {"id"}
//	POST   /v1/containers/{id}/actions/kill?signal=SIG        (default KILL) → {"id"}
//	POST   /v1/containers/{id}/actions/restart?timeout=SECONDS → {"id"}
//	POST   /v1/containers/{id}/actions/wait   blocks until exit → {"exitCode"}
//	POST   /v1/containers/{id}/actions/exec   ExecRequest → {"id": exec id}; detach defaults to !tty
//	POST   /v1/containers/{id}/actions/resize?h=ROWS&w=COLS  the init's terminal → {"id"}
//	DELETE /v1/containers/{id}/actions/delete?force=1        → {"id"}
//	GET    /v1/containers/{id}/attach         WebSocket (Raind): the init's terminal, raw
//	GET    /v1/containers/{id}/exec/attach    WebSocket (Raind): the terminal of the newest exec process with one, raw
//
//	POST   /v1/containers/{id}/execs          ExecRequest → {"id": exec id}; detach defaults to false
//	GET    /v1/containers/{id}/execs          []ExecInfo, oldest first
//	GET    /v1/containers/{id}/execs/{exec}   ExecInfo
//	POST   /v1/containers/{id}/execs/{exec}/resize?h=ROWS&w=COLS → {"id": exec id}
//	GET    /v1/containers/{id}/stdio?stdin=1&detachKeys=…          WebSocket: the init's streams, in frames
//	GET    /v1/containers/{id}/execs/{exec}/stdio?stdin=1&detachKeys=…  WebSocket: an exec process's, in frames
//
//	POST   /v1/images                         PullImageRequest → PullResult; NDJSON progress with Accept: application/x-ndjson
//	GET    /v1/images                         []ImageSummary
//	DELETE /v1/images?force=1                 {"image"} → {"image"}
//	GET    /v1/images/status?image=REF        ImageStatus
//	GET    /v1/images/fs                      {"usedBytes"}
//	POST   /v1/images/import                  tarball body → []ImageSummary; NDJSON progress as for a pull
//
//	GET    /v1/networks                       []NetworkSummary
//	POST   /v1/networks                       CreateNetworkRequest → NetworkSummary
//	GET    /v1/networks/{name}                NetworkSummary
//	DELETE /v1/networks/{name}                → {"name"}
//
//	POST   /v1/policies, GET /v1/policies/{chain}, POST /v1/policies/commit,
//	POST   /v1/policies/revert, DELETE /v1/policies/{id}, POST /v1/policies/ns/mode,
//	GET    /v1/logs/netflow                   501: network policies are not implemented yet
//
// {id} is the full id, a unique prefix of at least 4 characters, or the
// name; the backend resolves it. {exec} is an exec process's id, as exec
// answered it.
//
// # Networks
//
// A container is on one network, named by create's "network": "raind0"
// (the default bridge, Raind's 10.166.0.0/24, also what "" means), "host"
// (the host's network namespace), "none" (loopback only) or a user-defined
// bridge network made with POST /v1/networks. create's "port" entries —
// the Raind CLI's HOST:CONTAINER[:tcp|udp] or Docker's
// [IP:]HOST:CONTAINER[/tcp|udp] — publish container ports on the host;
// the backend checks them (a malformed one is 400, a host port already
// taken 409), and the network, whether it exists included.
//
// While a container has its place on a bridge network (created or
// running), the summary's "address" is its IPv4 address ("" otherwise) and
// "forwards" its published ports ([] otherwise), each
// {"source": host port, "destination": container port, "protocol"} and,
// as an extension, "hostIp" when the port is published on one host address
// rather than all of them. The detail adds "networkSettings" (absent
// without a place): {"network", "address", "prefixLen", "gateway", "mac",
// "ports": [{"hostIp", "hostPort", "containerPort", "protocol"}]}, hostIp
// 0.0.0.0 (or ::) for all the host's addresses; its config keeps the
// create request's "network" and "ports" as they were asked.
//
// POST /v1/networks creates a user-defined bridge network,
// {"name", "subnet", "gateway"}: the name follows the rule of container
// names (else 400), subnet is a CIDR ("" picks a free /24) and gateway an
// address in it ("" its first); a bad or overlapping subnet is 400, a taken
// name 409. The answer is the network, as GET /v1/networks/{name} shows
// it: {"name", "driver" (bridge, host, null or cni), "bridge" (the Linux
// bridge), "subnet", "gateway", "builtIn", "containers" (their ids)}.
// GET of an unknown network is 404. DELETE /v1/networks/{name} refuses a
// network a container is on (409) and the built-in ones, raind0, host and
// none (400).
//
// # Exec processes, attach and terminals
//
// A container created with tty has a pseudo-terminal, held by its shim
// with its other streams; openStdin gives one without a terminal a stdin
// pipe that attached clients write to. POST …/actions/exec and
// POST …/execs start a process in a running container (else 409; an
// empty command is 400; the command line, env, user and workdir are the
// supervisor's to judge). Unless detached, the process's output is held
// (the process waits once the hold is full) until a client attaches, so
// that nothing is lost; a detached one has no standard streams. The Raind
// contract's exec detaches unless tty — the Raind CLI attaches only to a
// terminal —, Condenser's does not unless "detach":true. Start's tty is
// accepted and has no effect: the terminal is chosen at create.
//
// The attach endpoints are WebSockets (RFC 6455, github.com/coder/websocket)
// over the same connection. Everything that can fail does so before the
// upgrade, with a status and an envelope: a request that is not a
// WebSocket handshake over HTTP/1.1 (400), one from a web page of another
// origin (403: a browser's Origin must name this host; clients that send
// none pass), a bad query (400), an unknown container or exec process
// (404), a container that is stopped (409), on the Raind endpoints a
// process without a terminal (400), and a daemon shutting down (503). The
// backend is attached to first, the connection upgraded after.
//
// Frames are internal/frame's, [type u8][length u32 BE][payload]: towards
// the process Stdin (0), Resize (1: rows u16 BE, cols u16 BE), CloseStdin
// (2, no payload); from it Stdout (1), Stderr (2), Exit (3: the exit
// status, int32 BE, 128+n for signal n). The client's binary messages form
// one stream of frames: a message may hold several, a frame may span
// messages; a message is at most a frame's header and its largest payload
// (1 MiB), else 1009. A client that does not speak the protocol ends its
// session: an unknown frame type with 1003, a malformed frame (a resize
// payload not of 4 bytes, a close-stdin with one, a length over 1 MiB)
// with 1007. Each session relays with one goroutine per direction.
//
//   - Raind's attach and exec/attach: the client's frames go to the
//     terminal, its text messages are ignored; the terminal's bytes (the
//     Stdout frames' payloads, headers stripped) go to it in binary
//     messages. When the process exits the server closes with 1000
//     ("process exited"). exec/attach takes, among the container's exec
//     processes, the newest that has a terminal and runs (none: 400).
//   - Condenser's stdio, for the init (created or running) or an exec
//     process, with or without a terminal: frames both ways, one frame per
//     server message; a text message is 1003. stdin=1 makes the client's
//     input the process's (default: it is dropped; resizes go on). After
//     the Exit frame the server closes with 1000 "process exited".
//     detachKeys (Docker's syntax: comma-separated keys, each a single
//     character or ctrl-<a-z, @, [, \, ], ^ or _>; default ctrl-p,ctrl-q;
//     empty: none; a bad spec is 400) are looked for in the client's stdin
//     frames, stdin=1 or not: typed out, they end the session with 1000
//     "detached" — the bytes before them are delivered, those after are
//     not. Bytes that may begin the sequence are held back and go on when
//     it turns out otherwise (or before a close-stdin), as Docker does.
//
// A client that closes, however it closes (the Raind CLI: 1001
// "detached"), detaches: the session closes its stream to the shim, never
// the process's stdin, and the container goes on. A stream that ends
// without its Exit frame is closed with 1011 ("lost the process's
// stream"). Handler.Shutdown closes every session with 1001 "daemon
// shutting down".
//
// # Choices where the contract is silent
//
//   - GET /v1/containers/stats and GET /v1/containers/:id cannot both be
//     routes: httprouter v1.3 panics when a static segment and a :param share a
//     position. Only /v1/containers/:id is registered, and it serves the stats
//     of every container when id is "stats". The name "stats" is therefore
//     refused at create (400); a container named so would still be reachable
//     by id, and its stats at /v1/containers/stats/stats.
//   - GET /v1/containers lists every container unless ?all=0 (the Raind CLI
//     calls it without ?all= and shows stopped containers). ?label=K=V
//     (repeatable) filters by label; ?label=K matches any value.
//   - Booleans in queries take 1/0, true/false, yes/no, on/off; a bare key
//     (?force) is true.
//   - Create checks only what the HTTP contract fixes — the body's shape, an
//     image, not the name "stats" — and leaves the container's configuration
//     (restart policy, network, published ports, resources, labels, mounts,
//     env, name syntax, the image reference, tty and openStdin) to the
//     backend, whose invalid-argument errors are 400s too.
//     entrypoint absent keeps the image's, [] clears it.
//   - A container's exit status: GET /v1/containers/{id} has exitCode (the
//     last run's status, 128+n for signal n) once the container has exited.
//     When a container stopped without its status being known — its shim
//     was killed or crashed, taking the status with it (the daemon notices
//     at once, or at its next start, kills what is left of the container
//     and cleans up) — it is "stopped" with exitCode -1 (api.ExitUnknown)
//     and an "error" saying why, like Docker's State.Error; Docker shows 255
//     there, which a process can also exit with. POST …/actions/wait
//     answers -1 too, and the "die" event has exitCode -1. Such a container
//     can be started again or deleted like any stopped one.
//   - start's {"tty":…}, which the Raind CLI always sends (true with
//     raind run -t), is accepted either way and has no effect.
//   - httprouter: GET /v1/containers/:id/exec/attach (Raind's) and
//     GET /v1/containers/:id/execs/:exec share no position with a :param,
//     so both are routes; so are …/execs and …/execs/:exec.
//   - POST …/actions/resize and …/execs/{exec}/resize take h (rows) and w
//     (columns), both required, 0-65535 (else 400); a process without a
//     terminal is 409. The answer's id is the container's full id, or the
//     exec process's.
//   - GET …/execs of a container that does not run is [] (its exec
//     processes went with it); GET …/execs/{exec} of one is 404.
//   - kill's signal is a name with or without SIG, any case, or a number.
//   - logs: since is RFC 3339, Unix seconds[.fraction] or a duration back
//     from now (10m); stdout/stderr default to both when neither is given;
//     tail (extension) is a count or "all" (the default); timestamps=1
//     prefixes each line with its RFC 3339 time, fixed-width nanoseconds.
//     With follow=1 the container is resolved first (so that an unknown one
//     is a 404), then the headers are sent at once and the log is followed by
//     id until the container has stopped and its log is drained, or the
//     client goes away.
//   - Pull and import with Accept: application/x-ndjson: one PullProgress
//     per line and, once a line has gone out, the envelope as the last line
//     (status 200 already sent; the envelope says whether it worked). A
//     failure before any progress is an ordinary enveloped response with its
//     own status code, and so is a success with no progress at all.
//   - DELETE /v1/images also takes ?image=REF for clients that cannot send a
//     body with DELETE.
//   - Streams lift the server's write deadline; a panic after a stream has
//     started cuts the connection, so the client sees a broken stream, not a
//     clean end.
package rest
