// The plugin's OSC connection to the Sideman host process (docs/osc.md).
//
// One UDP socket, bound to an ephemeral port, both sends the requests and receives the
// replies: the host answers to the source address of each request, so nothing else has to be
// configured and several instances in one DAW never compete for a port.
//
// Threads
//   * send()/open()/close() are called by the controller's worker thread only.
//   * Replies arrive on juce::OSCReceiver's own thread through a RealtimeCallback listener (no
//     message loop is needed: test hosts such as DawDreamer and pedalboard never run one). The
//     listener only copies the message into a locked inbox and calls `onMessage` to wake the
//     worker; all handling happens on the worker thread (takeInbox()).
//   * Never used from the audio thread.
#pragma once

#include <juce_osc/juce_osc.h>

#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace sideman::plugin {

class HostLink final : private juce::OSCReceiver::Listener<juce::OSCReceiver::RealtimeCallback> {
public:
    HostLink();
    ~HostLink() override;

    HostLink(const HostLink&) = delete;
    HostLink& operator=(const HostLink&) = delete;

    // Binds a fresh socket (loopback only when the host is on this machine) and aims the sender
    // at host:port. Closes any previous socket first. False when no socket could be bound.
    bool open(const juce::String& hostAddress, int hostPort);
    void close();
    bool isOpen() const noexcept { return socket_ != nullptr; }
    juce::String target() const { return hostAddress_ + ":" + juce::String(hostPort_); }
    int localPort() const noexcept;

    bool send(const juce::OSCMessage& message);

    // Messages received since the last call, in arrival order (bundles are flattened).
    std::vector<juce::OSCMessage> takeInbox();

    // Called on the receiver thread after a message was queued (must be cheap and thread-safe).
    std::function<void()> onMessage;

private:
    void oscMessageReceived(const juce::OSCMessage& message) override;
    void oscBundleReceived(const juce::OSCBundle& bundle) override;
    void queue(const juce::OSCMessage& message);

    std::unique_ptr<juce::DatagramSocket> socket_;
    juce::OSCSender sender_;
    juce::OSCReceiver receiver_ { "Sideman OSC" };
    juce::String hostAddress_;
    int hostPort_ = 0;

    std::mutex inboxLock_;
    std::vector<juce::OSCMessage> inbox_;
    static constexpr size_t kMaxInbox = 1024;  // a flood is dropped rather than grown without bound
};

}  // namespace sideman::plugin
