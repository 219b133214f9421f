package main

import (
	"io"
	"strings"
	"unicode/utf8"
)

type alignment int

const (
	alignLeft alignment = iota
	alignCenter
)

type column struct {
	title string
	align alignment
}

// writeTable prints rows under a header as the DC/OS CLI's tables
// (prettytable without borders): each cell padded to its column's width
// plus two spaces, centred cells with prettytable's rule for odd
// remainders, trailing spaces trimmed. Nothing is printed without rows,
// as the DC/OS CLI does.
func writeTable(w io.Writer, cols []column, rows [][]string) {
	if len(rows) == 0 {
		return
	}
	widths := make([]int, len(cols))
	for i, c := range cols {
		widths[i] = utf8.RuneCountInString(c.title)
	}
	for _, r := range rows {
		for i := range cols {
			widths[i] = max(widths[i], utf8.RuneCountInString(r[i]))
		}
	}
	var b strings.Builder
	line := func(cells []string) {
		var l strings.Builder
		for i, c := range cols {
			l.WriteString(justify(cells[i], widths[i], c.align))
			l.WriteString("  ")
		}
		b.WriteString(strings.TrimRight(l.String(), " "))
		b.WriteByte('\n')
	}
	titles := make([]string, len(cols))
	for i, c := range cols {
		titles[i] = c.title
	}
	line(titles)
	for _, r := range rows {
		line(r)
	}
	_, _ = io.WriteString(w, b.String())
}

// justify pads s to width. Centred text with an odd remainder gets the
// extra space on the right when its length is odd, on the left when it
// is even (prettytable's _justify).
func justify(s string, width int, a alignment) string {
	n := utf8.RuneCountInString(s)
	excess := width - n
	if excess <= 0 {
		return s
	}
	if a == alignLeft {
		return s + strings.Repeat(" ", excess)
	}
	left, right := excess/2, excess/2
	if excess%2 == 1 {
		if n%2 == 1 {
			right++
		} else {
			left++
		}
	}
	return strings.Repeat(" ", left) + s + strings.Repeat(" ", right)
}
