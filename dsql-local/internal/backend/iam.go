package backend

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DSQL maps IAM principals to custom roles with `AWS IAM GRANT role TO 'arn'` (using-database-and-iam-roles).
// The stand-in keeps those mappings in dsql_local.iam_mappings: the dsql_local schema has no grant to PUBLIC,
// so only the backend role (admin's sessions) can read or change it; custom roles connect to the backend as
// themselves and meet PostgreSQL's own "permission denied". A mapped role's backend password is derived from the
// backend password in the stand-in's memory alone (RolePasswords), and set (as a SCRAM verifier) when a login
// with it fails: no SQL session can read or compute it, and stand-ins over one backend agree on it.

// iamStatements run at start after setupStatements; all are idempotent.
var iamStatements = []string{
	`CREATE TABLE IF NOT EXISTS dsql_local.iam_mappings (
		iam_oid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, arn text NOT NULL, pg_role_oid oid NOT NULL,
		grantor_pg_role_oid oid NOT NULL, UNIQUE (arn, pg_role_oid))`,
	// An earlier version kept the password key in the database, where admin's sessions could read it.
	`DROP FUNCTION IF EXISTS dsql_local.role_password(name)`,
	`DROP TABLE IF EXISTS dsql_local.role_password_key`,
	// The columns DSQL's system table has (using-database-and-iam-roles); the grantor is shown as admin.
	`CREATE OR REPLACE VIEW sys.iam_pg_role_mappings AS
		SELECT m.iam_oid, m.arn, m.pg_role_oid, r.rolname AS pg_role_name, m.grantor_pg_role_oid, 'admin'::name AS grantor_pg_role_name
		FROM dsql_local.iam_mappings m JOIN pg_roles r ON r.oid = m.pg_role_oid`,
	// AWS IAM GRANT: DSQL's errors (troubleshooting: authorization errors); the role must be one the stand-in
	// may log in as (not a superuser, not the backend role itself).
	`CREATE OR REPLACE PROCEDURE dsql_local.iam_grant(role name, principal text) LANGUAGE plpgsql AS $$
	DECLARE
		target pg_roles%ROWTYPE;
	BEGIN
		SELECT * INTO target FROM pg_roles WHERE rolname = role;
		IF role = 'admin' OR target.rolsuper OR target.rolname = current_user OR target.rolname LIKE 'pg\_%' THEN
			RAISE EXCEPTION 'permission denied to grant IAM trust with role %', role USING ERRCODE = '42501';
		ELSIF NOT FOUND THEN
			RAISE EXCEPTION 'role "%" does not exist', role USING ERRCODE = '42704';
		ELSIF NOT target.rolcanlogin THEN
			RAISE EXCEPTION 'role % must have the LOGIN attribute', role USING ERRCODE = '0P000';
		END IF;
		INSERT INTO dsql_local.iam_mappings (arn, pg_role_oid, grantor_pg_role_oid)
			VALUES (principal, target.oid, (SELECT oid FROM pg_roles WHERE rolname = current_user))
			ON CONFLICT (arn, pg_role_oid) DO NOTHING;
	END $$`,
	// AWS IAM REVOKE: a role left without any mapping loses its backend password.
	`CREATE OR REPLACE PROCEDURE dsql_local.iam_revoke(role name, principal text) LANGUAGE plpgsql AS $$
	DECLARE
		target oid;
	BEGIN
		SELECT oid INTO target FROM pg_roles WHERE rolname = role;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'role "%" does not exist', role USING ERRCODE = '42704';
		END IF;
		DELETE FROM dsql_local.iam_mappings WHERE arn = principal AND pg_role_oid = target;
		IF NOT EXISTS (SELECT 1 FROM dsql_local.iam_mappings WHERE pg_role_oid = target) THEN
			EXECUTE format('ALTER ROLE %I PASSWORD NULL', role);
		END IF;
	END $$`,
}

// RolePasswords derives the backend passwords of mapped roles from a key made of the backend password, which
// only the stand-in (and the stack's owner) holds; the key never leaves this process.
type RolePasswords struct{ key []byte }

