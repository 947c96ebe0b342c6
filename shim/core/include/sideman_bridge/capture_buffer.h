// Records the context (sidechain audio, stereo float) with the transport anchors needed to
// place any recorded frame on the timeline, for later extraction by a non-realtime thread.
//
// Layout. Frames are numbered from 0 in the order they are pushed (the "capture frame").
// Audio lives in a ring of `capacityFrames` stereo frames; transport anchors in a ring of
// `maxAnchors` runs. A run is a stretch of frames where the transport advanced linearly:
// same sample rate, tempo, time signature and playing state, ppq advancing by
// bpm / (60 * sampleRate) per frame and the host sample position by one (while playing; both
// stay put while stopped). push() starts a new run only at a discontinuity (seek, loop wrap,
// tempo or time-signature change, start/stop), so a steady transport uses one anchor however
// long it plays. Host ppq is compared with tolerance: half a sample.
//
// Threads. push() is the audio thread's (single writer). It allocates nothing, takes no lock
// and does no I/O: the rings are preallocated in the constructor and every cell is a relaxed
// atomic, published with the seqlock pattern (a "head" counter announced before writing and
// a "committed" counter released after). Readers (extract*, anchors) run on non-realtime
// threads, copy what they need and validate afterwards that the writer did not lap them; a
// region overwritten while being read is reported as unavailable, never returned torn.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "sideman_bridge/transport.h"

namespace sideman::bridge {

class CaptureBuffer {
public:
    // The transport at one capture frame (the first frame of a run, or of a region).
    struct Anchor {
        std::int64_t frame = 0;            // capture frame number
        double sampleRate = 0.0;
        double ppq = 0.0;
        std::int64_t samplePosition = 0;
        double bpm = 0.0;
        int timeSigNumerator = 4;
        int timeSigDenominator = 4;
        double barStartPpq = 0.0;          // NaN when the host did not report bars
        bool playing = false;
        std::int64_t numFrames = 0;        // frames in the run (anchors()) or region (extract*)

        double ppqPerFrame() const noexcept { return playing ? bpm / (60.0 * sampleRate) : 0.0; }
        // Bar lines at this anchor's time signature and tempo (BarGrid, transport.h).
        BarGrid barGrid() const noexcept {
            return BarGrid::of(timeSigNumerator, timeSigDenominator, barStartPpq, bpm / (60.0 * sampleRate));
        }
        // The same transport `offset` frames later within the run.
        Anchor advancedBy(std::int64_t offset) const noexcept;
    };

    struct Region {
        std::vector<float> left;
        std::vector<float> right;
        Anchor anchor;  // transport at the first frame; anchor.numFrames == left.size()
    };

    // Non-realtime: allocates the rings. capacityFrames and maxAnchors must be positive.
    CaptureBuffer(std::int64_t capacityFrames, std::size_t maxAnchors = 1024);
    CaptureBuffer(const CaptureBuffer&) = delete;
    CaptureBuffer& operator=(const CaptureBuffer&) = delete;

    std::int64_t capacityFrames() const noexcept { return capacity_; }
    std::size_t maxAnchors() const noexcept { return maxAnchors_; }

    // ---- audio thread ------------------------------------------------------------------
    // Appends one block. One input channel is recorded on both sides; channels past the second
    // are ignored; no channels (or null pointers) record silence. A block that crosses the loop
    // end of transport is split into two runs at the wrap sample.
    void push(const float* const* in, int numChannels, int numSamples, const TransportInfo& transport) noexcept;

    // ---- any thread ---------------------------------------------------------------------
    std::int64_t framesWritten() const noexcept { return committed_.load(std::memory_order_acquire); }
    // Forgets everything recorded so far (frames pushed later are kept). Lock-free.
    void clear() noexcept { validFrom_.store(framesWritten(), std::memory_order_release); }

    // ---- non-realtime readers (allocate) ------------------------------------------------
    // Runs whose frames are still held, oldest first; the first may be clipped to the oldest
    // retained frame (its anchor then describes that frame).
    std::vector<Anchor> anchors() const;
    // The retained frames [firstFrame, firstFrame + numFrames), if all are still held.
    std::optional<Region> extractFrames(std::int64_t firstFrame, std::int64_t numFrames) const;
    // The most recent `numFrames` frames.
    std::optional<Region> extractLatest(std::int64_t numFrames) const;
    // The frames whose ppq lies in [startPpq, endPpq), taken from the most recent playing run
    // that covers the whole range (a ppq on a frame within 1e-6 of a sample counts as that frame).
    std::optional<Region> extractPpqRange(double startPpq, double endPpq) const;
    // (Which bars to send as context is ContextPlanner's question: context_planner.h.)

private:
    struct AnchorSlot {
        std::atomic<std::int64_t> frame{0};
        std::atomic<double> sampleRate{0.0};
        std::atomic<double> ppq{0.0};
        std::atomic<std::int64_t> samplePosition{0};
        std::atomic<double> bpm{0.0};
        std::atomic<int> timeSigNumerator{4};
        std::atomic<int> timeSigDenominator{4};
        std::atomic<double> barStartPpq{0.0};
        std::atomic<bool> playing{false};
    };
    struct Snapshot {
        std::int64_t committed = 0;
        std::int64_t oldest = 0;       // oldest frame that is held and anchored
        std::vector<Anchor> runs;      // runs covering [oldest, committed), clipped to it
    };

    void pushRun(const float* l, const float* r, int length, const TransportInfo& t, double ppq) noexcept;
    void publishAnchor(const Anchor& a) noexcept;
    Snapshot snapshot() const;
    std::optional<Region> copyFrames(const Snapshot& s, std::int64_t first, std::int64_t count) const;

    const std::int64_t capacity_;
    const std::size_t maxAnchors_;
    std::unique_ptr<std::atomic<float>[]> left_;
    std::unique_ptr<std::atomic<float>[]> right_;
    std::unique_ptr<AnchorSlot[]> anchorSlots_;

    // Seqlock counters: head_ is announced before cells are written, committed_ released after.
    alignas(64) std::atomic<std::int64_t> frameHead_{0};
    std::atomic<std::int64_t> committed_{0};
    std::atomic<std::int64_t> anchorHead_{0};
    std::atomic<std::int64_t> anchorCount_{0};
    std::atomic<std::int64_t> validFrom_{0};

    // Audio-thread state: the run being extended.
    alignas(64) bool haveRun_ = false;
    Anchor run_;
    std::int64_t writeFrame_ = 0;

    static_assert(std::atomic<float>::is_always_lock_free);
    static_assert(std::atomic<double>::is_always_lock_free);
    static_assert(std::atomic<std::int64_t>::is_always_lock_free);
};

}  // namespace sideman::bridge
