package imagestore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/raind/condenser/internal/errdefs"
)

// registries knows how to reach a registry: its mirrors, whether it speaks
// plain HTTP, and its credentials.
type registries struct {
	mirrors   map[string][]string // registry → mirror hosts
	insecure  map[string]bool     // hosts reached over plain HTTP
	keychain  authn.Keychain
	base      http.RoundTripper
	userAgent string
}

func newRegistries(o Options) (*registries, error) {
	r := &registries{
		mirrors:   map[string][]string{},
		insecure:  map[string]bool{},
		keychain:  o.Keychain,
		base:      o.Transport,
		userAgent: o.UserAgent,
	}
	for _, h := range o.Insecure {
		if h == "" || strings.ContainsAny(h, "/ ") {
			return nil, fmt.Errorf("insecure registry %q: want host[:port]: %w", h, errdefs.ErrInvalidArgument)
		}
		r.insecure[h] = true
	}
	for reg, eps := range o.Mirrors {
		if reg == "" || strings.ContainsAny(reg, "/ ") {
			return nil, fmt.Errorf("registry mirror for %q: want a registry host: %w", reg, errdefs.ErrInvalidArgument)
		}
		if reg == name.DefaultRegistry {
			reg = dockerHub
		}
		for _, ep := range eps {
			host, insecure, err := parseEndpoint(ep)
			if err != nil {
				return nil, fmt.Errorf("registry mirror %s=%s: %w", reg, ep, err)
			}
			if insecure {
				r.insecure[host] = true
			}
			r.mirrors[reg] = append(r.mirrors[reg], host)
		}
	}
	if r.base == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 16
		r.base = t
	}
	r.base = transport.NewRetry(r.base)
	if r.userAgent == "" {
		r.userAgent = "condenser"
	}
	r.base = transport.NewUserAgent(r.base, r.userAgent)
	return r, nil
}

// parseEndpoint takes "http://host:port", "https://host" or "host[:port]".
func parseEndpoint(ep string) (host string, insecure bool, err error) {
	if !strings.Contains(ep, "://") {
		ep = "https://" + ep
	}
	u, err := url.Parse(ep)
	if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return "", false, fmt.Errorf("want http://host[:port] or https://host[:port]: %w", errdefs.ErrInvalidArgument)
	}
	switch u.Scheme {
	case "http":
		return u.Host, true, nil
	case "https":
		return u.Host, false, nil
	}
	return "", false, fmt.Errorf("scheme %q: want http or https: %w", u.Scheme, errdefs.ErrInvalidArgument)
}

// endpoint is one place to pull a repository from.
type endpoint struct {
	repo   name.Repository // the repository at that host
	mirror bool
}

func (e endpoint) String() string {
	if e.mirror {
		return "mirror " + e.repo.RegistryStr()
	}
	return e.repo.RegistryStr()
}

// endpoints lists where ref can be pulled from: its mirrors, then the
// registry itself.
func (r *registries) endpoints(ref Reference) ([]endpoint, error) {
	var out []endpoint
	hosts := append(append([]string{}, r.mirrors[ref.Domain]...), ref.Domain)
	for i, host := range hosts {
		var opts []name.Option
		if r.insecure[host] {
			opts = append(opts, name.Insecure)
		}
		repo, err := name.NewRepository(host+"/"+ref.Path, opts...)
		if err != nil {
			return nil, fmt.Errorf("%s: %v: %w", host, err, errdefs.ErrInvalidArgument)
		}
		out = append(out, endpoint{repo: repo, mirror: i < len(hosts)-1})
	}
	return out, nil
}

// session is an authenticated connection to one repository at one
// endpoint: a single ping and token exchange serves every request of a pull.
type session struct {
	ep     endpoint
	client *http.Client
	opts   []remote.Option
}

func (r *registries) dial(ctx context.Context, ep endpoint) (*session, error) {
	auth, err := authn.Resolve(ctx, r.keychain, ep.repo)
	if err != nil {
		return nil, classify(err)
	}
	tr, err := transport.NewWithContext(ctx, ep.repo.Registry, auth, r.base, []string{ep.repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, classify(err)
	}
	return &session{
		ep:     ep,
		client: &http.Client{Transport: tr},
		opts:   []remote.Option{remote.WithTransport(tr), remote.WithContext(ctx)},
	}, nil
}

// blob opens a blob of the repository for reading.
func (s *session) blob(ctx context.Context, digest string) (io.ReadCloser, error) {
	u := url.URL{Scheme: s.ep.repo.Scheme(), Host: s.ep.repo.RegistryStr(), Path: "/v2/" + s.ep.repo.RepositoryStr() + "/blobs/" + digest}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, classify(err)
	}
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		resp.Body.Close()
		return nil, classify(err)
	}
	return resp.Body, nil
}

// classify wraps a registry or network error with its errdefs kind.
func classify(err error) error {
	if err == nil || errdefs.Kind(err) != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var terr *transport.Error
	if errors.As(err, &terr) {
		switch {
		case terr.StatusCode == http.StatusNotFound, hasCode(terr, transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode):
			return fmt.Errorf("%w: %w", errdefs.ErrNotFound, err)
		case terr.StatusCode == http.StatusUnauthorized, terr.StatusCode == http.StatusForbidden:
			return fmt.Errorf("%w (it does not exist, or needs credentials: log in with docker login): %w", errdefs.ErrNotFound, err)
		case terr.StatusCode == http.StatusTooManyRequests, terr.StatusCode >= 500:
			return fmt.Errorf("%w: %w", errdefs.ErrUnavailable, err)
		}
		return err
	}
	var nerr net.Error
	var oerr *net.OpError
	var derr *net.DNSError
	if errors.As(err, &oerr) || errors.As(err, &derr) || errors.As(err, &nerr) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %w", errdefs.ErrUnavailable, err)
	}
	return err
}

func hasCode(e *transport.Error, codes ...transport.ErrorCode) bool {
	for _, d := range e.Errors {
		for _, c := range codes {
			if d.Code == c {
				return true
			}
		}
	}
	return false
}
