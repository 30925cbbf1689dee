package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// alreadyRunningError is returned by acquireLock when another process holds
// the lock. pid is 0 when the holder's pid could not be read.
type alreadyRunningError struct{ pid int }

func (e *alreadyRunningError) Error() string {
	if e.pid == 0 {
		return "already running (pid unknown)"
	}
	return fmt.Sprintf("already running (pid %d)", e.pid)
}

// instanceLock is an exclusive flock on a file holding the holder's pid. The
// kernel drops a flock when its holder dies, however it dies, so a crashed
// run never blocks the next one; the pid in the file is only for messages.
type instanceLock struct {
	path string
	file *os.File // kept open (and so referenced) for the lock's life
	once sync.Once
}

// acquireLock takes the lock at path without waiting, or reports who holds it.
func acquireLock(path string) (*instanceLock, error) {
	for attempt := 0; ; attempt++ {
		// No O_TRUNC: the file may hold the current holder's pid, which we
		// read below if the lock is taken. Go opens files close-on-exec, so
		// the children we start do not inherit (and prolong) the lock.
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600) //nolint:gosec // G304: the lock file in .local/
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, &alreadyRunningError{pid: readHolderPid(path)}
			}
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		// The previous holder removes the file on release. If it did so
		// between our open and our flock, we now lock a deleted file that a
		// third process would not see; start again on the current file.
		same, err := sameFile(f, path)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !same {
			f.Close()
			if attempt >= 10 {
				return nil, fmt.Errorf("lock %s: the file keeps being replaced", path)
			}
			continue
		}
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		return &instanceLock{path: path, file: f}, nil
	}
}

// release removes the file and drops the lock. It is idempotent and safe to
// call from several goroutines.
func (l *instanceLock) release() {
	l.once.Do(func() {
		// Remove while still holding the lock, so nobody can lock the file
		// and then see it vanish (acquireLock re-checks for exactly that).
		os.Remove(l.path)
		l.file.Close()
	})
}

// readHolderPid reads the pid the holder wrote. The holder writes it just
// after locking, so an empty file gets a moment's grace.
func readHolderPid(path string) int {
	for range 5 {
		b, err := os.ReadFile(path) //nolint:gosec // G304: the lock file in .local/
		if err != nil {
			return 0
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
			return pid
		}
		time.Sleep(50 * time.Millisecond)
	}
	return 0
}

func sameFile(f *os.File, path string) (bool, error) {
	open, err := f.Stat()
	if err != nil {
		return false, err
	}
	current, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(open, current), nil
}
