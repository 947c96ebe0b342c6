#include "sideman_bridge/capture_buffer.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace sideman::bridge {

namespace {
std::int64_t checkedCapacity(std::int64_t frames) {
    if (frames <= 0) throw std::invalid_argument("capture capacity must be positive");
    return frames;
}
std::size_t checkedAnchors(std::size_t anchors) {
    if (anchors == 0) throw std::invalid_argument("capture needs at least one anchor slot");
    return anchors;
}
}  // namespace

CaptureBuffer::Anchor CaptureBuffer::Anchor::advancedBy(std::int64_t offset) const noexcept {
    Anchor a = *this;
    a.frame += offset;
    a.ppq += static_cast<double>(offset) * ppqPerFrame();
    if (playing) a.samplePosition += offset;
    a.numFrames = numFrames > offset ? numFrames - offset : 0;
    if (std::isfinite(barStartPpq)) {
        const BarGrid bars = barGrid();
        if (bars.usable()) a.barStartPpq = bars.ppqOfLine(bars.lineAtOrBefore(a.ppq));
    }
    return a;
}

CaptureBuffer::CaptureBuffer(std::int64_t capacityFrames, std::size_t maxAnchors)
    : capacity_(checkedCapacity(capacityFrames)),
      maxAnchors_(checkedAnchors(maxAnchors)),
      left_(std::make_unique<std::atomic<float>[]>(static_cast<std::size_t>(capacity_))),
      right_(std::make_unique<std::atomic<float>[]>(static_cast<std::size_t>(capacity_))),
      anchorSlots_(std::make_unique<AnchorSlot[]>(maxAnchors_)) {
    for (std::int64_t i = 0; i < capacity_; ++i) {
        left_[static_cast<std::size_t>(i)].store(0.0f, std::memory_order_relaxed);
        right_[static_cast<std::size_t>(i)].store(0.0f, std::memory_order_relaxed);
    }
}

// ---- audio thread -------------------------------------------------------------------------

void CaptureBuffer::push(const float* const* in, int numChannels, int numSamples,
                         const TransportInfo& transport) noexcept {
    if (numSamples <= 0) return;
    const float* l = (in != nullptr && numChannels > 0) ? in[0] : nullptr;
    const float* r = (in != nullptr && numChannels > 1) ? in[1] : l;
    TransportInfo t = transport;
    if (!t.valid()) t.playing = false;  // an unusable transport is recorded as a stopped one
    forEachLinearRun(t, numSamples, [&](int offset, int length, double ppq, bool wrapped) {
        TransportInfo runTransport = t;
        runTransport.samplePosition = t.samplePosition + offset;
        // After a loop wrap the host timeline is back at the loop start too.
        if (wrapped)
            runTransport.samplePosition -= std::llround((t.loopEndPpq - t.loopStartPpq) / t.ppqPerSample());
        pushRun(l != nullptr ? l + offset : nullptr, r != nullptr ? r + offset : nullptr, length,
                runTransport, ppq);
    });
}

