// Package api is the contract between the daemon and condenser-shim, in
// both of its forms:
//
//   - the ttrpc API (condenser.shim.v1) of shim.proto: its service code
//     generated with protoc-gen-go-ttrpc (run `make proto`; the generated
//     code is committed), its messages written by hand and encoding
//     themselves (messages.go, wire.go; protoc-gen-go's code for them is
//     generated into pbref, for the tests only), and its error codec:
//     ToStatus in the shim and FromStatus in the client carry an
//     internal/errdefs kind across the connection;
//   - the bundle on disk: the files the shim keeps there (ExitFile,
//     PidFile, SocketFile, LockFile, LogFile), the exit status (Exit,
//     ReadExit), and what `condenser-shim delete` prints
//     (FormatDeleteOutput, ParseDeleteOutput).
//
// It is imported by both sides, so it links neither the runtime drivers,
// the reaper, the log writer nor the cgroup code of the shim.
package api

//go:generate protoc --go_out=pbref --go_opt=paths=source_relative,Mshim.proto=github.com/raind/condenser/shim/api/pbref;pbref --go-ttrpc_out=. --go-ttrpc_opt=paths=source_relative shim.proto
