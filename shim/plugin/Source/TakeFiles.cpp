#include "TakeFiles.h"

#include <juce_cryptography/juce_cryptography.h>

#include <limits>
#include <vector>

namespace sideman::plugin {

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
    {
        std::unique_ptr<juce::OutputStream> stream = std::make_unique<juce::FileOutputStream>(temp);
        if (!static_cast<juce::FileOutputStream*>(stream.get())->openedOk()) {
            error = "cannot write to " + folder.getFullPathName();
            return std::nullopt;
        }
        juce::WavAudioFormat wav;
        std::unique_ptr<juce::AudioFormatWriter> writer(
            wav.createWriterFor(stream.get(), region.anchor.sampleRate, 2, 32, {}, 0));
        if (writer == nullptr) {
            error = "cannot create a WAV writer";
            temp.deleteFile();
            return std::nullopt;
        }
        stream.release();  // the writer owns the stream now
        const float* channels[] = { region.left.data(), region.right.data() };
        const juce::AudioBuffer<float> buffer(const_cast<float* const*>(channels), 2, static_cast<int>(numFrames));
        const bool ok = writer->writeFromAudioSampleBuffer(buffer, 0, buffer.getNumSamples());
        writer.reset();  // flushes the header and closes the file
        if (!ok) {
            error = "writing the context file failed (disk full?)";
            temp.deleteFile();
            return std::nullopt;
        }
    }

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
