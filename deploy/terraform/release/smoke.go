package release

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Smoke is the smoke check of a deployed Mercato through its public URL
// (the load balancer) only: register a new customer, log in as it, list
// the catalogue, each answering as docs/api.md says. The customer's
// address is SES's mailbox simulator, so the welcome email goes nowhere
// and costs the sender no reputation. It returns what it saw.
func Smoke(ctx context.Context, client *http.Client, baseURL string) (string, error) {
	api := strings.TrimSuffix(baseURL, "/") + "/api/v1"
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix) // crypto/rand.Read never fails on Linux
	email := fmt.Sprintf("success+mercato-smoke-%d-%s@simulator.amazonses.com", time.Now().Unix(), hex.EncodeToString(suffix))
	password := "smoke-" + hex.EncodeToString(suffix) + "-check"

	var registered struct {
		User struct {
			Email string `json:"email"`
		} `json:"user"`
	}
	if err := call(ctx, client, http.MethodPost, api+"/auth/register", "", map[string]string{
		"email": email, "password": password, "first_name": "Smoke", "last_name": "Check",
	}, http.StatusCreated, &registered); err != nil {
		return "", err
	}
	if registered.User.Email != email {
		return "", fmt.Errorf("POST /auth/register answered user %q, want %q", registered.User.Email, email)
	}
	var tokens struct {
		AccessToken string `json:"access_token"`
	}
	if err := call(ctx, client, http.MethodPost, api+"/auth/login", "", map[string]string{
		"email": email, "password": password,
	}, http.StatusOK, &tokens); err != nil {
		return "", err
	}
	if tokens.AccessToken == "" {
		return "", fmt.Errorf("POST /auth/login answered no access_token")
	}
	var products struct {
		Items *[]json.RawMessage `json:"items"`
		Total int                `json:"total"`
	}
	if err := call(ctx, client, http.MethodGet, api+"/products", tokens.AccessToken, nil, http.StatusOK, &products); err != nil {
		return "", err
	}
	if products.Items == nil {
		return "", fmt.Errorf("GET /products answered no items list")
	}
	return fmt.Sprintf("registered and logged in %s; %d products listed of %d", email, len(*products.Items), products.Total), nil
}

// call makes one request and decodes a want answer into out.
func call(ctx context.Context, client *http.Client, method, url, token string, body any, want int, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %.300s, want %d", method, url, resp.StatusCode, b, want)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	return nil
}
