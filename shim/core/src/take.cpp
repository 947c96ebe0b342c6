#include "sideman_bridge/take.h"

#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>

namespace sideman::bridge {

std::atomic<std::uint64_t> Take::nextId_{1};
std::atomic<long> Take::live_{0};

Take::Take() : id_(nextId_.fetch_add(1, std::memory_order_relaxed)) {
    segments_.push_back({0.0, 0.0, 1.0});
    live_.fetch_add(1, std::memory_order_relaxed);
}

Take::Take(std::vector<float> left, std::vector<float> right, double sampleRate, double anchorPpq,
           std::vector<TempoSegment> tempo)
    : id_(0), sampleRate_(sampleRate), anchorPpq_(anchorPpq), left_(std::move(left)), right_(std::move(right)) {
    if (left_.size() != right_.size())
        throw std::invalid_argument("take channels differ in length");
    if (!(std::isfinite(sampleRate) && sampleRate > 0.0))
        throw std::invalid_argument("take sample rate must be positive");
    if (!std::isfinite(anchorPpq)) throw std::invalid_argument("take anchor ppq must be finite");
    if (tempo.empty()) throw std::invalid_argument("take tempo map is empty");
    if (tempo.front().startPpq != anchorPpq)
        throw std::invalid_argument("take tempo map must start at the anchor ppq");
    segments_.reserve(tempo.size());
    double sample = 0.0;
    for (std::size_t i = 0; i < tempo.size(); ++i) {
        const TempoSegment& seg = tempo[i];
        if (!(std::isfinite(seg.samplesPerBeat) && seg.samplesPerBeat > 0.0))
            throw std::invalid_argument("take tempo segment " + std::to_string(i) +
                                        ": samples per beat must be positive");
        if (i > 0) {
            const TempoSegment& prev = tempo[i - 1];
            if (!(std::isfinite(seg.startPpq) && seg.startPpq > prev.startPpq))
                throw std::invalid_argument("take tempo map starts must increase strictly");
            sample += (seg.startPpq - prev.startPpq) * prev.samplesPerBeat;
        }
        segments_.push_back({seg.startPpq, sample, seg.samplesPerBeat});
    }
    id_ = nextId_.fetch_add(1, std::memory_order_relaxed);
    live_.fetch_add(1, std::memory_order_relaxed);
}

std::unique_ptr<Take> Take::atConstantTempo(std::vector<float> left, std::vector<float> right,
                                            double sampleRate, double anchorPpq, double bpm) {
    if (!(std::isfinite(bpm) && bpm > 0.0)) throw std::invalid_argument("take bpm must be positive");
    return std::make_unique<Take>(std::move(left), std::move(right), sampleRate, anchorPpq,
                                  std::vector<TempoSegment>{{anchorPpq, sampleRate * 60.0 / bpm}});
}

Take::~Take() { live_.fetch_sub(1, std::memory_order_relaxed); }

double Take::sourcePosition(double ppq, std::size_t& hint) const noexcept {
    const std::size_t n = segments_.size();
    std::size_t i = hint < n ? hint : 0;
    // Playback moves monotonically between jumps, so the hint is almost always right or one off.
    while (i + 1 < n && ppq >= segments_[i + 1].startPpq) ++i;
    while (i > 0 && ppq < segments_[i].startPpq) --i;
    hint = i;
    const Segment& s = segments_[i];
    return s.startSample + (ppq - s.startPpq) * s.samplesPerBeat;
}

double Take::ppqAtSource(double sample) const noexcept {
    std::size_t i = 0;
    while (i + 1 < segments_.size() && sample >= segments_[i + 1].startSample) ++i;
    const Segment& s = segments_[i];
    return s.startPpq + (sample - s.startSample) / s.samplesPerBeat;
}

void Take::frameAt(double position, float& l, float& r) const noexcept {
    l = r = 0.0f;
    const double n = static_cast<double>(left_.size());
    // Reject far-away positions before converting to an integer type.
    if (!(position > -1.0 && position < n)) return;
    double whole = std::floor(position);
    double frac = position - whole;
    if (frac < kSnapSamples) {
        frac = 0.0;
    } else if (frac > 1.0 - kSnapSamples) {
        frac = 0.0;
        whole += 1.0;
    }
    const auto i = static_cast<std::ptrdiff_t>(whole);
    const auto size = static_cast<std::ptrdiff_t>(left_.size());
    const float l0 = (i >= 0 && i < size) ? left_[static_cast<std::size_t>(i)] : 0.0f;
    const float r0 = (i >= 0 && i < size) ? right_[static_cast<std::size_t>(i)] : 0.0f;
    if (frac == 0.0) {
        l = l0;
        r = r0;
        return;
    }
    const float l1 = (i + 1 >= 0 && i + 1 < size) ? left_[static_cast<std::size_t>(i + 1)] : 0.0f;
    const float r1 = (i + 1 >= 0 && i + 1 < size) ? right_[static_cast<std::size_t>(i + 1)] : 0.0f;
    const auto f = static_cast<float>(frac);
    l = l0 + (l1 - l0) * f;
    r = r0 + (r1 - r0) * f;
}

}  // namespace sideman::bridge
