package sandbox

import (
	"errors"
	"fmt"
)

// Error classes a runtime returns, whatever it runs containers with. The
// agent tells them apart with errors.Is.
var (
	// ErrNotFound: no such container.
	ErrNotFound = errors.New("container not found")
	// ErrImageUnavailable: the image is not present and could not be
	// pulled; the error is an *ImageError.
	ErrImageUnavailable = errors.New("image unavailable")
	// ErrUnavailable: the runtime (its daemon) does not answer.
	ErrUnavailable = errors.New("container runtime unavailable")
	// ErrConflict: a container with the task's name belongs to someone else.
	ErrConflict = errors.New("container name conflict")
	// ErrUnsafePath: a path that would leave the directory it belongs to.
	ErrUnsafePath = errors.New("unsafe path")
	// ErrNoSpace: not enough free disk space for a volume.
	ErrNoSpace = errors.New("not enough free disk space")
)

// ImageError says which image could not be had, and why.
type ImageError struct {
	Image string
	Err   error
}

func (e *ImageError) Error() string {
	return fmt.Sprintf("image %q is not present locally and could not be pulled: %v", e.Image, e.Err)
}

// Is makes an ImageError match ErrImageUnavailable.
func (e *ImageError) Is(target error) bool { return target == ErrImageUnavailable }

func (e *ImageError) Unwrap() error { return e.Err }
