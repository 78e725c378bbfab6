package dialect

import "testing"

func TestAWSIAMGrantAndRevokeAreRecognised(t *testing.T) {
	arn := "arn:aws:iam::111122223333:role/example"
	cases := []struct {
		sql    string
		revoke bool
		role   string
	}{
		{"AWS IAM GRANT app TO '" + arn + "'", false, "app"},
		{"aws iam grant App to '" + arn + "';", false, "app"},
		{`AWS IAM GRANT "Mixed Case" TO '` + arn + `'`, false, "Mixed Case"},
		{"/* why */ AWS IAM REVOKE app FROM '" + arn + "' -- done", true, "app"},
	}
	for _, c := range cases {
		statements, err := Classify(c.sql, catalog{})
		if err != nil || len(statements) != 1 || statements[0].IAM == nil {
			t.Fatalf("%s: not recognised (%v, %+v)", c.sql, err, statements)
		}
		got := *statements[0].IAM
		if got.Revoke != c.revoke || got.Role != c.role || got.ARN != arn || statements[0].Refusal != nil {
			t.Errorf("%s: got %+v, refusal %v", c.sql, got, statements[0].Refusal)
		}
		if statements[0].Kind != KindDDL {
			t.Errorf("%s: kind %v, want DDL", c.sql, statements[0].Kind)
		}
	}
}

func TestAWSIAMGrantOfAMalformedARNIsRefused(t *testing.T) {
	for _, arn := range []string{"example", "arn:aws:iam::1234:role/example", "arn:aws:s3:::bucket",
		"arn:aws:iam::111122223333:group/example", "arn:aws:iam::111122223333:role/"} {
		statements, err := Classify("AWS IAM GRANT app TO '"+arn+"'", catalog{})
		if err != nil || len(statements) != 1 || statements[0].Refusal == nil || statements[0].Refusal.Code != "22023" {
			t.Errorf("%s: want a 22023 refusal, got %+v (%v)", arn, statements, err)
		}
	}
	if !ValidARN("arn:aws:iam::111122223333:user/path/name.x@y") {
		t.Error("a user ARN with a path is refused")
	}
}

func TestTextThatIsNotOneIAMStatementIsLeftToPostgreSQL(t *testing.T) {
	for _, sql := range []string{
		"AWS IAM GRANT app TO 'arn:aws:iam::111122223333:role/x'; SELECT 1", // two statements
		"AWS IAM GRANT app FROM 'arn:aws:iam::111122223333:role/x'",         // GRANT ... FROM
		"AWS IAM GRANT app TO arn",                                          // no string
		"GRANT app TO other",
	} {
		statements, _ := Classify(sql, catalog{})
		for _, statement := range statements {
			if statement.IAM != nil {
				t.Errorf("%s: taken for an IAM statement", sql)
			}
		}
	}
}

func TestRolesGetNoPasswordAndSessionsKeepTheirRole(t *testing.T) {
	for _, sql := range []string{
		"CREATE ROLE app WITH LOGIN PASSWORD 'x'", "ALTER ROLE app WITH PASSWORD 'x'", "ALTER USER app PASSWORD NULL",
		"SET ROLE other", "SET SESSION AUTHORIZATION other", "RESET ROLE", "SET LOCAL ROLE other",
		"CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $$ALTER ROLE app PASSWORD 'known'$$",
	} {
		statements, err := Classify(sql, catalog{})
		if err != nil || len(statements) != 1 || statements[0].Refusal == nil || statements[0].Refusal.Code != "0A000" {
			t.Errorf("%s: want a 0A000 refusal, got %+v (%v)", sql, statements, err)
		}
	}
	for _, sql := range []string{"CREATE ROLE app WITH LOGIN", "ALTER ROLE app WITH NOLOGIN", "RESET ALL"} {
		statements, err := Classify(sql, catalog{})
		if err != nil || len(statements) != 1 || statements[0].Refusal != nil {
			t.Errorf("%s: refused: %+v (%v)", sql, statements, err)
		}
	}
}

func TestDropRoleNamesItsRoles(t *testing.T) {
	statements, err := Classify("DROP ROLE IF EXISTS app, \"Other\"", catalog{})
	if err != nil || len(statements) != 1 || len(statements[0].Dropped) != 2 ||
		statements[0].Dropped[0] != "app" || statements[0].Dropped[1] != "Other" {
		t.Fatalf("got %+v (%v)", statements, err)
	}
}

// The backend role's CREATEROLE would let admin grant itself PostgreSQL's roles that read and write the server's
// files and run its programs; DSQL has none of them to give.
func TestPredefinedRolesAreNeverGranted(t *testing.T) {
	for _, sql := range []string{
		"GRANT pg_read_server_files TO admin", "GRANT pg_execute_server_program TO app WITH ADMIN OPTION",
		"GRANT app, pg_write_server_files TO other", "CREATE ROLE app WITH LOGIN IN ROLE pg_read_server_files",
		"ALTER GROUP pg_execute_server_program ADD USER app",
		"CREATE FUNCTION f() RETURNS void LANGUAGE sql AS 'GRANT pg_execute_server_program TO app'",
		"CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $$ALTER GROUP pg_read_server_files ADD USER app$$",
	} {
		statements, err := Classify(sql, catalog{})
		if err != nil || len(statements) != 1 || statements[0].Refusal == nil || statements[0].Refusal.Code != "42501" {
			t.Errorf("%s: want a 42501 refusal, got %+v (%v)", sql, statements, err)
		}
	}
	for _, sql := range []string{"GRANT app TO other", "REVOKE pg_read_server_files FROM app", "CREATE ROLE app IN ROLE other",
		"ALTER GROUP other ADD USER app", "ALTER GROUP pg_read_server_files DROP USER app",
		"GRANT SELECT ON executions TO app"} {
		statements, err := Classify(sql, catalog{})
		if err != nil || len(statements) != 1 || statements[0].Refusal != nil {
			t.Errorf("%s: refused: %+v (%v)", sql, statements, err)
		}
	}
}

// A SQL function's body runs as statements of its own, so it is held to every rule: PL/pgSQL inside it (a DO
// block, a function of another language) would build statements at run time that no parse could check.
func TestFunctionBodiesAreHeldToEveryRule(t *testing.T) {
	for _, sql := range []string{
		"CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $f$DO $d$ BEGIN EXECUTE 'SELECT 1'; END $d$$f$",
		"CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $f$CREATE FUNCTION g() RETURNS void LANGUAGE plpgsql AS 'BEGIN END'$f$",
		"CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $f$TRUNCATE executions$f$",
	} {
		statements, err := Classify(sql, catalog{})
		if err != nil || len(statements) != 1 || statements[0].Refusal == nil {
			t.Errorf("%s: want a refusal, got %+v (%v)", sql, statements, err)
		}
	}
	statements, err := Classify("CREATE FUNCTION f(k int) RETURNS bigint LANGUAGE sql AS $f$SELECT count(*) FROM executions WHERE shard_id = k$f$", catalog{})
	if err != nil || len(statements) != 1 || statements[0].Refusal != nil {
		t.Errorf("a plain SQL function: want it accepted, got %+v (%v)", statements, err)
	}
}
