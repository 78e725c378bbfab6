package proxy

import (
	"cmp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/temporal-dsql-deploy/dsql-local/internal/dialect"
	"github.com/temporal-dsql-deploy/dsql-local/internal/sqlerr"
	"github.com/temporal-dsql-deploy/dsql-local/internal/token"
)

func TestInjectedConflictsAreDeterministicPerSeed(t *testing.T) {
	draw := func(seed int64) []bool {
		faults := NewFaults()
		faults.Set(0.1, seed)
		outcomes := make([]bool, 1000)
		for i := range outcomes {
			outcomes[i] = faults.CommitConflict()
		}
		return outcomes
	}
	first, again, other := draw(7), draw(7), draw(8)
	fired, differs := 0, false
	for i := range first {
		if first[i] != again[i] {
			t.Fatalf("seed 7 drew differently at commit %d", i)
		}
		if first[i] {
			fired++
		}
		differs = differs || first[i] != other[i]
	}
	if fired < 60 || fired > 140 {
		t.Fatalf("10%% of 1,000 commits gave %d conflicts", fired)
	}
	if !differs {
		t.Fatal("another seed drew the same sequence")
	}
}

func TestFaultsAndEpochsUnderConcurrency(t *testing.T) {
	faults, epochs := NewFaults(), NewSchemaEpochs()
	faults.Set(0.5, 1)
	var wg sync.WaitGroup
	for worker := 0; worker < 16; worker++ {
		wg.Add(1)
		go func(worker int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				faults.CommitConflict()
				start := epochs.Now()
				epochs.Changed([]string{"t"})
				if !epochs.ChangedSince(start, []string{"t"}) {
					t.Error("a change after an epoch was not seen")
				}
			}
		}(worker)
	}
	wg.Wait()
	_, _, fired := faults.State()
	if fired == 0 || epochs.Now() != 16*200 {
		t.Fatalf("fired %d, epoch %d", fired, epochs.Now())
	}
}

func newTestSession() *session {
	return sessionOf(&Server{config: Config{MaxTxnAge: time.Minute, Tokens: &token.Verifier{Region: "us-east-1"}},
		Cluster: &Cluster{Faults: NewFaults(), Schema: NewSchemaEpochs()}})
}

func sessionOf(server *Server) *session { return &session{server: server} }

func TestAnIsolatedRegionRefusesWritesWhileItsPeerServes(t *testing.T) {
	a := newTestSession().server
	b := &Server{config: Config{MaxTxnAge: time.Minute, Tokens: &token.Verifier{Region: "us-west-2"}}, Cluster: a.Cluster}
	begin, commit := dialect.Statement{Kind: dialect.KindBegin}, dialect.Statement{Kind: dialect.KindCommit}
	write := dialect.Statement{Kind: dialect.KindDML, Tables: []string{"t"}}
	read := dialect.Statement{Kind: dialect.KindRead, Tables: []string{"t"}}
	transaction := func(server *Server, statements ...dialect.Statement) *sqlerr.Error {
		s := sessionOf(server)
		for _, statement := range append(append([]dialect.Statement{begin}, statements...), commit) {
			if refusal, failed := s.admit(statement); refusal != nil || failed != nil {
				return cmp.Or(refusal, failed)
			}
		}
		return nil
	}
	a.SetIsolated(true)
	if failed := transaction(a, read, write); failed == nil || failed.Rule != "region_isolated" || failed.Code != "08006" ||
		!strings.Contains(failed.Message, "us-east-1") {
		t.Fatalf("a writing commit in the isolated Region: %v", failed)
	}
	if failed := sessionOf(a).failedAutocommit(write); failed == nil || failed.Rule != "region_isolated" {
		t.Fatalf("a write that commits on its own in the isolated Region: %v", failed)
	}
	together := sessionOf(a)
	together.refusals = map[string]*sqlerr.Error{}
	if sent := together.onQuery("INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)"); !strings.HasPrefix(sent, markerPrefix) ||
		together.refusals[sent].Rule != "region_isolated" {
		t.Fatalf("two writes sent together outside BEGIN in the isolated Region went to the backend as %q", sent)
	}
	if failed := transaction(a, read); failed != nil {
		t.Fatalf("a transaction that only read has nothing to make durable: %v", failed)
	}
	if a.RefusedWrites() != 3 || b.RefusedWrites() != 0 {
		t.Fatalf("refused writes counted: %d in the isolated Region, %d in the other", a.RefusedWrites(), b.RefusedWrites())
	}
	if failed := transaction(b, read, write); failed != nil {
		t.Fatalf("the Region with the witness keeps serving writes: %v", failed)
	}
	a.SetIsolated(false)
	if failed := transaction(a, write); failed != nil {
		t.Fatalf("reconnected, the Region writes again: %v", failed)
	}
	// One store behind both endpoints: a schema change committed through one is a conflict seen through the other.
	s := sessionOf(b)
	s.admit(begin)
	s.admit(write)
	a.Schema.Changed([]string{"t"})
	if _, failed := s.admit(commit); failed == nil || failed.Rule != "occ_schema" {
		t.Fatalf("a schema change through the other Region's endpoint: %v", failed)
	}
}