void CaptureBuffer::pushRun(const float* l, const float* r, int length, const TransportInfo& t,
                            double ppq) noexcept {
    bool continuous = haveRun_ && run_.playing == t.playing && run_.sampleRate == t.sampleRate &&
                      run_.bpm == t.bpm && run_.timeSigNumerator == t.timeSigNumerator &&
                      run_.timeSigDenominator == t.timeSigDenominator;
    if (continuous) {
        const Anchor expected = run_.advancedBy(writeFrame_ - run_.frame);
        continuous = std::fabs(ppq - expected.ppq) <= continuityTolerance(t.ppqPerSample()) &&
                     t.samplePosition == expected.samplePosition;
    }
    if (!continuous) {
        Anchor a;
        a.frame = writeFrame_;
        a.sampleRate = t.sampleRate;
        a.ppq = ppq;
        a.samplePosition = t.samplePosition;
        a.bpm = t.bpm;
        a.timeSigNumerator = t.timeSigNumerator;
        a.timeSigDenominator = t.timeSigDenominator;
        a.barStartPpq = t.barStartPpq;
        a.playing = t.playing;
        run_ = a;
        haveRun_ = true;
        publishAnchor(a);
    }

    const std::int64_t first = writeFrame_;
    frameHead_.store(first + length, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    auto slot = static_cast<std::size_t>(first % capacity_);
    const auto cap = static_cast<std::size_t>(capacity_);
    for (int i = 0; i < length; ++i) {
        left_[slot].store(l != nullptr ? l[i] : 0.0f, std::memory_order_relaxed);
        right_[slot].store(r != nullptr ? r[i] : 0.0f, std::memory_order_relaxed);
        if (++slot == cap) slot = 0;
    }
    writeFrame_ = first + length;
    committed_.store(writeFrame_, std::memory_order_release);
}

void CaptureBuffer::publishAnchor(const Anchor& a) noexcept {
    const std::int64_t index = anchorCount_.load(std::memory_order_relaxed);  // only we write it
    anchorHead_.store(index + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    AnchorSlot& s = anchorSlots_[static_cast<std::size_t>(index % static_cast<std::int64_t>(maxAnchors_))];
    s.frame.store(a.frame, std::memory_order_relaxed);
    s.sampleRate.store(a.sampleRate, std::memory_order_relaxed);
    s.ppq.store(a.ppq, std::memory_order_relaxed);
    s.samplePosition.store(a.samplePosition, std::memory_order_relaxed);
    s.bpm.store(a.bpm, std::memory_order_relaxed);
    s.timeSigNumerator.store(a.timeSigNumerator, std::memory_order_relaxed);
    s.timeSigDenominator.store(a.timeSigDenominator, std::memory_order_relaxed);
    s.barStartPpq.store(a.barStartPpq, std::memory_order_relaxed);
    s.playing.store(a.playing, std::memory_order_relaxed);
    anchorCount_.store(index + 1, std::memory_order_release);
}

// ---- readers --------------------------------------------------------------------------------

CaptureBuffer::Snapshot CaptureBuffer::snapshot() const {
    Snapshot s;
    s.committed = committed_.load(std::memory_order_acquire);
    // Anchors are published before the frames they describe, so every frame below `committed`
    // has its anchor among the first `count` ones.
    const std::int64_t count = anchorCount_.load(std::memory_order_acquire);
    const auto slots = static_cast<std::int64_t>(maxAnchors_);
    const std::int64_t lo = std::max<std::int64_t>(0, count - slots);
    std::vector<Anchor> runs;
    runs.reserve(static_cast<std::size_t>(count - lo));
    for (std::int64_t i = lo; i < count; ++i) {
        const AnchorSlot& slot = anchorSlots_[static_cast<std::size_t>(i % slots)];
        Anchor a;
        a.frame = slot.frame.load(std::memory_order_relaxed);
        a.sampleRate = slot.sampleRate.load(std::memory_order_relaxed);
        a.ppq = slot.ppq.load(std::memory_order_relaxed);
        a.samplePosition = slot.samplePosition.load(std::memory_order_relaxed);
        a.bpm = slot.bpm.load(std::memory_order_relaxed);
        a.timeSigNumerator = slot.timeSigNumerator.load(std::memory_order_relaxed);
        a.timeSigDenominator = slot.timeSigDenominator.load(std::memory_order_relaxed);
        a.barStartPpq = slot.barStartPpq.load(std::memory_order_relaxed);
        a.playing = slot.playing.load(std::memory_order_relaxed);
        runs.push_back(a);
    }
    std::atomic_thread_fence(std::memory_order_acquire);
    // Slot of anchor i is reused by anchor i + slots, announced by anchorHead_ > i + slots.
    const std::int64_t firstIntact = anchorHead_.load(std::memory_order_relaxed) - slots;
    const std::int64_t dropFront = std::max<std::int64_t>(0, firstIntact - lo);
    runs.erase(runs.begin(), runs.begin() + std::min<std::int64_t>(dropFront, static_cast<std::int64_t>(runs.size())));
    // Anchors of frames not committed yet (published ahead of their audio).
    while (!runs.empty() && runs.back().frame >= s.committed) runs.pop_back();
    for (std::size_t i = 0; i < runs.size(); ++i)
        runs[i].numFrames = (i + 1 < runs.size() ? runs[i + 1].frame : s.committed) - runs[i].frame;

    s.oldest = std::max({s.committed - capacity_, validFrom_.load(std::memory_order_acquire),
                         runs.empty() ? s.committed : runs.front().frame});
    std::size_t keepFrom = 0;
    while (keepFrom < runs.size() && runs[keepFrom].frame + runs[keepFrom].numFrames <= s.oldest) ++keepFrom;
    runs.erase(runs.begin(), runs.begin() + static_cast<std::ptrdiff_t>(keepFrom));
    if (!runs.empty() && runs.front().frame < s.oldest)
        runs.front() = runs.front().advancedBy(s.oldest - runs.front().frame);
    s.runs = std::move(runs);
    return s;
}

std::optional<CaptureBuffer::Region> CaptureBuffer::copyFrames(const Snapshot& s, std::int64_t first,
                                                               std::int64_t count) const {
    if (count <= 0 || first < s.oldest || first + count > s.committed) return std::nullopt;
    const Anchor* run = nullptr;
    for (const Anchor& a : s.runs)
        if (a.frame <= first) run = &a;
    if (run == nullptr) return std::nullopt;

    Region region;
    region.left.resize(static_cast<std::size_t>(count));
    region.right.resize(static_cast<std::size_t>(count));
    auto slot = static_cast<std::size_t>(first % capacity_);
    const auto cap = static_cast<std::size_t>(capacity_);
    for (std::size_t i = 0; i < static_cast<std::size_t>(count); ++i) {
        region.left[i] = left_[slot].load(std::memory_order_relaxed);
        region.right[i] = right_[slot].load(std::memory_order_relaxed);
        if (++slot == cap) slot = 0;
    }
    std::atomic_thread_fence(std::memory_order_acquire);
    // Frame f's cell is reused by frame f + capacity, announced by frameHead_ > f + capacity.
    if (frameHead_.load(std::memory_order_relaxed) > first + capacity_) return std::nullopt;
    region.anchor = run->advancedBy(first - run->frame);
    region.anchor.numFrames = count;
    return region;
}

std::vector<CaptureBuffer::Anchor> CaptureBuffer::anchors() const { return snapshot().runs; }

std::optional<CaptureBuffer::Region> CaptureBuffer::extractFrames(std::int64_t firstFrame,
                                                                  std::int64_t numFrames) const {
    return copyFrames(snapshot(), firstFrame, numFrames);
}

std::optional<CaptureBuffer::Region> CaptureBuffer::extractLatest(std::int64_t numFrames) const {
    const Snapshot s = snapshot();
    return copyFrames(s, s.committed - numFrames, numFrames);
}

std::optional<CaptureBuffer::Region> CaptureBuffer::extractPpqRange(double startPpq, double endPpq) const {
    if (!(std::isfinite(startPpq) && std::isfinite(endPpq) && endPpq > startPpq)) return std::nullopt;
    const Snapshot s = snapshot();
    for (auto it = s.runs.rbegin(); it != s.runs.rend(); ++it) {
        if (!it->playing) continue;
        const double step = it->ppqPerFrame();
        const std::int64_t first = samplesUntil(it->ppq, startPpq, step);
        const std::int64_t end = samplesUntil(it->ppq, endPpq, step);
        if (first >= 0 && end <= it->numFrames && end > first)
            return copyFrames(s, it->frame + first, end - first);
    }
    return std::nullopt;
}

}  // namespace sideman::bridge
