// Command pause is the first process of every pod sandbox on the test cluster
// (e2e/k8s/cluster), packed as the image registry.k8s.io/pause:<version> that
// containerd's CRI starts for each pod, since no image can be pulled. Like
// Kubernetes' own pause.c it holds the pod's namespaces open, reaps the
// zombies of a shared PID namespace and exits 0 on SIGINT or SIGTERM.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "-v" || os.Args[1] == "--version") {
		fmt.Println("pause (Go, for the Mercato test cluster)")
		return
	}
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range signals {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		reap()
	}
}

// reap collects every exited child without blocking.
func reap() {
	for {
		pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
