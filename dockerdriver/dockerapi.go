package dockerdriver

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// DockerAPI is the little of dockerd's Engine API the driver reads: which
// container owns an endpoint, for its name. It is net/http with a dialer
// for unix sockets rather than Docker's client module: one GET does not
// justify that module's dependency tree.
type DockerAPI struct {
	host   string // as given, for messages
	base   string // URL prefix of every request
	client *http.Client
}

// apiTimeout bounds one request: a dockerd that hangs must not hold the
// name lookup (nor the plugin's shutdown) for long.
const apiTimeout = 5 * time.Second

// DefaultDockerHost is where the docker CLI finds dockerd: $DOCKER_HOST,
// else dockerd's default socket.
func DefaultDockerHost() string {
	return cmp.Or(os.Getenv("DOCKER_HOST"), "unix:///var/run/docker.sock")
}

// NewDockerAPI returns a client of the dockerd at host, written as
// DOCKER_HOST is: unix:///path or tcp://HOST:PORT (plain HTTP: TLS
// settings are not read).
func NewDockerAPI(host string) (*DockerAPI, error) {
	scheme, addr, ok := strings.Cut(host, "://")
	addr = strings.TrimSuffix(addr, "/")
	if !ok || addr == "" {
		return nil, fmt.Errorf("invalid Docker host %q: want unix:///PATH or tcp://HOST:PORT", host)
	}
	tr := &http.Transport{MaxIdleConns: 1, IdleConnTimeout: 30 * time.Second}
	base := "http://" + addr
	switch scheme {
	case "unix":
		var d net.Dialer
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", addr)
		}
		base = "http://docker" // any host: the dialer ignores it
	case "tcp", "http":
	default:
		return nil, fmt.Errorf("unsupported Docker host %q: want unix:///PATH or tcp://HOST:PORT (without TLS)", host)
	}
	return &DockerAPI{host: host, base: base, client: &http.Client{Transport: tr, Timeout: apiTimeout}}, nil
}

// Host is the address the client was made for.
func (a *DockerAPI) Host() string { return a.host }

// containerSummary is what is read of each item of GET /containers/json.
type containerSummary struct {
	Names           []string
	NetworkSettings struct {
		Networks map[string]struct{ EndpointID string }
	}
}

// EndpointContainers maps the endpoint ID of each network of each
// container (running or not) to the container's name, from one
// GET /containers/json?all=1. dockerd lists containers without locking
// each one, but call it from no driver request: see names.go.
func (a *DockerAPI) EndpointContainers(ctx context.Context) (map[string]string, error) {
	var list []containerSummary
	if err := a.get(ctx, "/containers/json?all=1", &list); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, c := range list {
		name := containerName(c.Names)
		if name == "" {
			continue
		}
		for _, n := range c.NetworkSettings.Networks {
			if n.EndpointID != "" {
				out[n.EndpointID] = name
			}
		}
	}
	return out, nil
}

// containerName is the name docker ps shows of Names: the first without
// its leading "/" that is not a legacy link's alias ("/other/alias").
func containerName(names []string) string {
	for _, n := range names {
		n = strings.TrimPrefix(n, "/")
		if n != "" && !strings.Contains(n, "/") {
			return n
		}
	}
	return ""
}

// maxAPIResponse bounds what is read of an answer (thousands of
// containers take a few MB).
const maxAPIResponse = 64 << 20

func (a *DockerAPI) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return fmt.Errorf("docker API at %s: %w", a.host, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAPIResponse))
	if err != nil {
		return fmt.Errorf("docker API at %s: GET %s: %w", a.host, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("docker API at %s: GET %s: %s: %.200s", a.host, path, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("docker API at %s: GET %s: %w", a.host, path, err)
	}
	return nil
}
