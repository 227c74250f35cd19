// Package supervisor will hold container records (bbolt), the lifecycle
// state machine, OCI spec generation, shim lifecycle and restart policies
// (see ../shared/ARCHITECTURE.md, steps 3 and 4). It never speaks HTTP.
package supervisor
