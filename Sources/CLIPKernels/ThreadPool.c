// The engine's worker pool (driven by CLIPEngine/Parallel.swift). Here, in C, for its atomics.
//
// Why not libdispatch's concurrentPerform: measured on the project's VM (2 vCPUs, convnext_v2_tiny
// image tower, batch 1, ~170 parallel regions per forward pass), its first part started ~8 µs and
// its second ~22 µs after the call, every time, so each region lost ~15 µs of wall time and more
// of CPU time; 2 threads ran the forward pass only 1.6× faster than 1.
//
// Here the caller runs parts itself and workers that finished a region spin on an atomic for a
// while (CLIP_POOL_SPIN_NS) before they sleep on a condition variable, so that the next region of a
// forward pass finds them awake, as ONNX Runtime's and OpenMP's pools do. One region at a time:
// a second thread that calls while one runs gets −1 and runs its parts another way.
//
// A noisy neighbour (another process busy on one of the cores): parts are claimed one at a time
// from a shared counter, so callers split a region into more parts than threads and a fast core
// takes the parts a slow one has not started. That is not enough: a worker that shares a core with
// a busy process gets turns of a scheduler tick or so (4 ms here), and when its turn ends inside a
// part, the region waits for the rest of the neighbour's turn (measured: 2 threads slower than 1).
// So once the pool sees contention (a worker preempted while spinning or inside a part, or a caller
// that waited on another thread's part far longer than its own parts took), each worker runs in
// bursts: after CLIP_POOL_BURST_NS on the CPU (shorter where its turns were seen to be shorter) it
// finishes the part in hand and yields the CPU before it claims another, so the neighbour's turn
// falls between parts, and the parts go on at the caller meanwhile. And each worker keeps off the
// CPU its caller runs on (steer_off_caller): the scheduler would as soon put them on one core.
#define _GNU_SOURCE
#include "CLIPKernels.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

/// How long an idle worker spins before it sleeps: longer than the gaps between the regions of
/// a forward pass (a few µs to ~100 µs of serial work), short enough that an idle process stops
/// burning CPU almost at once.
#define CLIP_POOL_SPIN_NS 200000
/// A gap this long between two clock reads of a spinning worker means it was preempted; so does
/// this much time off the CPU (wall time less the thread's CPU time) inside one part…
#define CLIP_POOL_PREEMPTED_NS 500000
#define CLIP_POOL_OFF_CPU_NS 100000
/// …and then workers run in bursts for this long (renewed by each new sign of contention).
#define CLIP_POOL_CONTENDED_NS 200000000
/// A burst: at most this long on the CPU before a worker yields between two parts, and at most
/// 5/8 of the longest turn a worker was last seen to get (kernels with a shorter tick), at least
/// the minimum. 2 ms measured best here (HZ 250: turns of 4 ms; 1 ms gave the worker too small a
/// share, docs/benchmarks.md).
#define CLIP_POOL_BURST_NS 2000000
#define CLIP_POOL_BURST_MIN_NS 500000
#define CLIP_POOL_MAX_WORKERS 255

