// What a Generate press sends as context, and where the take it asks for will sit.
//
// With context: the last whole bars (at most `maxBars`) played before the press, ending at the
// last bar line the transport reached (BarGrid: bar lines from the host's bar start, else from
// ppq 0, at the run's time signature). They come from the latest playing run (a stretch of
// linear transport, CaptureBuffer::anchors()) that holds at least one whole bar before the
// press, so pressing Generate after stopping, or just after a seek or loop wrap, uses what was
// played before. Fewer bars are sent when fewer were captured. The take starts where the
// context starts.
//
// Without context (no whole bar captured playing): `maxBars` bars from the next bar line while
// playing, from the start of the current bar while stopped.
//
// Threads: non-realtime only (reads the capture through its allocating readers). The planning
// itself is pure: the same runs and transport always give the same plan.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "sideman_bridge/capture_buffer.h"
#include "sideman_bridge/transport.h"

namespace sideman::bridge {

struct ContextPlan {
    std::int64_t firstFrame = 0;   // context: capture frames [firstFrame, firstFrame + numFrames)
    std::int64_t numFrames = 0;    // 0: no context
    double anchorPpq = 0.0;        // ppq of the first context frame and of the take's first sample
    double bpm = 120.0;            // quarter notes per minute
    int numerator = 4;
    int denominator = 4;
    int bars = 0;                  // whole bars of context (without context: bars to generate)
    double sampleRate = 48000.0;   // of the context frames (without context: the host's)

    bool hasContext() const noexcept { return numFrames > 0; }
    // Length of the take in seconds (bars at this tempo and time signature).
    double seconds() const noexcept { return bars * numerator * (4.0 / denominator) * 60.0 / bpm; }
};

class ContextPlanner {
public:
    // maxBars >= 1, else std::invalid_argument.
    explicit ContextPlanner(int maxBars);
    int maxBars() const noexcept { return maxBars_; }

    // The context for a press at capture frame `endFrame` (frames from it on are ignored), from
    // `runs` as CaptureBuffer::anchors() gives them (oldest first). nullopt when no run holds a
    // whole bar played before the press.
    std::optional<ContextPlan> planContext(const std::vector<CaptureBuffer::Anchor>& runs,
                                           std::int64_t endFrame) const;
    // A take of `maxBars` bars without context, placed by the transport `now` (valid() or not:
    // a grid that cannot be used places it at ppq 0).
    ContextPlan planWithoutContext(const TransportInfo& now) const;

    struct Planned {
        ContextPlan plan;
        std::optional<CaptureBuffer::Region> context;  // the plan's frames; set iff plan.hasContext()
    };
    // planContext over `capture`, extracted; planWithoutContext(now) when there is no whole bar
    // or its frames were overwritten while being read.
    Planned plan(const CaptureBuffer& capture, std::int64_t endFrame, const TransportInfo& now) const;

private:
    int maxBars_;
};

}  // namespace sideman::bridge
