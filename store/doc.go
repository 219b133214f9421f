// Package store keeps mesolite's durable state as small JSON records on
// disk, one file per record, written atomically and durably. It knows
// nothing of Docker or Marathon: callers give it a kind, a key and a value.
//
// # Layout
//
//	<work_dir>/
//	  LOCK                          flock held by the running agent; holds its pid
//	  meta/
//	    FORMAT                      {"format":1}; a newer format is refused
//	    agent/agent.json            agent id and framework id, made on first start
//	    apps/<safe-app-id>.json     current app definition and wanted instances
//	    versions/<safe-app-id>@<version>.json
//	                                every version of every app, for /versions
//	    instances/<instance-id>.json
//	                                an instance: goal, reservation (cpus, mem,
//	                                disk, host ports, volumes), incarnation and
//	                                its current task
//	    deployments/<id>.json       deployments in progress
//	    <kind>/<name>.json.corrupt-<time>
//	                                a record that could not be read, set aside
//	  volumes/roles/<role>/<persistence-id>/
//	                                persistent volumes (package sandbox)
//	  volumes/owners/<role>/<persistence-id>
//	                                each volume's owner record (package sandbox):
//	                                what the agent rebuilds a lost instance from
//	  slaves/<agent-id>/frameworks/<framework-id>/executors/<task-id>/runs/<container-id>/
//	                                task sandboxes (package sandbox)
//
// Kinds and keys are single file names: not empty, no leading dot, no
// slash, backslash, NUL or newline, and at most MaxKeyLength bytes, so the
// temporary and set-aside names derived from them stay within the 255
// bytes a file name may have.
//
// Every record is an envelope:
//
//	{"schema": 1, "kind": "instances", "key": "…", "written": "…", "data": {…}}
//
// # Guarantees
//
// Put writes a temporary file in the record's directory, fsyncs it, renames
// it over the record and fsyncs the directory, so after a crash at any
// point a record is either its old or its new content, never a mix, and a
// Put that returned is on disk. Temporary files left by a crash are removed
// by Open. Delete removes the file and fsyncs the directory.
//
// A record that cannot be parsed, or that the caller cannot decode, is
// renamed aside (never overwritten or deleted), reported by Load, and does
// not stop the other records from loading. A record or work directory
// written by a newer schema than this binary knows is an error: the agent
// refuses to start rather than risk misreading it.
//
// Open takes an exclusive flock on <work_dir>/LOCK, so two agents never
// share a work directory; the lock dies with the process, also on kill -9.
package store
