// Package rest will serve the Raind v1 REST contract on httprouter and map
// errdefs kinds to HTTP status codes in one place (step 4).
package rest
