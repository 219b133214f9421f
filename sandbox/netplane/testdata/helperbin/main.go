// Command helperbin is the netplane helper as the tests build it (static),
// before mesolite's own binary carries the subcommand: helperbin
// netplane-helper serve|apply|read|remove.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/mesolite/mesolite/sandbox/netplane"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != netplane.HelperCommand {
		fmt.Fprintln(os.Stderr, "usage: helperbin netplane-helper serve|apply|read|remove [--table T]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log := zerolog.New(os.Stderr).With().Timestamp().Logger()
	if err := netplane.RunHelper(ctx, os.Args[2:], os.Stdin, os.Stdout, log); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
