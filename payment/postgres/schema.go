package postgres

import (
	"embed"

	"github.com/mercato-dev/mercato/shared/events"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Schema is the payment service's database schema. Its Migrate brings the
// database up to date: the payment tables, recorded in
// payment_schema_version apart from the events package's own table (and the
// sandbox's), and the events outbox/inbox.
var Schema = events.Schema{Files: migrationFiles, Table: "payment_schema_version"}
