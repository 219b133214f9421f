package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// completionCases are command lines (the cursor at the end) and what the
// completion offers there.
var completionCases = []struct{ line, want string }{
	{"mesolite ", "agent app completion dns events group help marathon network ping task version vip volume"},
	{"mesolite ap", "app"},
	{"mesolite app ", "add list show stop start restart update remove"},
	{"mesolite marathon task ", "list show kill stop log"},
	{"mesolite task kill --", "--help --url --scale --wipe"},
	{"mesolite --url http://x:1 app list --", "--help --url --json --quiet"},
	{"mesolite agent --", "--config --listen --work-dir --log-level --log-format --help"},
	{"mesolite agent --log-level ", "debug info warn error"},
	{"mesolite completion ", "bash zsh"},
	{"mesolite app show ", ""}, // app ids from a running agent: none answers here
}

// TestCompletionBash runs the bash script's function on each line.
func TestCompletionBash(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		missing(t, "bash is not installed: %v", err)
	}
	script := completionScript(t, "bash")
	for _, tc := range completionCases {
		prog := `source "$1"; read -ra COMP_WORDS <<< "$2"; [[ "$2" == *" " ]] && COMP_WORDS+=(""); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _mesolite; echo "${COMPREPLY[*]}"`
		out, err := completionRun(bash, "-c", prog, "bash", script, tc.line)
		if err != nil || out != tc.want {
			t.Errorf("bash %q: %q (%v), want %q", tc.line, out, err, tc.want)
		}
	}
}

// TestCompletionZsh runs the zsh script's function on each line, with
// compadd (which, as zsh's, keeps the words that start with the word under
// the cursor) and _files standing in for zsh's completion system.
func TestCompletionZsh(t *testing.T) {
	zsh, err := exec.LookPath("zsh")
	if err != nil {
		missing(t, "zsh is not installed (apt-get install zsh): %v", err)
	}
	script := completionScript(t, "zsh")
	if out, err := exec.Command(zsh, "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v\n%s", err, out)
	}
	for _, tc := range completionCases {
		prog := `compadd() { [[ "$1" == "--" ]] && shift; local -a out; local w; for w in "$@"; do [[ "$w" == "$PREFIX"* ]] && out+=("$w"); done; print -r -- "${out[*]}"; }; _files() { print FILES; }; source "$1"; words=(${(z)2}); [[ "$2" == *" " ]] && words+=(""); CURRENT=${#words}; PREFIX="${words[CURRENT]}"; _mesolite`
		out, err := completionRun(zsh, "-f", "-c", prog, "zsh", script, tc.line)
		if err != nil || out != tc.want {
			t.Errorf("zsh %q: %q (%v), want %q", tc.line, out, err, tc.want)
		}
	}
}

func completionScript(t *testing.T, shell string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run([]string{"completion", shell}, nil, &out, &errb); code != 0 {
		t.Fatalf("mesolite completion %s: exit %d: %s", shell, code, errb.String())
	}
	p := filepath.Join(t.TempDir(), "completion."+shell)
	if err := os.WriteFile(p, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// completionRun runs a shell with no agent to ask for ids.
func completionRun(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "MESOLITE_URL=http://127.0.0.1:1")
	out, err := cmd.Output()
	return strings.TrimSpace(string(out)), err
}

// TestCompletionUsage: a missing or unknown shell is a usage error.
func TestCompletionUsage(t *testing.T) {
	for _, args := range [][]string{{"completion"}, {"completion", "fish"}, {"completion", "bash", "zsh"}} {
		var out, errb bytes.Buffer
		if code := run(args, nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "bash") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errb.String())
		}
	}
}
