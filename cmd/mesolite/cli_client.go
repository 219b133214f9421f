package main

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
	"strings"
	"syscall"
)

// apiClient talks to the agent's Marathon API. Every request but the
// event stream has a timeout of requestTimeout.
type apiClient struct {
	base   string // scheme://host[:port][/path], no trailing slash
	token  string
	http   *http.Client
	stream *http.Client // no timeout: the event stream
}

// clientTransport is the client's transport: nil, http.DefaultTransport,
// but in the tests, which check every answer against Marathon's schema.
var clientTransport http.RoundTripper

func newAPIClient(rawURL, token string) (*apiClient, error) {
	if rawURL == "" {
		rawURL = defaultURL
	}
	if !strings.Contains(rawURL, "://") {
		rawURL = "http://" + rawURL
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("invalid agent URL %q: %w", rawURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("invalid agent URL %q: want http://HOST:PORT", rawURL)
	}
	u.RawQuery, u.Fragment = "", ""
	return &apiClient{
		base:   strings.TrimSuffix(u.String(), "/"),
		token:  token,
		http:   &http.Client{Timeout: requestTimeout, Transport: clientTransport},
		stream: &http.Client{Transport: clientTransport},
	}, nil
}

// apiError is an answer of the API other than 2xx.
type apiError struct {
	Status      int
	Method, URL string
	Message     string
	Details     json.RawMessage // 422: [{path, errors}]; 400: a string
	Deployments []string        // 409: the deployments that lock the app
}

func (e *apiError) Error() string { return e.Message }

// detailLines renders Marathon's details: "path: error" per error, or
// the details string of a 400.
func (e *apiError) detailLines() []string {
	if len(e.Details) == 0 {
		return nil
	}
	var s string
	if json.Unmarshal(e.Details, &s) == nil {
		if s == "" {
			return nil
		}
		return strings.Split(strings.TrimSpace(s), "\n")
	}
	var list []struct {
		Path   string   `json:"path"`
		Errors []string `json:"errors"`
	}
	if json.Unmarshal(e.Details, &list) != nil {
		return []string{string(e.Details)}
	}
	var out []string
	for _, d := range list {
		for _, msg := range d.Errors {
			out = append(out, d.Path+": "+msg)
		}
	}
	return out
}

// unreachableError: no HTTP answer from the agent at all.
type unreachableError struct {
	URL   string
	Cause string
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("cannot reach the agent at %s (%s): start one with 'make run' or 'mesolite agent', or set --url / MESOLITE_URL", e.URL, e.Cause)
}

// timeoutError: the agent took longer than the request timeout.
type timeoutError struct {
	Method, URL string
}

func (e *timeoutError) Error() string {
	return fmt.Sprintf("the agent did not answer %s %s within %s; it may be busy (see its log)", e.Method, e.URL, requestTimeout)
}

// transportError classifies an error of the HTTP client.
func (a *apiClient) transportError(ctx context.Context, method, u string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &timeoutError{Method: method, URL: u}
	}
	var (
		dns *net.DNSError
		op  *net.OpError
	)
	cause := err.Error()
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		cause = "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		cause = "connection reset"
	case errors.As(err, &dns):
		cause = "cannot resolve " + dns.Name
	case errors.As(err, &op) && op.Err != nil:
		cause = op.Err.Error()
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		cause = "connection closed without an answer"
	default:
		var ue *url.Error
		if errors.As(err, &ue) {
			cause = ue.Err.Error()
		}
	}
	return &unreachableError{URL: a.base, Cause: cause}
}

// newRequest builds a request for path (already escaped) and query.
func (a *apiClient) newRequest(ctx context.Context, method, path string, q url.Values, body []byte) (*http.Request, error) {
	u := a.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("build request %s %s: %w", method, u, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "mesolite-cli/"+version)
	if a.token != "" {
		req.Header.Set("Authorization", "token="+a.token)
	}
	return req, nil
}

// do sends a request and returns the body of a 2xx answer, or an
// *apiError, *unreachableError or *timeoutError.
func (a *apiClient) do(ctx context.Context, method, path string, q url.Values, body []byte) ([]byte, http.Header, error) {
	req, err := a.newRequest(ctx, method, path, q, body)
	if err != nil {
		return nil, nil, err
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, nil, a.transportError(ctx, method, req.URL.String(), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, a.transportError(ctx, method, req.URL.String(), err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, nil, a.responseError(req, resp, b)
	}
	return b, resp.Header, nil
}

// responseError turns a non-2xx answer into an *apiError.
func (a *apiClient) responseError(req *http.Request, resp *http.Response, body []byte) error {
	e := &apiError{Status: resp.StatusCode, Method: req.Method, URL: req.URL.String()}
	var m struct {
		Message     *string         `json:"message"`
		Details     json.RawMessage `json:"details"`
		Deployments []struct {
			ID string `json:"id"`
		} `json:"deployments"`
	}
	if json.Unmarshal(body, &m) == nil && m.Message != nil {
		e.Message, e.Details = *m.Message, m.Details
		for _, d := range m.Deployments {
			e.Deployments = append(e.Deployments, d.ID)
		}
	} else {
		text := strings.TrimSpace(string(body))
		if len(text) > 200 {
			text = text[:200] + "…"
		}
		e.Message = fmt.Sprintf("HTTP %s from %s %s", resp.Status, req.Method, req.URL.Path)
		if text != "" {
			e.Message += ": " + text
		}
	}
	if resp.StatusCode == http.StatusUnauthorized {
		if a.token != "" {
			e.Message = "the agent refused the token in MESOLITE_TOKEN: " + e.Message
		} else {
			e.Message += " (the agent requires a token: set MESOLITE_TOKEN)"
		}
	}
	return e
}

// getJSON decodes the answer of a GET into out.
func (a *apiClient) getJSON(ctx context.Context, path string, q url.Values, out any) error {
	b, _, err := a.do(ctx, http.MethodGet, path, q, nil)
	if err != nil {
		return err
	}
	return decodeAnswer(b, path, out)
}

func decodeAnswer(b []byte, path string, out any) error {
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode the answer of %s: %w", path, err)
	}
	return nil
}

// isStatus reports whether err is an API answer with that status.
func isStatus(err error, status int) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Status == status
}

// writeJSON prints raw JSON indented by two spaces.
func writeJSON(w io.Writer, raw []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return fmt.Errorf("format JSON: %w", err)
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// writeJSONValue prints v as JSON indented by two spaces.
func writeJSONValue(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	return writeJSON(w, b)
}

// userError is a message for the user, printed as is after "Error: ".
// Some keep the DC/OS CLI's capitalised wording.
type userError struct{ msg string }

func (e *userError) Error() string { return e.msg }

func userErrorf(format string, a ...any) error {
	return &userError{msg: fmt.Sprintf(format, a...)}
}
