// SidemanController, part two: jobs (generate, vary, inpaint), the takes they bring back, the
// take browser's edits and which take plays. Worker thread unless a function says otherwise.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "Controller.h"
#include "PluginProcessor.h"
#include "TakeFiles.h"
#include "sideman_bridge/context_planner.h"

namespace sideman::plugin {

namespace {

constexpr double kContextFileMaxAgeMs = 60.0 * 60.0 * 1000.0;  // context files older than this are pruned

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

// Context files of any instance older than an hour, except those takes still point at (edits
// reuse them): their jobs are long finished.
void pruneContextFiles(const juce::File& folder, const juce::StringArray& keep) {
    const auto cutoff = juce::Time::getCurrentTime() - juce::RelativeTime::milliseconds(
                                                           static_cast<juce::int64>(kContextFileMaxAgeMs));
    for (const auto& entry : juce::RangedDirectoryIterator(folder, false, "context-*.wav", juce::File::findFiles))
        if (entry.getModificationTime() < cutoff && !keep.contains(entry.getFile().getFullPathName()))
            entry.getFile().deleteFile();
}

juce::String plural(int n, const char* word) { return juce::String(n) + " " + word + (n == 1 ? "" : "s"); }

}  // namespace

// ------------------------------------------------------------------------------------------
// Any thread: the browser's requests.

// The take's record changed by `edit` under the lock; false when there is no such take.
bool SidemanController::editTake(const juce::String& takeId, const std::function<void(TakeRecord&)>& edit) {
    std::lock_guard<std::mutex> lock(lock_);
    const int index = session_.indexOf(takeId);
    if (index < 0) return false;
    edit(session_.takes[static_cast<size_t>(index)]);
    return true;
}

void SidemanController::renameTake(const juce::String& takeId, const juce::String& name) {
    // The server's rule for names: at most 100 characters, none of them a control character.
    juce::String clean;
    for (auto c : name.trim())
        if (c >= 0x20 && c != 0x7f) clean += juce::String::charToString(c);
    clean = clean.substring(0, 100);
    if (!editTake(takeId, [&clean](TakeRecord& t) { t.name = clean; })) return;
    post([this, takeId, clean] {
        if (connected_.load())
            send(osc::instance_request::kTakeRename,
                 { juce::OSCArgument(nextRequestId()), juce::OSCArgument(takeId), juce::OSCArgument(clean) });
    });
}

void SidemanController::starTake(const juce::String& takeId, bool starred) {
    if (!editTake(takeId, [starred](TakeRecord& t) { t.starred = starred; })) return;
    post([this, takeId, starred] {
        if (connected_.load())
            send(osc::instance_request::kTakeStar, { juce::OSCArgument(nextRequestId()), juce::OSCArgument(takeId),
                                                     juce::OSCArgument(static_cast<juce::int32>(starred ? 1 : 0)) });
    });
}

void SidemanController::deleteTake(const juce::String& takeId) {
    post([this, takeId] {
        if (!connected_.load()) {
            setActivity("Cannot delete now: not connected to the Sideman server (it moves the file to its trash)", true);
            return;
        }
        const auto req = nextRequestId();
        edits_[req] = PendingEdit { PendingEdit::Kind::remove, takeId };
        send(osc::instance_request::kTakeDelete, { juce::OSCArgument(req), juce::OSCArgument(takeId) });
    });
}

void SidemanController::restoreTake(const juce::String& takeId) {
    post([this, takeId] {
        if (!connected_.load()) {
            setActivity("Cannot restore now: not connected to the Sideman server", true);
            return;
        }
        const auto req = nextRequestId();
        edits_[req] = PendingEdit { PendingEdit::Kind::restore, takeId };
        send(osc::instance_request::kTakeRestore, { juce::OSCArgument(req), juce::OSCArgument(takeId) });
    });
}

std::optional<juce::File> SidemanController::exportedTake(const juce::String& takeId, juce::String& error) const {
    const auto s = session();
    const int index = s.indexOf(takeId);
    if (index < 0) {
        error = "no such take";
        return std::nullopt;
    }
    const auto& take = s.takes[static_cast<size_t>(index)];
    const auto file = exportFileFor(take);
    if (file.existsAsFile()) return file;
    juce::AudioFormatManager formats;  // this thread's own (the worker's is not shared)
    formats.registerBasicFormats();
    return exportTakeForDaw(formats, take, processor_.lastTransport().sampleRate.load(), error);
}

// ------------------------------------------------------------------------------------------
void SidemanController::handleActionRequests() {
    for (int i = 0; i < kNumActions; ++i) {
        const auto action = static_cast<Action>(i);
        const auto seq = processor_.pressSequence(action);
        const auto editor = editorRequests_[i].load();
        if (seq != handledPresses_[i]) {
            handledPresses_[i] = seq;
            handledEditorRequests_[i] = editor;
            startJob(action, processor_.pressFrame(action));
        } else if (editor != handledEditorRequests_[i]) {
            handledEditorRequests_[i] = editor;
            const auto capture = processor_.captureBuffer();
            startJob(action, capture != nullptr ? capture->framesWritten() : 0);
        }
    }
}

// The instance's settings, sent before every job (the server keeps them per instance).
bool SidemanController::sendSettings() {
    auto& apvts = processor_.parameters();
    const auto value = [&apvts](const char* id) { return apvts.getRawParameterValue(id)->load(); };
    const auto s = session();
    bool ok = send(osc::instance_request::kPrompt, { juce::OSCArgument(nextRequestId()), juce::OSCArgument(s.prompt) });
    ok = ok && send(osc::instance_request::kSeed, { juce::OSCArgument(nextRequestId()),
                                                     juce::OSCArgument(static_cast<juce::int32>(std::lround(value(param::seed)))) });
    ok = ok && send(osc::instance_request::kSteps, { juce::OSCArgument(nextRequestId()),
                                                      juce::OSCArgument(static_cast<juce::int32>(std::lround(value(param::steps)))) });
    ok = ok && send(osc::instance_request::kGuidance, { juce::OSCArgument(nextRequestId()),
                                                         juce::OSCArgument(value(param::guidanceContext)),
                                                         juce::OSCArgument(value(param::guidanceClap)) });
    ok = ok && send(osc::instance_request::kLoop, { juce::OSCArgument(nextRequestId()),
                                                     juce::OSCArgument(static_cast<juce::int32>(value(param::loop) >= 0.5f)) });
    ok = ok && send(osc::instance_request::kClapMix, { juce::OSCArgument(nextRequestId()), juce::OSCArgument(value(param::styleMix)) });
    ok = ok && send(osc::instance_request::kStyle, { juce::OSCArgument(nextRequestId()), juce::OSCArgument(s.styleFile) });
    ok = ok && send(osc::instance_request::kModel, { juce::OSCArgument(nextRequestId()),
                                                      juce::OSCArgument(s.model.isEmpty() ? juce::String(osc::kDefaultModel) : s.model) });
    return ok;
}

void SidemanController::startJob(Action action, std::int64_t endFrame) {
    activate();
    const auto capture = processor_.captureBuffer();
    if (capture == nullptr) {
        setActivity("Cannot generate yet: the DAW has not started audio processing (press play once)", true);
        return;
    }
    if (!connected_.load()) {
        setActivity("Cannot generate: not connected to the Sideman server", true);
        return;
    }
    auto& apvts = processor_.parameters();
    const auto intParam = [&apvts](const char* id) {
        return static_cast<int>(std::lround(apvts.getRawParameterValue(id)->load()));
    };
    const auto s = session();
    PendingJob job;
    job.take.prompt = s.prompt;
    job.take.model = s.model.isEmpty() ? juce::String(osc::kDefaultModel) : s.model;
    job.take.seed = intParam(param::seed);
    job.take.steps = intParam(param::steps);
    const auto rate = static_cast<juce::int32>(std::lround(processor_.lastTransport().sampleRate.load()));

    if (action != Action::generate) {
        const int index = s.indexOf(s.selectedTake);
        if (index < 0) {
            setActivity(juce::String(action == Action::vary ? "Vary" : "Inpaint") +
                            " changes the selected take: select one in the list first", true);
            return;
        }
        const auto& from = s.takes[static_cast<size_t>(index)];
        if (from.bars <= 0) {
            setActivity("This take was saved by an older Sideman and cannot be edited: generate a new one", true);
            return;
        }
        job.take.kind = action == Action::vary ? osc::instance_request::kVary.name : osc::instance_request::kInpaint.name;
        job.take.anchorPpq = from.anchorPpq;
        job.take.bpm = from.bpm;
        job.take.beatsPerBar = from.beatsPerBar;
        job.take.beatUnit = from.beatUnit;
        job.take.bars = from.bars;
        job.take.contextPath = juce::File(from.contextPath).existsAsFile() ? from.contextPath : juce::String();
        juce::Array<juce::OSCArgument> args {
            juce::OSCArgument(0), juce::OSCArgument(job.take.contextPath),
            juce::OSCArgument(static_cast<float>(from.bars * from.barSeconds())),
            juce::OSCArgument(static_cast<float>(from.anchorPpq)), juce::OSCArgument(static_cast<float>(from.unitBpm())),
            juce::OSCArgument(static_cast<juce::int32>(from.beatsPerBar)), juce::OSCArgument(rate) };
        juce::String what;
        if (action == Action::vary) {
            const float strength = apvts.getRawParameterValue(param::strength)->load();
            args.add(juce::OSCArgument(strength));
            what = "Varying take " + juce::String(from.number) + " (strength " + juce::String(strength, 2) + ")";
        } else {
            const int first = intParam(param::inpaintFrom), last = intParam(param::inpaintTo);
            if (first > last || last > from.bars) {
                setActivity("Inpaint bars " + juce::String(first) + " to " + juce::String(last) + ": take " +
                                juce::String(from.number) + " has bars 1 to " + juce::String(from.bars), true);
                return;
            }
            args.add(juce::OSCArgument(static_cast<float>(first - 1)));
            args.add(juce::OSCArgument(static_cast<float>(last)));
            what = "Making bars " + juce::String(first) + "-" + juce::String(last) + " of take " +
                   juce::String(from.number) + " again";
        }
        // The server edits its selected take: make sure it is this one.
        send(osc::instance_request::kTakeSelect, { juce::OSCArgument(nextRequestId()), juce::OSCArgument(from.id) });
        sendJob(action == Action::vary ? osc::instance_request::kVary : osc::instance_request::kInpaint,
                std::move(args), std::move(job), what);
        return;
    }

    const int maxBars = juce::jlimit(1, param::maxBars, intParam(param::bars));
    const auto planned = bridge::ContextPlanner(maxBars).plan(*capture, endFrame, transportNow(processor_.lastTransport()));
    const bridge::ContextPlan& plan = planned.plan;
    if (juce::SystemStats::getEnvironmentVariable("SIDEMAN_PLUGIN_DEBUG", {}).isNotEmpty()) {
        // Diagnostics for DAWs whose transport we have to learn (worker thread, not audio).
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
    if (planned.context) {
        const juce::File folder(s.cacheFolder);
        juce::String error;
        const auto file = writeContextFile(*planned.context, folder, error);
        if (!file) {
            setActivity("Cannot write the context: " + error, true);
            return;
        }
        file->setLastModificationTime(juce::Time::getCurrentTime());  // a reused file must not be pruned now
        juce::StringArray keep;
        for (const auto& t : s.takes) keep.add(t.contextPath);
        pruneContextFiles(folder, keep);
        job.take.contextPath = file->getFullPathName();
    }
    job.take.anchorPpq = plan.anchorPpq;
    job.take.bpm = plan.bpm;
    job.take.beatsPerBar = plan.numerator;
    job.take.beatUnit = plan.denominator;
    job.take.bars = plan.bars;
    // The server counts bars in beats of the time signature's unit: send the tempo in those
    // units (for x/4 this is the plain bpm) so that its bar rounding matches ours.
    juce::Array<juce::OSCArgument> args {
        juce::OSCArgument(0), juce::OSCArgument(job.take.contextPath), juce::OSCArgument(static_cast<float>(plan.seconds())),
        juce::OSCArgument(static_cast<float>(plan.anchorPpq)), juce::OSCArgument(static_cast<float>(job.take.unitBpm())),
        juce::OSCArgument(static_cast<juce::int32>(plan.numerator)),
        juce::OSCArgument(static_cast<juce::int32>(std::lround(plan.sampleRate))) };
    sendJob(osc::instance_request::kGenerate, std::move(args), std::move(job),
            "Generating " + plural(plan.bars, "bar") + " from ppq " + juce::String(plan.anchorPpq, 2) +
                (planned.context ? " over the captured context" : " without context (nothing played yet)"));
}

// Sends the settings, then the job (its request id goes in args[0]).
void SidemanController::sendJob(const osc::Verb& verb, juce::Array<juce::OSCArgument> args, PendingJob job,
                                const juce::String& what) {
    const auto req = nextRequestId();
    args.set(0, juce::OSCArgument(req));
    if (!sendSettings() || !send(verb, args)) {
        setActivity("Cannot send to the Sideman server at " + linkTarget_, true);
        return;
    }
    jobs_[req] = std::move(job);
    latestJob_ = req;
    lastQueuePollMs_ = 0.0;
    {
        std::lock_guard<std::mutex> lock(lock_);
        progress_ = Progress { true, 0.0, 0, 0, 0 };
    }
    setActivity(what);
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
    record.anchorPpq = anchorPpq;
    record.bpm = processor_.lastTransport().bpm.load();
    const bool ours = req == latestJob_;
    if (const auto job = jobs_.find(req); job != jobs_.end()) {  // our own numbers, not the float32 echo
        record = job->second.take;
        jobs_.erase(job);
    } else if (const auto bpm = takeSidecarBpm(juce::File(path))) {
        record.bpm = *bpm;
    }
    if (ours) {
        std::lock_guard<std::mutex> lock(lock_);
        progress_ = {};
    }
    record.id = takeId;
    record.path = path;
    if (takeId.isEmpty() || !juce::File::isAbsolutePath(path)) {
        setActivity("The Sideman server sent a take without a usable path", true);
        return;
    }
    record.sha256 = sha256OfFile(juce::File(path));
    record.created = juce::Time::getCurrentTime().toISO8601(true);
    juce::String error;
    if (!loadTake(record, error)) {
        setActivity("Take " + takeId + " could not be loaded: " + error, true);
        return;
    }
    int index = 0;
    {
        std::lock_guard<std::mutex> lock(lock_);
        index = session_.indexOf(takeId);
        if (index < 0) {
            record.number = ++session_.takesReceived;
            // The Take parameter reaches param::maxTakes: beyond that the oldest take leaves the list.
            if (static_cast<int>(session_.takes.size()) >= param::maxTakes) session_.takes.erase(session_.takes.begin());
            session_.takes.push_back(record);
            index = static_cast<int>(session_.takes.size()) - 1;
        } else {
            record.number = session_.takes[static_cast<size_t>(index)].number;
            session_.takes[static_cast<size_t>(index)] = record;
        }
        session_.selectedTake = takeId;
    }
    loadedTakeId_ = takeId;
    attemptedTakeIndex_ = index + 1;
    attemptedTakeId_ = takeId;
    setTakeParameter(index + 1);

    // The DAW copy (drag to a track), written now so that a drag starts at once.
    juce::String exportError;
    const auto exported = exportTakeForDaw(formats_, record, processor_.lastTransport().sampleRate.load(), exportError);
    if (exported) {
        std::lock_guard<std::mutex> lock(lock_);
        if (const int i = session_.indexOf(takeId); i >= 0)
            session_.takes[static_cast<size_t>(i)].exportPath = exported->getFullPathName();
    }
    setActivity("Take " + juce::String(record.number) + " ready" +
                (exported ? juce::String() : " (no DAW copy: " + exportError + ")"));
}

void SidemanController::finishEdit(const PendingEdit& edit) {
    bool wasSelected = false;
    int number = 0;
    {
        std::lock_guard<std::mutex> lock(lock_);
        auto& from = edit.kind == PendingEdit::Kind::remove ? session_.takes : session_.trash;
        auto& to = edit.kind == PendingEdit::Kind::remove ? session_.trash : session_.takes;
        const auto it = std::find_if(from.begin(), from.end(), [&](const TakeRecord& t) { return t.id == edit.takeId; });
        if (it == from.end()) return;
        number = it->number;
        auto record = *it;
        from.erase(it);
        if (edit.kind == PendingEdit::Kind::remove) {
            wasSelected = session_.selectedTake == edit.takeId;
            if (wasSelected) session_.selectedTake.clear();
            to.push_back(std::move(record));
        } else {  // back in its place by number; the server selects a restored take
            const auto at = std::find_if(to.begin(), to.end(), [&](const TakeRecord& t) { return t.number > number; });
            to.insert(at, std::move(record));
            session_.selectedTake = edit.takeId;
        }
    }
    if (edit.kind == PendingEdit::Kind::remove) {
        if (wasSelected) {
            processor_.takePlayer().clearTake();
            loadedTakeId_.clear();
        }
        reselect();
        setActivity("Take " + juce::String(number) + " moved to the trash (Restore brings it back)");
    } else {
        loadedTakeId_.clear();  // load it
        reselect();
        attemptedTakeIndex_ = -1;
        setActivity("Take " + juce::String(number) + " restored");
    }
}

void SidemanController::reselect() {
    const auto s = session();
    const int index = s.indexOf(s.selectedTake) + 1;  // 0 = none
    attemptedTakeIndex_ = index;
    attemptedTakeId_ = s.selectedTake;
    setTakeParameter(index);
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
            setActivity("Take " + juce::String(index) + " does not exist (the list holds " + juce::String(count) + ")", true);
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
        setActivity("Playing take " + juce::String(record->number) + " (" + record->title() + ")");
        if (connected_.load()) send(osc::instance_request::kTakeSelect, { juce::OSCArgument(nextRequestId()), juce::OSCArgument(record->id) });
    } else {
        processor_.takePlayer().clearTake();
        loadedTakeId_.clear();
        {
            std::lock_guard<std::mutex> lock(lock_);
            session_.selectedTake = record->id;  // still the intended one: saved as it was
        }
        setActivity("Take " + juce::String(record->number) + " not loaded: " + error, true);
    }
}

}  // namespace sideman::plugin
