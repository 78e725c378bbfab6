// Package sqlerr holds the errors the stand-in answers with: a SQLSTATE and DSQL's message for it.
package sqlerr

import (
	"fmt"

	"github.com/jackc/pgx/v5/pgproto3"
)

// SQLSTATE codes DSQL answers with.
const (
	FeatureNotSupported        = "0A000"
	UndefinedObject            = "42704"
	ProgramLimitExceeded       = "54000"
	TooManyColumns             = "54011"
	SerializationFailure       = "40001"
	TooManyConnections         = "53300"
	ConnectionRate             = "53400"
	InvalidPassword            = "28P01"
	InvalidAuthorization       = "28000"
	InvalidCatalogName         = "3D000"
	ProtocolViolation          = "08P01"
	InsufficientPrivilege      = "42501"
	InvalidParameterValue      = "22023"
	DependentObjectsStillExist = "2BP01"
	ConnectionFailure          = "08006"
)

// Error is a refusal: a SQLSTATE, a message (with PostgreSQL's optional detail and hint), and the rule
// that produced it (for logs and tests).
type Error struct {
	Code    string
	Message string
	Detail  string
	Hint    string
	Rule    string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s (%s)", e.Code, e.Message, e.Rule) }

// Response renders the refusal as the wire message, with severity ERROR (or FATAL for a connection).
func (e *Error) Response(fatal bool) *pgproto3.ErrorResponse {
	severity := "ERROR"
	if fatal {
		severity = "FATAL"
	}
	return &pgproto3.ErrorResponse{Severity: severity, SeverityUnlocalized: severity, Code: e.Code, Message: e.Message,
		Detail: e.Detail, Hint: e.Hint}
}

// New builds a refusal.
func New(code, rule, format string, args ...any) *Error {
	return &Error{Code: code, Rule: rule, Message: fmt.Sprintf(format, args...)}
}

// Conflict is DSQL's optimistic-concurrency failure: OC000 for data, OC001 for schema.
func Conflict(schema bool) *Error {
	if schema {
		return New(SerializationFailure, "occ_schema", "schema has been updated by another transaction, please retry: (OC001)")
	}
	return New(SerializationFailure, "occ_data", "change conflicts with another transaction, please retry: (OC000)")
}

// RegionIsolated refuses a commit that writes in a Region of a multi-Region cluster that has lost contact with its
// peer and the witness. AWS documents no error for this; the stand-in's choice is a connection-class SQLSTATE that
// no client retries as a conflict, and a message that says what happened.
func RegionIsolated(region string) *Error {
	return New(ConnectionFailure, "region_isolated", "the cluster's endpoint in %s has lost contact with its peer Region and the "+
		"witness: writes are refused until it is reconnected; use the other Region's endpoint", region)
}
