// File work for the plugin: writing the captured context for the Sideman server, reading takes
// back, exporting a take for the DAW (drag to a track).
// Everything here allocates and does I/O: worker thread only, never the audio thread.
#pragma once

#include <juce_audio_formats/juce_audio_formats.h>

#include <memory>
#include <optional>

#include "PluginState.h"
#include "sideman_bridge/capture_buffer.h"
#include "sideman_bridge/take.h"

namespace sideman::plugin {

// Writes `region` as a 32-bit float stereo WAV into `folder` (created if needed). The file is
// written under a temporary name and renamed when complete, and named after the SHA-256 of its
// bytes ("context-<first 16 hex digits>.wav"), so the host never sees a partial file and equal
// contexts share one file. Returns the file, or nullopt with `error` set.
std::optional<juce::File> writeContextFile(const bridge::CaptureBuffer::Region& region, const juce::File& folder,
                                           juce::String& error);

// Lower-case hex SHA-256 of the file's bytes ("" when it cannot be read).
juce::String sha256OfFile(const juce::File& file);

// Reads a take (any format the AudioFormatManager's basic formats know: WAV, AIFF) into a
// bridge::Take played at `bpm` from `anchorPpq`. Mono files play on both sides; channels past
// the second are ignored. nullptr with `error` set when the file cannot be read.
std::unique_ptr<bridge::Take> loadTakeFile(juce::AudioFormatManager& formats, const juce::File& file,
                                           double anchorPpq, double bpm, juce::String& error);

// Writes `audio` as a WAV of `bits` (16/24 integer, 32 float) at `sampleRate` to `file`.
bool writeWav(const juce::AudioBuffer<float>& audio, double sampleRate, int bits, const juce::File& file,
              juce::String& error);

// Where a take's DAW copy goes: SESSION/exports/"<title> - take <n> - <bpm> bpm - <id tail>.wav",
// in the Sideman server's session folder beside SESSION/takes (kept as long as the session, never
// a temporary folder), a name that says what it is and stays the same for the take.
juce::File exportFileFor(const TakeRecord& take);

// Writes the take as a 32-bit float WAV (as the take: no clipping, no dither) at the DAW's rate (resampled if the take has another), cut to
// the whole bars it holds at its tempo and metre, to exportFileFor(take) (written under a
// temporary name, then moved). nullopt with `error` set on failure.
std::optional<juce::File> exportTakeForDaw(juce::AudioFormatManager& formats, const TakeRecord& take, double dawRate,
                                           juce::String& error);

// The tempo recorded in the host's sidecar next to a take (take-<hash>.json, key "bpm").
std::optional<double> takeSidecarBpm(const juce::File& takeFile);

}  // namespace sideman::plugin
