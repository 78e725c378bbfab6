// Package token verifies Aurora DSQL IAM auth tokens: SigV4-presigned URLs for this endpoint.
//
// A token is `<host>/?Action=DbConnect[Admin]&X-Amz-...&X-Amz-Signature=...` (aws-sdk-go-v2 leaves out
// the slash), made offline by the AWS
// SDKs. The stand-in recomputes the presigned URL with aws-sdk-go-v2's signer at the token's own
// timestamp, with the credentials it was given, and compares signatures in constant time.
package token

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const (
	service      = "dsql"
	amzDate      = "20060102T150405Z"
	maxExpires   = 7 * 24 * time.Hour // SigV4 presigned URLs live at most a week
	emptySHA256  = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	unsignedBody = "UNSIGNED-PAYLOAD"
)

// ErrRefused is returned for every bad token; the reason is for the stand-in's log, never the client.
var ErrRefused = errors.New("IAM token refused")

// Verifier checks tokens for one endpoint against one set of credentials.
type Verifier struct {
	Host        string
	Region      string
	Credentials aws.Credentials
	Now         func() time.Time
}

// The IAM actions a token is made for: DbConnectAdmin for the admin role, DbConnect for custom roles.
const (
	ActionAdmin = "DbConnectAdmin"
	ActionRole  = "DbConnect"
)

// Verify returns the action of `token` when it is a valid, unexpired token for this endpoint, signed with
// the stand-in's credentials. Which action a user needs is the caller's rule (DSQL answers it apart).
func (v *Verifier) Verify(token string) (string, error) {
	action, reason := v.check(token)
	if reason != "" {
		return "", fmt.Errorf("%w: %s", ErrRefused, reason)
	}
	return action, nil
}

func (v *Verifier) check(token string) (string, string) {
	// boto3 writes `host/?query`, aws-sdk-go-v2 `host?query`; both sign the path "/".
	host, rawQuery, found := strings.Cut(strings.TrimPrefix(token, "https://"), "?")
	host = strings.TrimSuffix(host, "/")
	if !found || host == "" || strings.Contains(host, "/") {
		return "", "not a presigned URL"
	}
	if !strings.EqualFold(host, v.Host) {
		return "", "made for another host"
	}
	query, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", "query does not parse"
	}
	action := query.Get("Action")
	if action != ActionAdmin && action != ActionRole {
		return "", "not a DbConnect or DbConnectAdmin token"
	}
	if query.Get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256" {
		return "", "not SigV4"
	}
	credential := strings.Split(query.Get("X-Amz-Credential"), "/")
	if len(credential) != 5 || credential[2] != v.Region || credential[3] != service || credential[4] != "aws4_request" {
		return "", "credential scope is not this Region's dsql"
	}
	if credential[0] != v.Credentials.AccessKeyID {
		return "", "unknown access key"
	}
	signed, err := time.Parse(amzDate, query.Get("X-Amz-Date"))
	if err != nil {
		return "", "bad X-Amz-Date"
	}
	seconds, err := strconv.Atoi(query.Get("X-Amz-Expires"))
	if err != nil || seconds <= 0 || time.Duration(seconds)*time.Second > maxExpires {
		return "", "bad X-Amz-Expires"
	}
	now := v.Now()
	if now.After(signed.Add(time.Duration(seconds) * time.Second)) {
		return "", "expired"
	}
	if signed.After(now.Add(5 * time.Minute)) {
		return "", "signed in the future"
	}
	if query.Get("X-Amz-Security-Token") != v.Credentials.SessionToken {
		return "", "session token does not match"
	}
	signature := query.Get("X-Amz-Signature")
	for _, payload := range []string{emptySHA256, unsignedBody} { // SDKs differ in the payload hash they sign
		expected, err := v.sign(host, query, signed, payload)
		if err == nil && hmac.Equal([]byte(expected), []byte(signature)) {
			return action, ""
		}
	}
	return "", "signature does not match"
}

// sign presigns the token's request again and returns the signature it gets.
func (v *Verifier) sign(host string, query url.Values, at time.Time, payload string) (string, error) {
	unsigned := url.Values{}
	for name, values := range query {
		if !strings.HasPrefix(name, "X-Amz-") || name == "X-Amz-Expires" {
			unsigned[name] = values
		}
	}
	request, err := http.NewRequest(http.MethodGet, "https://"+host+"/?"+unsigned.Encode(), nil)
	if err != nil {
		return "", err
	}
	presigned, _, err := v4.NewSigner().PresignHTTP(context.Background(), v.Credentials, request, payload, service, v.Region, at)
	if err != nil {
		return "", err
	}
	parsed, err := url.Parse(presigned)
	if err != nil {
		return "", err
	}
	return parsed.Query().Get("X-Amz-Signature"), nil
}
