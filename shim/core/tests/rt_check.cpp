// Realtime-safety check of the bridge core's audio-thread entry points.
//
// This executable interposes the C library's allocation, locking, blocking, clock and I/O
// entry points (malloc & co., which operator new uses; pthread mutex/rwlock/condvar and
// semaphores, which std::mutex & co. use; sleeps; clock_gettime/gettimeofday/time; write,
// read, open, fopen, fwrite, printf, ...). While a thread-local flag is set, which the
// harness sets only around TakePlayer::process and CaptureBuffer::push, every such call is
// counted. The scenarios drive those calls through every code path (tempo changes, loops
// with mid-block wraps, seeks, stop/start, crossfades, take swaps from a concurrent thread,
// ring and anchor overflow under a concurrent reader) and the run fails if any count is
// non-zero. The reader thread also checks that every extracted region is intact (each frame
// carries its own number), i.e. that the lock-free ring never hands out torn data.
//
//   rt_check             run the scenarios; exit 0 when the audio path made no such call
//   rt_check --self-test do forbidden things inside the flagged scope; exit 0 when every
//                        kind was caught (proves the check can fail)
//
// Built with -DSIDEMAN_RT_NO_INTERPOSE (e.g. for ThreadSanitizer, which has its own
// interceptors) it runs the same concurrent scenarios without counting.
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "sideman_bridge/capture_buffer.h"
#include "sideman_bridge/context_planner.h"
#include "sideman_bridge/take.h"
#include "sideman_bridge/take_player.h"
#include "sideman_bridge/transport.h"

using namespace sideman::bridge;

namespace {

enum Kind { kAlloc, kFree, kLock, kBlock, kClock, kIo, kKinds };
const char* const kKindNames[kKinds] = {"allocations", "frees", "locks", "blocking", "clock", "io"};

std::atomic<long> g_counts[kKinds];
thread_local bool t_inRealtime = false;

inline void note(Kind k) {
    if (t_inRealtime) g_counts[k].fetch_add(1, std::memory_order_relaxed);
}

// Marks the audio-thread scope.
struct RealtimeScope {
    RealtimeScope() { t_inRealtime = true; }
    ~RealtimeScope() { t_inRealtime = false; }
};

}  // namespace

#ifndef SIDEMAN_RT_NO_INTERPOSE
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

extern "C" {
void* __libc_malloc(size_t);
void __libc_free(void*);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
}

namespace {
template <typename F>
F real(const char* name) {
    void* f = dlsym(RTLD_NEXT, name);
    if (f == nullptr) {
        std::fprintf(stderr, "rt_check: cannot find %s\n", name);
        std::abort();
    }
    return reinterpret_cast<F>(f);
}
#define SIDEMAN_REAL(name) static const auto real_##name = real<decltype(&::name)>(#name)
}  // namespace

