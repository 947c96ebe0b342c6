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
}  // namespace ids

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
        .setProperty(ids::selectedTake, state.selectedTake, nullptr);
    juce::ValueTree takes(ids::takes);
    for (const auto& t : state.takes) {
        juce::ValueTree take(ids::take);
        take.setProperty(ids::id, t.id, nullptr)
            .setProperty(ids::path, t.path, nullptr)
            .setProperty(ids::sha256, t.sha256, nullptr)
            .setProperty(ids::anchorPpq, t.anchorPpq, nullptr)
            .setProperty(ids::bpm, t.bpm, nullptr);
        takes.appendChild(take, nullptr);
    }
    tree.appendChild(takes, nullptr);
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
    for (const auto& take : tree.getChildWithName(ids::takes)) {
        if (!take.hasType(ids::take)) continue;
        TakeRecord t;
        t.id = take.getProperty(ids::id).toString();
        t.path = take.getProperty(ids::path).toString();
        t.sha256 = take.getProperty(ids::sha256).toString();
        t.anchorPpq = take.getProperty(ids::anchorPpq, 0.0);
        t.bpm = take.getProperty(ids::bpm, 120.0);
        if (t.id.isNotEmpty() && t.path.isNotEmpty() && t.bpm > 0.0) s.takes.push_back(std::move(t));
    }
    const auto selected = tree.getProperty(ids::selectedTake, {}).toString();
    if (s.indexOf(selected) >= 0) s.selectedTake = selected;
    return s;
}

}  // namespace sideman::plugin
