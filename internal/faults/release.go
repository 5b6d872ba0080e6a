//go:build !pgtwopass_faults

package faults

// Armed reports that this binary was built with the fault hooks' arming.
const Armed = false
