// What a Sideman plugin instance saves with the DAW project besides its parameters, and
// the defaults of a new instance.
//
// Threads: plain values, copied under the owner's lock (SidemanController::stateLock); never
// touched by the audio thread.
#pragma once

#include <juce_core/juce_core.h>
#include <juce_data_structures/juce_data_structures.h>

#include <vector>

namespace sideman::plugin {

// One take the Sideman server made for this instance (`/done`), as the plugin remembers it.
struct TakeRecord {
    juce::String id;      // "take-<hash>", the server's name for it
    juce::String path;    // absolute path of the WAV in the server's session folder (SESSION/takes)
    juce::String sha256;  // of the file's bytes, checked before a take is (re)loaded
    double anchorPpq = 0.0;  // transport position of the take's first sample
    double bpm = 120.0;      // tempo the take was rendered at (its ppq -> sample map)
    int beatsPerBar = 4;     // time signature it was made in: beats per bar ...
    int beatUnit = 4;        // ... and the note value of a beat
    int bars = 0;            // its length in whole bars (0: not known, a take saved by an older version)
    int number = 0;          // 1, 2, ... in the order this instance received its takes (never reused)
    juce::String name;       // given by the user ("" = none)
    bool starred = false;
    juce::String kind { "generate" };  // generate, vary or inpaint
    juce::String prompt;
    juce::String model;      // the model the server made it with ("default" = its own bundle)
    int seed = 0;
    int steps = 0;
    juce::String created;    // local time it arrived, ISO 8601
    juce::String contextPath;  // the context file it was made over ("" = none), reused by edits
    juce::String exportPath;   // the DAW copy (drag to a track), "" until written

    // What the browser shows: the name, else the prompt, else "take N".
    juce::String title() const;
    // Seconds of one bar, and the tempo in beats of the time signature's unit (what the server takes).
    double barSeconds() const { return beatsPerBar * 60.0 / bpm * 4.0 / beatUnit; }
    double unitBpm() const { return bpm * beatUnit / 4.0; }
};

struct SessionState {
    juce::String prompt;
    juce::String instanceId;                // kept across sessions; renamed by the host on a clash
    juce::String cacheFolder;               // where context files are written for the host
    juce::String hostAddress { "127.0.0.1" };
    int hostPort = 9050;
    std::vector<TakeRecord> takes;          // oldest first; the "take" parameter is 1-based into it
    std::vector<TakeRecord> trash;          // deleted takes (their files in SESSION/trash), newest last
    juce::String selectedTake;              // id of the take handed to the player ("" = none)
    juce::String styleFile;                 // CLAP style reference ("" = none)
    juce::String model;                     // the model chosen for this instance ("" = the server's default)
    int takesReceived = 0;                  // numbers the takes (TakeRecord::number)

    // Index (0-based) of the take with this id, or -1.
    int indexOf(const juce::String& takeId) const;
};

// Defaults of a new instance: a fresh random id, $SIDEMAN_HOST_CACHE or
// ~/.cache/sideman/context, $SIDEMAN_HOST_PORT or 9050 (the variables let a test or a
// studio set-up point new instances at another host without touching saved projects).
SessionState defaultSessionState();
juce::String defaultCacheFolder();
int defaultHostPort();
juce::String newInstanceId();

// The host's rule for instance ids: 1-64 characters of A-Z a-z 0-9 _ . -
bool isValidInstanceId(const juce::String& id);

// (De)serialisation as a child of the plugin's state tree. Reading keeps the defaults for
// anything missing or invalid (an id that breaks the host's rule is replaced by a fresh one).
juce::ValueTree toValueTree(const SessionState& state);
SessionState fromValueTree(const juce::ValueTree& tree);

inline const juce::Identifier kSessionTag { "Session" };

}  // namespace sideman::plugin
