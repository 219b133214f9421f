package main

import (
	"strings"
	"testing"
)

// TestMarkdownShowsEveryFigure: a figure is in its section's table, a
// figure of a section the report does not list is still shown, and a '|'
// in a name does not break the table.
func TestMarkdownShowsEveryFigure(t *testing.T) {
	r := &Report{Schema: 1, Date: "2026-12-07T00:00:00Z"}
	for _, s := range sections {
		r.add(&Figure{Key: s.key + ".x", Section: s.key, Name: "figure of " + s.key, Unit: "ms", Value: 1})
	}
	r.add(&Figure{Key: "new.x", Section: "not listed", Name: "figure of a new section", Unit: "ms", Value: 2})
	r.add(&Figure{Key: "pipe.ratio", Section: "fetcher", Name: "ratio mesolite / curl | tar", Unit: "×", Value: 0.5, Target: &Target{"<=", 1.2}})
	md := string(markdown(r))

	for _, s := range sections {
		if !strings.Contains(md, "## "+s.title+"\n") || !strings.Contains(md, "| figure of "+s.key+" |") {
			t.Errorf("section %q or its figure is missing from the report", s.key)
		}
	}
	if !strings.Contains(md, "## Other figures") || !strings.Contains(md, "| figure of a new section |") {
		t.Error("a figure of an unlisted section is not shown")
	}
	if !strings.Contains(md, `ratio mesolite / curl \| tar`) {
		t.Error("a '|' in a figure's name is not escaped")
	}
	for _, line := range strings.Split(md, "\n") {
		if strings.Contains(line, "curl") && strings.HasPrefix(line, "|") {
			if got := strings.Count(strings.ReplaceAll(line, `\|`, ""), "|"); got != 5 && got != 7 {
				t.Errorf("table row with %d cell separators: %s", got, line)
			}
		}
	}
}
