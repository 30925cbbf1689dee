package postgres

import (
	"embed"

	"github.com/mercato-dev/mercato/shared/events"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Schema is the notification service's database schema. Its Migrate brings
// the database up to date: the notification tables, recorded in
// notification_schema_version apart from the events package's own table, and
// the events inbox (and outbox, unused here).
var Schema = events.Schema{Files: migrationFiles, Table: "notification_schema_version"}