/// state: the region's epoch (bits 63–32), the workers that joined it (31–24), its parts (23–12)
/// and the next unclaimed part (11–0), in one word, so that a worker that wakes late can never
/// claim a part of a region other than the one it read, nor join beyond the region's thread limit.
#define CLIP_POOL_PART_BITS 12
#define CLIP_POOL_PART_MASK ((1u << CLIP_POOL_PART_BITS) - 1)
#define CLIP_POOL_JOINED_SHIFT 24
static struct {
    _Atomic(uint64_t) state;
    _Atomic(long) remaining;
    _Atomic(int) busy;
    _Atomic(int) sleepers;
    _Atomic(int) helpers;                 // workers the region may use (written before `state`)
    _Atomic(uint64_t) contended_until;    // clock (ns) before which workers run in bursts
    _Atomic(int) caller_cpu;              // where a contended region's caller runs, or −1 (before `state`)
    clip_pool_task task;   // written before `state` is published, read after a part is claimed
    void *context;
    int workers;           // started (only the thread holding `busy` starts more)
    pthread_mutex_t lock;
    pthread_cond_t wake;
} pool = {.caller_cpu = -1, .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static inline uint32_t epoch_of(uint64_t state) { return (uint32_t)(state >> 32); }
static inline unsigned joined_of(uint64_t state) { return (unsigned)(state >> CLIP_POOL_JOINED_SHIFT) & 0xFF; }
static inline unsigned parts_of(uint64_t state) { return (unsigned)(state >> CLIP_POOL_PART_BITS) & CLIP_POOL_PART_MASK; }
static inline unsigned next_of(uint64_t state) { return (unsigned)state & CLIP_POOL_PART_MASK; }

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static uint64_t thread_cpu_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void note_contention(uint64_t now) {
    atomic_store_explicit(&pool.contended_until, now + CLIP_POOL_CONTENDED_NS, memory_order_relaxed);
}

static int contended(uint64_t now) { return now < atomic_load_explicit(&pool.contended_until, memory_order_relaxed); }

/// A worker's view of its CPU: when it last got it back (woken, yielded, or found preempted) and
/// how long it may run from then while the pool is contended.
typedef struct { uint64_t since, burst; } clip_turn;

#if defined(__linux__)
/// A worker's CPUs: those it may use (its affinity when it started) and how many, and the caller's
/// CPU it now keeps off (−1: none).
typedef struct { cpu_set_t allowed; int choices, steered_from; } clip_placement;

static void start_placement(clip_placement *placement) {
    placement->steered_from = -1;
    placement->choices = sched_getaffinity(0, sizeof placement->allowed, &placement->allowed) == 0
                             ? CPU_COUNT(&placement->allowed) : 0;
}

/// While the pool is contended, keeps a worker off the CPU its caller runs on. Three runnable
/// threads on two cores (the caller, a worker and a neighbour) look balanced to the scheduler
/// whichever two share a core, and a wake-up tends to place the worker beside the thread that woke
/// it: then caller and worker take turns on one core and each region waits out the other's turn,
/// while the neighbour has a core to itself. Off the caller's core, the worker shares the
/// neighbour's, and its parts add to the caller's. Measured with a busy loop pinned to CPU 1
/// (docs/benchmarks.md): 2 threads 1.12–1.23× faster than 1, against 1.07–1.09× unsteered, in
/// the same runs, with p90 ~82 ms instead of ~97. Once the contention has passed, the worker may
/// run anywhere again.
static void steer_off_caller(clip_placement *placement) {
    if (placement->choices < 2) return;
    const int caller = contended(now_ns()) ? atomic_load_explicit(&pool.caller_cpu, memory_order_relaxed) : -1;
    if (caller < 0) {
        if (placement->steered_from >= 0 && sched_setaffinity(0, sizeof placement->allowed, &placement->allowed) == 0)
            placement->steered_from = -1;
        return;
    }
    if (caller == placement->steered_from || sched_getcpu() != caller || !CPU_ISSET(caller, &placement->allowed)) return;
    cpu_set_t elsewhere = placement->allowed;
    CPU_CLR(caller, &elsewhere);
    if (sched_setaffinity(0, sizeof elsewhere, &elsewhere) == 0) placement->steered_from = caller;
}

static int current_cpu(void) { return sched_getcpu(); }

int clip_thread_placement(int *cpu) {
    *cpu = sched_getcpu();
    cpu_set_t allowed;
    return sched_getaffinity(0, sizeof allowed, &allowed) == 0 ? CPU_COUNT(&allowed) : 0;
}

int clip_thread_pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    const long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpu >= 0) CPU_SET(cpu, &set);
    else for (long c = 0; c < online && c < CPU_SETSIZE; c++) CPU_SET(c, &set);
    return sched_setaffinity(0, sizeof set, &set) == 0 ? 0 : -1;
}
#else
typedef struct { int unused; } clip_placement;
static void start_placement(clip_placement *placement) { (void)placement; }
static void steer_off_caller(clip_placement *placement) { (void)placement; }
static int current_cpu(void) { return -1; }
int clip_thread_placement(int *cpu) { *cpu = -1; return 0; }
int clip_thread_pin(int cpu) { (void)cpu; return -1; }
#endif

