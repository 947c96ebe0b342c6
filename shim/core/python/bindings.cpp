// Python bindings of the bridge core: sideman.plugin_host._bridge.
//
// Audio crosses as float32 numpy arrays shaped (frames, channels), the soundfile convention.
// The bindings themselves run on Python's (non-realtime) side and may allocate; the realtime
// contract applies to the core calls they wrap (TakePlayer::process, CaptureBuffer::push),
// which run with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <time.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "sideman_bridge/capture_buffer.h"
#include "sideman_bridge/context_planner.h"
#include "sideman_bridge/take.h"
#include "sideman_bridge/take_player.h"
#include "sideman_bridge/transport.h"

namespace py = pybind11;
using namespace sideman::bridge;

namespace {

// Fortran order makes each channel (column) contiguous: the planar layout the core takes.
using AudioIn = py::array_t<float, py::array::f_style | py::array::forcecast>;
using Loop = std::optional<std::pair<double, double>>;

struct Planar {
    std::vector<const float*> channels;
    int frames = 0;
};

Planar planarView(const AudioIn& audio) {
    Planar p;
    if (audio.ndim() == 1) {
        p.frames = static_cast<int>(audio.shape(0));
        p.channels = {audio.data()};
    } else if (audio.ndim() == 2 && (audio.shape(1) == 1 || audio.shape(1) == 2)) {
        p.frames = static_cast<int>(audio.shape(0));
        for (py::ssize_t c = 0; c < audio.shape(1); ++c) p.channels.push_back(audio.data() + c * audio.shape(0));
    } else {
        throw py::value_error("audio must be shaped (frames,), (frames, 1) or (frames, 2)");
    }
    if (audio.shape(0) > std::numeric_limits<int>::max()) throw py::value_error("block too long");
    return p;
}

TransportInfo makeTransport(double ppq, double bpm, bool playing, double sampleRate, std::int64_t samplePosition,
                            std::pair<int, int> timeSignature, std::optional<double> barStartPpq, const Loop& loop) {
    TransportInfo t;
    t.ppqPosition = ppq;
    t.bpm = bpm;
    t.playing = playing;
    t.sampleRate = sampleRate;
    t.samplePosition = samplePosition;
    t.timeSigNumerator = timeSignature.first;
    t.timeSigDenominator = timeSignature.second;
    t.barStartPpq = barStartPpq.value_or(std::numeric_limits<double>::quiet_NaN());
    if (loop) {
        t.looping = true;
        t.loopStartPpq = loop->first;
        t.loopEndPpq = loop->second;
    }
    return t;
}

py::array_t<float> toArray(const CaptureBuffer::Region& region) {
    const auto n = static_cast<py::ssize_t>(region.left.size());
    py::array_t<float> out({n, static_cast<py::ssize_t>(2)});
    auto view = out.mutable_unchecked<2>();
    for (py::ssize_t i = 0; i < n; ++i) {
        view(i, 0) = region.left[static_cast<std::size_t>(i)];
        view(i, 1) = region.right[static_cast<std::size_t>(i)];
    }
    return out;
}

py::object regionOrNone(const std::optional<CaptureBuffer::Region>& region) {
    if (!region) return py::none();
    return py::make_tuple(toArray(*region), region->anchor);
}

std::unique_ptr<Take> makeTake(const AudioIn& audio, double anchorPpq, std::optional<double> bpm,
                               std::optional<double> samplesPerBeat,
                               std::optional<std::vector<std::pair<double, double>>> tempoMap, double sampleRate) {
    const int given = int(bpm.has_value()) + int(samplesPerBeat.has_value()) + int(tempoMap.has_value());
    if (given != 1) throw py::value_error("give exactly one of bpm, samples_per_beat and tempo_map");
    const Planar p = planarView(audio);
    std::vector<float> left(p.channels[0], p.channels[0] + p.frames);
    std::vector<float> right(p.channels.back(), p.channels.back() + p.frames);
    std::vector<Take::TempoSegment> tempo;
    if (bpm) {
        if (!(*bpm > 0.0)) throw py::value_error("bpm must be positive");
        tempo.push_back({anchorPpq, sampleRate * 60.0 / *bpm});
    } else if (samplesPerBeat) {
        tempo.push_back({anchorPpq, *samplesPerBeat});
    } else {
        for (const auto& [ppq, segmentBpm] : *tempoMap) {
            if (!(segmentBpm > 0.0)) throw py::value_error("tempo_map bpm must be positive");
            tempo.push_back({ppq, sampleRate * 60.0 / segmentBpm});
        }
    }
    return std::make_unique<Take>(std::move(left), std::move(right), sampleRate, anchorPpq, std::move(tempo));
}

std::int64_t threadCpuNanoseconds() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// Times TakePlayer::process + CaptureBuffer::push per block (what a plugin's processBlock does)
// on a continuous 120 bpm transport that loops over 8 bars, swapping takes every `swapEvery`
// blocks (the swap and garbage collection are not timed: they run on the non-realtime side).
// Returns per-block wall-clock and thread-CPU nanoseconds: where wall time far exceeds CPU time
// the thread was preempted rather than working.
py::dict benchProcessBlock(int blocks, int blockSize, double sampleRate, int crossfade,
                                            int swapEvery) {
    if (blocks <= 0 || blockSize <= 0 || sampleRate <= 0.0) throw py::value_error("bad benchmark size");
    const auto takeFrames = static_cast<std::size_t>(30.0 * sampleRate);
    std::mt19937 rng(1234);
    std::uniform_real_distribution<float> noise(-0.5f, 0.5f);
    std::vector<float> tl(takeFrames), tr(takeFrames);
    for (std::size_t i = 0; i < takeFrames; ++i) {
        tl[i] = noise(rng);
        tr[i] = noise(rng);
    }
    std::vector<float> inL(static_cast<std::size_t>(blockSize)), inR(static_cast<std::size_t>(blockSize));
    std::vector<float> outL(static_cast<std::size_t>(blockSize)), outR(static_cast<std::size_t>(blockSize));
    for (int i = 0; i < blockSize; ++i) {
        inL[static_cast<std::size_t>(i)] = noise(rng);
        inR[static_cast<std::size_t>(i)] = noise(rng);
    }
    const float* in[] = {inL.data(), inR.data()};
    float* out[] = {outL.data(), outR.data()};

    TakePlayer::Options options;
    options.crossfadeSamples = crossfade;
    TakePlayer player(options);
    CaptureBuffer capture(static_cast<std::int64_t>(60.0 * sampleRate), 1024);
    player.setTake(Take::atConstantTempo(tl, tr, sampleRate, 0.0, 120.0));

    py::array_t<std::int64_t> wallTimes(blocks), cpuTimes(blocks);
    auto wall = wallTimes.mutable_unchecked<1>();
    auto cpu = cpuTimes.mutable_unchecked<1>();
    {
        py::gil_scoped_release release;
        TransportInfo transport;
        transport.sampleRate = sampleRate;
        transport.bpm = 120.0;
        transport.playing = true;
        transport.looping = true;
        transport.loopStartPpq = 0.0;
        transport.loopEndPpq = 32.0;
        const double step = transport.ppqPerSample();
        double ppq = 0.0;
        for (int b = 0; b < blocks; ++b) {
            if (swapEvery > 0 && b > 0 && b % swapEvery == 0) {
                player.setTake(Take::atConstantTempo(tl, tr, sampleRate, 0.0, 120.0));
                player.collectGarbage();
            }
            transport.ppqPosition = ppq;
            transport.samplePosition = static_cast<std::int64_t>(b) * blockSize;
            const std::int64_t cpuStart = threadCpuNanoseconds();
            const auto start = std::chrono::steady_clock::now();
            player.process(out, 2, blockSize, transport);
            capture.push(in, 2, blockSize, transport);
            const auto stop = std::chrono::steady_clock::now();
            cpu(b) = threadCpuNanoseconds() - cpuStart;
            wall(b) = std::chrono::duration_cast<std::chrono::nanoseconds>(stop - start).count();
            ppq += blockSize * step;
            if (ppq >= transport.loopEndPpq) ppq -= transport.loopEndPpq - transport.loopStartPpq;
        }
    }
    py::dict result;
    result["wall_ns"] = wallTimes;
    result["cpu_ns"] = cpuTimes;
    return result;
}

}  // namespace

