package main

import (
	"fmt"
	"io"
)

// runCLI runs the client commands (placeholder until the CLI lands).
func runCLI(args []string, _ io.Reader, _, stderr io.Writer) int {
	fmt.Fprintf(stderr, "mesolite: unknown command %q\n", args[0])
	return 2
}
