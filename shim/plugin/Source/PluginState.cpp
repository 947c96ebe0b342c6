#include "PluginState.h"

namespace sideman::plugin {

namespace ids {
const juce::Identifier prompt { "prompt" };
const juce::Identifier instanceId { "instanceId" };
const juce::Identifier cacheFolder { "cacheFolder" };
const juce::Identifier hostAddress { "hostAddress" };
const juce::Identifier hostPort { "hostPort" };
const juce::Identifier selectedTake { "selectedTake" };
const juce::Identifier takes { "Takes" };
const juce::Identifier take { "Take" };
const juce::Identifier id { "id" };
const juce::Identifier path { "path" };
const juce::Identifier sha256 { "sha256" };
const juce::Identifier anchorPpq { "anchorPpq" };
const juce::Identifier bpm { "bpm" };
const juce::Identifier beatsPerBar { "beatsPerBar" };
const juce::Identifier number { "number" };
const juce::Identifier beatUnit { "beatUnit" };
const juce::Identifier bars { "bars" };
const juce::Identifier name { "name" };
const juce::Identifier starred { "starred" };
const juce::Identifier kind { "kind" };
const juce::Identifier seed { "seed" };
const juce::Identifier steps { "steps" };
const juce::Identifier created { "created" };
const juce::Identifier model { "model" };
const juce::Identifier contextPath { "contextPath" };
const juce::Identifier exportPath { "exportPath" };
const juce::Identifier trash { "Trash" };
const juce::Identifier styleFile { "styleFile" };
const juce::Identifier takesReceived { "takesReceived" };
}  // namespace ids

juce::String TakeRecord::title() const {
    if (name.isNotEmpty()) return name;
    if (prompt.isNotEmpty()) return prompt;
    return "take " + juce::String(number);
}

namespace {

juce::ValueTree takeTree(const TakeRecord& t) {
    juce::ValueTree take(ids::take);
    take.setProperty(ids::id, t.id, nullptr)
        .setProperty(ids::path, t.path, nullptr)
        .setProperty(ids::sha256, t.sha256, nullptr)
        .setProperty(ids::anchorPpq, t.anchorPpq, nullptr)
        .setProperty(ids::bpm, t.bpm, nullptr)
        .setProperty(ids::beatsPerBar, t.beatsPerBar, nullptr)
        .setProperty(ids::beatUnit, t.beatUnit, nullptr)
        .setProperty(ids::bars, t.bars, nullptr)
        .setProperty(ids::number, t.number, nullptr)
        .setProperty(ids::name, t.name, nullptr)
        .setProperty(ids::starred, t.starred, nullptr)
        .setProperty(ids::kind, t.kind, nullptr)
        .setProperty(ids::prompt, t.prompt, nullptr)
        .setProperty(ids::model, t.model, nullptr)
        .setProperty(ids::seed, t.seed, nullptr)
        .setProperty(ids::steps, t.steps, nullptr)
        .setProperty(ids::created, t.created, nullptr)
        .setProperty(ids::contextPath, t.contextPath, nullptr)
        .setProperty(ids::exportPath, t.exportPath, nullptr);
    return take;
}

// Takes of a saved list; a record without an id, a path or a tempo is dropped.
std::vector<TakeRecord> takesFrom(const juce::ValueTree& list) {
    std::vector<TakeRecord> out;
    for (const auto& take : list) {
        if (!take.hasType(ids::take)) continue;
        TakeRecord t;
        t.id = take.getProperty(ids::id).toString();
        t.path = take.getProperty(ids::path).toString();
        t.sha256 = take.getProperty(ids::sha256).toString();
        t.anchorPpq = take.getProperty(ids::anchorPpq, 0.0);
        t.bpm = take.getProperty(ids::bpm, 120.0);
        t.beatsPerBar = juce::jlimit(1, 64, static_cast<int>(take.getProperty(ids::beatsPerBar, 4)));
        const int unit = take.getProperty(ids::beatUnit, 4);
        t.beatUnit = unit == 1 || unit == 2 || unit == 4 || unit == 8 || unit == 16 || unit == 32 ? unit : 4;
        t.bars = juce::jlimit(0, 1024, static_cast<int>(take.getProperty(ids::bars, 0)));
        t.number = juce::jmax(0, static_cast<int>(take.getProperty(ids::number, 0)));
        t.name = take.getProperty(ids::name).toString().substring(0, 100);
        t.starred = take.getProperty(ids::starred, false);
        t.kind = take.getProperty(ids::kind, "generate").toString();
        t.prompt = take.getProperty(ids::prompt).toString();
        t.model = take.getProperty(ids::model).toString();
        t.seed = take.getProperty(ids::seed, 0);
        t.steps = take.getProperty(ids::steps, 0);
        t.created = take.getProperty(ids::created).toString();
        t.contextPath = take.getProperty(ids::contextPath).toString();
        t.exportPath = take.getProperty(ids::exportPath).toString();
        if (t.id.isNotEmpty() && t.path.isNotEmpty() && t.bpm > 0.0) out.push_back(std::move(t));
    }
    return out;
}

}  // namespace

int SessionState::indexOf(const juce::String& takeId) const {
    for (size_t i = 0; i < takes.size(); ++i)
        if (takes[i].id == takeId) return static_cast<int>(i);
    return -1;
}

juce::String defaultCacheFolder() {
    const auto fromEnv = juce::SystemStats::getEnvironmentVariable("SIDEMAN_HOST_CACHE", {});
    if (fromEnv.isNotEmpty()) return juce::File::getCurrentWorkingDirectory().getChildFile(fromEnv).getFullPathName();
    return juce::File::getSpecialLocation(juce::File::userHomeDirectory)
        .getChildFile(".cache").getChildFile("sideman").getChildFile("context").getFullPathName();
}

int defaultHostPort() {
    const auto fromEnv = juce::SystemStats::getEnvironmentVariable("SIDEMAN_HOST_PORT", {}).trim();
    const int port = fromEnv.getIntValue();
    return fromEnv.containsOnly("0123456789") && port > 0 && port < 65536 ? port : 9050;
}

juce::String newInstanceId() {
    // 40 random bits are plenty to tell a studio's instances apart; clashes are resolved by the host.
    juce::Random random;  // seeded from the system's entropy by default
    return "sideman-" + juce::String::toHexString(random.nextInt64() & 0xffffffffffLL).paddedLeft('0', 10);
}

bool isValidInstanceId(const juce::String& id) {
    return id.length() >= 1 && id.length() <= 64 &&
           id.containsOnly("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-");
}

SessionState defaultSessionState() {
    SessionState s;
    s.instanceId = newInstanceId();
    s.cacheFolder = defaultCacheFolder();
    s.hostPort = defaultHostPort();
    return s;
}

juce::ValueTree toValueTree(const SessionState& state) {
    juce::ValueTree tree(kSessionTag);
    tree.setProperty(ids::prompt, state.prompt, nullptr)
        .setProperty(ids::instanceId, state.instanceId, nullptr)
        .setProperty(ids::cacheFolder, state.cacheFolder, nullptr)
        .setProperty(ids::hostAddress, state.hostAddress, nullptr)
        .setProperty(ids::hostPort, state.hostPort, nullptr)
        .setProperty(ids::selectedTake, state.selectedTake, nullptr)
        .setProperty(ids::styleFile, state.styleFile, nullptr)
        .setProperty(ids::model, state.model, nullptr)
        .setProperty(ids::takesReceived, state.takesReceived, nullptr);
    juce::ValueTree takes(ids::takes), trash(ids::trash);
    for (const auto& t : state.takes) takes.appendChild(takeTree(t), nullptr);
    for (const auto& t : state.trash) trash.appendChild(takeTree(t), nullptr);
    tree.appendChild(takes, nullptr);
    tree.appendChild(trash, nullptr);
    return tree;
}

SessionState fromValueTree(const juce::ValueTree& tree) {
    SessionState s = defaultSessionState();
    if (!tree.hasType(kSessionTag)) return s;
    s.prompt = tree.getProperty(ids::prompt, s.prompt).toString();
    const auto id = tree.getProperty(ids::instanceId, {}).toString();
    if (isValidInstanceId(id)) s.instanceId = id;
    const auto folder = tree.getProperty(ids::cacheFolder, {}).toString();
    if (juce::File::isAbsolutePath(folder)) s.cacheFolder = folder;
    const auto address = tree.getProperty(ids::hostAddress, {}).toString().trim();
    if (address.isNotEmpty()) s.hostAddress = address;
    const int port = tree.getProperty(ids::hostPort, s.hostPort);
    if (port > 0 && port < 65536) s.hostPort = port;
    s.takes = takesFrom(tree.getChildWithName(ids::takes));
    s.trash = takesFrom(tree.getChildWithName(ids::trash));
    s.styleFile = tree.getProperty(ids::styleFile).toString();
    if (!juce::File::isAbsolutePath(s.styleFile)) s.styleFile.clear();
    s.model = tree.getProperty(ids::model).toString();
    int received = 0;
    for (auto* list : { &s.takes, &s.trash })  // numbers for takes saved by an older version
        for (auto& t : *list) received = juce::jmax(received, t.number);
    for (auto* list : { &s.takes, &s.trash })
        for (auto& t : *list)
            if (t.number == 0) t.number = ++received;
    s.takesReceived = juce::jmax(received, static_cast<int>(tree.getProperty(ids::takesReceived, 0)));
    const auto selected = tree.getProperty(ids::selectedTake, {}).toString();
    if (s.indexOf(selected) >= 0) s.selectedTake = selected;
    return s;
}

}  // namespace sideman::plugin
