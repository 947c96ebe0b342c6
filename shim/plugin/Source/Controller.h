// The plugin's non-realtime brain: one worker thread of its own that talks to the Sideman host
// (hello, settings, generate), writes the context file, loads takes and hands them to the
// TakePlayer, frees retired takes, and keeps the state that is saved with the project. Which
// bars a Generate press sends is the bridge core's ContextPlanner (context_planner.h); the OSC
// verbs are OscVerbs.h.
//
// Why a thread of its own: hosts used for automated tests (DawDreamer, pedalboard) and some
// DAWs in offline mode never run JUCE's message loop, so nothing here may depend on
// juce::Timer or message-thread callbacks. OSC replies come in on the OSC receiver's thread
// (HostLink) and wake this worker; it also ticks every 20 ms to poll the Generate edge
// published by the audio thread, the Take parameter and its timers.
//
// Threads: the public functions may be called from any non-realtime thread (message thread,
// the host's state thread, the worker). They take `lock_`, which the audio thread never takes.
#pragma once

#include <juce_audio_formats/juce_audio_formats.h>
#include <juce_core/juce_core.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <map>
#include <optional>

#include "HostLink.h"
#include "OscVerbs.h"
#include "PluginState.h"

namespace sideman::plugin {

class SidemanAudioProcessor;

class SidemanController final : private juce::Thread {
public:
    explicit SidemanController(SidemanAudioProcessor& processor);
    ~SidemanController() override;

    // Starts talking to the host (hello, reconnects). Called when the plugin is prepared, its
    // editor opens or Generate is pressed, so that merely scanning the plugin registers nothing.
    void activate();

    SessionState session() const;
    void restore(SessionState restored);  // from setStateInformation: reloads the saved take
    void setPrompt(const juce::String& prompt);
    void requestGenerate();  // the editor's button (the parameter's edge is seen by the audio thread)

    // Two lines for the editor: the link to the host, then the last activity.
    juce::String status() const;
    bool isConnected() const noexcept { return connected_.load(std::memory_order_relaxed); }

    static constexpr int kTickMs = 20;
    static constexpr double kHelloIntervalMs = 2000.0;
    static constexpr double kKeepAliveMs = 5000.0;
    static constexpr double kHostTimeoutMs = 12000.0;

private:
    // A generate request the host has not finished: our own numbers for the take it will make
    // (the host echoes the anchor as float32 and knows the tempo only in time-signature units).
    struct PendingJob {
        double anchorPpq = 0.0;
        double bpm = 120.0;
    };

    void run() override;
    void maintainLink(double now);
    void handleInbox(double now);
    void handleMessage(const juce::OSCMessage& message, double now);
    void handleGenerateRequests();
    void generate(std::int64_t endFrame);
    void syncTakeSelection();
    bool loadTake(const TakeRecord& record, juce::String& error);
    void adoptTake(const juce::String& takeId, const juce::String& path, double anchorPpq, std::int32_t req);
    void setTakeParameter(int index);
    void setLinkStatus(const juce::String& text);
    void setActivity(const juce::String& text);
    std::int32_t nextRequestId() noexcept;
    bool send(const osc::Verb& verb, const juce::Array<juce::OSCArgument>& args);  // to this instance

    SidemanAudioProcessor& processor_;
    juce::AudioFormatManager formats_;
    HostLink link_;

    mutable std::mutex lock_;  // guards session_, linkStatus_, activity_
    SessionState session_;
    juce::String linkStatus_ { "Not connected yet" };
    juce::String activity_;

    std::atomic<bool> active_ { false };
    std::atomic<bool> connected_ { false };
    std::atomic<bool> restorePending_ { false };
    std::atomic<std::uint32_t> editorRequests_ { 0 };

    // ---- worker-thread state ---------------------------------------------------------------
    juce::String linkTarget_;      // "address:port" the socket was opened for
    double lastHelloMs_ = -1.0e12;
    double lastHeardMs_ = 0.0;
    double lastStatusSentMs_ = 0.0;
    int helloAttempts_ = 0;
    std::int32_t helloReq_ = 0;
    std::int32_t requestCounter_ = 0;
    std::map<std::int32_t, PendingJob> jobs_;  // by request id; a superseded job may still finish
    std::int32_t latestJob_ = 0;                // the request whose progress is shown
    std::uint32_t handledGenerateSeq_ = 0;
    std::uint32_t handledEditorRequests_ = 0;
    juce::String loadedTakeId_;    // the take handed to the player ("" = none)
    int attemptedTakeIndex_ = -1;  // the Take parameter value last acted upon
    juce::String attemptedTakeId_;

    JUCE_DECLARE_NON_COPYABLE(SidemanController)
};

}  // namespace sideman::plugin