// NewRolePasswords makes the key; an empty backend password would make every role's password computable.
func NewRolePasswords(backendPassword string) (RolePasswords, error) {
	if backendPassword == "" {
		return RolePasswords{}, errors.New("DSQL_LOCAL_BACKEND_PASSWORD must be set: custom roles' backend passwords are derived from it")
	}
	mac := hmac.New(sha256.New, []byte(backendPassword))
	mac.Write([]byte("dsql-local role passwords"))
	return RolePasswords{key: mac.Sum(nil)}, nil
}

// For is the backend password of `role` for this run.
func (p RolePasswords) For(role string) string {
	mac := hmac.New(sha256.New, p.key)
	mac.Write([]byte(role))
	return hex.EncodeToString(mac.Sum(nil))
}

// scramIterations is PostgreSQL's own default for SCRAM-SHA-256 verifiers.
const scramIterations = 4096

// scramVerifier is the SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802/7677, in PostgreSQL's
// text form). Written here because pgx has no such function, and setting a verifier rather than the password
// keeps the password out of the server's statement log.
func scramVerifier(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, scramIterations, sha256.Size)
	if err != nil {
		return "", err
	}
	keyed := func(name string) []byte {
		mac := hmac.New(sha256.New, salted)
		mac.Write([]byte(name))
		return mac.Sum(nil)
	}
	stored := sha256.Sum256(keyed("Client Key"))
	encode := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", scramIterations, encode(salt), encode(stored[:]), encode(keyed("Server Key"))), nil
}

// concurrentUpdateTries: PostgreSQL fails an ALTER ROLE that meets another one on the same role ("tuple
// concurrently updated", XX000) instead of waiting; another stand-in over the same backend may be setting it.
const concurrentUpdateTries = 5

// SetLoginPassword gives `role` its backend password (after a login with it failed: a new role, a revoked
// and granted again one, or a changed backend password). One at a time per role within this process.
func (c *Catalog) SetLoginPassword(ctx context.Context, role, password string) error {
	lock, _ := c.loginLocks.LoadOrStore(role, &sync.Mutex{})
	lock.(*sync.Mutex).Lock()
	defer lock.(*sync.Mutex).Unlock()
	verifier, err := scramVerifier(password)
	if err != nil {
		return err
	}
	statement := "ALTER ROLE " + pgx.Identifier{role}.Sanitize() + " PASSWORD " + QuoteLiteral(verifier)
	for try := 1; ; try++ {
		_, err = c.pool.Exec(ctx, statement)
		var pgErr *pgconn.PgError
		if err == nil || try == concurrentUpdateTries || !errors.As(err, &pgErr) || pgErr.Code != "XX000" {
			return err
		}
		time.Sleep(time.Duration(try) * 20 * time.Millisecond)
	}
}

// prepareIAM creates the mapping store and drops mappings of dropped roles.
func (c *Catalog) prepareIAM(ctx context.Context) error {
	for _, statement := range iamStatements {
		if _, err := c.pool.Exec(ctx, statement); err != nil {
			return fmt.Errorf("preparing the IAM mappings: %w", err)
		}
	}
	if _, err := c.pool.Exec(ctx, `DELETE FROM dsql_local.iam_mappings m WHERE NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.oid = m.pg_role_oid)`); err != nil {
		return fmt.Errorf("preparing the IAM mappings: %w", err)
	}
	return nil
}

// MappedTo reports whether `role` exists and whether it is mapped to the IAM principal `arn`.
func (c *Catalog) MappedTo(ctx context.Context, role, arn string) (exists, mapped bool, err error) {
	err = c.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1),
		EXISTS (SELECT 1 FROM dsql_local.iam_mappings m JOIN pg_roles r ON r.oid = m.pg_role_oid WHERE r.rolname = $1 AND m.arn = $2)`,
		role, arn).Scan(&exists, &mapped)
	return exists, mapped, err
}

// Mapped reports whether `role` is mapped to any IAM principal.
func (c *Catalog) Mapped(ctx context.Context, role string) (bool, error) {
	var mapped bool
	err := c.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM dsql_local.iam_mappings m JOIN pg_roles r ON r.oid = m.pg_role_oid
		WHERE r.rolname = $1)`, role).Scan(&mapped)
	return mapped, err
}

// QuoteLiteral quotes a string as an escape-string literal, which reads the same whatever the session's
// standard_conforming_strings (a parameter clients may set).
func QuoteLiteral(value string) string {
	return "E'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(value) + "'"
}
