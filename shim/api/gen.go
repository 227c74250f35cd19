// Package api is the shim's ttrpc API (condenser.shim.v1), generated from
// shim.proto with protoc-gen-go and protoc-gen-go-ttrpc: run `make proto`.
package api

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-ttrpc_out=. --go-ttrpc_opt=paths=source_relative shim.proto
