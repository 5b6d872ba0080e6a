package pgctl

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// CheckReach checks, as owner (pgtwopass runs as root), that owner can
// enter, read and write each directory of dirs: that a server running as
// owner reaches them. A shell as owner tests access as the kernel grants it
// (ACLs and security modules included); the error names the directory the
// server cannot reach and, from the modes, the one on the way that blocks it.
func CheckReach(owner Owner, dirs []string) error {
	cmd := exec.Command("/bin/sh", "-c", `for d; do test -d "$d" && test -x "$d" && test -r "$d" && test -w "$d" || { printf '%s\n' "$d"; exit 1; }; done`, "sh")
	cmd.Args = append(cmd.Args, dirs...)
	RunAs(cmd, owner)
	out, err := cmd.Output()
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return fmt.Errorf("failed to check that the server's user %s reaches %s: %w", owner, strings.Join(dirs, ", "), err)
	}
	blocked := strings.TrimSpace(string(out))
	return fmt.Errorf("the server's user %s cannot reach %s%s", owner, blocked, whatBlocks(blocked, owner))
}

// whatBlocks names the first directory on the way to dir whose mode keeps
// owner out, with its mode and owner, for the message of checkReachable.
func whatBlocks(dir string, owner Owner) string {
	var chain []string
	for p := dir; ; p = filepath.Dir(p) {
		chain = append(chain, p)
		if p == filepath.Dir(p) {
			break
		}
	}
	slices.Reverse(chain)
	for i, p := range chain {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Sprintf(" (%s: %v)", p, err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		perm := uint32(fi.Mode().Perm())
		var bits uint32
		switch {
		case st.Uid == owner.UID:
			bits = perm >> 6 & 7
		case st.Gid == owner.GID || slices.Contains(owner.Groups, st.Gid):
			bits = perm >> 3 & 7
		default:
			bits = perm & 7
		}
		need := uint32(1) // x to pass through
		if i == len(chain)-1 {
			need = 7 // rwx on the directory itself
		}
		if bits&need != need {
			return fmt.Sprintf(": %s has mode %04o and belongs to uid %d, gid %d", p, perm, st.Uid, st.Gid)
		}
	}
	return ""
}
