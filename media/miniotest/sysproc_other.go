//go:build !linux

package miniotest

import "syscall"

// sysProcAttr returns no special attributes where the kernel cannot tie
// MinIO's life to the test binary's.
func sysProcAttr() *syscall.SysProcAttr {
	return nil
}
