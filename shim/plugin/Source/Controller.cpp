#include "Controller.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "PluginProcessor.h"
#include "TakeFiles.h"
#include "sideman_bridge/context_planner.h"

namespace sideman::plugin {

namespace {

using osc::kPrefix;
constexpr double kContextFileMaxAgeMs = 60.0 * 60.0 * 1000.0;  // context files older than this are pruned

int argInt(const juce::OSCMessage& m, int i, int fallback) {
    if (i >= m.size()) return fallback;
    if (m[i].isInt32()) return m[i].getInt32();
    if (m[i].isFloat32()) return static_cast<int>(m[i].getFloat32());
    return fallback;
}

float argFloat(const juce::OSCMessage& m, int i, float fallback) {
    if (i >= m.size()) return fallback;
    if (m[i].isFloat32()) return m[i].getFloat32();
    if (m[i].isInt32()) return static_cast<float>(m[i].getInt32());
    return fallback;
}

juce::String argString(const juce::OSCMessage& m, int i) {
    return i < m.size() && m[i].isString() ? m[i].getString() : juce::String();
}

double nowMs() { return juce::Time::getMillisecondCounterHiRes(); }

// Whether `args` fit the verb's type tags (the required ones, then any of the optional ones).
bool argsMatch(const osc::Verb& verb, const juce::Array<juce::OSCArgument>& args) {
    const juce::String types(verb.types);
    const int optionalFrom = types.indexOfChar('|');
    const auto tags = types.removeCharacters("|");
    if (args.size() > tags.length() || (optionalFrom >= 0 && args.size() < optionalFrom) ||
        (optionalFrom < 0 && args.size() != tags.length()))
        return false;
    for (int i = 0; i < args.size(); ++i)
        if (static_cast<juce::juce_wchar>(args.getReference(i).getType()) != tags[i]) return false;
    return true;
}

// The transport the audio thread saw last, for a take planned without context.
bridge::TransportInfo transportNow(const TransportSnapshot& snapshot) {
    bridge::TransportInfo t;
    t.sampleRate = snapshot.sampleRate.load();
    t.ppqPosition = snapshot.ppq.load();
    t.bpm = snapshot.bpm.load();
    t.timeSigNumerator = snapshot.numerator.load();
    t.timeSigDenominator = snapshot.denominator.load();
    t.barStartPpq = snapshot.hasBarStart.load() ? snapshot.barStartPpq.load()
                                                : std::numeric_limits<double>::quiet_NaN();
    t.playing = snapshot.playing.load();
    return t;
}

// Context files of any instance older than an hour: their jobs are long finished.
void pruneContextFiles(const juce::File& folder) {
    const auto cutoff = juce::Time::getCurrentTime() - juce::RelativeTime::milliseconds(
                                                           static_cast<juce::int64>(kContextFileMaxAgeMs));
    for (const auto& entry : juce::RangedDirectoryIterator(folder, false, "context-*.wav", juce::File::findFiles))
        if (entry.getModificationTime() < cutoff) entry.getFile().deleteFile();
}

}  // namespace

// ------------------------------------------------------------------------------------------
SidemanController::SidemanController(SidemanAudioProcessor& processor)
    : juce::Thread("Sideman worker"), processor_(processor), session_(defaultSessionState()) {
    formats_.registerBasicFormats();
    link_.onMessage = [this] { notify(); };
    startThread();
}

SidemanController::~SidemanController() {
    stopThread(4000);
    link_.close();
}

void SidemanController::activate() {
    if (!active_.exchange(true)) notify();
}

SessionState SidemanController::session() const {
    std::lock_guard<std::mutex> lock(lock_);
    return session_;
}

void SidemanController::restore(SessionState restored) {
    {
        std::lock_guard<std::mutex> lock(lock_);
        session_ = std::move(restored);
    }
    restorePending_.store(true);
    notify();
}

void SidemanController::setPrompt(const juce::String& prompt) {
    std::lock_guard<std::mutex> lock(lock_);
    session_.prompt = prompt;
}

void SidemanController::requestGenerate() {
    activate();
    editorRequests_.fetch_add(1);
    notify();
}

juce::String SidemanController::status() const {
    std::lock_guard<std::mutex> lock(lock_);
    return activity_.isEmpty() ? linkStatus_ : linkStatus_ + "\n" + activity_;
}

void SidemanController::setLinkStatus(const juce::String& text) {
    std::lock_guard<std::mutex> lock(lock_);
    linkStatus_ = text;
}

void SidemanController::setActivity(const juce::String& text) {
    std::lock_guard<std::mutex> lock(lock_);
    activity_ = text;
}

std::int32_t SidemanController::nextRequestId() noexcept {
    requestCounter_ = requestCounter_ >= std::numeric_limits<std::int32_t>::max() - 1 ? 1 : requestCounter_ + 1;
    return requestCounter_;
}

bool SidemanController::send(const osc::Verb& verb, const juce::Array<juce::OSCArgument>& args) {
    jassertquiet(argsMatch(verb, args));  // the schema of OscVerbs.h (checked against the host's in tests)
    const auto id = session().instanceId;
    try {
        juce::OSCMessage message(juce::OSCAddressPattern(juce::String(kPrefix) + id + "/" + verb.name));
        for (const auto& arg : args) message.addArgument(arg);
        return link_.send(message);
    } catch (const juce::OSCException&) {
        return false;
    }
}

// ------------------------------------------------------------------------------------------
void SidemanController::run() {
    while (!threadShouldExit()) {
        wait(kTickMs);
        if (threadShouldExit()) break;
        processor_.takePlayer().collectGarbage();

        if (restorePending_.exchange(false)) {
            // Reload (and re-verify) the saved take, and say hello again under the restored id from
            // the same socket (a new address would make the host see a clash with ourselves).
            loadedTakeId_.clear();
            attemptedTakeIndex_ = -1;
            attemptedTakeId_.clear();
            const auto s = session();
            if (const int index = s.indexOf(s.selectedTake); index >= 0) setTakeParameter(index + 1);
            connected_.store(false);
            helloAttempts_ = 0;
            lastHelloMs_ = -1.0e12;
            jobs_.clear();
        }

        const double now = nowMs();
        handleInbox(now);
        if (active_.load()) maintainLink(now);
        handleGenerateRequests();
        syncTakeSelection();
    }
}

void SidemanController::maintainLink(double now) {
    const auto s = session();
    const auto target = s.hostAddress + ":" + juce::String(s.hostPort);
    if (target != linkTarget_ || !link_.isOpen()) {
        if (now - lastHelloMs_ < kHelloIntervalMs) return;  // a failed open is retried at the hello pace
        connected_.store(false);
        helloAttempts_ = 0;
        if (!link_.open(s.hostAddress, s.hostPort)) {
            lastHelloMs_ = now;
            setLinkStatus("Cannot open a UDP socket to reach the host at " + target);
            return;
        }
        linkTarget_ = target;
        lastHelloMs_ = -1.0e12;
    }

    if (!connected_.load()) {
        if (now - lastHelloMs_ < kHelloIntervalMs) return;
        if (helloAttempts_ == 0)
            setLinkStatus("Connecting to the Sideman host at " + target + " ...");
        else
            setLinkStatus("No Sideman host at " + target + ": start it with `sideman serve --port " +
                          juce::String(s.hostPort) + " --cache " + s.cacheFolder +
                          "`. Audio passes through meanwhile.");
        helloReq_ = nextRequestId();
        try {
            const auto& verb = osc::host_request::kHello;
            juce::OSCMessage hello(juce::OSCAddressPattern(juce::String(kPrefix) + verb.name));
            hello.addInt32(helloReq_);
            hello.addString(s.instanceId);
            jassertquiet(argsMatch(verb, { hello[0], hello[1] }));
            link_.send(hello);
        } catch (const juce::OSCException&) {
        }
        lastHelloMs_ = now;
        ++helloAttempts_;
        return;
    }

    if (now - lastHeardMs_ > kHostTimeoutMs) {
        connected_.store(false);
        helloAttempts_ = 1;
        lastHelloMs_ = -1.0e12;
        setLinkStatus("Lost the Sideman host at " + target + " (no reply for " +
                      juce::String(kHostTimeoutMs / 1000.0, 0) + " s); reconnecting");
        if (!jobs_.empty()) {
            setActivity("Generation interrupted: the host went away");
            jobs_.clear();
        }
    } else if (now - lastHeardMs_ > kKeepAliveMs && now - lastStatusSentMs_ > kKeepAliveMs) {
        send(osc::instance_request::kStatus, { juce::OSCArgument(nextRequestId()) });  // keeps the id ours (the host's 30 s rule)
        lastStatusSentMs_ = now;
    }
}

void SidemanController::handleInbox(double now) {
    for (const auto& message : link_.takeInbox()) handleMessage(message, now);
}

void SidemanController::handleMessage(const juce::OSCMessage& message, double now) {
    const auto address = message.getAddressPattern().toString();
    if (!address.startsWith(kPrefix)) return;
    const auto rest = address.substring(static_cast<int>(std::strlen(kPrefix)));
    const int slash = rest.indexOfChar('/');
    const auto instance = slash < 0 ? juce::String() : rest.substring(0, slash);
    const auto verb = slash < 0 ? rest : rest.substring(slash + 1);
    const int req = argInt(message, 0, -1);
    lastHeardMs_ = now;

    if (verb == osc::instance_reply::kWelcome.name) {
        if (req != helloReq_ || connected_.load()) return;  // an answer to an older hello
        const auto assigned = argString(message, 1);
        const auto how = argString(message, 2);
        juce::String previous;
        if (how == "renamed" && isValidInstanceId(assigned)) {
            std::lock_guard<std::mutex> lock(lock_);
            previous = session_.instanceId;
            session_.instanceId = assigned;
        }
        connected_.store(true);
        helloAttempts_ = 0;
        setLinkStatus("Connected to Sideman host " + argString(message, 3) + " at " + linkTarget_ + " (model " +
                      argString(message, 4) + ", " + juce::String(argInt(message, 5, 0)) + " Hz)");
        if (previous.isNotEmpty())
            setActivity("Instance id '" + previous + "' is used by another instance (a duplicated track?): this "
                        "one is now '" + assigned + "'");
        return;
    }

    if (instance.isEmpty()) {  // host-level replies: /sideman/error, /sideman/bye
        if (verb == osc::host_reply::kBye.name) {
            connected_.store(false);
            helloAttempts_ = 1;
            setLinkStatus("The Sideman host at " + linkTarget_ + " stopped");
        } else if (verb == osc::host_reply::kError.name) {
            const auto reason = argString(message, 1);
            if (reason.contains(osc::host_request::kHello.name)) {  // the host does not know this instance (restarted elsewhere)
                connected_.store(false);
                lastHelloMs_ = -1.0e12;
            }
            jobs_.erase(req);
            setActivity("Host error: " + reason);
        }
        return;
    }

    if (instance != session().instanceId) return;  // addressed to an id this instance no longer has

    if (verb == osc::instance_reply::kProgress.name) {
        if (req == latestJob_ && jobs_.count(req) != 0)
            setActivity("Generating: step " + juce::String(argInt(message, 1, 0)) + " of " +
                        juce::String(argInt(message, 2, 0)));
    } else if (verb == osc::instance_reply::kDone.name) {
        adoptTake(argString(message, 1), argString(message, 2), argFloat(message, 3, 0.0f), req);
    } else if (verb == osc::instance_reply::kError.name) {
        const auto reason = argString(message, 1);
        const bool ours = jobs_.erase(req) != 0;
        if (ours && req == latestJob_)
            setActivity("Generation failed: " + reason);
        else if (!ours)
            setActivity("Host: " + reason);
        // (an older job answered "superseded by request N" when Generate was pressed again)
    }
    // ack, take and status replies (instance_reply::kAck, kTake, kStatus) only prove the host is
    // alive (lastHeardMs_).
}

// ------------------------------------------------------------------------------------------
void SidemanController::handleGenerateRequests() {
    const auto seq = processor_.generateSequence();
    const auto editor = editorRequests_.load();
    if (seq != handledGenerateSeq_) {
        handledGenerateSeq_ = seq;
        handledEditorRequests_ = editor;
        generate(processor_.generateFrame());
    } else if (editor != handledEditorRequests_) {
        handledEditorRequests_ = editor;
        const auto capture = processor_.captureBuffer();
        generate(capture != nullptr ? capture->framesWritten() : 0);
    }
}

void SidemanController::generate(std::int64_t endFrame) {
    activate();
    const auto capture = processor_.captureBuffer();
    if (capture == nullptr) {
        setActivity("Cannot generate yet: the host has not started audio processing");
        return;
    }
    if (!connected_.load()) {
        setActivity("Cannot generate: not connected to the Sideman host");
        return;
    }

    auto& apvts = processor_.parameters();
    const auto intParam = [&apvts](const char* id) {
        return static_cast<int>(std::lround(apvts.getRawParameterValue(id)->load()));
    };
    const int maxBars = juce::jlimit(1, param::maxBars, intParam(param::bars));
    const auto planned = bridge::ContextPlanner(maxBars).plan(*capture, endFrame, transportNow(processor_.lastTransport()));
    const bridge::ContextPlan& plan = planned.plan;
    if (juce::SystemStats::getEnvironmentVariable("SIDEMAN_PLUGIN_DEBUG", {}).isNotEmpty()) {
        // Diagnostics for hosts whose transport we have to learn (worker thread, not audio).
        const auto runs = capture->anchors();
        std::fprintf(stderr, "sideman-plugin: generate at frame %lld, %d capture runs, plan %s\n",
                     static_cast<long long>(endFrame), static_cast<int>(runs.size()),
                     planned.context ? "with context" : "without context");
        for (const auto& run : runs)
            std::fprintf(stderr, "sideman-plugin:   run frame %lld +%lld playing %d ppq %.6f bar %.6f "
                         "bpm %.3f sig %d/%d pos %lld\n", static_cast<long long>(run.frame),
                         static_cast<long long>(run.numFrames), run.playing ? 1 : 0, run.ppq,
                         run.barStartPpq, run.bpm, run.timeSigNumerator, run.timeSigDenominator,
                         static_cast<long long>(run.samplePosition));
        std::fflush(stderr);
    }

    const auto s = session();
    juce::String contextPath;
    if (planned.context) {
        const juce::File folder(s.cacheFolder);
        juce::String error;
        const auto file = writeContextFile(*planned.context, folder, error);
        if (!file) {
            setActivity("Cannot write the context: " + error);
            return;
        }
        file->setLastModificationTime(juce::Time::getCurrentTime());  // a reused file must not be pruned now
        pruneContextFiles(folder);
        contextPath = file->getFullPathName();
    }

    // The host counts bars in beats of the time signature's unit: send the tempo in those units
    // (for x/4 this is the plain bpm) so that its bar rounding matches ours.
    const double unitBpm = plan.bpm * plan.denominator / 4.0;
    auto& guidanceContext = *apvts.getRawParameterValue(param::guidanceContext);
    auto& guidanceClap = *apvts.getRawParameterValue(param::guidanceClap);
    send(osc::instance_request::kPrompt, { juce::OSCArgument(nextRequestId()), juce::OSCArgument(s.prompt) });
    send(osc::instance_request::kSeed, { juce::OSCArgument(nextRequestId()), juce::OSCArgument(static_cast<juce::int32>(intParam(param::seed))) });
    send(osc::instance_request::kSteps, { juce::OSCArgument(nextRequestId()), juce::OSCArgument(static_cast<juce::int32>(intParam(param::steps))) });
    send(osc::instance_request::kGuidance, { juce::OSCArgument(nextRequestId()), juce::OSCArgument(guidanceContext.load()),
                       juce::OSCArgument(guidanceClap.load()) });
    const auto req = nextRequestId();
    const bool sent = send(osc::instance_request::kGenerate, {
        juce::OSCArgument(req), juce::OSCArgument(contextPath), juce::OSCArgument(static_cast<float>(plan.seconds())),
        juce::OSCArgument(static_cast<float>(plan.anchorPpq)), juce::OSCArgument(static_cast<float>(unitBpm)),
        juce::OSCArgument(static_cast<juce::int32>(plan.numerator)),
        juce::OSCArgument(static_cast<juce::int32>(std::lround(plan.sampleRate))) });
    if (!sent) {
        setActivity("Cannot send to the host at " + linkTarget_);
        return;
    }
    jobs_[req] = PendingJob { plan.anchorPpq, plan.bpm };
    latestJob_ = req;
    setActivity("Generating " + juce::String(plan.bars) + " bar" + (plan.bars == 1 ? "" : "s") + " from ppq " +
                juce::String(plan.anchorPpq, 2) +
                (planned.context ? " over the captured context" : " without context (nothing played yet)"));
}

// ------------------------------------------------------------------------------------------
bool SidemanController::loadTake(const TakeRecord& record, juce::String& error) {
    const juce::File file(record.path);
    if (!file.existsAsFile()) {
        error = "file missing: " + record.path;
        return false;
    }
    if (record.sha256.isNotEmpty() && sha256OfFile(file) != record.sha256) {
        error = "file changed on disk (SHA-256 differs from the saved one): " + record.path;
        return false;
    }
    auto take = loadTakeFile(formats_, file, record.anchorPpq, record.bpm, error);
    if (take == nullptr) return false;
    processor_.takePlayer().setTake(std::move(take));
    processor_.takePlayer().collectGarbage();
    return true;
}

void SidemanController::adoptTake(const juce::String& takeId, const juce::String& path, double anchorPpq,
                                  std::int32_t req) {
    TakeRecord record;
    record.id = takeId;
    record.path = path;
    record.anchorPpq = anchorPpq;
    record.bpm = processor_.lastTransport().bpm.load();
    if (const auto job = jobs_.find(req); job != jobs_.end()) {  // our own numbers, not the float32 echo
        record.anchorPpq = job->second.anchorPpq;
        record.bpm = job->second.bpm;
        jobs_.erase(job);
    } else if (const auto bpm = takeSidecarBpm(juce::File(path))) {
        record.bpm = *bpm;
    }
    if (takeId.isEmpty() || !juce::File::isAbsolutePath(path)) {
        setActivity("The host sent a take without a usable path");
        return;
    }
    record.sha256 = sha256OfFile(juce::File(path));
    juce::String error;
    if (!loadTake(record, error)) {
        setActivity("Take " + takeId + " could not be loaded: " + error);
        return;
    }
    int index = 0;
    {
        std::lock_guard<std::mutex> lock(lock_);
        index = session_.indexOf(takeId);
        if (index < 0) {
            // The Take parameter reaches param::maxTakes: beyond that the oldest take leaves the list.
            if (static_cast<int>(session_.takes.size()) >= param::maxTakes) session_.takes.erase(session_.takes.begin());
            session_.takes.push_back(record);
            index = static_cast<int>(session_.takes.size()) - 1;
        } else {
            session_.takes[static_cast<size_t>(index)] = record;
        }
        session_.selectedTake = takeId;
    }
    loadedTakeId_ = takeId;
    attemptedTakeIndex_ = index + 1;
    attemptedTakeId_ = takeId;
    setTakeParameter(index + 1);
    setActivity("Take " + juce::String(index + 1) + " ready (" + takeId + ")");
}

void SidemanController::setTakeParameter(int index) {
    auto* parameter = processor_.parameters().getParameter(param::take);
    if (parameter == nullptr) return;
    const float value = parameter->convertTo0to1(static_cast<float>(juce::jlimit(0, param::maxTakes, index)));
    if (std::abs(parameter->getValue() - value) < 1.0e-7f) return;
    parameter->beginChangeGesture();
    parameter->setValueNotifyingHost(value);
    parameter->endChangeGesture();
}

void SidemanController::syncTakeSelection() {
    const int index = static_cast<int>(std::lround(processor_.parameters().getRawParameterValue(param::take)->load()));
    std::optional<TakeRecord> record;
    int count = 0;
    {
        std::lock_guard<std::mutex> lock(lock_);
        count = static_cast<int>(session_.takes.size());
        if (index >= 1 && index <= count) record = session_.takes[static_cast<size_t>(index - 1)];
    }
    const juce::String wanted = record ? record->id : juce::String();
    if (index == attemptedTakeIndex_ && wanted == attemptedTakeId_) return;
    attemptedTakeIndex_ = index;
    attemptedTakeId_ = wanted;

    if (!record) {
        const bool wasPlaying = loadedTakeId_.isNotEmpty();
        if (wasPlaying) processor_.takePlayer().clearTake();
        loadedTakeId_.clear();
        {
            std::lock_guard<std::mutex> lock(lock_);
            session_.selectedTake.clear();
        }
        if (index != 0)
            setActivity("Take " + juce::String(index) + " does not exist (" + juce::String(count) + " take" +
                        (count == 1 ? "" : "s") + " so far)");
        else if (wasPlaying)
            setActivity("No take selected");
        return;
    }
    if (record->id == loadedTakeId_) return;

    juce::String error;
    if (loadTake(*record, error)) {
        loadedTakeId_ = record->id;
        {
            std::lock_guard<std::mutex> lock(lock_);
            session_.selectedTake = record->id;
        }
        setActivity("Playing take " + juce::String(index) + " (" + record->id + ")");
        if (connected_.load()) send(osc::instance_request::kTakeSelect, { juce::OSCArgument(nextRequestId()), juce::OSCArgument(record->id) });
    } else {
        processor_.takePlayer().clearTake();
        loadedTakeId_.clear();
        {
            std::lock_guard<std::mutex> lock(lock_);
            session_.selectedTake = record->id;  // still the intended one: saved as it was
        }
        setActivity("Take " + juce::String(index) + " not loaded: " + error);
    }
}

}  // namespace sideman::plugin
