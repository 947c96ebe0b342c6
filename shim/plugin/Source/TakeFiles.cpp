#include "TakeFiles.h"

#include <juce_cryptography/juce_cryptography.h>

#include <cmath>
#include <limits>
#include <vector>

namespace sideman::plugin {

bool writeWav(const juce::AudioBuffer<float>& audio, double sampleRate, int bits, const juce::File& file,
              juce::String& error) {
    std::unique_ptr<juce::OutputStream> stream = std::make_unique<juce::FileOutputStream>(file);
    if (!static_cast<juce::FileOutputStream*>(stream.get())->openedOk()) {
        error = "cannot write to " + file.getParentDirectory().getFullPathName();
        return false;
    }
    juce::WavAudioFormat wav;
    std::unique_ptr<juce::AudioFormatWriter> writer(
        wav.createWriterFor(stream.get(), sampleRate, static_cast<unsigned int>(audio.getNumChannels()), bits, {}, 0));
    if (writer == nullptr) {
        error = "cannot create a WAV writer";
        file.deleteFile();
        return false;
    }
    stream.release();  // the writer owns the stream now
    const bool ok = writer->writeFromAudioSampleBuffer(audio, 0, audio.getNumSamples());
    writer.reset();  // flushes the header and closes the file
    if (!ok) {
        error = "writing " + file.getFileName() + " failed (disk full?)";
        file.deleteFile();
    }
    return ok;
}

std::optional<juce::File> writeContextFile(const bridge::CaptureBuffer::Region& region, const juce::File& folder,
                                           juce::String& error) {
    const auto numFrames = region.left.size();
    if (numFrames == 0 || region.right.size() != numFrames) {
        error = "no context audio";
        return std::nullopt;
    }
    if (numFrames > static_cast<size_t>(std::numeric_limits<int>::max())) {
        error = "context too long";
        return std::nullopt;
    }
    if (!folder.isDirectory() && !folder.createDirectory()) {
        error = "cannot create the cache folder " + folder.getFullPathName();
        return std::nullopt;
    }

    const auto temp = folder.getNonexistentChildFile(".context-partial", ".wav", false);
    const float* channels[] = { region.left.data(), region.right.data() };
    const juce::AudioBuffer<float> buffer(const_cast<float* const*>(channels), 2, static_cast<int>(numFrames));
    if (!writeWav(buffer, region.anchor.sampleRate, 32, temp, error)) return std::nullopt;

    const auto digest = sha256OfFile(temp);
    if (digest.isEmpty()) {
        error = "cannot read back the context file";
        temp.deleteFile();
        return std::nullopt;
    }
    const auto target = folder.getChildFile("context-" + digest.substring(0, 16) + ".wav");
    if (target.existsAsFile()) {  // the same audio was sent before: reuse it
        temp.deleteFile();
        return target;
    }
    if (!temp.moveFileTo(target)) {
        error = "cannot rename the context file into place";
        temp.deleteFile();
        return std::nullopt;
    }
    return target;
}

juce::String sha256OfFile(const juce::File& file) {
    if (!file.existsAsFile()) return {};
    juce::FileInputStream in(file);
    if (!in.openedOk()) return {};
    return juce::SHA256(in).toHexString();
}

std::unique_ptr<bridge::Take> loadTakeFile(juce::AudioFormatManager& formats, const juce::File& file,
                                           double anchorPpq, double bpm, juce::String& error) {
    if (!file.existsAsFile()) {
        error = "take file missing: " + file.getFullPathName();
        return nullptr;
    }
    std::unique_ptr<juce::AudioFormatReader> reader(formats.createReaderFor(file));
    if (reader == nullptr) {
        error = "cannot read take file " + file.getFileName();
        return nullptr;
    }
    const auto length = reader->lengthInSamples;
    if (length <= 0 || length > std::numeric_limits<int>::max() || reader->sampleRate <= 0.0 ||
        reader->numChannels == 0) {
        error = "take file " + file.getFileName() + " holds no usable audio";
        return nullptr;
    }
    const int frames = static_cast<int>(length);
    const int channels = static_cast<int>(juce::jmin(2u, reader->numChannels));
    juce::AudioBuffer<float> buffer(channels, frames);
    if (!reader->read(&buffer, 0, frames, 0, true, channels > 1)) {
        error = "reading take file " + file.getFileName() + " failed";
        return nullptr;
    }
    const float* l = buffer.getReadPointer(0);
    const float* r = buffer.getReadPointer(channels > 1 ? 1 : 0);
    std::vector<float> left(l, l + frames), right(r, r + frames);
    try {
        return bridge::Take::atConstantTempo(std::move(left), std::move(right), reader->sampleRate, anchorPpq, bpm);
    } catch (const std::exception& e) {
        error = juce::String("bad take timing: ") + e.what();
        return nullptr;
    }
}

std::optional<double> takeSidecarBpm(const juce::File& takeFile) {
    const auto sidecar = takeFile.withFileExtension("json");
    if (!sidecar.existsAsFile()) return std::nullopt;
    const auto parsed = juce::JSON::parse(sidecar);
    const auto& bpm = parsed.getProperty("bpm", {});
    if (!(bpm.isDouble() || bpm.isInt() || bpm.isInt64())) return std::nullopt;
    const double value = bpm;
    if (!(value > 0.0 && value < 10000.0)) return std::nullopt;
    return value;
}

}  // namespace sideman::plugin

