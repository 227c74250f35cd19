// Package shim will hold the per-container ttrpc shim: its API (shim/api),
// server, OCI runtime drivers, reaper, log writer and stats, and the client
// the supervisor uses (step 2). It must not import imagestore or rest.
package shim
