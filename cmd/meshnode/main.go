package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
)

// version is set at link time (-ldflags "-X main.version=v1.2.3"); without
// it, the module version from the build info is used.
var version = ""

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // a runtime or configuration error
	exitUsage = 2 // a bad command line
)

const mainUsage = `meshnode: the verbose event bus agent and its client.

Usage:
  meshnode agent   [flags]                      run an agent (see meshnode agent --help)
  meshnode emit    [--http ADDR] EVENT [ARG...] emit an event; each ARG is JSON if it parses, else a string
  meshnode tail    [--http ADDR] [EVENT...]     print received events as JSON lines until interrupted
  meshnode members [--http ADDR] [--json]       list the cluster's members
  meshnode peers   [--http ADDR] [--json]       list the agent's relay links
  meshnode health  [--http ADDR]                print the agent's health (alive)
  meshnode ready   [--http ADDR]                print its readiness; exit 1 unless joined and linked
  meshnode version                              print the version

Flags go before the positional arguments (a flag after them is refused; put
-- before arguments that start with a dash). ADDR defaults to
$MESHNODE_HTTP_ADDR, else 127.0.0.1:7948.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, stop, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one meshnode command line. ctx ends on SIGINT/SIGTERM;
// stopSignals restores the default signal handling once the command has
// begun shutting down, so that a second Ctrl-C kills the process at once.
func run(ctx context.Context, stopSignals func(), args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, mainUsage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "agent":
		return runAgent(ctx, stopSignals, rest, stdout, stderr)
	case "emit":
		return runEmit(ctx, rest, stdout, stderr)
	case "tail":
		return runTail(ctx, rest, stdout, stderr)
	case "members":
		return runMembers(ctx, rest, stdout, stderr)
	case "peers":
		return runPeers(ctx, rest, stdout, stderr)
	case "health":
		return runHealth(ctx, rest, stdout, stderr)
	case "ready":
		return runReady(ctx, rest, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "meshnode %s (%s %s/%s)\n", buildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return exitOK
	case "help", "--help", "-help", "-h":
		fmt.Fprint(stdout, mainUsage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "meshnode: unknown command %q\n\n%s", cmd, mainUsage)
		return exitUsage
	}
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// parseFlags parses args with fs. It returns done=true with an exit code
// when the command must stop: after --help (usage on stdout, exit 0) or a
// bad flag (the error and usage on stderr, exit 2).
func parseFlags(fs *flag.FlagSet, synopsis string, args []string, stdout, stderr io.Writer) (code int, done bool) {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	if err == nil {
		return 0, false
	}
	if errors.Is(err, flag.ErrHelp) {
		printUsage(stdout, fs, synopsis)
		return exitOK, true
	}
	fmt.Fprintf(stderr, "meshnode %s: %v\n\n", fs.Name(), err)
	printUsage(stderr, fs, synopsis)
	return exitUsage, true
}

// printUsage prints the synopsis and the flags, spelled with two dashes.
func printUsage(w io.Writer, fs *flag.FlagSet, synopsis string) {
	fmt.Fprintf(w, "Usage:\n  %s\n\nFlags:\n", synopsis)
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		fmt.Fprintf(w, "%s\n    \t%s", line, strings.ReplaceAll(usage, "\n", "\n    \t"))
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "[]" {
			fmt.Fprintf(w, " (default %q)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// usageErr reports a command-line error found after flag parsing.
func usageErr(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "meshnode %s: %v\nRun 'meshnode %s --help' for usage.\n", cmd, err, cmd)
	return exitUsage
}
