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
// Not enveloped: GET /v1/_ping ("OK"), the plain-text logs, and the NDJSON
// streams. A stream's status line goes out with its first byte, so an error
// before that (no such container, image not found) still gets its status code
// and envelope; after it, the error can only end the stream (see the routes).
// Every stream is flushed per line, and ends when the client goes away: the
// request's context, which every Backend call receives, is then cancelled.
// Handler.Shutdown (registered with http.Server.RegisterOnShutdown) ends the
// requests that last as long as their client wants — events and followed
// logs end cleanly (the chunked response's end: the client reads EOF), a
// wait answers 503 — while other requests in flight finish.
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
//	POST   /v1/containers/{id}/actions/exec   501 for now
//	DELETE /v1/containers/{id}/actions/delete?force=1        → {"id"}
//
//	POST   /v1/images                         PullImageRequest → PullResult; NDJSON progress with Accept: application/x-ndjson
//	GET    /v1/images                         []ImageSummary
//	DELETE /v1/images?force=1                 {"image"} → {"image"}
//	GET    /v1/images/status?image=REF        ImageStatus
//	GET    /v1/images/fs                      {"usedBytes"}
//	POST   /v1/images/import                  tarball body → []ImageSummary; NDJSON progress as for a pull
//
// {id} is the full id, a unique prefix of at least 4 characters, or the
// name; the backend resolves it.
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
//     image, no port entries (port publishing does not exist yet: 400 saying
//     so), tty not true (terminals do not exist yet: 400 saying so), not the
//     name "stats" — and leaves the container's configuration (restart
//     policy, network, resources, labels, mounts, env, name syntax, the image
//     reference) to the backend, whose invalid-argument errors are 400s too.
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
//   - start's {"tty":false}, which the Raind CLI always sends, is accepted;
//     {"tty":true} (raind run -t) is a 400 saying that terminals are not
//     supported yet, as tty:true at create is.
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
