#include "HostLink.h"

namespace sideman::plugin {

namespace {
bool isLoopback(const juce::String& address) {
    return address == "localhost" || address.startsWith("127.") || address == "::1";
}
}  // namespace

HostLink::HostLink() { receiver_.addListener(this); }

HostLink::~HostLink() {
    close();
    receiver_.removeListener(this);
}

bool HostLink::open(const juce::String& hostAddress, int hostPort) {
    close();
    auto socket = std::make_unique<juce::DatagramSocket>(false);
    // A host on this machine is reached over the loopback: bind there so the plugin opens no
    // port to the network. Any interface otherwise (the replies come from the host's address).
    const bool bound = isLoopback(hostAddress) ? socket->bindToPort(0, "127.0.0.1") : socket->bindToPort(0);
    if (!bound) return false;
    socket_ = std::move(socket);
    hostAddress_ = hostAddress == "localhost" ? juce::String("127.0.0.1") : hostAddress;
    hostPort_ = hostPort;
    sender_.connectToSocket(*socket_, hostAddress_, hostPort_);
    receiver_.connectToSocket(*socket_);
    return true;
}

void HostLink::close() {
    if (socket_ == nullptr) return;
    receiver_.disconnect();  // joins the receiver thread (it polls the socket every 100 ms)
    sender_.disconnect();
    socket_->shutdown();
    socket_.reset();
}

int HostLink::localPort() const noexcept { return socket_ != nullptr ? socket_->getBoundPort() : -1; }

bool HostLink::send(const juce::OSCMessage& message) {
    return socket_ != nullptr && sender_.send(message);
}

std::vector<juce::OSCMessage> HostLink::takeInbox() {
    std::vector<juce::OSCMessage> out;
    std::lock_guard<std::mutex> lock(inboxLock_);
    out.swap(inbox_);
    return out;
}

void HostLink::oscMessageReceived(const juce::OSCMessage& message) {
    queue(message);
    if (onMessage) onMessage();
}

void HostLink::oscBundleReceived(const juce::OSCBundle& bundle) {
    for (const auto& element : bundle) {
        if (element.isMessage()) queue(element.getMessage());
        else if (element.isBundle()) oscBundleReceived(element.getBundle());
    }
    if (onMessage) onMessage();
}

void HostLink::queue(const juce::OSCMessage& message) {
    std::lock_guard<std::mutex> lock(inboxLock_);
    if (inbox_.size() < kMaxInbox) inbox_.push_back(message);
}

}  // namespace sideman::plugin
