package datapath

import (
	"cmp"
	"fmt"
	"strings"
)

// Container names. A runtime that keys endpoints by its own IDs (Docker's
// endpoint IDs) leaves users reading short hex IDs they never typed, in
// ls, in errors and in metrics. A front end that can ask the runtime which
// container owns an endpoint records the container's name on it
// (SetContainerName); ebpfnet then shows that name where users read
// endpoints and takes it where they name one, as `docker ps` and the
// docker CLI do. The endpoint's own name stays its key.

// DisplayName is what users know the endpoint as: its container's name
// when a front end learned it, else the endpoint's name.
func (e Endpoint) DisplayName() string { return cmp.Or(e.ContainerName, e.Name) }

// describe names the endpoint in messages: "container web" when its
// container's name is known, else "endpoint NAME".
func (e Endpoint) describe() string {
	if e.ContainerName != "" {
		return "container " + e.ContainerName
	}
	return "endpoint " + e.Name
}

// SetContainerName records name as the container name of the endpoint
// whose owner (PrepareOptions.Owner, a runtime's key) is owner. An
// endpoint that is gone is ErrNotFound; an unchanged name is not written
// again, so a front end may repeat itself (at every start) for free.
func (i *Instance) SetContainerName(owner, name string) error {
	if err := validContainerName(name); err != nil {
		return err
	}
	if !i.hasState() {
		return notFoundf("no endpoint for %s", owner)
	}
	return i.withStore(func(st *store) error {
		ep, ok, err := endpointFor(st, owner, "")
		if err != nil {
			return err
		}
		if !ok {
			return notFoundf("no endpoint for %s", owner)
		}
		if ep.ContainerName == name {
			return nil
		}
		ep.ContainerName = name
		return st.putEndpoint(ep)
	})
}

// validContainerName accepts what Docker accepts as a container name
// ([a-zA-Z0-9][a-zA-Z0-9_.-]*), and a Kubernetes pod's namespace/name (two
// such names, which DNS-1123 names always are), so nothing a runtime
// passes can put control characters or spaces into ls's columns.
func validContainerName(name string) error {
	if name == "" || len(name) > 255 {
		return fmt.Errorf("invalid container name %q: must be 1-255 characters", name)
	}
	namespace, pod, isPod := strings.Cut(name, "/")
	if isPod && (!dockerName(namespace) || !dockerName(pod)) || !isPod && !dockerName(name) {
		return fmt.Errorf("invalid container name %q: use letters, digits, '-', '_' and '.' (a pod: namespace/name)", name)
	}
	return nil
}

// dockerName reports whether s matches [a-zA-Z0-9][a-zA-Z0-9_.-]*.
func dockerName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || (i > 0 && (r == '-' || r == '_' || r == '.'))
		if !ok {
			return false
		}
	}
	return true
}

// endpointByContainerName finds the endpoint of the container called
// name. A container on two networks has two endpoints: then the name is
// ambiguous and the error lists the endpoints' own names to use instead.
func endpointByContainerName(st *store, name string) (Endpoint, bool, error) {
	eps, err := st.endpoints()
	if err != nil {
		return Endpoint{}, false, err
	}
	var found []Endpoint
	for _, e := range eps {
		if e.ContainerName == name {
			found = append(found, e)
		}
	}
	switch len(found) {
	case 0:
		return Endpoint{}, false, nil
	case 1:
		return found[0], true, nil
	}
	names := make([]string, len(found))
	for i, e := range found {
		names[i] = e.Name + " (network " + e.Network + ")"
	}
	return Endpoint{}, false, fmt.Errorf("container %s has %d endpoints: name one of %s", name, len(found), strings.Join(names, ", "))
}