namespace sideman::plugin {

juce::File exportFileFor(const TakeRecord& take) {
    const juce::File audio(take.path);
    auto session = audio.getParentDirectory();
    if (session.getFileName() == "takes") session = session.getParentDirectory();  // SESSION/takes/take-*.wav
    const auto bpm = juce::String(take.bpm, std::abs(take.bpm - std::round(take.bpm)) < 0.005 ? 0 : 2);
    const auto title = juce::File::createLegalFileName(take.title()).substring(0, 60).trim();
    return session.getChildFile("exports").getChildFile(
        title + " - take " + juce::String(take.number) + " - " + bpm + " bpm - " + take.id.getLastCharacters(6) + ".wav");
}

std::optional<juce::File> exportTakeForDaw(juce::AudioFormatManager& formats, const TakeRecord& take, double dawRate,
                                           juce::String& error) {
    if (!(dawRate >= 8000.0 && dawRate <= 384000.0)) {
        error = "the DAW's sample rate is not known yet (start playback once)";
        return std::nullopt;
    }
    const juce::File source(take.path);
    std::unique_ptr<juce::AudioFormatReader> reader(formats.createReaderFor(source));
    if (reader == nullptr || reader->lengthInSamples <= 0 || reader->sampleRate <= 0.0 ||
        reader->lengthInSamples > std::numeric_limits<int>::max() / 8) {
        error = "cannot read the take " + source.getFullPathName();
        return std::nullopt;
    }
    const int inFrames = static_cast<int>(reader->lengthInSamples);
    juce::AudioBuffer<float> in(2, inFrames);
    if (!reader->read(&in, 0, inFrames, 0, true, true)) {
        error = "reading " + source.getFileName() + " failed";
        return std::nullopt;
    }
    // Whole bars at the DAW's rate: as many as the take holds (at least one), the rest cut off.
    const double barFrames = take.beatsPerBar * 60.0 / take.bpm * dawRate;
    const double ratio = reader->sampleRate / dawRate;  // input frames per output frame
    const double available = inFrames / ratio;
    const int bars = juce::jmax(1, static_cast<int>(std::floor(available / barFrames + 1.0e-6)));
    const int outFrames = static_cast<int>(std::llround(bars * barFrames));
    juce::AudioBuffer<float> out(2, outFrames);
    out.clear();
    for (int ch = 0; ch < 2; ++ch) {
        const int channel = reader->numChannels > 1 ? ch : 0;
        if (std::abs(ratio - 1.0) < 1.0e-12) {
            out.copyFrom(ch, 0, in, channel, 0, juce::jmin(outFrames, inFrames));
        } else {
            // The interpolator's output lags by its latency (input samples): make that much more
            // and drop it, so that the export starts where the take does.
            juce::WindowedSincInterpolator interpolator;
            const int lag = static_cast<int>(std::lround(juce::WindowedSincInterpolator::getBaseLatency() / ratio));
            const int produce = juce::jmin(outFrames, static_cast<int>(std::floor(available)));
            std::vector<float> resampled(static_cast<size_t>(produce + lag), 0.0f);
            interpolator.process(ratio, in.getReadPointer(channel), resampled.data(), produce + lag, inFrames, 0);
            out.copyFrom(ch, 0, resampled.data() + lag, produce);
        }
    }
    const auto target = exportFileFor(take);
    if (!target.getParentDirectory().createDirectory()) {
        error = "cannot create " + target.getParentDirectory().getFullPathName();
        return std::nullopt;
    }
    const auto temp = target.getSiblingFile("." + target.getFileName() + ".partial");
    if (!writeWav(out, dawRate, 32, temp, error)) return std::nullopt;
    if (!temp.moveFileTo(target)) {
        temp.deleteFile();
        error = "cannot move the export into place: " + target.getFullPathName();
        return std::nullopt;
    }
    return target;
}

}  // namespace sideman::plugin
