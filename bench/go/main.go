// Command bench measures Go's concurrent map patterns on safemap-bench's workloads, with the
// standard library only: sync.Map, a map behind sync.RWMutex, and a 64-shard map of
// cache-line-padded RWMutex shards. safemap-bench builds and runs it when `go` is installed and
// reads the JSON array it prints on stdout.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"
)

// mix is a workload's operation shares in percent and its prefilled fraction, as in
// crates/safemap-bench/src/workload.rs. A growth workload instead has thread 0 insert every key
// once, in order, from empty, timing each insert, while the other threads read, untimed.
type mix struct {
	read, insert, remove, update, getOrInsert, prefill float64
	growth                                             bool
}

var workloads = map[string]mix{
	"ReadHeavy":      {98, 1, 1, 0, 0, 0.75, false},
	"Exchange":       {10, 40, 40, 10, 0, 0.75, false},
	"RapidGrow":      {5, 80, 5, 10, 0, 0, false},
	"ReadMostly":     {99, 0.5, 0.5, 0, 0, 0.75, false},
	"DeviceRegistry": {100 * 5000.0 / 5300, 0, 0, 0, 100 * 300.0 / 5300, 0.9, false},
	"Growth":         {100, 0, 0, 0, 0, 0, true},
}

const sampleEvery = 32

type kind uint8

const (
	opRead kind = iota
	opInsert
	opRemove
	opUpdate
	opGetOrInsert
)

type op struct {
	kind kind
	key  uint64
}

// key is the same bijection safemap-bench uses.
func key(i uint64) uint64 { return i * 0x9E3779B97F4A7C15 }

type store interface {
	get(k uint64) bool
	insert(k, v uint64)
	remove(k uint64)
	update(k uint64)
	getOrInsert(k, v uint64) uint64
}

type syncMap struct{ m sync.Map }

func (s *syncMap) get(k uint64) bool  { _, ok := s.m.Load(k); return ok }
func (s *syncMap) insert(k, v uint64) { s.m.Store(k, v) }
func (s *syncMap) remove(k uint64)    { s.m.Delete(k) }
func (s *syncMap) update(k uint64) {
	// sync.Map has no atomic read-modify-write before Go 1.20's CompareAndSwap, and Debian's Go
	// is 1.19: this Load then Store is what such code does, and it can lose a concurrent update.
	if old, ok := s.m.Load(k); ok {
		s.m.Store(k, old.(uint64)+1)
	}
}
func (s *syncMap) getOrInsert(k, v uint64) uint64 {
	actual, _ := s.m.LoadOrStore(k, v)
	return actual.(uint64)
}

type rwMap struct {
	mu sync.RWMutex
	m  map[uint64]uint64
}

