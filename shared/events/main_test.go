package events_test

import (
	"testing"

	"github.com/mercato-dev/mercato/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }
