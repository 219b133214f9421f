package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
)

// Error classes. Every error Fetch returns is an *Error that matches
// exactly one of them with errors.Is.
var (
	// ErrNotAllowed: a scheme mesolite does not fetch, a relative path, or
	// a local file outside host_path_roots.
	ErrNotAllowed = errors.New("uri not allowed")
	// ErrNotFound: a local file that does not exist.
	ErrNotFound = errors.New("file not found")
	// ErrHTTPStatus: the server answered with a status other than 200.
	ErrHTTPStatus = errors.New("http error status")
	// ErrDNS: the host name could not be resolved.
	ErrDNS = errors.New("dns lookup failed")
	// ErrNetwork: the connection could not be made or broke.
	ErrNetwork = errors.New("network error")
	// ErrIncomplete: the body ended before Content-Length said it would.
	ErrIncomplete = errors.New("incomplete download")
	// ErrTooLarge: the download or what it unpacks to passed max_size.
	ErrTooLarge = errors.New("size limit exceeded")
	// ErrTimeout: the URI took longer than the fetcher's timeout.
	ErrTimeout = errors.New("fetch timed out")
	// ErrBadArchive: the file is not a readable archive of its kind, or an
	// entry would land outside the sandbox (see *EntryError).
	ErrBadArchive = errors.New("bad archive")
	// ErrBadDest: destPath, or the name taken from the URI, is unusable.
	ErrBadDest = errors.New("bad destination")
	// ErrIO: reading or writing the sandbox or the cache failed.
	ErrIO = errors.New("i/o error")
)

// Error is a failed fetch of one URI: the URI, the class (one of the Err*
// values above, or context.Canceled) and the cause.
type Error struct {
	URI   string
	Class error
	Err   error
}

func (e *Error) Error() string { return "fetch " + e.URI + ": " + e.Err.Error() }

// Unwrap exposes the class and the cause to errors.Is and errors.As.
func (e *Error) Unwrap() []error { return []error{e.Class, e.Err} }

// EntryError is an archive entry refused because it would land outside
// the sandbox, or a file that cannot be unpacked.
type EntryError struct {
	Archive string // the archive's file name
	Entry   string // the entry's name as the archive gives it
	Reason  string
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("archive %s: entry %q %s", e.Archive, e.Entry, e.Reason)
}

// Is makes an EntryError an ErrBadArchive.
func (e *EntryError) Is(target error) bool { return target == ErrBadArchive }

// classify names the class of an error from reading a download.
func classify(err error) error {
	var dns *net.DNSError
	var nerr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return ErrTimeout
	case errors.Is(err, context.Canceled):
		return context.Canceled
	case errors.As(err, &dns):
		return ErrDNS
	case errors.Is(err, io.ErrUnexpectedEOF):
		return ErrIncomplete
	case errors.As(err, &nerr) && nerr.Timeout():
		return ErrTimeout
	}
	return ErrNetwork
}

// classOf returns the class err already carries, or fallback.
func classOf(err, fallback error) error {
	for _, c := range []error{ErrNotAllowed, ErrNotFound, ErrHTTPStatus, ErrDNS, ErrNetwork,
		ErrIncomplete, ErrTooLarge, ErrTimeout, ErrBadArchive, ErrBadDest, ErrIO, context.Canceled} {
		if errors.Is(err, c) {
			return c
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return ErrTimeout
	}
	return fallback
}

// classed is an error with a class and a message that does not repeat
// the class's name.
type classed struct {
	class error
	err   error
}

func (e *classed) Error() string        { return e.err.Error() }
func (e *classed) Is(target error) bool { return target == e.class }
func (e *classed) Unwrap() error        { return e.err }

// errorf formats a message (%w allowed) and gives it a class.
func errorf(class error, format string, args ...any) error {
	return &classed{class: class, err: fmt.Errorf(format, args...)}
}