extern "C" {
// Allocation (operator new and delete go through these in libstdc++).
void* malloc(size_t n) { note(kAlloc); return __libc_malloc(n); }
void* calloc(size_t n, size_t s) { note(kAlloc); return __libc_calloc(n, s); }
void* realloc(void* p, size_t n) { note(kAlloc); return __libc_realloc(p, n); }
void free(void* p) { if (p != nullptr) note(kFree); __libc_free(p); }
void* memalign(size_t a, size_t n) { note(kAlloc); return __libc_memalign(a, n); }
void* aligned_alloc(size_t a, size_t n) { note(kAlloc); return __libc_memalign(a, n); }
int posix_memalign(void** out, size_t a, size_t n) {
    note(kAlloc);
    void* p = __libc_memalign(a, n);
    if (p == nullptr) return ENOMEM;
    *out = p;
    return 0;
}

// Locks and blocking waits.
int pthread_mutex_lock(pthread_mutex_t* m) { SIDEMAN_REAL(pthread_mutex_lock); note(kLock); return real_pthread_mutex_lock(m); }
int pthread_mutex_trylock(pthread_mutex_t* m) { SIDEMAN_REAL(pthread_mutex_trylock); note(kLock); return real_pthread_mutex_trylock(m); }
int pthread_rwlock_rdlock(pthread_rwlock_t* l) { SIDEMAN_REAL(pthread_rwlock_rdlock); note(kLock); return real_pthread_rwlock_rdlock(l); }
int pthread_rwlock_wrlock(pthread_rwlock_t* l) { SIDEMAN_REAL(pthread_rwlock_wrlock); note(kLock); return real_pthread_rwlock_wrlock(l); }
int pthread_spin_lock(pthread_spinlock_t* l) { SIDEMAN_REAL(pthread_spin_lock); note(kLock); return real_pthread_spin_lock(l); }
int pthread_cond_wait(pthread_cond_t* c, pthread_mutex_t* m) { SIDEMAN_REAL(pthread_cond_wait); note(kBlock); return real_pthread_cond_wait(c, m); }
int sem_wait(sem_t* s) { SIDEMAN_REAL(sem_wait); note(kBlock); return real_sem_wait(s); }
int nanosleep(const struct timespec* a, struct timespec* b) { SIDEMAN_REAL(nanosleep); note(kBlock); return real_nanosleep(a, b); }
int clock_nanosleep(clockid_t c, int f, const struct timespec* a, struct timespec* b) { SIDEMAN_REAL(clock_nanosleep); note(kBlock); return real_clock_nanosleep(c, f, a, b); }
int usleep(useconds_t u) { SIDEMAN_REAL(usleep); note(kBlock); return real_usleep(u); }
int sched_yield() { SIDEMAN_REAL(sched_yield); note(kBlock); return real_sched_yield(); }

// Clocks: the player must not depend on wall time (offline bounce).
int clock_gettime(clockid_t c, struct timespec* t) { SIDEMAN_REAL(clock_gettime); note(kClock); return real_clock_gettime(c, t); }
int gettimeofday(struct timeval* t, void* z) { SIDEMAN_REAL(gettimeofday); note(kClock); return real_gettimeofday(t, z); }
time_t time(time_t* t) { SIDEMAN_REAL(time); note(kClock); return real_time(t); }

// I/O and logging.
ssize_t write(int fd, const void* b, size_t n) { SIDEMAN_REAL(write); note(kIo); return real_write(fd, b, n); }
ssize_t writev(int fd, const struct iovec* v, int n) { SIDEMAN_REAL(writev); note(kIo); return real_writev(fd, v, n); }
ssize_t read(int fd, void* b, size_t n) { SIDEMAN_REAL(read); note(kIo); return real_read(fd, b, n); }
int open(const char* p, int f, ...) {
    SIDEMAN_REAL(open);
    note(kIo);
    va_list ap;
    va_start(ap, f);
    const mode_t mode = (f & O_CREAT) ? static_cast<mode_t>(va_arg(ap, int)) : 0;
    va_end(ap);
    return real_open(p, f, mode);
}
FILE* fopen(const char* p, const char* m) { SIDEMAN_REAL(fopen); note(kIo); return real_fopen(p, m); }
size_t fwrite(const void* b, size_t s, size_t n, FILE* f) { SIDEMAN_REAL(fwrite); note(kIo); return real_fwrite(b, s, n, f); }
int fputs(const char* s, FILE* f) { SIDEMAN_REAL(fputs); note(kIo); return real_fputs(s, f); }
int puts(const char* s) { SIDEMAN_REAL(puts); note(kIo); return real_puts(s); }
int fputc(int c, FILE* f) { SIDEMAN_REAL(fputc); note(kIo); return real_fputc(c, f); }
int fflush(FILE* f) { SIDEMAN_REAL(fflush); note(kIo); return real_fflush(f); }
int vfprintf(FILE* f, const char* fmt, va_list ap) { SIDEMAN_REAL(vfprintf); note(kIo); return real_vfprintf(f, fmt, ap); }
int fprintf(FILE* f, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    const int n = vfprintf(f, fmt, ap);
    va_end(ap);
    return n;
}
int printf(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    const int n = vfprintf(stdout, fmt, ap);
    va_end(ap);
    return n;
}
}  // extern "C"
#endif  // SIDEMAN_RT_NO_INTERPOSE