static void yield_if_turn_over(clip_turn *turn) {
    const uint64_t t = now_ns();
    if (contended(t) && t - turn->since > turn->burst) {
        sched_yield();
        turn->since = now_ns();
    }
}

/// Claims and runs parts of region `epoch` until none is left (or a newer region replaced it):
/// 0; for a worker (`turn` non-null) that the pool is contended, also until its burst is over
/// (checked before each claim but the first): 1.
/// A worker (`joining`) first joins the region, in the same atomic step as its first claim, unless
/// the region already has as many workers as it allows.
static int run_parts(uint32_t epoch, int joining, clip_turn *turn) {
    uint64_t s = atomic_load_explicit(&pool.state, memory_order_acquire);
    for (;;) {
        if (epoch_of(s) != epoch || next_of(s) >= parts_of(s)) return 0;
        const uint64_t start = turn ? now_ns() : 0;
        const int timed = turn && contended(start);
        if (timed && !joining && start - turn->since > turn->burst) return 1;
        uint64_t claimed = s + 1;
        if (joining) {
            // Read after `s`, so it is this region's limit or a newer one's (then the exchange fails).
            if (joined_of(s) >= (unsigned)atomic_load_explicit(&pool.helpers, memory_order_relaxed)) return 0;
            claimed += (uint64_t)1 << CLIP_POOL_JOINED_SHIFT;
        }
        if (atomic_compare_exchange_weak_explicit(&pool.state, &s, claimed, memory_order_acq_rel, memory_order_acquire)) {
            // Claimed: the region cannot end before this part does, so task and context are its own.
            joining = 0;
            const uint64_t cpu = timed ? thread_cpu_ns() : 0;
            pool.task(pool.context, (clip_index)next_of(s));
            atomic_fetch_sub_explicit(&pool.remaining, 1, memory_order_release);
            if (timed) {
                // Preempted inside the part (time off the CPU): its turn began again since.
                const uint64_t end = now_ns();
                if ((int64_t)((end - start) - (thread_cpu_ns() - cpu)) > CLIP_POOL_OFF_CPU_NS) {
                    note_contention(end);
                    turn->since = end;
                }
            }
            s = atomic_load_explicit(&pool.state, memory_order_acquire);
        }
    }
}

/// `first_epoch`: the epoch before the region that started this worker, so that it joins that region.
static void *worker_main(void *first_epoch) {
    uint32_t seen = (uint32_t)(uintptr_t)first_epoch;
    clip_turn turn = {now_ns(), CLIP_POOL_BURST_NS};
    clip_placement placement;
    start_placement(&placement);
    for (;;) {
        uint64_t spin_start = now_ns();
        uint64_t last = spin_start;
        unsigned spins = 0;
        uint32_t epoch;
        while ((epoch = epoch_of(atomic_load_explicit(&pool.state, memory_order_acquire))) == seen) {
            if (++spins % 256 == 0 || spins == 1) {
                const uint64_t t = now_ns();
                if (t - last > CLIP_POOL_PREEMPTED_NS) {
                    // Preempted while spinning, after last − since on the CPU: a whole turn.
                    uint64_t burst = (last - turn.since) / 8 * 5;
                    if (burst > CLIP_POOL_BURST_NS) burst = CLIP_POOL_BURST_NS;
                    if (burst < CLIP_POOL_BURST_MIN_NS) burst = CLIP_POOL_BURST_MIN_NS;
                    turn.burst = burst;
                    turn.since = t;
                    note_contention(t);
                    // The spin's budget is time on the CPU: a turn off it does not use it up
                    // (else the worker would sleep through the next regions and need waking).
                    spin_start = t;
                }
                last = t;
                if (t - spin_start < CLIP_POOL_SPIN_NS) {
                    yield_if_turn_over(&turn);
                    last = now_ns();
                    continue;
                }
                // Sleep. sleepers and state are sequentially consistent on both sides: either the
                // dispatcher sees this sleeper and broadcasts (under the lock), or this check sees
                // its new state.
                pthread_mutex_lock(&pool.lock);
                atomic_fetch_add(&pool.sleepers, 1);
                while (epoch_of(atomic_load(&pool.state)) == seen) pthread_cond_wait(&pool.wake, &pool.lock);
                atomic_fetch_sub(&pool.sleepers, 1);
                pthread_mutex_unlock(&pool.lock);
                turn.since = now_ns();
            } else {
                cpu_relax();
            }
        }
        seen = epoch;
        steer_off_caller(&placement);
        yield_if_turn_over(&turn);
        // Joins with its first claim; after a burst, yields and goes on with the same region.
        for (int joining = 1; run_parts(epoch, joining, &turn); joining = 0) yield_if_turn_over(&turn);
    }
    return 0;
}

