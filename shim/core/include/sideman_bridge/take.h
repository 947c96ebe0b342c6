// A take: an immutable stereo stem plus the map from transport ppq to its sample positions.
//
// Ownership: a Take is built (and allocates) on a non-realtime thread, handed to the
// TakePlayer as a std::unique_ptr, read by the audio thread while it is current, and freed
// on a non-realtime thread again. After construction nothing in it changes, so the audio
// thread reads it without synchronisation beyond the pointer hand-off.
//
// Time map. A take is rendered for a tempo map: a list of segments, each starting at a ppq
// with a fixed number of take samples per beat (sampleRate * 60 / bpm). The first segment
// starts at the anchor ppq, where sample 0 of the take sits. The take sample position of a
// ppq p in segment i is
//
//     s(p) = S_i + (p - P_i) * samplesPerBeat_i,   S_0 = 0,
//     S_{i+1} = S_i + (P_{i+1} - P_i) * samplesPerBeat_i,
//
// the first segment extending before the anchor (negative positions are silence) and the last
// one past the end. A single segment is a take rendered at one tempo:
// s(p) = (p - anchorPpq) * takeSampleRate * 60 / takeBpm.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace sideman::bridge {

class Take {
public:
    struct TempoSegment {
        double startPpq;        // absolute ppq where this tempo starts
        double samplesPerBeat;  // take samples per quarter note from here on
    };

    // An empty take (no audio): what TakePlayer::clearTake hands to the audio thread.
    Take();

    // `left` and `right` must have the same length. `tempo` must be non-empty, start at
    // anchorPpq and have strictly increasing starts and positive finite samplesPerBeat.
    // Throws std::invalid_argument otherwise. Non-realtime (it takes ownership of the vectors).
    Take(std::vector<float> left, std::vector<float> right, double sampleRate, double anchorPpq,
         std::vector<TempoSegment> tempo);

    // A take rendered at one tempo: samplesPerBeat = sampleRate * 60 / bpm.
    static std::unique_ptr<Take> atConstantTempo(std::vector<float> left, std::vector<float> right,
                                                 double sampleRate, double anchorPpq, double bpm);

    Take(const Take&) = delete;
    Take& operator=(const Take&) = delete;
    ~Take();

    std::uint64_t id() const noexcept { return id_; }
    std::size_t numFrames() const noexcept { return left_.size(); }
    bool empty() const noexcept { return left_.empty(); }
    double sampleRate() const noexcept { return sampleRate_; }
    double anchorPpq() const noexcept { return anchorPpq_; }
    const float* left() const noexcept { return left_.data(); }
    const float* right() const noexcept { return right_.data(); }

    // Take sample position (fractional) at transport position `ppq`. `segmentHint` caches the
    // segment last used by the caller; any value is accepted. Realtime-safe.
    double sourcePosition(double ppq, std::size_t& segmentHint) const noexcept;

    // The inverse map, for tests and tools: the ppq at which take position `sample` plays.
    double ppqAtSource(double sample) const noexcept;

    // The stereo frame at a fractional take position: frames outside [0, numFrames) are
    // silence; between frames i and i+1 it interpolates linearly. A position within
    // kSnapSamples of a whole frame reads that frame exactly (bit for bit), so tempo-locked
    // playback is a plain copy despite rounding in ppq arithmetic. Realtime-safe.
    void frameAt(double position, float& l, float& r) const noexcept;

    static constexpr double kSnapSamples = 1e-4;

    // Takes alive in this process: lets tests see that retired takes are really freed.
    static long liveCount() noexcept { return live_.load(std::memory_order_relaxed); }

private:
    struct Segment {
        double startPpq;
        double startSample;
        double samplesPerBeat;
    };

    std::uint64_t id_;
    double sampleRate_ = 0.0;
    double anchorPpq_ = 0.0;
    std::vector<float> left_;
    std::vector<float> right_;
    std::vector<Segment> segments_;

    static std::atomic<std::uint64_t> nextId_;
    static std::atomic<long> live_;
};

}  // namespace sideman::bridge
