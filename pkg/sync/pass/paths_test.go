package pass

import "testing"

func TestValidRel(t *testing.T) {
	for rel, want := range map[string]bool{
		"": true, "base": true, "base/1/1259": true, "pg_tblspc/16384/PG_15/1/2": true, "a..b/c": true, ".pgtwopassx": true,
		"/base": false, "base/": false, "base//1": false, "./base": false, "base/.": false, "base/../x": false, "..": false,
		".pgtwopass": false, ".pgtwopass/manifest": false, "base/\x00": false,
	} {
		if got := ValidRel(rel); got != want {
			t.Errorf("ValidRel(%q) = %v, want %v", rel, got, want)
		}
	}
}
