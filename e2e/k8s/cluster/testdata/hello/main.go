// Command hello is the test image of the cluster test (cluster_test.go):
// an HTTP server that answers with the name of the pod it runs in, and, run
// with -get or -lookup inside a pod, a client that checks a Service through
// the cluster's DNS.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	addr := flag.String("listen", ":8080", "address to serve on")
	get := flag.String("get", "", "GET this URL n times, print each body, and exit")
	n := flag.Int("n", 1, "how many times -get fetches the URL")
	lookup := flag.String("lookup", "", "resolve this name, print its addresses, and exit")
	flag.Parse()
	switch {
	case *lookup != "":
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		addrs, err := net.DefaultResolver.LookupHost(ctx, *lookup)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(strings.Join(addrs, " "))
	case *get != "":
		// A new connection per request, so that kube-proxy balances each.
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		for i := 0; i < *n; i++ {
			resp, err := client.Get(*get) //nolint:gosec // G107: the URL the test gives
			if err != nil {
				log.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				log.Fatal(err)
			}
			fmt.Println(strings.TrimSpace(string(body)))
		}
	default:
		host, _ := os.Hostname()
		http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "hello from", host) })
		srv := &http.Server{Addr: *addr, ReadHeaderTimeout: 5 * time.Second}
		log.Fatal(srv.ListenAndServe())
	}
}
