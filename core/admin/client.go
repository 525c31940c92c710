package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"syscall"

	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/core/queue"
)

// Client talks to a running server's admin socket.
type Client struct {
	socket string
	http   *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(socket string) *Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}
	return &Client{socket: socket, http: &http.Client{Transport: tr}}
}

// List returns every queued message, reading the queue page by page.
func (c *Client) List(ctx context.Context) ([]mail.Envelope, error) {
	var out []mail.Envelope
	o := queue.ListOptions{Limit: queue.MaxPageLimit}
	for {
		p, err := c.Page(ctx, o)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Messages...)
		if p.Next == "" {
			return out, nil
		}
		o.After = p.Next
	}
}

// Page returns one page of the queue: at most o.Limit messages after
// o.After that pass o's filters (o.Match is not sent).
func (c *Client) Page(ctx context.Context, o queue.ListOptions) (queue.Page, error) {
	v := url.Values{}
	for k, s := range map[string]string{"after": o.After, "state": o.State, "sender": o.Sender, "rcpt": o.Rcpt, "domain": o.Domain} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if o.Limit != 0 {
		v.Set("limit", strconv.Itoa(o.Limit))
	}
	var p queue.Page
	path := "/queue"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	return p, c.do(ctx, http.MethodGet, path, &p)
}

// Stats returns the queue's counts by state and destination domain, with
// at most top domains (0: all).
func (c *Client) Stats(ctx context.Context, top int) (queue.Stats, error) {
	var st queue.Stats
	return st, c.do(ctx, http.MethodGet, "/queue/stats?top="+strconv.Itoa(top), &st)
}

// Show returns one message's envelope and headers.
func (c *Client) Show(ctx context.Context, id string) (*Detail, error) {
	var out Detail
	if err := c.do(ctx, http.MethodGet, "/queue/"+url.PathEscape(id), &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Plugins lists the running server's plugins with their statistics.
func (c *Client) Plugins(ctx context.Context) ([]filter.PluginInfo, error) {
	var out []filter.PluginInfo
	return out, c.do(ctx, http.MethodGet, "/plugins", &out)
}

// Submit queues a message for local submission and returns its queue ID.
func (c *Client) Submit(ctx context.Context, sub Submission) (string, error) {
	body, err := json.Marshal(sub)
	if err != nil {
		return "", err
	}
	var out struct {
		ID string `json:"id"`
	}
	if err := c.doBody(ctx, http.MethodPost, "/submit", bytes.NewReader(body), &out); err != nil {
		return "", err
	}
	return out.ID, nil
}

// Flush makes every queued message due now.
func (c *Client) Flush(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/queue/flush", nil)
}

// FlushDomain makes due now the messages with a pending recipient in
// domain (case-insensitive).
func (c *Client) FlushDomain(ctx context.Context, domain string) error {
	return c.do(ctx, http.MethodPost, "/queue/flush?domain="+url.QueryEscape(domain), nil)
}

// Bounce fails every pending recipient of message id at once ("bounced by
// the administrator"), sends the sender one DSN and removes the message.
func (c *Client) Bounce(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodPost, "/queue/"+url.PathEscape(id)+"/bounce", nil)
}

// Hold keeps a message from delivery until Release.
func (c *Client) Hold(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodPost, "/queue/"+url.PathEscape(id)+"/hold", nil)
}

// Release makes a held message due now.
func (c *Client) Release(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodPost, "/queue/"+url.PathEscape(id)+"/release", nil)
}

// Remove deletes a message from the queue without delivering it.
func (c *Client) Remove(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/queue/"+url.PathEscape(id), nil)
}

func (c *Client) do(ctx context.Context, method, path string, out any) error {
	return c.doBody(ctx, method, path, nil, out)
}

func (c *Client) doBody(ctx context.Context, method, path string, in io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://sluice"+path, in)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("no server answers on %s: is `sluice serve` running with this data directory?", c.socket)
		}
		return fmt.Errorf("admin socket %s: %w", c.socket, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e apiError
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("admin socket: %s", resp.Status)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(body, out)
}
