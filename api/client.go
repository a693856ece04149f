package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
)

// Client talks to a daemon's API socket over one kept-alive connection
// (more when called concurrently).
type Client struct {
	http *http.Client
	mu   sync.Mutex
	// steps is the Ebpfnet-Steps header of the last answer.
	steps string
}

// LastSteps is the step times the daemon sent with its last answer to a
// change (JSON, microseconds), if it times steps.
func (c *Client) LastSteps() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.steps
}

// NewClient is a client of the daemon listening on the Unix socket path.
func NewClient(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConnsPerHost: 4,
	}
	return &Client{http: &http.Client{Transport: tr}}
}

// Close drops the kept-alive connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Ping checks the daemon answers.
func (c *Client) Ping(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/ping", nil, nil)
}

// Attach attaches a network namespace, as `ebpfnet attach` does.
func (c *Client) Attach(ctx context.Context, req AttachRequest) (Endpoint, error) {
	var ep Endpoint
	return ep, c.do(ctx, http.MethodPost, "/endpoints", req, &ep)
}

// Detach detaches an endpoint (its name, netns or PID).
func (c *Client) Detach(ctx context.Context, target string) (Endpoint, error) {
	var ep Endpoint
	return ep, c.do(ctx, http.MethodDelete, "/endpoints/"+url.PathEscape(target), nil, &ep)
}

// Endpoints lists the endpoints, sorted by name.
func (c *Client) Endpoints(ctx context.Context) ([]Endpoint, error) {
	var eps []Endpoint
	return eps, c.do(ctx, http.MethodGet, "/endpoints", nil, &eps)
}

// Inspect shows one endpoint with its program and counters.
func (c *Client) Inspect(ctx context.Context, target string) (EndpointDetail, error) {
	var d EndpointDetail
	return d, c.do(ctx, http.MethodGet, "/endpoints/"+url.PathEscape(target), nil, &d)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		raw, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(raw)
	}
	// The host part is a placeholder: the transport dials the socket.
	req, err := http.NewRequestWithContext(ctx, method, "http://ebpfnet"+Version+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if method != http.MethodGet {
		c.mu.Lock()
		c.steps = resp.Header.Get(StepsHeader)
		c.mu.Unlock()
	}
	if resp.StatusCode/100 != 2 {
		e := &Error{Status: resp.StatusCode}
		if json.NewDecoder(resp.Body).Decode(e) != nil || e.Message == "" {
			e.Message = fmt.Sprintf("%s %s: %s", method, path, resp.Status)
		}
		return e
	}
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
