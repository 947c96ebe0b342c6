#include "Controller.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "PluginProcessor.h"

namespace sideman::plugin {

namespace {

using osc::kPrefix;

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
    // The Sideman server keeps an instance's id for a silent owner for a while: free it now, so
    // that this project reopened at once keeps its id (and with it its takes on the server).
    if (connected_.load()) send(osc::instance_request::kGoodbye, { juce::OSCArgument(nextRequestId()) });
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

void SidemanController::setStyleFile(const juce::String& path) {
    std::lock_guard<std::mutex> lock(lock_);
    session_.styleFile = path;
}

void SidemanController::setModel(const juce::String& name) {
    std::lock_guard<std::mutex> lock(lock_);
    session_.model = name == osc::kDefaultModel ? juce::String() : name;
}

void SidemanController::requestAction(Action action) {
    activate();
    editorRequests_[static_cast<int>(action)].fetch_add(1);
    notify();
}

juce::StringArray SidemanController::models() const {
    std::lock_guard<std::mutex> lock(lock_);
    return models_;
}

void SidemanController::refreshModels() {
    post([this] {
        if (!connected_.load()) return;
        modelsReq_ = nextRequestId();
        modelsArriving_.clear();
        send(osc::instance_request::kModels, { juce::OSCArgument(modelsReq_) });
    });
}

SidemanController::Progress SidemanController::progress() const {
    std::lock_guard<std::mutex> lock(lock_);
    return progress_;
}

juce::String SidemanController::status() const {
    std::lock_guard<std::mutex> lock(lock_);
    return activity_.isEmpty() ? linkStatus_ : linkStatus_ + "\n" + activity_;
}

void SidemanController::setLinkStatus(const juce::String& text) {
    std::lock_guard<std::mutex> lock(lock_);
    linkStatus_ = text;
}

void SidemanController::setActivity(const juce::String& text, bool failed) {
    std::lock_guard<std::mutex> lock(lock_);
    activity_ = text;
    failed_.store(failed);
}

void SidemanController::post(std::function<void()> command) {
    {
        std::lock_guard<std::mutex> lock(lock_);
        commands_.push_back(std::move(command));
    }
    notify();
}

void SidemanController::runCommands() {
    std::vector<std::function<void()>> commands;
    {
        std::lock_guard<std::mutex> lock(lock_);
        commands.swap(commands_);
    }
    for (auto& command : commands) command();
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
        runCommands();
        handleActionRequests();
        syncTakeSelection();
        pollQueue(now);
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
            setLinkStatus("Cannot open a UDP socket to reach the Sideman server at " + target);
            return;
        }
        linkTarget_ = target;
        lastHelloMs_ = -1.0e12;
    }

    if (!connected_.load()) {
        if (now - lastHelloMs_ < kHelloIntervalMs) return;
        if (helloAttempts_ == 0)
            setLinkStatus("Connecting to the Sideman server at " + target + " ...");
        else
            setLinkStatus("No Sideman server at " + target + ". Start it with: sideman serve --port " +
                          juce::String(s.hostPort) + " --cache " + s.cacheFolder +
                          " (audio passes through meanwhile)");
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
        setLinkStatus("Lost the Sideman server at " + target + " (no reply for " +
                      juce::String(kHostTimeoutMs / 1000.0, 0) + " s); reconnecting");
        if (!jobs_.empty()) {
            setActivity("Generation interrupted: the Sideman server went away", true);
            jobs_.clear();
        }
        edits_.clear();
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
        setLinkStatus("Connected to Sideman server " + argString(message, 3) + " at " + linkTarget_ + " (bundle " +
                      argString(message, 4) + ", " + juce::String(argInt(message, 5, 0)) + " Hz)");
        if (previous.isNotEmpty())
            setActivity("Instance id '" + previous + "' is used by another instance (a duplicated track?): this "
                        "one is now '" + assigned + "'");
        modelsReq_ = nextRequestId();
        modelsArriving_.clear();
        send(osc::instance_request::kModels, { juce::OSCArgument(modelsReq_) });
        return;
    }

