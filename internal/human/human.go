// Package human formats quantities for people: sizes in binary units, as
// pgtwopass's messages, summaries and demo print them.
package human

import "fmt"

// Bytes returns n as "512 B", "1.5 KiB", "20.0 MiB", ... in powers of 1024.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
