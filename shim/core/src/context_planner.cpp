#include "sideman_bridge/context_planner.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace sideman::bridge {

namespace {
int checkedMaxBars(int maxBars) {
    if (maxBars < 1) throw std::invalid_argument("a context plan needs at least one bar");
    return maxBars;
}
}  // namespace

ContextPlanner::ContextPlanner(int maxBars) : maxBars_(checkedMaxBars(maxBars)) {}

std::optional<ContextPlan> ContextPlanner::planContext(const std::vector<CaptureBuffer::Anchor>& runs,
                                                       std::int64_t endFrame) const {
    for (auto it = runs.rbegin(); it != runs.rend(); ++it) {
        const CaptureBuffer::Anchor& run = *it;
        if (run.frame >= endFrame || !run.playing) continue;  // recorded after the press, or stopped

        const double step = run.ppqPerFrame();  // ppq per frame
        const BarGrid grid = run.barGrid();
        const std::int64_t runEnd = std::min(endFrame, run.frame + run.numFrames);  // exclusive
        const double endPpq = run.ppq + static_cast<double>(runEnd - run.frame) * step;
        const double lastLine = grid.lineAtOrBefore(endPpq);  // bar indices (whole numbers)
        const double firstLine = grid.lineAtOrAfter(run.ppq);
        const double bars = std::min(static_cast<double>(maxBars_), lastLine - firstLine);
        if (!(bars >= 1.0)) continue;  // less than a bar here (e.g. just after a seek): look further back

        const double endBarPpq = grid.ppqOfLine(lastLine);
        const double startBarPpq = endBarPpq - bars * grid.barLength;
        const std::int64_t first = run.frame + std::max<std::int64_t>(0, samplesUntil(run.ppq, startBarPpq, step));
        const std::int64_t last = std::min(runEnd, run.frame + samplesUntil(run.ppq, endBarPpq, step));
        if (last <= first) continue;

        ContextPlan plan;
        plan.firstFrame = first;
        plan.numFrames = last - first;
        plan.anchorPpq = startBarPpq;
        plan.bpm = run.bpm;
        plan.numerator = run.timeSigNumerator;
        plan.denominator = run.timeSigDenominator;
        plan.bars = static_cast<int>(bars);
        plan.sampleRate = run.sampleRate;
        return plan;
    }
    return std::nullopt;
}

ContextPlan ContextPlanner::planWithoutContext(const TransportInfo& now) const {
    ContextPlan plan;
    plan.bpm = now.bpm;
    plan.numerator = now.timeSigNumerator;
    plan.denominator = now.timeSigDenominator;
    plan.bars = maxBars_;
    plan.sampleRate = now.sampleRate;
    const BarGrid grid = BarGrid::of(now.timeSigNumerator, now.timeSigDenominator, now.barStartPpq,
                                     now.ppqPerSample());
    if (grid.usable() && std::isfinite(now.ppqPosition))
        plan.anchorPpq = grid.ppqOfLine(now.playing ? grid.lineAtOrAfter(now.ppqPosition)
                                                    : grid.lineAtOrBefore(now.ppqPosition));
    return plan;
}

ContextPlanner::Planned ContextPlanner::plan(const CaptureBuffer& capture, std::int64_t endFrame,
                                             const TransportInfo& now) const {
    Planned planned;
    if (const auto withContext = planContext(capture.anchors(), endFrame)) {
        planned.context = capture.extractFrames(withContext->firstFrame, withContext->numFrames);
        if (planned.context) {
            planned.plan = *withContext;
            return planned;
        }
    }
    planned.plan = planWithoutContext(now);
    return planned;
}

}  // namespace sideman::bridge