namespace {

std::atomic<int> g_failures{0};  // also bumped by the reader thread

void fail(const std::string& what) {
    std::fprintf(stderr, "rt_check: FAIL: %s\n", what.c_str());
    ++g_failures;
}

// Prints and resets the counts of forbidden calls; true when there were none.
bool reportScenario(const char* name, long calls) {
    bool clean = true;
    std::string line = std::string("rt_check: ") + name + ": " + std::to_string(calls) + " audio-thread calls";
    for (int k = 0; k < kKinds; ++k) {
        const long n = g_counts[k].exchange(0);
        line += ", " + std::string(kKindNames[k]) + "=" + std::to_string(n);
        if (n != 0) clean = false;
    }
#ifdef SIDEMAN_RT_NO_INTERPOSE
    line += " (not counted: built without the interposers)";
#endif
    std::printf("%s\n", line.c_str());
    return clean;
}

std::unique_ptr<Take> randomTake(std::mt19937& rng, double sampleRate) {
    std::uniform_int_distribution<int> frames(1, 60000);
    std::uniform_real_distribution<float> sample(-1.0f, 1.0f);
    const auto n = static_cast<std::size_t>(frames(rng));
    std::vector<float> l(n), r(n);
    for (std::size_t i = 0; i < n; ++i) {
        l[i] = sample(rng);
        r[i] = sample(rng);
    }
    const double anchor = std::uniform_real_distribution<double>(-4.0, 16.0)(rng);
    if (rng() % 2 == 0) return Take::atConstantTempo(std::move(l), std::move(r), sampleRate, anchor, 90.0 + rng() % 60);
    std::vector<Take::TempoSegment> tempo{{anchor, sampleRate * 60.0 / 120.0},
                                          {anchor + 2.0, sampleRate * 60.0 / 97.0},
                                          {anchor + 5.5, sampleRate * 60.0 / 140.0}};
    return std::make_unique<Take>(std::move(l), std::move(r), sampleRate, anchor, std::move(tempo));
}

// A transport that moves like a host's: mostly continuous, with tempo changes, seeks,
// loops (including ones shorter than a block), stops and sample-rate changes.
struct HostSim {
    std::mt19937 rng{42};
    TransportInfo t;
    HostSim() {
        t.playing = true;
        t.sampleRate = 48000.0;
    }
    int nextBlockSize() {
        static const int sizes[] = {1, 32, 64, 100, 128, 256, 441, 512, 1024, 2048, 4096};
        return sizes[rng() % (sizeof(sizes) / sizeof(sizes[0]))];
    }
    void advance(int n) {
        if (t.playing) {
            double ppq = t.ppqPosition;
            forEachLinearRun(t, n, [&](int, int length, double start, bool) { ppq = start + length * t.ppqPerSample(); });
            t.ppqPosition = ppq;
            t.samplePosition += n;
        }
        switch (rng() % 64) {
            case 0: t.bpm = 60.0 + rng() % 120; break;
            case 1: t.ppqPosition = std::uniform_real_distribution<double>(-2.0, 40.0)(rng); break;
            case 2: t.playing = !t.playing; break;
            case 3:
                t.looping = !t.looping;
                t.loopStartPpq = std::uniform_real_distribution<double>(0.0, 8.0)(rng);
                t.loopEndPpq = t.loopStartPpq + std::uniform_real_distribution<double>(0.01, 8.0)(rng);
                break;
            case 4: t.sampleRate = (rng() % 2) ? 44100.0 : 96000.0; break;
            case 5: t.timeSigNumerator = 3 + rng() % 5; break;
            default: break;
        }
    }
};

long playerScenario(int crossfade, int blocks) {
    TakePlayer::Options options;
    options.crossfadeSamples = crossfade;
    options.retireCapacity = 4;  // small: exercises the back-pressure path too
    TakePlayer player(options);
    std::atomic<bool> stop{false};
    std::thread feeder([&] {
        std::mt19937 rng(7);
        int n = 0;
        while (!stop.load()) {
            if (n++ % 5 == 4) player.clearTake();
            else player.setTake(randomTake(rng, 48000.0));
            // Sometimes let retired takes pile up before collecting.
            if (rng() % 3 == 0) player.collectGarbage();
            std::this_thread::sleep_for(std::chrono::microseconds(300));
        }
    });
    std::vector<float> l(4096), r(4096), extra(4096);
    float* stereo[] = {l.data(), r.data()};
    float* three[] = {l.data(), r.data(), extra.data()};
    float* mono[] = {l.data()};
    HostSim host;
    long calls = 0;
    long adopted = 0;
    std::uint64_t lastId = 0;
    for (int b = 0; b < blocks; ++b) {
        const int n = host.nextBlockSize();
        const int layout = b % 7;
        {
            RealtimeScope scope;
            if (layout == 5) player.process(mono, 1, n, host.t);
            else if (layout == 6) player.process(three, 3, n, host.t);
            else player.process(stereo, 2, n, host.t);
        }
        ++calls;
        if (player.currentTakeId() != lastId) {
            lastId = player.currentTakeId();
            ++adopted;
        }
        // Let the feeder thread run now and then, as a real audio callback would.
        if (b % 50 == 49) std::this_thread::sleep_for(std::chrono::microseconds(100));
        for (int i = 0; i < n; ++i)
            if (!std::isfinite(l[static_cast<std::size_t>(i)]) || !std::isfinite(r[static_cast<std::size_t>(i)])) {
                fail("player produced a non-finite sample");
                break;
            }
        host.advance(n);
    }
    stop.store(true);
    feeder.join();
    std::printf("rt_check: player (crossfade %d): %ld takes adopted while playing\n", crossfade, adopted);
    if (adopted < 10) fail("too few take swaps reached the audio thread");
    return calls;
}

long captureScenario(int blocks) {
    // Small rings so that the writer laps the reader and the anchor ring overflows constantly.
    CaptureBuffer capture(20000, 8);
    std::atomic<bool> stop{false};
    std::atomic<long> regions{0};
    std::thread reader([&] {
        std::mt19937 rng(3);
        while (!stop.load()) {
            std::optional<CaptureBuffer::Region> region;
            switch (rng() % 4) {
                case 0: region = capture.extractLatest(1 + rng() % 15000); break;
                case 1: region = capture.extractPpqRange(rng() % 16, 16.0 + rng() % 16); break;
                case 2: {  // what the plugin's worker does on a Generate press
                    TransportInfo now;
                    now.bpm = 120.0;
                    region = ContextPlanner(1 + static_cast<int>(rng() % 2)).plan(capture, capture.framesWritten(), now).context;
                    break;
                }
                default: {
                    const auto anchors = capture.anchors();
                    for (std::size_t i = 1; i < anchors.size(); ++i)
                        if (anchors[i].frame != anchors[i - 1].frame + anchors[i - 1].numFrames)
                            fail("capture anchors are not contiguous");
                    if (!anchors.empty())
                        region = capture.extractFrames(anchors.front().frame, anchors.front().numFrames);
                }
            }
            if (!region) continue;
            regions.fetch_add(1);
            // Every pushed frame carries its capture frame number (mod 2^23) on the left and its
            // negation on the right: any torn or misplaced read shows up here.
            const std::int64_t first = region->anchor.frame;
            for (std::size_t i = 0; i < region->left.size(); ++i) {
                const auto expected = static_cast<float>((first + static_cast<std::int64_t>(i)) % (1 << 23));
                if (region->left[i] != expected || region->right[i] != -expected) {
                    fail("capture region is torn at frame " + std::to_string(first + static_cast<std::int64_t>(i)));
                    return;
                }
            }
        }
    });
    std::vector<float> l(4096), r(4096);
    const float* in[] = {l.data(), r.data()};
    HostSim host;
    std::int64_t frame = 0;
    long calls = 0;
    for (int b = 0; b < blocks; ++b) {
        const int n = host.nextBlockSize();
        for (int i = 0; i < n; ++i) {
            l[static_cast<std::size_t>(i)] = static_cast<float>((frame + i) % (1 << 23));
            r[static_cast<std::size_t>(i)] = -l[static_cast<std::size_t>(i)];
        }
        {
            RealtimeScope scope;
            capture.push(in, 2, n, host.t);
        }
        ++calls;
        frame += n;
        host.advance(n);
        if (b % 50 == 49) std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    stop.store(true);
    reader.join();
    std::printf("rt_check: capture: the reader checked %ld regions\n", regions.load());
    if (regions.load() == 0) fail("the capture reader never got a region");
    return calls;
}

int selfTest() {
#ifdef SIDEMAN_RT_NO_INTERPOSE
    std::fprintf(stderr, "rt_check: self-test needs the interposers\n");
    return 2;
#else
    static void* volatile sink;
    std::mutex m;
    {
        RealtimeScope scope;
        sink = ::operator new(64);   // allocation
        ::operator delete(sink);     // free
        m.lock();                    // lock
        m.unlock();
        std::this_thread::sleep_for(std::chrono::microseconds(1));  // blocking
        sink = reinterpret_cast<void*>(std::chrono::system_clock::now().time_since_epoch().count());  // clock
        std::fprintf(stderr, "rt_check: self-test logs from the audio scope\n");  // I/O
    }
    bool allCaught = true;
    std::string line = "rt_check: self-test:";
    for (int k = 0; k < kKinds; ++k) {
        const long n = g_counts[k].exchange(0);
        line += " " + std::string(kKindNames[k]) + "=" + std::to_string(n);
        if (n == 0) allCaught = false;
    }
    std::printf("%s\n%s\n", line.c_str(), allCaught ? "rt_check: self-test OK (every kind caught)" : "rt_check: self-test FAILED");
    return allCaught ? 0 : 1;
#endif
}

}  // namespace

int main(int argc, char** argv) {
    if (argc > 1 && std::strcmp(argv[1], "--self-test") == 0) return selfTest();
    const int blocks = argc > 1 ? std::atoi(argv[1]) : 20000;
    bool clean = true;
    for (int k = 0; k < kKinds; ++k) g_counts[k].store(0);
    clean &= reportScenario("player, hard cuts", playerScenario(0, blocks));
    clean &= reportScenario("player, 64-sample crossfade", playerScenario(64, blocks));
    clean &= reportScenario("capture", captureScenario(blocks));
    if (Take::liveCount() != 0) fail("takes leaked: " + std::to_string(Take::liveCount()) + " still alive");
    if (!clean) fail("the audio path called an allocation, lock, blocking, clock or I/O function");
    std::printf("rt_check: %s\n", (clean && g_failures == 0) ? "OK" : "FAILED");
    return (clean && g_failures == 0) ? 0 : 1;
}
