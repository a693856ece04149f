// Package api is the daemon's control API: HTTP with JSON bodies on a Unix
// socket, as Docker's Engine API is. A runtime or tool that keeps one
// connection attaches and detaches containers without starting a process per
// container, and without loading or checking the pinned datapath each time
// (the daemon holds it open): that is most of what an `ebpfnet attach`
// costs (bench: "where an ebpfnet command's time goes").
//
//	GET    /v1/ping               "OK"
//	GET    /v1/endpoints          []datapath.Endpoint, sorted by name
//	GET    /v1/endpoints/{name}   datapath.EndpointDetail (name, netns or PID)
//	POST   /v1/endpoints          AttachRequest -> 201, datapath.Endpoint
//	DELETE /v1/endpoints/{name}   -> 200, the detached datapath.Endpoint
//
// Errors are {"message": "..."} with 400 for a request that is malformed or
// invalid (nothing was changed), 404 for an endpoint, network or target
// namespace that does not exist, 409 for an endpoint name or a target
// already in use (nothing was changed) and 500 for the rest, as Docker
// answers.
// With step timing on (the daemon started with EBPFNET_STEP_TIMES set) each
// answer to a POST or DELETE carries the header Ebpfnet-Steps: the JSON
// object of the request's step times in microseconds, as the CLI prints
// them.
package api

import (
	"github.com/ebpfnet/ebpfnet/datapath"
)

// Version is the path prefix of this version of the API.
const Version = "/v1"

// StepsHeader carries a request's step times (see the package comment).
const StepsHeader = "Ebpfnet-Steps"

// AttachRequest is `ebpfnet attach` as JSON: the same fields with the flags'
// grammar.
type AttachRequest struct {
	// Target is the network namespace: a name under /run/netns, a path or
	// a PID, as the daemon's mount namespace sees it.
	Target string `json:"target"`
	// Name is the endpoint's name; empty: derived from Target.
	Name string `json:"name,omitempty"`
	// Network is Docker's --network: bridge (the default), none, or a
	// network's name.
	Network string `json:"network,omitempty"`
	IP      string `json:"ip,omitempty"`
	// IP6 is the IPv6 address on a dual-stack network (--ip6); empty:
	// the next free one.
	IP6 string `json:"ip6,omitempty"`
	// Publish are Docker's -p specs, [IP:]HOSTPORT[-END]:CPORT[-END][/PROTO].
	Publish    []string `json:"publish,omitempty"`
	Aliases    []string `json:"aliases,omitempty"`
	DNS        []string `json:"dns,omitempty"`
	ExtraHosts []string `json:"extra_hosts,omitempty"`
}

// Error is an answer other than success.
type Error struct {
	Status  int    `json:"-"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

// Endpoint and EndpointDetail are datapath's, on the wire as JSON.
type (
	Endpoint       = datapath.Endpoint
	EndpointDetail = datapath.EndpointDetail
)
