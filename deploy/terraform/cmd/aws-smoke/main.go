// Command aws-smoke is the smoke check of a deployed Mercato through its
// public URL (release.Smoke: register, log in, list products), tried
// -attempts times -pause apart, since a new deploy's targets take a while
// to pass the load balancer's health checks. Exit 0: it passed.
//
//	aws-smoke -url https://shop.example.com
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/mercato-dev/mercato/deploy/terraform/release"
)

func main() {
	url := flag.String("url", "", "public URL of the platform (https://host)")
	attempts := flag.Int("attempts", 10, "tries before giving up")
	pause := flag.Duration("pause", 15*time.Second, "wait between tries")
	flag.Parse()
	if *url == "" {
		fmt.Fprintln(os.Stderr, "aws-smoke: -url is required")
		os.Exit(2)
	}

	client := &http.Client{Timeout: 10 * time.Second}
	for i := 1; i <= *attempts; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		saw, err := release.Smoke(ctx, client, *url)
		cancel()
		if err == nil {
			fmt.Println("==> smoke check passed:", saw)
			return
		}
		fmt.Fprintf(os.Stderr, "aws-smoke: attempt %d of %d: %v\n", i, *attempts, err)
		if i < *attempts {
			time.Sleep(*pause)
		}
	}
	fmt.Fprintf(os.Stderr, "aws-smoke: %s failed the smoke check %d times\n", *url, *attempts)
	os.Exit(1)
}
