// Transport state of one audio block, as a host's play head reports it.
//
// Realtime contract: plain value type, no allocation; the helpers are noexcept and
// allocation-free, so they may be called on the audio thread.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

namespace sideman::bridge {

// The state of the host transport at the first sample of a block.
// ppq is in quarter notes (JUCE's getPpqPosition); within a block the tempo is taken to
// be constant, so sample n of the block sits at ppqPosition + n * ppqPerSample().
// Hosts may quantise the ppq they report (Ardour 7's is off by up to about 1e-4 beat, a few
// samples): a block whose ppq is within this many beats (or half a sample, if more) of where
// the previous block left off continues it. Real seeks and loop wraps move further.
constexpr double kPpqJitterBeats = 1e-3;

inline double continuityTolerance(double ppqPerSample) noexcept {
    return ppqPerSample * 0.5 > kPpqJitterBeats ? ppqPerSample * 0.5 : kPpqJitterBeats;
}

struct TransportInfo {
    double sampleRate = 48000.0;
    double ppqPosition = 0.0;          // quarter notes at the first sample of the block
    std::int64_t samplePosition = 0;   // host timeline position of the first sample
    double bpm = 120.0;
    int timeSigNumerator = 4;
    int timeSigDenominator = 4;
    // ppq of the start of the bar that holds the first sample, when the host knows it
    // (JUCE's getPpqPositionOfLastBarStart); NaN when it does not (bars then count from ppq 0).
    double barStartPpq = std::numeric_limits<double>::quiet_NaN();
    bool playing = false;
    // Host loop (cycle) region. When it is on and a block crosses loopEndPpq, the rest of
    // the block continues from loopStartPpq at the exact sample where ppq reaches the end.
    bool looping = false;
    double loopStartPpq = 0.0;
    double loopEndPpq = 0.0;

    double ppqPerSample() const noexcept { return bpm / (60.0 * sampleRate); }

    bool valid() const noexcept {
        return std::isfinite(sampleRate) && sampleRate > 0.0 && std::isfinite(bpm) && bpm > 0.0 &&
               std::isfinite(ppqPosition) && timeSigNumerator > 0 && timeSigDenominator > 0;
    }

    // A loop is honoured only while playing and when it spans at least two samples, so that
    // every wrap makes progress.
    bool hasUsableLoop() const noexcept {
        return playing && looping && std::isfinite(loopStartPpq) && std::isfinite(loopEndPpq) &&
               loopEndPpq - loopStartPpq >= 2.0 * ppqPerSample();
    }
};

// Number of samples from `ppq` until the transport reaches `targetPpq`, moving by
// `ppqPerSample` each sample: the index of the first sample at or past the target.
// Positions within 1e-6 of a sample count as on that sample, so that host rounding of ppq
// does not move a loop point by one sample.
inline std::int64_t samplesUntil(double ppq, double targetPpq, double ppqPerSample) noexcept {
    const double x = (targetPpq - ppq) / ppqPerSample;
    const double nearest = std::nearbyint(x);
    if (std::fabs(x - nearest) <= 1e-6) return static_cast<std::int64_t>(nearest);
    return static_cast<std::int64_t>(std::ceil(x));
}

// Bar lines of a time signature: one every `numerator * 4 / denominator` quarter notes from
// `origin` (the host's bar start, else ppq 0). The one place bar arithmetic is done (capture
// anchors, context planning). A position within kBarLineToleranceSamples of a sample (a
// thousandth) before a line counts as having reached it; indices are whole numbers held in
// doubles, so nothing here can overflow an integer cast on odd input. Realtime-safe.
constexpr double kBarLineToleranceSamples = 1e-3;

struct BarGrid {
    double origin = 0.0;      // ppq of one bar line
    double barLength = 4.0;   // ppq per bar
    double tolerance = 0.0;   // ppq

    // `ppqPerSample` is the tempo's (bpm / (60 * sampleRate)), also while stopped.
    static BarGrid of(int numerator, int denominator, double barStartPpq, double ppqPerSample) noexcept {
        BarGrid g;
        g.origin = std::isfinite(barStartPpq) ? barStartPpq : 0.0;
        g.barLength = numerator * 4.0 / denominator;
        const double tolerance = kBarLineToleranceSamples * ppqPerSample;
        g.tolerance = std::isfinite(tolerance) && tolerance > 0.0 ? tolerance : 0.0;
        return g;
    }
    bool usable() const noexcept { return std::isfinite(origin) && std::isfinite(barLength) && barLength > 0.0; }
    // Index of the last line at or before `ppq`, and of the first at or after it.
    double lineAtOrBefore(double ppq) const noexcept { return std::floor((ppq - origin + tolerance) / barLength); }
    double lineAtOrAfter(double ppq) const noexcept { return std::ceil((ppq - origin - tolerance) / barLength); }
    double ppqOfLine(double index) const noexcept { return origin + index * barLength; }
};

// Splits a block into runs where ppq advances linearly, cutting at host loop wraps.
// Calls fn(offset, length, ppqAtOffset, wrapped) for each run, in order; `wrapped` is true for a
// run that starts at a loop wrap inside the block. Stopped transports give one run with ppq
// fixed. Allocation-free and realtime-safe.
template <typename Fn>
void forEachLinearRun(const TransportInfo& t, int numSamples, Fn&& fn) noexcept {
    if (numSamples <= 0) return;
    if (!t.hasUsableLoop()) {
        fn(0, numSamples, t.ppqPosition, false);
        return;
    }
    const double step = t.ppqPerSample();
    double ppq = t.ppqPosition;
    int offset = 0;
    bool wrapped = false;
    // A block that starts past the loop end plays straight on (hosts do so when the play head
    // is placed after the loop); one that starts before it wraps each time it reaches it.
    const bool startsInside = samplesUntil(ppq, t.loopEndPpq, step) >= 0;
    while (offset < numSamples) {
        const int remaining = numSamples - offset;
        if (!startsInside) {
            fn(offset, remaining, ppq, wrapped);
            return;
        }
        std::int64_t k = samplesUntil(ppq, t.loopEndPpq, step);
        if (k < 0) k = 0;
        if (k >= remaining) {
            fn(offset, remaining, ppq, wrapped);
            return;
        }
        if (k > 0) {
            fn(offset, static_cast<int>(k), ppq, wrapped);
            offset += static_cast<int>(k);
        }
        // Wrap: keep the fraction of a sample by which ppq overshoots the loop end.
        const double overshoot = ppq + static_cast<double>(k) * step - t.loopEndPpq;
        ppq = t.loopStartPpq + (overshoot > 0.0 ? overshoot : 0.0);
        wrapped = true;
    }
}

}  // namespace sideman::bridge
