// Command funclen fails when a function of the given packages' non-test
// files is longer than -max lines (make lint runs it on agent and
// agent/marathon, whose functions stay under 120 lines: a function that
// does not fit on two screens hides its cases).
//
//	go run ./internal/funclen [-max 120] DIR...
package main

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	limit := flag.Int("max", 120, "the most lines a function may have")
	flag.Parse()
	long := 0
	for _, dir := range flag.Args() {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "funclen:", err)
			os.Exit(2)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			n, err := check(f, *limit)
			if err != nil {
				fmt.Fprintln(os.Stderr, "funclen:", err)
				os.Exit(2)
			}
			long += n
		}
	}
	if long > 0 {
		fmt.Fprintf(os.Stderr, "funclen: %d functions over %d lines: split them by their cases\n", long, *limit)
		os.Exit(1)
	}
}

// check prints each function of file longer than limit lines and returns
// how many there are.
func check(file string, limit int) (int, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, nil, parser.SkipObjectResolution)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok {
			continue
		}
		start, end := fset.Position(fd.Pos()), fset.Position(fd.End())
		if lines := end.Line - start.Line + 1; lines > limit {
			fmt.Printf("%s:%d: %s is %d lines\n", file, start.Line, fd.Name.Name, lines)
			n++
		}
	}
	return n, nil
}
