package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"strings"
	"time"

	"github.com/temporal-dsql-deploy/dsql-local/internal/backend"
	"github.com/temporal-dsql-deploy/dsql-local/internal/dialect"
	"github.com/temporal-dsql-deploy/dsql-local/internal/sqlerr"
)

// Jobs runs `CREATE INDEX ASYNC` builds in the background and records them in sys.jobs.
type Jobs struct {
	catalog *backend.Catalog
	log     *slog.Logger
}

// NewJobs builds the job runner.
func NewJobs(catalog *backend.Catalog, log *slog.Logger) *Jobs {
	return &Jobs{catalog: catalog, log: log}
}

// catalogWait bounds a catalog question asked while a client waits for its answer.
const catalogWait = 10 * time.Second

// NewID is a job id shaped like DSQL's (26 lower-case characters).
func NewID() string {
	buffer := make([]byte, 13)
	_, _ = rand.Read(buffer)
	return hex.EncodeToString(buffer)
}

// Admit checks an index build before it is accepted: only the table's owner may index it (role is the
// session's own; "" for admin, whose role the job runs as); DSQL refuses a name in use at once, and answers
// IF NOT EXISTS on one with a job that has nothing to do.
func (j *Jobs) Admit(index *dialect.AsyncIndex, role string) (skip bool, refusal *sqlerr.Error) {
	if role != "" {
		ctx, cancel := context.WithTimeout(context.Background(), catalogWait)
		defer cancel()
		may, err := j.catalog.MayIndex(ctx, role, index.Schema, index.Table)
		if err != nil || !may {
			return false, sqlerr.New(sqlerr.InsufficientPrivilege, "index_owner", "must be owner of table %s", index.Table)
		}
	}
	exists, err := j.catalog.RelationExists(index.Name)
	switch {
	case err != nil || !exists:
		return false, nil
	case index.IfNotExists:
		return true, nil
	}
	return false, sqlerr.New("42P07", "duplicate_index", "relation \"%s\" already exists", index.Name)
}

// Start records job `id` as submitted and builds the index in the background (or, with `done`,
// records a job that found its index already there).
func (j *Jobs) Start(id string, index *dialect.AsyncIndex, done bool) {
	ctx := context.Background()
	pool := j.catalog.Pool()
	if done {
		if _, err := pool.Exec(ctx, `INSERT INTO sys.jobs (job_id, status, job_type, object_name) VALUES ($1, 'completed', 'INDEX_BUILD', $2)`,
			id, index.Name); err != nil {
			j.log.Error("recording an index job failed", "job", id, "error", err)
		}
		return
	}
	if _, err := pool.Exec(ctx, `INSERT INTO sys.jobs (job_id, status, job_type, object_name) VALUES ($1, 'submitted', 'INDEX_BUILD', $2)`,
		id, index.Name); err != nil {
		j.log.Error("recording an index job failed", "job", id, "error", err)
		return
	}
	go func() {
		_, _ = pool.Exec(ctx, `UPDATE sys.jobs SET status = 'processing', update_time = now() WHERE job_id = $1`, id)
		status, details := "completed", ""
		if _, err := pool.Exec(ctx, index.Build); err != nil {
			status, details = "failed", err.Error()
		}
		j.catalog.Invalidate()
		if status == "completed" { // the table's trigger function measures the new index's key from now on
			if err := j.catalog.Guard(ctx, strings.ToLower(index.Table)); err != nil {
				j.log.Error("guarding a table after an index build failed", "table", index.Table, "error", err)
			}
		}
		if _, err := pool.Exec(ctx, `UPDATE sys.jobs SET status = $2, details = nullif($3, ''), update_time = now() WHERE job_id = $1`,
			id, status, details); err != nil {
			j.log.Error("recording an index job's end failed", "job", id, "error", err)
		}
		j.log.Info("index job finished", "job", id, "index", index.Name, "status", status)
	}()
}
