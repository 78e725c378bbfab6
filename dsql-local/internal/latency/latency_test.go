package latency

import (
	"strings"
	"sync"
	"testing"
	"time"
)

func TestNamedProfiles(t *testing.T) {
	for _, name := range []string{"none", "same-az", "single-region", "multi-region"} {
		profile, err := Named(name)
		if err != nil || profile.Name != name {
			t.Fatalf("Named(%q) = %+v, %v", name, profile, err)
		}
	}
	if _, err := Named("mars"); err == nil || !strings.Contains(err.Error(), "single-region") {
		t.Fatalf("an unknown profile's error should list the names: %v", err)
	}
	none, _ := Named("none")
	if none.Delay(true) != 0 {
		t.Fatal("the local stack's default adds no delay")
	}
	single, _ := Named("single-region")
	multi, _ := Named("multi-region")
	if multi.Commit <= single.Commit || multi.RoundTrip != single.RoundTrip {
		t.Fatal("a multi-Region cluster's reads are regional and its commits cross Regions")
	}
}

func TestDelayStaysWithinItsJitter(t *testing.T) {
	profile := Profile{RoundTrip: 10 * time.Millisecond, Commit: 20 * time.Millisecond, Jitter: 0.25}
	low, high := time.Hour, time.Duration(0)
	for range 2000 {
		delay := profile.Delay(true)
		low, high = min(low, delay), max(high, delay)
	}
	if low < 22500*time.Microsecond || high > 37500*time.Microsecond {
		t.Fatalf("commit delays spread over [%v, %v], outside 30 ms ± 25%%", low, high)
	}
	if high-low < 10*time.Millisecond {
		t.Fatalf("2,000 draws spread over only %v: no jitter", high-low)
	}
	if delay := (Profile{RoundTrip: 4 * time.Millisecond, Commit: time.Second}).Delay(false); delay != 4*time.Millisecond {
		t.Fatalf("a batch that commits nothing waits the round trip alone, not %v", delay)
	}
}

func TestModelCountsAndWaits(t *testing.T) {
	model := NewModel(Profile{Name: "test", RoundTrip: 2 * time.Millisecond, Commit: 3 * time.Millisecond})
	var group sync.WaitGroup
	start := time.Now()
	for i := range 20 {
		group.Add(1)
		go func() { defer group.Done(); model.Wait(i%4 == 0) }()
	}
	group.Wait()
	if roundTrips, commits := model.Counts(); roundTrips != 20 || commits != 5 {
		t.Fatalf("counted %d round trips and %d commits, want 20 and 5", roundTrips, commits)
	}
	if elapsed := time.Since(start); elapsed < 5*time.Millisecond {
		t.Fatalf("20 batches, 5 of them commits, all done in %v: nobody waited", elapsed)
	}
	model.Set(Profile{Name: "none"})
	if model.Profile().Name != "none" {
		t.Fatal("Set did not change the profile")
	}
}