func (s *rwMap) get(k uint64) bool {
	s.mu.RLock()
	_, ok := s.m[k]
	s.mu.RUnlock()
	return ok
}
func (s *rwMap) insert(k, v uint64) { s.mu.Lock(); s.m[k] = v; s.mu.Unlock() }
func (s *rwMap) remove(k uint64)    { s.mu.Lock(); delete(s.m, k); s.mu.Unlock() }
func (s *rwMap) update(k uint64) {
	s.mu.Lock()
	if v, ok := s.m[k]; ok {
		s.m[k] = v + 1
	}
	s.mu.Unlock()
}
func (s *rwMap) getOrInsert(k, v uint64) uint64 {
	s.mu.RLock()
	old, ok := s.m[k]
	s.mu.RUnlock()
	if ok {
		return old
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.m[k]; ok {
		return old
	}
	s.m[k] = v
	return v
}

// shard is padded to its own cache lines so neighbouring shards' locks do not share one.
type shard struct {
	rwMap
	_ [64]byte
}

type shardedMap struct{ shards [64]shard }

func newSharded() *shardedMap {
	s := &shardedMap{}
	for i := range s.shards {
		s.shards[i].m = make(map[uint64]uint64)
	}
	return s
}

func (s *shardedMap) of(k uint64) *rwMap             { return &s.shards[(k*0x9E3779B97F4A7C15)>>58].rwMap }
func (s *shardedMap) get(k uint64) bool              { return s.of(k).get(k) }
func (s *shardedMap) insert(k, v uint64)             { s.of(k).insert(k, v) }
func (s *shardedMap) remove(k uint64)                { s.of(k).remove(k) }
func (s *shardedMap) update(k uint64)                { s.of(k).update(k) }
func (s *shardedMap) getOrInsert(k, v uint64) uint64 { return s.of(k).getOrInsert(k, v) }

var contestants = []struct {
	name string
	make func() store
}{
	{"go-sync.Map", func() store { return &syncMap{} }},
	{"go-RWMutex", func() store { return &rwMap{m: make(map[uint64]uint64)} }},
	{"go-sharded64", func() store { return newSharded() }},
}

// zipf draws indices in [0, n) with exponent 0.99 by inverting the continuous approximation of
// the CDF (Go's rand.Zipf needs an exponent above 1).
type zipf struct{ n, s float64 }

func (z zipf) draw(r *rand.Rand) uint64 {
	u := r.Float64()
	hn := (math.Pow(z.n, 1-z.s) - 1) / (1 - z.s)
	x := math.Pow(u*hn*(1-z.s)+1, 1/(1-z.s))
	i := uint64(x) - 1
	if i >= uint64(z.n) {
		i = uint64(z.n) - 1
	}
	return i
}

func plan(m mix, keys int, dist string, ops int, thread int) []op {
	r := rand.New(rand.NewSource(int64(0x5afe0000 + thread)))
	z := zipf{float64(keys), 0.99}
	out := make([]op, ops)
	for i := range out {
		var idx uint64
		if dist == "zipf" {
			idx = z.draw(r)
		} else {
			idx = uint64(r.Int63n(int64(keys)))
		}
		roll := r.Float64() * 100
		k := opGetOrInsert
		switch {
		case roll < m.read:
			k = opRead
		case roll < m.read+m.insert:
			k = opInsert
		case roll < m.read+m.insert+m.remove:
			k = opRemove
		case roll < m.read+m.insert+m.remove+m.update:
			k = opUpdate
		}
		out[i] = op{k, key(idx)}
	}
	return out
}

var sink uint64

// run times one operation in every[t] on thread t (none when 0) and returns the throughput in
// Mops/s, the operations done and the timings. With a budget, each thread stops at the first check
// (every 4096 operations) after the budget has passed, and throughput counts only the operations
// done, as safemap-bench's --max-seconds does.
func run(s store, plans [][]op, every []int, budget time.Duration) (float64, int, []int64) {
	var wg sync.WaitGroup
	var start sync.WaitGroup
	start.Add(1)
	spans := make([][2]time.Time, len(plans))
	samples := make([][]int64, len(plans))
	done := make([]int, len(plans))
	for t, ops := range plans {
		wg.Add(1)
		go func(t int, ops []op) {
			defer wg.Done()
			var local uint64
			start.Wait()
			spans[t][0] = time.Now()
			done[t] = len(ops)
			for i, o := range ops {
				var began time.Time
				timed := every[t] > 0 && i%every[t] == 0
				if timed {
					began = time.Now()
				}
				switch o.kind {
				case opRead:
					if s.get(o.key) {
						local++
					}
				case opInsert:
					s.insert(o.key, o.key)
				case opRemove:
					s.remove(o.key)
				case opUpdate:
					s.update(o.key)
				case opGetOrInsert:
					local += s.getOrInsert(o.key, o.key>>7)
				}
				if timed {
					samples[t] = append(samples[t], time.Since(began).Nanoseconds())
				}
				if budget > 0 && i%4096 == 4095 && time.Since(spans[t][0]) > budget {
					done[t] = i + 1
					break
				}
			}
			spans[t][1] = time.Now()
			sink += local
		}(t, ops)
	}
	start.Done()
	wg.Wait()
	first, last := spans[0][0], spans[0][1]
	total := 0
	var all []int64
	for t := range plans {
		if spans[t][0].Before(first) {
			first = spans[t][0]
		}
		if spans[t][1].After(last) {
			last = spans[t][1]
		}
		total += done[t]
		all = append(all, samples[t]...)
	}
	return float64(total) / last.Sub(first).Seconds() / 1e6, total, all
}

func footprint(make func() store, keys int) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := make()
	for i := 0; i < keys; i++ {
		s.insert(key(uint64(i)), uint64(i))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(s)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(keys)
}

type row struct {
	Workload      string  `json:"workload"`
	Threads       int     `json:"threads"`
	Dist          string  `json:"dist"`
	Keys          int     `json:"keys"`
	Contestant    string  `json:"contestant"`
	Mops          float64 `json:"mops"`
	MopsMin       float64 `json:"mops_min"`
	MopsMax       float64 `json:"mops_max"`
	P50           int64   `json:"p50_ns"`
	P99           int64   `json:"p99_ns"`
	P999          int64   `json:"p999_ns"`
	Max           int64   `json:"max_ns"`
	BytesPerEntry float64 `json:"bytes_per_entry"`
}

func quantile(sorted []int64, q float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(q*float64(len(sorted)-1))]
}

