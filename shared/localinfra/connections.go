package localinfra

// ServiceConnections is the most PostgreSQL connections one instance of each
// service opens: the MaxOpen of its pools (<service>/cmd/<service>/main.go;
// shared/postgres defaults to 20, payment adds the sandbox's 10) and the
// LISTEN connections of its outbox relay and, for order, of its status
// streams. Keep it in step with them: make run sizes its PostgreSQL from
// it, and e2e's TestPostgresHoldsEveryPool checks compose's and the local
// Kubernetes overlay's against it, and deploy/terraform/check's
// TestRDSHoldsEveryPool the AWS overlay's against its RDS instances.
var ServiceConnections = map[string]int{
	"user":         20 + 1,
	"product":      20 + 1, // -db-max-conns
	"order":        30 + 1 + 1,
	"payment":      20 + 10 + 1,
	"notification": 20,
}

// spareConnections are the slots kept beside the services' pools: PostgreSQL's
// superuser_reserved_connections (3) and room for psql, make load and the
// like.
const spareConnections = 3 + 20

// MaxConnections is the max_connections a PostgreSQL needs so that
// instances[s] instances of each service s may fill every pool at once and
// still leave the spare slots. A service not in ServiceConnections opens
// none.
func MaxConnections(instances map[string]int) int {
	n := spareConnections
	for s, count := range instances {
		n += count * ServiceConnections[s]
	}
	return n
}
