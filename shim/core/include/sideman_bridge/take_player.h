// Plays the current take locked to the host transport's ppq position.
//
// Threads and ownership
//   * process() runs on the audio thread. It takes no locks, allocates and frees nothing, does
//     no I/O or logging, and reads no clock: its output depends only on its arguments and on
//     the takes handed over, so an offline bounce (blocks faster than real time) plays exactly
//     what real-time playback does.
//   * setTake(), clearTake() and collectGarbage() run on non-realtime threads (serialised among
//     themselves by a mutex the audio thread never touches).
//   * A new take is published through one atomic pointer (`pending_`). The audio thread
//     exchanges it out at the start of a block and from then on owns it. The take it
//     replaces is never freed on the audio thread: it is pushed onto a lock-free SPSC retire
//     queue, and collectGarbage() pops and deletes it; the non-realtime side calls it regularly
//     (e.g. from the worker thread that loads takes, after each setTake and on a timer). A take
//     replaced in `pending_` before the audio thread ever saw it is deleted by setTake() itself.
//   * The audio thread adopts a pending take only when the retire queue has room for every take
//     it may retire because of it (two), so retiring never fails; if the non-realtime side
//     stops collecting, new takes wait in `pending_` (back-pressure) instead of leaking.
//
// Mapping from ppq to take samples (sample accuracy)
//   Sample n of a block (after loop splitting, see forEachLinearRun) sits at transport
//   position p_n = ppq + n * bpm / (60 * sampleRate); the output is the take frame at position
//   s(p_n) (Take::sourcePosition, the take's tempo map), read by Take::frameAt: exact when
//   s(p_n) is within 1e-4 of a whole frame, linear interpolation otherwise, silence outside the
//   take. When the host tempo and sample rate match the take's tempo map, s advances by exactly
//   one frame per sample and playback is a bit-exact copy; otherwise the take is varispeeded to
//   stay locked (takes should be rendered at the host rate and tempo map for best quality).
//   Every block recomputes its position from the host ppq, so seeks, loop jumps and tempo
//   changes between blocks are followed with sample accuracy and no drift can accumulate.
//
// Crossfade (optional, crossfadeSamples > 0)
//   At a discontinuity (start of playback, a jump of more than half a sample between the end of
//   the previous block and the start of this one, a loop wrap, or a take swap while playing) the
//   output crossfades linearly over F samples from the previous trajectory (the old take at the
//   position it would have reached, or silence at the start) to the new one:
//     out_j = old_j * (1 - w_j) + new_j * w_j,   w_j = (j + 1) / (F + 1),   j = 0 .. F-1.
//   With F = 0 (the default) jumps are hard cuts and every sample is exactly s(p_n).
//   Stopping is always an immediate cut to silence.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

#include "sideman_bridge/spsc_queue.h"
#include "sideman_bridge/take.h"
#include "sideman_bridge/transport.h"

namespace sideman::bridge {

class TakePlayer {
public:
    struct Options {
        int crossfadeSamples = 0;        // 0: hard cuts at discontinuities
        std::size_t retireCapacity = 16;  // slots in the retire queue (at least 2)
    };

    TakePlayer();
    explicit TakePlayer(Options options);
    // Frees every take it holds. The audio thread must no longer call process().
    ~TakePlayer();

    TakePlayer(const TakePlayer&) = delete;
    TakePlayer& operator=(const TakePlayer&) = delete;

    // ---- non-realtime side -------------------------------------------------------------
    // Publishes `take` for the audio thread (nullptr clears). Returns the take's id.
    std::uint64_t setTake(std::unique_ptr<Take> take);
    // Publishes an empty take: playback becomes silent from the next block on.
    std::uint64_t clearTake() { return setTake(nullptr); }
    // Frees the takes the audio thread has retired; returns how many.
    std::size_t collectGarbage();
    // True while a published take waits for the audio thread to pick it up.
    bool hasPendingTake() const noexcept { return pending_.load(std::memory_order_acquire) != nullptr; }
    // Id of the take the audio thread plays (0 before the first one is adopted).
    std::uint64_t currentTakeId() const noexcept { return currentId_.load(std::memory_order_acquire); }
    int crossfadeSamples() const noexcept { return crossfade_; }

    // ---- audio thread --------------------------------------------------------------------
    // Overwrites `numChannels` channels of `numSamples` samples: channel 0 gets the take's
    // left, channel 1 its right, further channels silence; a single channel gets (L + R) / 2.
    void process(float* const* out, int numChannels, int numSamples, const TransportInfo& transport) noexcept;

private:
    void adoptPendingTake() noexcept;
    void retire(Take* take) noexcept;
    void startFade(Take* from, bool owned, double ppq) noexcept;
    void endFade() noexcept;
    void renderRun(float* const* out, int numChannels, int offset, int length, double ppq, double step) noexcept;

    const int crossfade_;

    // Hand-off between threads.
    std::atomic<Take*> pending_{nullptr};
    SpscQueue<Take*> retire_;
    std::atomic<std::uint64_t> currentId_{0};
    std::mutex controlMutex_;  // non-realtime side only

    // Audio-thread state.
    Take* current_ = nullptr;
    std::size_t hint_ = 0;
    bool wasRunning_ = false;  // previous block played (so expectedPpq_ is meaningful)
    double expectedPpq_ = 0.0; // ppq the next sample would have had without a jump
    bool fadeActive_ = false;
    Take* fadeTake_ = nullptr;  // previous trajectory's take (nullptr: silence)
    bool fadeOwned_ = false;    // fadeTake_ was replaced and must be retired when the fade ends
    double fadePpq_ = 0.0;      // previous trajectory's position at the next sample
    std::size_t fadeHint_ = 0;
    int fadeDone_ = 0;

    static_assert(std::atomic<Take*>::is_always_lock_free);
    static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
};

}  // namespace sideman::bridge
