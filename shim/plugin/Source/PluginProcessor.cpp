#include "PluginProcessor.h"

#include <cmath>

#include "PluginEditor.h"

namespace sideman::plugin {

namespace {

bool isSilent(const float* const (&channels)[2], int numChannels, int numSamples) noexcept {
    for (int ch = 0; ch < numChannels; ++ch)
        for (int i = 0; i < numSamples; ++i)
            if (channels[ch][i] != 0.0f) return false;
    return true;
}

// The transport `offset` samples into a block (used only when a host block is longer than the
// scratch buffer and has to be played in pieces).
bridge::TransportInfo advanced(bridge::TransportInfo t, int offset) noexcept {
    if (offset <= 0 || !t.playing) return t;
    const double step = t.ppqPerSample();
    double ppq = t.ppqPosition + offset * step;
    if (t.hasUsableLoop() && t.ppqPosition < t.loopEndPpq && ppq >= t.loopEndPpq) {
        const double length = t.loopEndPpq - t.loopStartPpq;
        ppq = t.loopStartPpq + std::fmod(ppq - t.loopEndPpq, length);
    }
    t.ppqPosition = ppq;
    t.samplePosition += offset;
    return t;
}

}  // namespace

SidemanAudioProcessor::SidemanAudioProcessor()
    : AudioProcessor(BusesProperties()
                         .withInput("Input", juce::AudioChannelSet::stereo(), true)
                         .withOutput("Output", juce::AudioChannelSet::stereo(), true)
                         .withInput("Sidechain", juce::AudioChannelSet::stereo(), true)),
      apvts_(*this, nullptr, "SidemanState", createParameterLayout()),
      player_(bridge::TakePlayer::Options { kCrossfadeSamples, 16 }) {
    presses_[static_cast<int>(Action::generate)].parameter = apvts_.getRawParameterValue(param::generate);
    presses_[static_cast<int>(Action::vary)].parameter = apvts_.getRawParameterValue(param::vary);
    presses_[static_cast<int>(Action::inpaint)].parameter = apvts_.getRawParameterValue(param::inpaint);
    controller_ = std::make_unique<SidemanController>(*this);
}

SidemanAudioProcessor::~SidemanAudioProcessor() {
    controller_.reset();  // stop the worker (and its OSC link) before the player and buffers go
}

juce::AudioProcessorValueTreeState::ParameterLayout SidemanAudioProcessor::createParameterLayout() {
    using namespace juce;
    AudioProcessorValueTreeState::ParameterLayout layout;
    // Generate acts on its rising edge (a press), wherever it comes from: automation, a
    // controller, a test host. The editor's button triggers directly.
    layout.add(std::make_unique<AudioParameterBool>(ParameterID { param::generate, 1 }, "Generate", false));
    layout.add(std::make_unique<AudioParameterInt>(
        ParameterID { param::take, 1 }, "Take", 0, param::maxTakes, 0,
        AudioParameterIntAttributes().withStringFromValueFunction(
            [](int v, int) { return v == 0 ? String("none") : String(v); })));
    layout.add(std::make_unique<AudioParameterInt>(ParameterID { param::steps, 1 }, "Steps", 1, 50, 5));
    layout.add(std::make_unique<AudioParameterFloat>(
        ParameterID { param::guidanceContext, 1 }, "Context guidance", NormalisableRange<float>(0.0f, 10.0f, 0.01f),
        1.25f));
    layout.add(std::make_unique<AudioParameterFloat>(
        ParameterID { param::guidanceClap, 1 }, "CLAP guidance", NormalisableRange<float>(0.0f, 10.0f, 0.01f), 1.25f));
    layout.add(std::make_unique<AudioParameterInt>(ParameterID { param::seed, 1 }, "Seed", 0, param::maxSeed, 0));
    // At most this many whole bars of context are sent; the take has the context's length
    // (or this many bars when nothing has been played yet).
    layout.add(std::make_unique<AudioParameterInt>(ParameterID { param::bars, 1 }, "Bars", 1, param::maxBars, 4));
    // Edits of the selected take, also on a rising edge: a variation (Strength 0 gives the take
    // back, 1 a new one) and inpainting of its bars From..To (1-based, inclusive).
    layout.add(std::make_unique<AudioParameterBool>(ParameterID { param::vary, 1 }, "Vary", false));
    layout.add(std::make_unique<AudioParameterFloat>(
        ParameterID { param::strength, 1 }, "Variation strength", NormalisableRange<float>(0.0f, 1.0f, 0.01f), 0.5f));
    layout.add(std::make_unique<AudioParameterBool>(ParameterID { param::inpaint, 1 }, "Inpaint", false));
    layout.add(std::make_unique<AudioParameterInt>(ParameterID { param::inpaintFrom, 1 }, "Inpaint from bar", 1,
                                                   param::maxBars, 1));
    layout.add(std::make_unique<AudioParameterInt>(ParameterID { param::inpaintTo, 1 }, "Inpaint to bar", 1,
                                                   param::maxBars, 1));
    // A take that loops seamlessly (no fades at its edges), and with a style reference file the
    // blend of prompt (0) and style (1) that conditions the model.
    layout.add(std::make_unique<AudioParameterBool>(ParameterID { param::loop, 1 }, "Loop", false));
    layout.add(std::make_unique<AudioParameterFloat>(
        ParameterID { param::styleMix, 1 }, "Style mix", NormalisableRange<float>(0.0f, 1.0f, 0.01f), 0.5f));
    return layout;
}

bool SidemanAudioProcessor::isBusesLayoutSupported(const BusesLayout& layouts) const {
    const auto mono = juce::AudioChannelSet::mono();
    const auto stereo = juce::AudioChannelSet::stereo();
    const auto& out = layouts.getMainOutputChannelSet();
    if (out != mono && out != stereo) return false;
    if (layouts.getMainInputChannelSet() != out) return false;  // the main input passes through
    if (layouts.inputBuses.size() > 1) {
        const auto& side = layouts.getChannelSet(true, 1);
        if (!side.isDisabled() && side != mono && side != stereo) return false;
    }
    return true;
}

void SidemanAudioProcessor::prepareToPlay(double sampleRate, int maximumExpectedSamplesPerBlock) {
    // Not concurrent with processBlock (JUCE's contract), so the audio-thread members may change.
    const auto capacity = static_cast<std::int64_t>(std::ceil(sampleRate * kCaptureSeconds));
    {
        std::lock_guard<std::mutex> lock(captureLock_);
        if (captureShared_ == nullptr || captureShared_->capacityFrames() != capacity)
            captureShared_ = std::make_shared<bridge::CaptureBuffer>(capacity);
        capture_ = captureShared_.get();
    }
    scratch_.setSize(2, juce::jmax(maximumExpectedSamplesPerBlock, 2048), false, true, false);
    for (auto& press : presses_) press.wasOn = press.parameter->load(std::memory_order_relaxed) >= 0.5f;
    transport_.sampleRate.store(sampleRate, std::memory_order_relaxed);
    controller_->activate();
}

std::shared_ptr<const bridge::CaptureBuffer> SidemanAudioProcessor::captureBuffer() const {
    std::lock_guard<std::mutex> lock(captureLock_);
    return captureShared_;
}

bridge::TransportInfo SidemanAudioProcessor::readTransport() const noexcept {
    bridge::TransportInfo t;
    t.sampleRate = getSampleRate();
    t.playing = false;
    if (auto* head = getPlayHead()) {
        if (const auto position = head->getPosition()) {
            if (const auto bpm = position->getBpm()) t.bpm = *bpm;
            if (const auto sig = position->getTimeSignature()) {
                t.timeSigNumerator = sig->numerator;
                t.timeSigDenominator = sig->denominator;
            }
            if (const auto samples = position->getTimeInSamples()) t.samplePosition = *samples;
            if (const auto bar = position->getPpqPositionOfLastBarStart()) t.barStartPpq = *bar;
            if (const auto ppq = position->getPpqPosition()) {
                t.ppqPosition = *ppq;
                t.playing = position->getIsPlaying();  // without a ppq nothing can be locked to it
            }
            if (position->getIsLooping()) {
                if (const auto loop = position->getLoopPoints()) {
                    t.looping = true;
                    t.loopStartPpq = loop->ppqStart;
                    t.loopEndPpq = loop->ppqEnd;
                }
            }
        }
    }
    if (!t.valid()) {  // a host reporting nonsense is treated as stopped at the origin
        t = bridge::TransportInfo {};
        t.sampleRate = getSampleRate() > 0.0 ? getSampleRate() : 48000.0;
    }
    return t;
}

void SidemanAudioProcessor::processBlock(juce::AudioBuffer<float>& buffer, juce::MidiBuffer& midi) {
    juce::ScopedNoDenormals noDenormals;
    midi.clear();
    if (capture_ == nullptr) return;  // not prepared: the input passes through untouched

    const auto transport = readTransport();
    transport_.ppq.store(transport.ppqPosition, std::memory_order_relaxed);
    transport_.bpm.store(transport.bpm, std::memory_order_relaxed);
    transport_.numerator.store(transport.timeSigNumerator, std::memory_order_relaxed);
    transport_.denominator.store(transport.timeSigDenominator, std::memory_order_relaxed);
    transport_.hasBarStart.store(std::isfinite(transport.barStartPpq), std::memory_order_relaxed);
    transport_.barStartPpq.store(std::isfinite(transport.barStartPpq) ? transport.barStartPpq : 0.0,
                                 std::memory_order_relaxed);
    transport_.playing.store(transport.playing, std::memory_order_relaxed);

    // Context: the sidechain when it is enabled and carries signal, else the main input.
    // (Hosts feed an unconnected sidechain with silence, so silence means "absent".) Channel
    // pointers are gathered by hand: AudioBuffer views (getBusBuffer) would call free(nullptr)
    // in their destructors, a call into the allocator the realtime check counts.
    const int numSamples = buffer.getNumSamples();
    const float* mainIn[2] = {};
    const float* sideIn[2] = {};
    const int mainChannels = busChannels(buffer, true, 0, mainIn);
    const int sideChannels = busChannels(buffer, true, 1, sideIn);
    const bool useSide = sideChannels > 0 && !isSilent(sideIn, sideChannels, numSamples);
    capture_->push(useSide ? sideIn : mainIn, useSide ? sideChannels : mainChannels, numSamples, transport);

    // Generate, Vary, Inpaint: rising edges of their parameters; Generate's context ends with this block.
    for (auto& press : presses_) {
        const bool on = press.parameter->load(std::memory_order_relaxed) >= 0.5f;
        if (on && !press.wasOn) {
            press.frame.store(capture_->framesWritten(), std::memory_order_relaxed);
            press.sequence.fetch_add(1, std::memory_order_release);
        }
        press.wasOn = on;
    }

    // Output: the main input (already in place: main in and out share channels) plus the take.
    float* out[2] = {};
    const int outChannels = busChannels(buffer, false, 0, out);
    addTake(out, outChannels, numSamples, transport);
}

template <typename Sample>
int SidemanAudioProcessor::busChannels(juce::AudioBuffer<float>& buffer, bool isInput, int busIndex,
                                       Sample* (&channels)[2]) const noexcept {
    const auto* bus = getBus(isInput, busIndex);
    if (bus == nullptr || !bus->isEnabled()) return 0;
    const int count = juce::jmin(2, bus->getNumberOfChannels());
    for (int ch = 0; ch < count; ++ch) {
        const int index = getChannelIndexInProcessBlockBuffer(isInput, busIndex, ch);
        if (index < 0 || index >= buffer.getNumChannels()) return ch;
        channels[ch] = buffer.getWritePointer(index);
    }
    return count;
}

void SidemanAudioProcessor::addTake(float* const (&out)[2], int channels, int numSamples,
                                    const bridge::TransportInfo& transport) noexcept {
    if (channels == 0) return;
    const int capacity = scratch_.getNumSamples();
    for (int done = 0; done < numSamples;) {
        const int n = juce::jmin(capacity, numSamples - done);
        float* dest[2] = { scratch_.getWritePointer(0), scratch_.getWritePointer(1) };
        player_.process(dest, channels, n, advanced(transport, done));
        for (int ch = 0; ch < channels; ++ch) juce::FloatVectorOperations::add(out[ch] + done, dest[ch], n);
        done += n;
    }
}

juce::AudioProcessorEditor* SidemanAudioProcessor::createEditor() {
    controller_->activate();
    return new SidemanEditor(*this);
}

void SidemanAudioProcessor::getStateInformation(juce::MemoryBlock& destData) {
    auto state = apvts_.copyState();
    state.removeChild(state.getChildWithName(kSessionTag), nullptr);
    state.appendChild(toValueTree(controller_->session()), nullptr);
    if (const auto xml = state.createXml()) copyXmlToBinary(*xml, destData);
}

void SidemanAudioProcessor::setStateInformation(const void* data, int sizeInBytes) {
    const auto xml = getXmlFromBinary(data, sizeInBytes);
    if (xml == nullptr || !xml->hasTagName(apvts_.state.getType())) return;
    auto tree = juce::ValueTree::fromXml(*xml);
    const auto sessionTree = tree.getChildWithName(kSessionTag);
    tree.removeChild(sessionTree, nullptr);
    auto session = fromValueTree(sessionTree);
    // The saved take selection wins over a Take parameter that disagrees with it (a state
    // edited by hand or written by an older version): make them agree before anything runs.
    if (const int index = session.indexOf(session.selectedTake); index >= 0) {
        auto takeParam = tree.getChildWithProperty("id", param::take);
        if (takeParam.isValid()) takeParam.setProperty("value", index + 1, nullptr);
    }
    apvts_.replaceState(tree);
    controller_->restore(std::move(session));
}

}  // namespace sideman::plugin

juce::AudioProcessor* JUCE_CALLTYPE createPluginFilter() { return new sideman::plugin::SidemanAudioProcessor(); }