    if (instance.isEmpty()) {  // host-level replies: /sideman/error, /sideman/bye
        if (verb == osc::host_reply::kBye.name) {
            connected_.store(false);
            helloAttempts_ = 1;
            setLinkStatus("The Sideman server at " + linkTarget_ + " stopped");
        } else if (verb == osc::host_reply::kError.name) {
            const auto reason = argString(message, 1);
            if (reason.contains(osc::host_request::kHello.name)) {  // the host does not know this instance (restarted elsewhere)
                connected_.store(false);
                lastHelloMs_ = -1.0e12;
            }
            handleFailure(req, reason);
        }
        return;
    }

    if (instance != session().instanceId) return;  // addressed to an id this instance no longer has

    if (verb == osc::instance_reply::kProgress.name) {
        if (req == latestJob_ && jobs_.count(req) != 0) {
            const int step = argInt(message, 1, 0), total = argInt(message, 2, 0);
            std::lock_guard<std::mutex> lock(lock_);
            progress_ = Progress { true, total > 0 ? juce::jlimit(0.0, 1.0, step / static_cast<double>(total)) : 0.0,
                                   0, step, total };
        }
    } else if (verb == osc::instance_reply::kDone.name) {
        adoptTake(argString(message, 1), argString(message, 2), argFloat(message, 3, 0.0f), req);
    } else if (verb == osc::instance_reply::kError.name) {
        handleFailure(req, argString(message, 1));
    } else if (verb == osc::instance_reply::kAck.name) {
        handleAck(req);
    } else if (verb == osc::instance_reply::kStatus.name) {
        handleStatusReply(message);
    } else if (verb == osc::instance_reply::kModelItem.name) {
        if (req == modelsReq_) modelsArriving_.addIfNotAlreadyThere(argString(message, 1));
    } else if (verb == osc::instance_reply::kModelEnd.name) {
        if (req == modelsReq_) {
            std::lock_guard<std::mutex> lock(lock_);
            models_ = modelsArriving_;
        }
    }
    // take replies (instance_reply::kTake) only prove the server is alive (lastHeardMs_).
}

void SidemanController::handleFailure(std::int32_t req, const juce::String& reason) {
    if (const auto edit = edits_.find(req); edit != edits_.end()) {
        setActivity(juce::String(edit->second.kind == PendingEdit::Kind::remove ? "Cannot delete the take: "
                                                                                 : "Cannot restore the take: ") +
                        reason, true);
        edits_.erase(edit);
        return;
    }
    const bool ours = jobs_.erase(req) != 0;
    if (ours && req == latestJob_) {
        setActivity("Generation failed: " + reason, true);
        std::lock_guard<std::mutex> lock(lock_);
        progress_ = {};
    } else if (!ours && !reason.startsWith("superseded")) {
        setActivity("Sideman server: " + reason, true);
    }
    // (an older job answered "superseded by request N" when Generate was pressed again)
}

void SidemanController::handleAck(std::int32_t req) {
    if (const auto edit = edits_.find(req); edit != edits_.end()) {
        const auto done = edit->second;
        edits_.erase(edit);
        finishEdit(done);
    }
}

void SidemanController::handleStatusReply(const juce::OSCMessage& message) {
    // req, state, queued, selected take, takes, jobs ahead
    if (jobs_.count(latestJob_) == 0) return;
    const auto state = argString(message, 1);
    const int ahead = juce::jmax(0, argInt(message, 5, 0));
    std::lock_guard<std::mutex> lock(lock_);
    progress_.busy = true;
    progress_.ahead = state == "running" ? 0 : ahead;
}

void SidemanController::pollQueue(double now) {
    if (!connected_.load() || jobs_.count(latestJob_) == 0) return;
    if (now - lastQueuePollMs_ < kQueuePollMs) return;
    lastQueuePollMs_ = now;
    send(osc::instance_request::kStatus, { juce::OSCArgument(nextRequestId()) });
}

}  // namespace sideman::plugin
