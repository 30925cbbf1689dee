package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// The SMTP sink catches every email the platform sends, so a person can read
// them: MailDev, installed by scripts/install-smtp-sink.sh (Mailpit builds
// from the module proxy but its web UI comes out blank here).
const (
	smtpPort    = 1025 // the notification service's default -smtp-addr
	mailUIPort  = 1080
	mailSinkBin = ".local/maildev/node_modules/.bin/maildev"
)

var (
	smtpAddr   = hostPort(smtpPort)
	mailUIAddr = hostPort(mailUIPort)
)

// startMailSink runs MailDev when it is installed and warns when it is not:
// the platform works without it, the emails just have nowhere to go.
func (p *platform) startMailSink(ctx context.Context) error {
	bin := p.mailSinkBin()
	if bin == "" {
		p.ui.warn("the SMTP sink (MailDev) is not installed: emails will fail to send; `make run` installs it with scripts/install-smtp-sink.sh")
		return nil
	}
	p.ui.step("starting the SMTP sink (MailDev): SMTP on %s, web UI on http://%s", smtpAddr, mailUIAddr)
	mailDir := filepath.Join(p.dirs.local, "maildev", "mail")
	if err := os.MkdirAll(mailDir, 0o750); err != nil {
		return err
	}
	c, err := startChild("maildev", p.dirs.logFile("maildev"), nil, bin,
		"--ip", "127.0.0.1", "--smtp", strconv.Itoa(smtpPort),
		"--web-ip", "127.0.0.1", "--web", strconv.Itoa(mailUIPort),
		"--mail-directory", mailDir)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.tools = append(p.tools, c)
	p.mu.Unlock()
	return waitUntil(ctx, p.ui, 30*time.Second, []*child{c}, answersOK("http://"+mailUIAddr+"/", "web UI"))
}

// answersOK is a waitUntil condition: url answers 200. what names it in the
// progress line.
func answersOK(url, what string) func(context.Context) (bool, string, error) {
	client := &http.Client{Timeout: 2 * time.Second}
	return func(ctx context.Context) (bool, string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, "", err
		}
		resp, err := client.Do(req)
		if err != nil {
			return false, err.Error(), nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, what + " answered " + resp.Status, nil
	}
}

// mailSinkBin is MailDev's path when it is installed, else "".
func (p *platform) mailSinkBin() string {
	bin := filepath.Join(p.dirs.root, mailSinkBin)
	if !isExecutable(bin) {
		return ""
	}
	return bin
}
