// dsql-local: a local Aurora DSQL stand-in, a PostgreSQL wire-protocol proxy that holds clients to
// DSQL's connection, dialect, transaction and concurrency rules in front of a real PostgreSQL.
module github.com/temporal-dsql-deploy/dsql-local

go 1.26.0

toolchain go1.26.10

require (
	github.com/aws/aws-sdk-go-v2 v1.48.0
	github.com/jackc/pgx/v5 v5.12.0
)

require github.com/aws/smithy-go v1.28.9 // indirect
