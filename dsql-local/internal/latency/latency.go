// Package latency models the time a client waits on an Aurora DSQL endpoint that a stand-in one loopback
// hop away does not: a network round trip for every batch the client sends, and for a transaction that
// wrote, the extra time its commit takes to be made durable (across Availability Zones, and for a
// multi-Region cluster, with the peer Region or the witness).
package latency

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Profile is one endpoint's delays. The values of the named profiles and their sources are in the README
// ("Performance under DSQL latency").
type Profile struct {
	Name string
	// RoundTrip is added to every batch the client sends: a simple query, or the extended protocol's
	// messages up to a Sync. pgx and Temporal's SQL layer send one batch per statement.
	RoundTrip time.Duration
	// Commit is added, on top of the round trip, to the batch that commits a transaction that wrote.
	Commit time.Duration
	// Jitter spreads each delay uniformly over ±Jitter of its value (0.2: ±20%).
	Jitter float64
}

// Profiles are the named profiles; "none" is the local stack's default.
var Profiles = []Profile{
	{Name: "none"},
	{Name: "same-az", RoundTrip: 1 * time.Millisecond, Commit: 2 * time.Millisecond, Jitter: 0.2},
	{Name: "single-region", RoundTrip: 6 * time.Millisecond, Commit: 2 * time.Millisecond, Jitter: 0.2},
	{Name: "multi-region", RoundTrip: 6 * time.Millisecond, Commit: 22 * time.Millisecond, Jitter: 0.2},
}

// Named returns the profile called name, or an error that lists the names there are.
func Named(name string) (Profile, error) {
	index := slices.IndexFunc(Profiles, func(p Profile) bool { return p.Name == name })
	if index < 0 {
		return Profile{}, fmt.Errorf("no latency profile %q: choose one of %s", name, strings.Join(Names(), ", "))
	}
	return Profiles[index], nil
}

// Names lists the profiles' names, in the order above.
func Names() []string {
	names := make([]string, len(Profiles))
	for i, profile := range Profiles {
		names[i] = profile.Name
	}
	return names
}

// Delay draws the wait for one batch; commit says whether the batch commits a transaction that wrote.
func (p Profile) Delay(commit bool) time.Duration {
	base := p.RoundTrip
	if commit {
		base += p.Commit
	}
	if base <= 0 || p.Jitter <= 0 {
		return base
	}
	spread := 1 + p.Jitter*(2*rand.Float64()-1) // math/rand/v2's top-level source is safe for concurrent use
	return time.Duration(float64(base) * spread)
}

// Model is an endpoint's current profile and what it has counted; the profile can change while sessions
// run (the admin API sets it).
type Model struct {
	profile    atomic.Pointer[Profile]
	roundTrips atomic.Int64
	commits    atomic.Int64
}

// NewModel starts with profile.
func NewModel(profile Profile) *Model {
	model := &Model{}
	model.Set(profile)
	return model
}

// Set changes the profile for the batches that follow.
func (m *Model) Set(profile Profile) { m.profile.Store(&profile) }

// Profile is the profile in force.
func (m *Model) Profile() Profile { return *m.profile.Load() }

// Wait counts one round trip (and a writing commit) and sleeps for the profile's delay.
func (m *Model) Wait(commit bool) {
	m.roundTrips.Add(1)
	if commit {
		m.commits.Add(1)
	}
	if delay := m.Profile().Delay(commit); delay > 0 {
		time.Sleep(delay)
	}
}

// Counts are the round trips and the commits of writing transactions since start.
func (m *Model) Counts() (roundTrips, commits int64) { return m.roundTrips.Load(), m.commits.Load() }