func TestTransactionRules(t *testing.T) {
	ddl := dialect.Statement{Kind: dialect.KindDDL, Tables: []string{"t"}, Created: "t"}
	dml := dialect.Statement{Kind: dialect.KindDML, Tables: []string{"u"}}
	begin, commit := dialect.Statement{Kind: dialect.KindBegin}, dialect.Statement{Kind: dialect.KindCommit}
	cases := []struct {
		name  string
		steps []dialect.Statement
		rule  string
	}{
		{"two DDL", []dialect.Statement{begin, ddl, ddl}, "ddl_count"},
		{"DDL then DML", []dialect.Statement{begin, ddl, dml}, "ddl_dml_mix"},
		{"DML then DDL", []dialect.Statement{begin, dml, ddl}, "ddl_dml_mix"},
		{"one DDL", []dialect.Statement{begin, ddl, commit}, ""},
	}
	for _, c := range cases {
		s := newTestSession()
		rule := ""
		for _, step := range c.steps {
			if refusal, _ := s.admit(step); refusal != nil {
				rule = refusal.Rule
				break
			}
		}
		if rule != c.rule {
			t.Errorf("%s: want %q, got %q", c.name, c.rule, rule)
		}
	}
	s := newTestSession()
	s.admit(begin)
	s.admit(ddl)
	if _, failed := s.admit(commit); failed != nil || s.pendingCommit == nil || s.pendingCommit.created[0] != "t" {
		t.Fatalf("a DDL commit must publish its change: %v %+v", failed, s.pendingCommit)
	}
}

func TestOldTransactionsAndSchemaConflicts(t *testing.T) {
	s := newTestSession()
	s.admit(dialect.Statement{Kind: dialect.KindBegin})
	s.txn.began = time.Now().Add(-2 * time.Minute)
	if refusal, _ := s.admit(dialect.Statement{Kind: dialect.KindRead, Tables: []string{"t"}}); refusal == nil || refusal.Code != "54000" {
		t.Fatalf("an old transaction must fail with 54000, got %v", refusal)
	}
	s = newTestSession()
	s.admit(dialect.Statement{Kind: dialect.KindBegin})
	s.admit(dialect.Statement{Kind: dialect.KindDML, Tables: []string{"t"}})
	s.server.Schema.Changed([]string{"t"})
	if _, failed := s.admit(dialect.Statement{Kind: dialect.KindCommit}); failed == nil || failed.Rule != "occ_schema" {
		t.Fatalf("a schema change during the transaction must fail its commit with OC001, got %v", failed)
	}
}
