package agent

import (
	"errors"
	"fmt"
)

// Error classes of the agent's commands, told apart with errors.Is. The
// API maps each to Marathon's status code; the agent knows no status
// codes. Validation of app JSON fails with agent/marathon's
// *ValidationError and *SyntaxError instead, which carry their details.
var (
	// ErrNotFound: the app, task, deployment, version or volume named does
	// not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the change contradicts what exists (an app of that id,
	// a volume a reservation owns).
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the request itself is malformed.
	ErrInvalid = errors.New("invalid request")
	// ErrUnprocessable: a well-formed request Marathon refuses with 422
	// and a message alone (its IllegalArgumentException), such as a group
	// version that does not exist.
	ErrUnprocessable = errors.New("unprocessable")
	// ErrLocked: a deployment in progress holds the app and the change
	// was not forced; the error is a *LockedError.
	ErrLocked = errors.New("locked by a deployment")
	// ErrUnavailable: the agent is not running, is stopping, or the
	// caller gave up waiting for it.
	ErrUnavailable = errors.New("unavailable")
)

// Error is a command's failure of one class, with the message to show,
// Marathon's words where Marathon has them.
type Error struct {
	Class error
	Msg   string
	Err   error // the cause, if any
}

func (e *Error) Error() string { return e.Msg }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is makes the error match its class.
func (e *Error) Is(target error) bool { return target == e.Class }

func errorf(class error, format string, args ...any) error {
	return &Error{Class: class, Msg: fmt.Sprintf(format, args...)}
}

// LockedError: the app has a deployment in progress and the change was
// not forced. Marathon answers with the deployment ids.
type LockedError struct {
	Deployments []string
}

func (e *LockedError) Error() string {
	return "App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/<DEPLOYMENT_ID>'."
}

// Is makes the error match ErrLocked.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

func appNotFound(id string) error {
	return errorf(ErrNotFound, "App '%s' does not exist", id)
}
