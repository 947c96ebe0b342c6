// The plugin's non-realtime brain: one worker thread of its own that talks to the Sideman server
// (hello, settings, generate, vary, inpaint, the take browser's verbs, models), writes the
// context file, loads takes and hands them to the TakePlayer, exports them for the DAW, frees
// retired takes, and keeps the state that is saved with the project. Which bars a Generate
// press sends is the bridge core's ContextPlanner (context_planner.h); the OSC verbs are
// OscVerbs.h. Controller.cpp: the link and the replies; Jobs.cpp: jobs, takes and the browser.
//
// Words in messages: "DAW" is the audio host the plugin runs in, "Sideman server" is
// `sideman serve`.
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
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include "HostLink.h"
#include "OscVerbs.h"
#include "PluginState.h"

namespace sideman::plugin {

class SidemanAudioProcessor;

// What a press of a button parameter asks for: a new take over the last bars played, a
// variation of the selected take, or the selected take with bars From..To made again.
enum class Action : int { generate = 0, vary = 1, inpaint = 2 };
inline constexpr int kNumActions = 3;


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
    void setStyleFile(const juce::String& path);  // "" = none
    void setModel(const juce::String& name);      // "" = the server's default
    // The editor's buttons (the parameters' edges are seen by the audio thread).
    void requestAction(Action action);
    void requestGenerate() { requestAction(Action::generate); }

    // The take browser. Rename and star act at once (and tell the server); delete moves the
    // take to SESSION/trash once the server has done it, restore brings one back from there.
    void renameTake(const juce::String& takeId, const juce::String& name);
    void starTake(const juce::String& takeId, bool starred);
    void deleteTake(const juce::String& takeId);
    void restoreTake(const juce::String& takeId);
    // The take's DAW copy, written if it is missing (for a drag onto a track or "reveal");
    // nullopt with `error` set when it cannot be. Any non-realtime thread.
    std::optional<juce::File> exportedTake(const juce::String& takeId, juce::String& error) const;

    // Models the server knows (asked for on connecting and by refreshModels).
    juce::StringArray models() const;
    void refreshModels();

    // The job in flight (busy), its progress 0..1 (step of total) and the jobs ahead of it in the queue.
    struct Progress {
        bool busy = false;
        double fraction = 0.0;
        int ahead = 0;
        int step = 0, total = 0;
    };
    Progress progress() const;

    // The editor's lines: the link to the server, then the last activity.
    juce::String status() const;
    bool isConnected() const noexcept { return connected_.load(std::memory_order_relaxed); }
    bool lastActivityFailed() const noexcept { return failed_.load(std::memory_order_relaxed); }

    static constexpr int kTickMs = 20;
    static constexpr double kHelloIntervalMs = 2000.0;
    static constexpr double kKeepAliveMs = 5000.0;
    static constexpr double kHostTimeoutMs = 12000.0;
    static constexpr double kQueuePollMs = 500.0;  // status asked this often while a job waits

private:
    // A generate request the host has not finished: our own numbers for the take it will make
    // (the host echoes the anchor as float32 and knows the tempo only in time-signature units).
    // What the take will be is recorded here when the job is sent.
    struct PendingJob {
        TakeRecord take;  // everything but id, path, sha256, number, created, exportPath
    };
    // A browser request waiting for the server's ack.
    struct PendingEdit {
        enum class Kind { remove, restore } kind;
        juce::String takeId;
    };

    void run() override;
    void maintainLink(double now);
    void handleInbox(double now);
    void handleMessage(const juce::OSCMessage& message, double now);
    void handleAck(std::int32_t req);
    void handleStatusReply(const juce::OSCMessage& message);
    void handleFailure(std::int32_t req, const juce::String& reason);
    void pollQueue(double now);
    void runCommands();
    void post(std::function<void()> command);  // runs on the worker
    bool editTake(const juce::String& takeId, const std::function<void(TakeRecord&)>& edit);

    // Jobs.cpp
    void handleActionRequests();
    void startJob(Action action, std::int64_t endFrame);
    bool sendSettings();
    void sendJob(const osc::Verb& verb, juce::Array<juce::OSCArgument> args, PendingJob job,
                 const juce::String& what);
    void syncTakeSelection();
    bool loadTake(const TakeRecord& record, juce::String& error);
    void adoptTake(const juce::String& takeId, const juce::String& path, double anchorPpq, std::int32_t req);
    void finishEdit(const PendingEdit& edit);
    void reselect();  // the Take parameter follows the selected take's new index
    void setTakeParameter(int index);
    void setLinkStatus(const juce::String& text);
    void setActivity(const juce::String& text, bool failed = false);
    std::int32_t nextRequestId() noexcept;
    bool send(const osc::Verb& verb, const juce::Array<juce::OSCArgument>& args);  // to this instance

    SidemanAudioProcessor& processor_;
    juce::AudioFormatManager formats_;
    HostLink link_;

    mutable std::mutex lock_;  // guards session_, linkStatus_, activity_, models_, commands_, progress_
    SessionState session_;
    juce::String linkStatus_ { "Not connected to the Sideman server yet" };
    juce::String activity_;
    juce::StringArray models_;
    std::vector<std::function<void()>> commands_;
    Progress progress_;

    std::atomic<bool> active_ { false };
    std::atomic<bool> connected_ { false };
    std::atomic<bool> restorePending_ { false };
    std::atomic<bool> failed_ { false };
    std::atomic<std::uint32_t> editorRequests_[kNumActions] {};

    // ---- worker-thread state ---------------------------------------------------------------
    juce::String linkTarget_;      // "address:port" the socket was opened for
    double lastHelloMs_ = -1.0e12;
    double lastHeardMs_ = 0.0;
    double lastStatusSentMs_ = 0.0;
    int helloAttempts_ = 0;
    std::int32_t helloReq_ = 0;
    std::int32_t requestCounter_ = 0;
    std::map<std::int32_t, PendingJob> jobs_;  // by request id; a superseded job may still finish
    std::map<std::int32_t, PendingEdit> edits_;  // delete / restore requests by request id
    std::int32_t latestJob_ = 0;                // the request whose progress is shown
    std::int32_t modelsReq_ = 0;
    juce::StringArray modelsArriving_;
    double lastQueuePollMs_ = 0.0;
    std::uint32_t handledPresses_[kNumActions] {};
    std::uint32_t handledEditorRequests_[kNumActions] {};
    juce::String loadedTakeId_;    // the take handed to the player ("" = none)
    int attemptedTakeIndex_ = -1;  // the Take parameter value last acted upon
    juce::String attemptedTakeId_;

    JUCE_DECLARE_NON_COPYABLE(SidemanController)
};

}  // namespace sideman::plugin
