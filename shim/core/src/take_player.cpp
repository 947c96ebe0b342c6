#include "sideman_bridge/take_player.h"

#include <cassert>
#include <cmath>
#include <stdexcept>
#include <utility>

namespace sideman::bridge {

namespace {
// Takes the audio thread may have to retire because of one adoption: the take it replaces and
// the one an interrupted crossfade was still playing.
constexpr std::size_t kRetiresPerAdoption = 2;

int checkedCrossfade(int samples) {
    if (samples < 0) throw std::invalid_argument("crossfade length must not be negative");
    return samples;
}

std::size_t checkedRetireCapacity(std::size_t capacity) {
    if (capacity < kRetiresPerAdoption) throw std::invalid_argument("retire queue needs at least 2 slots");
    return capacity;
}
}  // namespace

TakePlayer::TakePlayer() : TakePlayer(Options{}) {}

TakePlayer::TakePlayer(Options options)
    : crossfade_(checkedCrossfade(options.crossfadeSamples)),
      retire_(checkedRetireCapacity(options.retireCapacity)) {}

TakePlayer::~TakePlayer() {
    collectGarbage();
    delete pending_.exchange(nullptr, std::memory_order_acq_rel);
    if (fadeOwned_) delete fadeTake_;
    delete current_;
}

std::uint64_t TakePlayer::setTake(std::unique_ptr<Take> take) {
    if (!take) take = std::make_unique<Take>();
    const std::uint64_t id = take->id();
    std::lock_guard<std::mutex> lock(controlMutex_);
    Take* unseen = pending_.exchange(take.release(), std::memory_order_acq_rel);
    // The exchange returned either nullptr (the audio thread took the previous one) or a take
    // the audio thread never saw: it is ours to free.
    delete unseen;
    return id;
}

std::size_t TakePlayer::collectGarbage() {
    std::lock_guard<std::mutex> lock(controlMutex_);
    std::size_t freed = 0;
    Take* dead = nullptr;
    while (retire_.tryPop(dead)) {
        delete dead;
        ++freed;
    }
    return freed;
}

// ---- audio thread -------------------------------------------------------------------------

void TakePlayer::retire(Take* take) noexcept {
    if (take == nullptr) return;
    // Cannot fail: adoptPendingTake() only adopts with kRetiresPerAdoption free slots, and each
    // adoption retires at most the replaced take plus the take of an interrupted fade.
    [[maybe_unused]] const bool pushed = retire_.tryPush(take);
    assert(pushed);
}

void TakePlayer::adoptPendingTake() noexcept {
    if (pending_.load(std::memory_order_relaxed) == nullptr) return;
    if (retire_.freeSlots() < kRetiresPerAdoption) return;  // wait for collectGarbage()
    Take* next = pending_.exchange(nullptr, std::memory_order_acq_rel);
    if (next == nullptr) return;
    Take* old = current_;
    current_ = next;
    hint_ = 0;
    currentId_.store(next->id(), std::memory_order_release);
    if (crossfade_ > 0 && wasRunning_) {
        // Fade from the old take, continuing where it would have played. An unfinished fade is
        // dropped (its take retired if it owned one); `old` is now owned by the new fade.
        endFade();
        startFade(old, true, expectedPpq_);
    } else {
        // Not playing (or no crossfade): no fade can be active, so nothing else refers to `old`.
        retire(old);
    }
}

void TakePlayer::startFade(Take* from, bool owned, double ppq) noexcept {
    fadeActive_ = true;
    fadeTake_ = from;
    fadeOwned_ = owned;
    fadePpq_ = ppq;
    fadeHint_ = 0;
    fadeDone_ = 0;
}

void TakePlayer::endFade() noexcept {
    if (fadeOwned_) retire(fadeTake_);
    fadeActive_ = false;
    fadeTake_ = nullptr;
    fadeOwned_ = false;
}

void TakePlayer::process(float* const* out, int numChannels, int numSamples,
                         const TransportInfo& transport) noexcept {
    adoptPendingTake();
    if (numSamples <= 0) return;
    for (int c = 0; c < numChannels; ++c)
        for (int i = 0; i < numSamples; ++i) out[c][i] = 0.0f;

    if (!transport.playing || !transport.valid()) {
        endFade();
        wasRunning_ = false;
        return;
    }
    const double step = transport.ppqPerSample();
    forEachLinearRun(transport, numSamples, [&](int offset, int length, double ppq, bool) {
        renderRun(out, numChannels, offset, length, ppq, step);
    });
}

void TakePlayer::renderRun(float* const* out, int numChannels, int offset, int length, double ppq,
                           double step) noexcept {
    const bool continuous = wasRunning_ && std::fabs(ppq - expectedPpq_) <= continuityTolerance(step);
    if (!continuous && crossfade_ > 0 && !fadeActive_)
        startFade(wasRunning_ ? current_ : nullptr, false, expectedPpq_);
    // Continuing: follow our own sample clock, not the host's (possibly quantised) ppq, so
    // playback stays sample-contiguous.
    if (continuous) ppq = expectedPpq_;

    const Take* take = current_;
    float* left = numChannels > 0 ? out[0] + offset : nullptr;
    float* right = numChannels > 1 ? out[1] + offset : nullptr;
    const float fadeDenominator = static_cast<float>(crossfade_ + 1);

    for (int k = 0; k < length; ++k) {
        float l = 0.0f, r = 0.0f;
        if (take != nullptr) take->frameAt(take->sourcePosition(ppq + k * step, hint_), l, r);
        if (fadeActive_) {
            float ol = 0.0f, orr = 0.0f;
            if (fadeTake_ != nullptr) fadeTake_->frameAt(fadeTake_->sourcePosition(fadePpq_, fadeHint_), ol, orr);
            fadePpq_ += step;
            const float w = static_cast<float>(fadeDone_ + 1) / fadeDenominator;
            l = ol * (1.0f - w) + l * w;
            r = orr * (1.0f - w) + r * w;
            if (++fadeDone_ >= crossfade_) endFade();
        }
        if (right != nullptr) {
            left[k] = l;
            right[k] = r;
        } else if (left != nullptr) {
            left[k] = 0.5f * (l + r);
        }
    }
    expectedPpq_ = ppq + length * step;
    wasRunning_ = true;
}

}  // namespace sideman::bridge