int clip_pool_run_threads(clip_index parts, clip_index threads, clip_pool_task task, void *context) {
    if (parts <= 0) return 0;
    if (parts > (clip_index)CLIP_POOL_PART_MASK) return -1;
    int idle = 0;
    if (!atomic_compare_exchange_strong(&pool.busy, &idle, 1)) return -1;
    const uint32_t epoch = epoch_of(atomic_load_explicit(&pool.state, memory_order_relaxed)) + 1;
    // No more workers than other CPUs: spinning workers beyond the cores would take turns with the
    // ones doing the work (`--threads` above the core count); the caller runs the extra parts.
    static long cpus = 0;
    if (cpus == 0) cpus = sysconf(_SC_NPROCESSORS_ONLN) > 0 ? sysconf(_SC_NPROCESSORS_ONLN) : 1;
    clip_index helpers = (threads < parts ? threads : parts) - 1;
    if (helpers > cpus - 1) helpers = cpus - 1;
    if (helpers > CLIP_POOL_MAX_WORKERS) helpers = CLIP_POOL_MAX_WORKERS;
    if (helpers < 0) helpers = 0;
    while (pool.workers < helpers) {
        pthread_t thread;
        pthread_attr_t attributes;
        pthread_attr_init(&attributes);
        pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
        const int failed = pthread_create(&thread, &attributes, worker_main, (void *)(uintptr_t)(epoch - 1));
        pthread_attr_destroy(&attributes);
        if (failed) break;   // fewer workers: the caller runs more of the parts itself
        pool.workers++;
    }
    pool.task = task;
    pool.context = context;
    atomic_store_explicit(&pool.caller_cpu, helpers > 0 && contended(now_ns()) ? current_cpu() : -1, memory_order_relaxed);
    atomic_store_explicit(&pool.helpers, (int)helpers, memory_order_relaxed);
    atomic_store_explicit(&pool.remaining, (long)parts, memory_order_relaxed);
    atomic_store(&pool.state, (uint64_t)epoch << 32 | (uint64_t)parts << CLIP_POOL_PART_BITS);
    if (helpers > 0 && atomic_load(&pool.sleepers) > 0) {
        pthread_mutex_lock(&pool.lock);
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.lock);
    }
    const uint64_t start = now_ns();
    run_parts(epoch, 0, 0);
    if (atomic_load_explicit(&pool.remaining, memory_order_acquire) > 0) {
        // Waiting on another thread's part far longer than its own parts took: it was preempted.
        const uint64_t own = now_ns() - start;
        while (atomic_load_explicit(&pool.remaining, memory_order_acquire) > 0) cpu_relax();
        const uint64_t end = now_ns(), waited = end - start - own;
        if (waited > CLIP_POOL_PREEMPTED_NS && waited > 2 * own) note_contention(end);
    }
    atomic_store_explicit(&pool.busy, 0, memory_order_release);
    return 0;
}

int clip_pool_contended(void) { return contended(now_ns()); }

void clip_pool_note_contention(void) { note_contention(now_ns()); }

int clip_pool_run(clip_index parts, clip_pool_task task, void *context) {
    return clip_pool_run_threads(parts, parts, task, context);
}
