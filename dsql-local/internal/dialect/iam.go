package dialect

import (
	"regexp"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/temporal-dsql-deploy/dsql-local/internal/sqlerr"
)

// IAMGrant is DSQL's `AWS IAM GRANT role TO 'arn'` or `AWS IAM REVOKE role FROM 'arn'`
// (using-database-and-iam-roles), which PostgreSQL's grammar does not know: it is found with PostgreSQL's
// scanner before parsing.
type IAMGrant struct {
	Revoke bool
	Role   string
	ARN    string
}

// An IAM user's or role's ARN (IAM identifiers: path and name characters).
var iamARN = regexp.MustCompile(`^arn:aws:iam::[0-9]{12}:(role|user)/[A-Za-z0-9+=,.@_/-]+$`)

// ValidARN reports whether `arn` is an IAM user's or role's ARN, as AWS IAM GRANT takes.
func ValidARN(arn string) bool { return iamARN.MatchString(arn) }

// iamStatement recognises a text that is one AWS IAM GRANT or REVOKE (a trailing semicolon allowed); ok is
// false for anything else. A malformed ARN is a refusal with DSQL's message (troubleshooting).
func iamStatement(sql string) (statement Statement, ok bool) {
	scanned, err := pg_query.Scan(sql)
	if err != nil {
		return Statement{}, false
	}
	var tokens []*pg_query.ScanToken
	for _, token := range scanned.GetTokens() {
		if token.GetToken() != pg_query.Token_SQL_COMMENT && token.GetToken() != pg_query.Token_C_COMMENT {
			tokens = append(tokens, token)
		}
	}
	if n := len(tokens); n > 0 && tokens[n-1].GetToken() == pg_query.Token_ASCII_59 { // ';'
		tokens = tokens[:n-1]
	}
	text := func(i int) string { return sql[tokens[i].GetStart():tokens[i].GetEnd()] }
	if len(tokens) != 6 || !strings.EqualFold(text(0), "aws") || !strings.EqualFold(text(1), "iam") ||
		tokens[5].GetToken() != pg_query.Token_SCONST {
		return Statement{}, false
	}
	grant := IAMGrant{Role: identifier(text(3)), ARN: strings.ReplaceAll(strings.Trim(text(5), "'"), "''", "'")}
	switch {
	case tokens[2].GetToken() == pg_query.Token_GRANT && tokens[4].GetToken() == pg_query.Token_TO:
	case tokens[2].GetToken() == pg_query.Token_REVOKE && tokens[4].GetToken() == pg_query.Token_FROM:
		grant.Revoke = true
	default:
		return Statement{}, false
	}
	statement = Statement{Kind: KindDDL, IAM: &grant}
	if !ValidARN(grant.ARN) {
		statement.Refusal = refuse(sqlerr.InvalidParameterValue, "iam_arn", "IAM role must look like an IAM ARN")
	}
	return statement, true
}

// identifier is a role name as PostgreSQL reads it: a quoted one verbatim, any other folded to lower case.
func identifier(token string) string {
	if strings.HasPrefix(token, `"`) && strings.HasSuffix(token, `"`) && len(token) >= 2 {
		return strings.ReplaceAll(token[1:len(token)-1], `""`, `"`)
	}
	return strings.ToLower(token)
}
