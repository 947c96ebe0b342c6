// The Sideman plugin: captures the context from its sidechain (the main input when the
// sidechain is absent, disabled or silent), asks the Sideman host process for an accompaniment
// over OSC and plays the chosen take locked to the host transport, mixed over the main input.
//
// Realtime contract (processBlock)
//   processBlock only reads the play head, pushes the context into the preallocated
//   CaptureBuffer, plays the current take through the TakePlayer into a preallocated scratch
//   buffer and adds it to the output. It takes no locks, allocates and frees nothing, does no
//   I/O or logging and never waits: parameters are read through their std::atomic values, the
//   Generate, Vary and Inpaint buttons are edges detected here and published with atomics, takes arrive
//   through TakePlayer's atomic hand-off. Everything else (OSC, files, loading and freeing takes)
//   happens on the controller's worker thread (SidemanController) or on the OSC receiver thread.
//   With no host process running the plugin passes its main input through unchanged.
#pragma once

#include <juce_audio_processors/juce_audio_processors.h>
#include <juce_audio_utils/juce_audio_utils.h>

#include <atomic>
#include <memory>
#include <mutex>

#include "Controller.h"
#include "sideman_bridge/capture_buffer.h"
#include "sideman_bridge/take_player.h"
#include "sideman_bridge/transport.h"

namespace sideman::plugin {

namespace param {
inline constexpr const char* generate = "generate";
inline constexpr const char* take = "take";
inline constexpr const char* steps = "steps";
inline constexpr const char* guidanceContext = "guidanceContext";
inline constexpr const char* guidanceClap = "guidanceClap";
inline constexpr const char* seed = "seed";
inline constexpr const char* bars = "bars";
inline constexpr const char* vary = "vary";
inline constexpr const char* strength = "strength";
inline constexpr const char* inpaint = "inpaint";
inline constexpr const char* inpaintFrom = "inpaintFrom";
inline constexpr const char* inpaintTo = "inpaintTo";
inline constexpr const char* loop = "loop";
inline constexpr const char* styleMix = "styleMix";
inline constexpr int maxTakes = 128;
inline constexpr int maxSeed = 999999;
inline constexpr int maxBars = 16;
}  // namespace param

// The transport as last seen by the audio thread, for the worker (relaxed atomics: each field
// is current, the set may mix two neighbouring blocks, which is harmless for its uses).
struct TransportSnapshot {
    std::atomic<double> sampleRate { 0.0 };
    std::atomic<double> ppq { 0.0 };
    std::atomic<double> bpm { 120.0 };
    std::atomic<double> barStartPpq { 0.0 };
    std::atomic<int> numerator { 4 };
    std::atomic<int> denominator { 4 };
    std::atomic<bool> playing { false };
    std::atomic<bool> hasBarStart { false };
};

class SidemanAudioProcessor final : public juce::AudioProcessor {
public:
    SidemanAudioProcessor();
    ~SidemanAudioProcessor() override;

    // ---- juce::AudioProcessor ------------------------------------------------------------
    void prepareToPlay(double sampleRate, int maximumExpectedSamplesPerBlock) override;
    void releaseResources() override {}
    bool isBusesLayoutSupported(const BusesLayout& layouts) const override;
    void processBlock(juce::AudioBuffer<float>& buffer, juce::MidiBuffer& midi) override;
    using juce::AudioProcessor::processBlock;

    juce::AudioProcessorEditor* createEditor() override;
    bool hasEditor() const override { return true; }

    const juce::String getName() const override { return JucePlugin_Name; }
    bool acceptsMidi() const override { return false; }
    bool producesMidi() const override { return false; }
    bool isMidiEffect() const override { return false; }
    double getTailLengthSeconds() const override { return 0.0; }

    int getNumPrograms() override { return 1; }
    int getCurrentProgram() override { return 0; }
    void setCurrentProgram(int) override {}
    const juce::String getProgramName(int) override { return "Default"; }
    void changeProgramName(int, const juce::String&) override {}

    void getStateInformation(juce::MemoryBlock& destData) override;
    void setStateInformation(const void* data, int sizeInBytes) override;

    // ---- for the controller and the editor (non-realtime threads) -------------------------
    juce::AudioProcessorValueTreeState& parameters() noexcept { return apvts_; }
    SidemanController& controller() noexcept { return *controller_; }
    bridge::TakePlayer& takePlayer() noexcept { return player_; }
    // The capture buffer of the current sample rate (nullptr before prepareToPlay). Holding the
    // pointer keeps it alive even if prepareToPlay replaces it meanwhile.
    std::shared_ptr<const bridge::CaptureBuffer> captureBuffer() const;
    const TransportSnapshot& lastTransport() const noexcept { return transport_; }

    // Presses of the Generate, Vary and Inpaint parameters seen by the audio thread: a sequence
    // number per action and the capture frame at which the last one happened (for Generate, the
    // context ends there).
    std::uint32_t pressSequence(Action a) const noexcept {
        return presses_[static_cast<int>(a)].sequence.load(std::memory_order_acquire);
    }
    std::int64_t pressFrame(Action a) const noexcept {
        return presses_[static_cast<int>(a)].frame.load(std::memory_order_relaxed);
    }

    // Seconds of context the capture buffer holds.
    static constexpr double kCaptureSeconds = 64.0;
    // Crossfade at transport jumps and take swaps while playing (samples).
    static constexpr int kCrossfadeSamples = 64;

private:
    static juce::AudioProcessorValueTreeState::ParameterLayout createParameterLayout();
    bridge::TransportInfo readTransport() const noexcept;
    // The channels of one bus inside the process buffer (at most two); returns how many.
    template <typename Sample>
    int busChannels(juce::AudioBuffer<float>& buffer, bool isInput, int busIndex, Sample* (&channels)[2]) const noexcept;
    void addTake(float* const (&out)[2], int channels, int numSamples, const bridge::TransportInfo& transport) noexcept;

    // A button parameter acting on its rising edge; `wasOn` belongs to the audio thread.
    struct Press {
        std::atomic<float>* parameter = nullptr;
        bool wasOn = false;
        std::atomic<std::uint32_t> sequence { 0 };
        std::atomic<std::int64_t> frame { 0 };
    };

    juce::AudioProcessorValueTreeState apvts_;
    Press presses_[kNumActions];

    bridge::TakePlayer player_;
    mutable std::mutex captureLock_;  // guards captureShared_ (never taken by the audio thread)
    std::shared_ptr<bridge::CaptureBuffer> captureShared_;

    // ---- audio-thread state (set up in prepareToPlay, which never runs concurrently) -----
    bridge::CaptureBuffer* capture_ = nullptr;
    juce::AudioBuffer<float> scratch_;

    TransportSnapshot transport_;

    std::unique_ptr<SidemanController> controller_;  // last member: its thread stops first

    JUCE_DECLARE_NON_COPYABLE_WITH_LEAK_DETECTOR(SidemanAudioProcessor)
};

}  // namespace sideman::plugin