PYBIND11_MODULE(_bridge, m) {
    m.doc() = "Realtime-safe DAW bridge core (capture buffer, transport-locked take player) for tests and tools.";

    py::class_<CaptureBuffer::Anchor>(m, "Anchor", "Host transport at one capture frame.")
        .def_readonly("frame", &CaptureBuffer::Anchor::frame)
        .def_readonly("sample_rate", &CaptureBuffer::Anchor::sampleRate)
        .def_readonly("ppq", &CaptureBuffer::Anchor::ppq)
        .def_readonly("sample_position", &CaptureBuffer::Anchor::samplePosition)
        .def_readonly("bpm", &CaptureBuffer::Anchor::bpm)
        .def_property_readonly("time_signature",
                               [](const CaptureBuffer::Anchor& a) {
                                   return std::make_pair(a.timeSigNumerator, a.timeSigDenominator);
                               })
        .def_property_readonly("bar_start_ppq",
                               [](const CaptureBuffer::Anchor& a) -> std::optional<double> {
                                   if (std::isfinite(a.barStartPpq)) return a.barStartPpq;
                                   return std::nullopt;
                               })
        .def_readonly("playing", &CaptureBuffer::Anchor::playing)
        .def_readonly("num_frames", &CaptureBuffer::Anchor::numFrames)
        .def("__repr__", [](const CaptureBuffer::Anchor& a) {
            return "Anchor(frame=" + std::to_string(a.frame) + ", ppq=" + std::to_string(a.ppq) +
                   ", sample_position=" + std::to_string(a.samplePosition) + ", bpm=" + std::to_string(a.bpm) +
                   ", time_signature=" + std::to_string(a.timeSigNumerator) + "/" +
                   std::to_string(a.timeSigDenominator) + ", playing=" + (a.playing ? "True" : "False") +
                   ", num_frames=" + std::to_string(a.numFrames) + ")";
        });

    py::class_<CaptureBuffer>(m, "Capture", "Preallocated context recorder with transport anchors.")
        .def(py::init<std::int64_t, std::size_t>(), py::arg("capacity_frames"), py::arg("max_anchors") = 1024)
        .def_property_readonly("capacity_frames", &CaptureBuffer::capacityFrames)
        .def_property_readonly("max_anchors", &CaptureBuffer::maxAnchors)
        .def_property_readonly("frames_written", &CaptureBuffer::framesWritten)
        .def(
            "push",
            [](CaptureBuffer& self, const AudioIn& block, double ppq, std::int64_t samplePosition, double bpm,
               bool playing, double sampleRate, std::pair<int, int> timeSignature,
               std::optional<double> barStartPpq, const Loop& loop) {
                const Planar p = planarView(block);
                const TransportInfo t =
                    makeTransport(ppq, bpm, playing, sampleRate, samplePosition, timeSignature, barStartPpq, loop);
                py::gil_scoped_release release;
                self.push(p.channels.data(), static_cast<int>(p.channels.size()), p.frames, t);
            },
            py::arg("block"), py::kw_only(), py::arg("ppq"), py::arg("sample_position"), py::arg("bpm"),
            py::arg("playing"), py::arg("sample_rate") = 48000.0, py::arg("time_signature") = std::make_pair(4, 4),
            py::arg("bar_start_ppq") = py::none(), py::arg("loop") = py::none(),
            "Record one block (frames, channels) with the transport at its first sample.")
        .def("clear", &CaptureBuffer::clear)
        .def("anchors", &CaptureBuffer::anchors, "Transport runs still held, oldest first.")
        .def(
            "extract_frames",
            [](const CaptureBuffer& self, std::int64_t first, std::int64_t n) {
                return regionOrNone(self.extractFrames(first, n));
            },
            py::arg("first_frame"), py::arg("num_frames"), "(audio, anchor) or None when not all held.")
        .def(
            "extract_latest", [](const CaptureBuffer& self, std::int64_t n) { return regionOrNone(self.extractLatest(n)); },
            py::arg("num_frames"))
        .def(
            "extract_ppq_range",
            [](const CaptureBuffer& self, double start, double end) {
                return regionOrNone(self.extractPpqRange(start, end));
            },
            py::arg("start_ppq"), py::arg("end_ppq"));

    py::class_<ContextPlan>(m, "ContextPlan", "Where a generated take sits and which captured frames precede it.")
        .def_readonly("first_frame", &ContextPlan::firstFrame)
        .def_readonly("num_frames", &ContextPlan::numFrames, "0 without context")
        .def_readonly("anchor_ppq", &ContextPlan::anchorPpq)
        .def_readonly("bpm", &ContextPlan::bpm)
        .def_property_readonly("time_signature",
                               [](const ContextPlan& p) { return std::make_pair(p.numerator, p.denominator); })
        .def_readonly("bars", &ContextPlan::bars)
        .def_readonly("sample_rate", &ContextPlan::sampleRate)
        .def_property_readonly("has_context", &ContextPlan::hasContext)
        .def_property_readonly("seconds", &ContextPlan::seconds)
        .def("__repr__", [](const ContextPlan& p) {
            return "ContextPlan(first_frame=" + std::to_string(p.firstFrame) + ", num_frames=" +
                   std::to_string(p.numFrames) + ", anchor_ppq=" + std::to_string(p.anchorPpq) + ", bpm=" +
                   std::to_string(p.bpm) + ", time_signature=" + std::to_string(p.numerator) + "/" +
                   std::to_string(p.denominator) + ", bars=" + std::to_string(p.bars) + ")";
        });

    // The transport at the press, for a take without context (keyword arguments as Capture.push's).
    const auto transportAt = [](double ppq, double bpm, bool playing, double sampleRate, std::pair<int, int> timeSignature,
                                std::optional<double> barStartPpq) {
        return makeTransport(ppq, bpm, playing, sampleRate, 0, timeSignature, barStartPpq, std::nullopt);
    };
    py::class_<ContextPlanner>(m, "ContextPlanner",
                               "Plans a Generate press: the last whole bars captured (at most max_bars), else "
                               "max_bars bars without context from the transport's bar line.")
        .def(py::init<int>(), py::arg("max_bars"))
        .def_property_readonly("max_bars", &ContextPlanner::maxBars)
        .def(
            "plan_context",
            [](const ContextPlanner& self, const CaptureBuffer& capture, std::optional<std::int64_t> endFrame) {
                return self.planContext(capture.anchors(), endFrame.value_or(capture.framesWritten()));
            },
            py::arg("capture"), py::arg("end_frame") = py::none(),
            "The context plan for a press at end_frame (default: now), or None when no whole bar was played.")
        .def(
            "plan_without_context",
            [transportAt](const ContextPlanner& self, double ppq, double bpm, bool playing, double sampleRate,
                          std::pair<int, int> timeSignature, std::optional<double> barStartPpq) {
                return self.planWithoutContext(transportAt(ppq, bpm, playing, sampleRate, timeSignature, barStartPpq));
            },
            py::kw_only(), py::arg("ppq"), py::arg("bpm"), py::arg("playing"), py::arg("sample_rate") = 48000.0,
            py::arg("time_signature") = std::make_pair(4, 4), py::arg("bar_start_ppq") = py::none())
        .def(
            "plan",
            [transportAt](const ContextPlanner& self, const CaptureBuffer& capture, std::optional<std::int64_t> endFrame,
                          double ppq, double bpm, bool playing, double sampleRate, std::pair<int, int> timeSignature,
                          std::optional<double> barStartPpq) {
                const auto planned =
                    self.plan(capture, endFrame.value_or(capture.framesWritten()),
                              transportAt(ppq, bpm, playing, sampleRate, timeSignature, barStartPpq));
                return py::make_tuple(planned.plan,
                                      planned.context ? py::object(toArray(*planned.context)) : py::object(py::none()));
            },
            py::arg("capture"), py::arg("end_frame") = py::none(), py::kw_only(), py::arg("ppq"), py::arg("bpm"),
            py::arg("playing"), py::arg("sample_rate") = 48000.0, py::arg("time_signature") = std::make_pair(4, 4),
            py::arg("bar_start_ppq") = py::none(),
            "What the plugin does on a press: (plan, audio (frames, 2) or None); the transport keywords are the "
            "host's at the press, used when there is no context.");

    py::class_<TakePlayer>(m, "TakePlayer", "Plays a stereo take locked to the transport's ppq.")
        .def(py::init([](int crossfade, std::size_t retireCapacity) {
                 TakePlayer::Options o;
                 o.crossfadeSamples = crossfade;
                 o.retireCapacity = retireCapacity;
                 return std::make_unique<TakePlayer>(o);
             }),
             py::arg("crossfade_samples") = 0, py::arg("retire_capacity") = 16)
        .def(
            "set_take",
            [](TakePlayer& self, const AudioIn& audio, double anchorPpq, std::optional<double> bpm,
               std::optional<double> samplesPerBeat, std::optional<std::vector<std::pair<double, double>>> tempoMap,
               double sampleRate) {
                std::unique_ptr<Take> take;
                try {
                    take = makeTake(audio, anchorPpq, bpm, samplesPerBeat, std::move(tempoMap), sampleRate);
                } catch (const std::invalid_argument& e) {
                    throw py::value_error(e.what());
                }
                py::gil_scoped_release release;
                return self.setTake(std::move(take));
            },
            py::arg("audio"), py::arg("anchor_ppq"), py::kw_only(), py::arg("bpm") = py::none(),
            py::arg("samples_per_beat") = py::none(), py::arg("tempo_map") = py::none(),
            py::arg("sample_rate") = 48000.0,
            "Hand a take (frames, channels) to the audio side; returns its id. Sample 0 sits at anchor_ppq; "
            "give the tempo it was rendered at (bpm), its samples per beat, or a tempo_map [(ppq, bpm), ...] "
            "starting at anchor_ppq.")
        .def("clear_take", [](TakePlayer& self) {
            py::gil_scoped_release release;
            return self.clearTake();
        })
        .def("collect_garbage", [](TakePlayer& self) {
            py::gil_scoped_release release;
            return self.collectGarbage();
        }, "Free the takes the audio side retired; returns how many.")
        .def_property_readonly("current_take_id", &TakePlayer::currentTakeId)
        .def_property_readonly("has_pending_take", &TakePlayer::hasPendingTake)
        .def_property_readonly("crossfade_samples", &TakePlayer::crossfadeSamples)
        .def(
            "process",
            [](TakePlayer& self, int numSamples, double ppq, double bpm, bool playing, double sampleRate,
               const Loop& loop, int numChannels) {
                if (numSamples < 0 || numChannels < 1) throw py::value_error("bad block shape");
                py::array_t<float, py::array::f_style> out({static_cast<py::ssize_t>(numSamples),
                                                            static_cast<py::ssize_t>(numChannels)});
                std::vector<float*> channels;
                for (int c = 0; c < numChannels; ++c) channels.push_back(out.mutable_data() + c * numSamples);
                const TransportInfo t =
                    makeTransport(ppq, bpm, playing, sampleRate, 0, {4, 4}, std::nullopt, loop);
                {
                    py::gil_scoped_release release;
                    self.process(channels.data(), numChannels, numSamples, t);
                }
                return out;
            },
            py::arg("num_samples"), py::kw_only(), py::arg("ppq"), py::arg("bpm"), py::arg("playing"),
            py::arg("sample_rate") = 48000.0, py::arg("loop") = py::none(), py::arg("num_channels") = 2,
            "Render one block with the transport at its first sample; returns (num_samples, num_channels) float32.");

    m.def("live_takes", &Take::liveCount, "Takes alive in this process (test helper).");
    m.def("bench_process_block", &benchProcessBlock, py::arg("blocks") = 20000, py::arg("block_size") = 512,
          py::arg("sample_rate") = 48000.0, py::arg("crossfade_samples") = 64, py::arg("swap_every") = 1000,
          "Per-block wall-clock and thread-CPU nanoseconds of TakePlayer::process + Capture::push, timed in C++: "
          "{'wall_ns': array, 'cpu_ns': array}.");
}
