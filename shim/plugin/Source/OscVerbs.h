// Sideman's OSC address space as the plugin knows it (docs/osc.md): every verb of the host's
// schema in plugin_host/osc_protocol.py, with its arguments as OSC type tags. The plugin builds
// and dispatches addresses only from these constants; tests/test_plugin_osc_verbs.py parses
// this file and checks it against osc_protocol.py's tables (same verbs, same types, both ways)
// and that Controller.cpp and HostLink.cpp hold no address literals.
//
// Addresses: host level `kPrefix + verb`, instance level `kPrefix + <instance id> + "/" + verb`.
// Keep one `inline constexpr Verb kName { "verb", "types" };` per line: the test reads them so.
#pragma once

namespace sideman::plugin::osc {

struct Verb {
    const char* name;   // the address after the prefix (and instance id)
    const char* types;  // type tags of the arguments, in order; those after '|' may be left off
};

inline constexpr const char* kPrefix = "/sideman/";
inline constexpr const char* kDefaultModel = "default";  // the server's own bundle in `models` / `model`

// ---- requests, plugin -> host -----------------------------------------------------------
namespace host_request {
inline constexpr Verb kHello { "hello", "is|i" };  // req, instance [, reply port: the plugin leaves it off]
inline constexpr Verb kQuit { "quit", "i" };       // req (not sent by the plugin)
inline constexpr Verb kPing { "ping", "i" };       // req: health check (not sent by the plugin)
}  // namespace host_request

namespace instance_request {
inline constexpr Verb kPrompt { "prompt", "is" };                // req, text
inline constexpr Verb kStyle { "style", "is" };                  // req, path ("" = none)
inline constexpr Verb kSeed { "seed", "ii" };                    // req, seed
inline constexpr Verb kSteps { "steps", "ii" };                  // req, steps
inline constexpr Verb kGuidance { "guidance", "iff" };           // req, context weight, CLAP weight
inline constexpr Verb kLoop { "loop", "ii" };                    // req, 0/1
inline constexpr Verb kClapMix { "clap_mix", "if" };             // req, 0 prompt .. 1 style
inline constexpr Verb kGenerate { "generate", "isfffii" };       // req, context path, seconds, anchor ppq,
                                                                 // bpm (time-signature units), beats per bar, sample rate
inline constexpr Verb kVary { "vary", "isfffiif" };              // generate's, strength
inline constexpr Verb kInpaint { "inpaint", "isfffiiff" };       // generate's, start bar, end bar
inline constexpr Verb kCancel { "cancel", "i" };                 // req (not sent by the plugin)
inline constexpr Verb kTakeSelect { "take/select", "is" };       // req, take id
inline constexpr Verb kTakeList { "take/list", "ii" };           // req, offset (not sent by the plugin: it keeps its own list)
inline constexpr Verb kTakeRename { "take/rename", "iss" };      // req, take id, name
inline constexpr Verb kTakeStar { "take/star", "isi" };          // req, take id, 0/1
inline constexpr Verb kTakeDelete { "take/delete", "is" };       // req, take id
inline constexpr Verb kTakeRestore { "take/restore", "is" };     // req, take id
inline constexpr Verb kModels { "models", "i" };                 // req
inline constexpr Verb kModel { "model", "is" };                  // req, model name
inline constexpr Verb kStatus { "status", "i" };                 // req (the keep-alive)
inline constexpr Verb kGoodbye { "goodbye", "i" };               // req: the instance closes (its id is free at once)
}  // namespace instance_request

// ---- replies, host -> plugin ------------------------------------------------------------
namespace host_reply {
inline constexpr Verb kBye { "bye", "i" };         // req: the host stops
inline constexpr Verb kPong { "pong", "isiii" };   // req, worker state, jobs waiting, worker restarts, busy seconds
inline constexpr Verb kError { "error", "is" };    // req, reason (not tied to a registered instance)
}  // namespace host_reply

namespace instance_reply {
inline constexpr Verb kWelcome { "welcome", "issssi" };    // req, instance, ok/renamed, version, bundle, model rate
inline constexpr Verb kAck { "ack", "is" };                // req, verb
inline constexpr Verb kProgress { "progress", "iii" };     // req, step, total
inline constexpr Verb kDone { "done", "issf" };            // req, take id, path, anchor ppq (float32)
inline constexpr Verb kTake { "take", "issf" };            // req, take id, path, anchor ppq
inline constexpr Verb kStatus { "status", "isisii" };      // req, state, queued, selected take, takes, jobs ahead
inline constexpr Verb kTakeItem { "take/item", "isssisi" }; // req, take id, name, prompt, seed, created (UTC ISO 8601), starred
inline constexpr Verb kTakeEnd { "take/end", "iii" };        // req, offset, total takes
inline constexpr Verb kModelItem { "model/item", "isi" };    // req, model name, 1 if the instance's
inline constexpr Verb kModelEnd { "model/end", "ii" };       // req, models the host knows
inline constexpr Verb kError { "error", "is" };            // req, reason
}  // namespace instance_reply

}  // namespace sideman::plugin::osc
