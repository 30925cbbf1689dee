package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/mercato-dev/mercato/e2e/load"
)

func TestRefusesBeforeSendingAnything(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-target", "http://10.1.2.3:3000", "-invariants=false", "-restock=false"}, "not a loopback address"},
		{[]string{"-rate", "0"}, "must be above zero"},
		{[]string{"-rate", "100000", "-invariants=false", "-restock=false"}, "rate 100000/s"},
		{[]string{"-mix", "teleport"}, `unknown scenario "teleport"`},
		{[]string{"-cards", "ok=1,amex=2"}, "names ok, declined, no-funds"},
		{[]string{"-secrets", t.TempDir()}, "no postgres-"},
		{[]string{"extra"}, "unexpected arguments"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(tc.args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("load %v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}

func TestHelpSaysWhatItDoes(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-h"}, &stdout, &stderr); code != 0 {
		t.Fatalf("-h: exit %d", code)
	}
	for _, want := range []string{"make load", "open-loop", load.FormatMix(load.DefaultMix()), "-rate", "-mix", "-json", "-allow-remote", "MERCATO_LOAD_ORDER_DB"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestParseCards(t *testing.T) {
	cards, err := parseCards("ok=3,declined=1,no-funds=0")
	if err != nil || cards[load.CardOK] != 3 || cards[load.CardDeclined] != 1 || cards[load.CardInsufficientFunds] != 0 {
		t.Errorf("parseCards: %v %v", cards, err)
	}
}