func main() {
	names := flag.String("workloads", "ReadHeavy,Exchange,RapidGrow", "comma-separated workloads")
	threadList := flag.String("threads", "1,2", "comma-separated thread counts")
	keysFlag := flag.Int("keys", 1<<20, "key space")
	opsFlag := flag.Int("ops", 2000000, "operations per repetition, over all threads")
	reps := flag.Int("reps", 3, "repetitions per cell")
	dist := flag.String("dist", "uniform", "uniform or zipf")
	maxSeconds := flag.Float64("max-seconds", 0, "per-thread budget of a mixed workload's repetition, in seconds (0: none)")
	flag.Parse()
	var threads []int
	for _, t := range strings.Split(*threadList, ",") {
		var n int
		if _, err := fmt.Sscan(t, &n); err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "bad thread count %q\n", t)
			os.Exit(2)
		}
		threads = append(threads, n)
	}
	footprints := map[string]float64{}
	var rows []row
	for _, name := range strings.Split(*names, ",") {
		m, ok := workloads[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown workload %q\n", name)
			os.Exit(2)
		}
		for _, n := range threads {
			plans := make([][]op, n)
			every := make([]int, n)
			for t := range plans {
				plans[t] = plan(m, *keysFlag, *dist, *opsFlag/n, t)
				every[t] = sampleEvery
			}
			if m.growth {
				plans[0] = make([]op, *keysFlag)
				for i := range plans[0] {
					plans[0][i] = op{opInsert, key(uint64(i))}
				}
				for t := range every {
					every[t] = 0
					if t > 0 {
						plans[t] = plan(m, *keysFlag, *dist, *keysFlag, t)
					}
				}
				every[0] = 1
			}
			for _, c := range contestants {
				var mops []float64
				var lat []int64
				for r := 0; r < *reps; r++ {
					s := c.make()
					for i := 0; i < int(m.prefill*float64(*keysFlag)); i++ {
						s.insert(key(uint64(i)), uint64(i))
					}
					budget := time.Duration(*maxSeconds * float64(time.Second))
					if m.growth {
						// Growth is defined by its whole operation list, as in safemap-bench.
						budget = 0
					}
					x, _, l := run(s, plans, every, budget)
					mops = append(mops, x)
					lat = append(lat, l...)
				}
				sort.Float64s(mops)
				sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
				if _, ok := footprints[c.name]; !ok {
					footprints[c.name] = footprint(c.make, *keysFlag)
				}
				rows = append(rows, row{name, n, *dist, *keysFlag, c.name, mops[len(mops)/2], mops[0],
					mops[len(mops)-1], quantile(lat, 0.5), quantile(lat, 0.99), quantile(lat, 0.999),
					lat[len(lat)-1], footprints[c.name]})
			}
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(rows); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
