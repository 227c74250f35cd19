// Package docker serves the Docker Engine API (the subset the docker CLI,
// docker-py and Compose use) over the same supervisor and image store as
// the Raind API, so that a container made with `docker run` is the one the
// Raind CLI and condenserctl show.
//
// It advertises API version 1.50 (the docker CLI 28's) and serves both
// versioned (/v1.NN/…) and unversioned paths. Types are
// github.com/moby/moby/api's; where API 1.52 dropped fields that clients at
// 1.50 still read (the legacy NetworkSettings fields, events'
// status/id/from), the handlers add them.
//
// Errors are Docker's: {"message": …} with Content-Type application/json,
// the status from the error's kind (internal/errdefs; see statusOf), and
// Docker's words where clients look for them ("No such container: x").
// Attach and exec start hijack the connection (101 UPGRADED when the
// client asked for Upgrade: tcp): raw bytes with a terminal, else 8-byte
// framed stdout/stderr.
package docker
