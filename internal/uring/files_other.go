//go:build !linux

package uring

import (
	"errors"
	"os"
)

// Fsync is f.Sync where there is no io_uring.
func Fsync(f *os.File) error { return f.Sync() }

// OpenFile is os.OpenFile where there is no io_uring.
func OpenFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	return os.OpenFile(name, flag, perm)
}

// FileRingErr says that Fsync and OpenFile make their system calls directly here.
func FileRingErr() error { return errors.New("uring: no io_uring on this system") }
