// Bounded single-producer single-consumer queue, lock-free and wait-free.
//
// Realtime contract: the storage is allocated once in the constructor; tryPush/tryPop/
// freeSlots never allocate, lock or block. Exactly one thread may push and exactly one
// (other) thread may pop at a time. Used to hand retired takes from the audio thread
// (producer) to the non-realtime thread that frees them (consumer).
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <new>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace sideman::bridge {

template <typename T>
class SpscQueue {
    static_assert(std::is_nothrow_move_assignable_v<T> && std::is_nothrow_default_constructible_v<T>,
                  "SpscQueue elements are moved in and out on the realtime thread");
    static_assert(std::atomic<std::size_t>::is_always_lock_free);

public:
    explicit SpscQueue(std::size_t capacity)
        : capacity_(capacity), slots_(std::make_unique<T[]>(capacity + 1)) {
        if (capacity == 0) throw std::invalid_argument("SpscQueue capacity must be positive");
    }

    SpscQueue(const SpscQueue&) = delete;
    SpscQueue& operator=(const SpscQueue&) = delete;

    std::size_t capacity() const noexcept { return capacity_; }

    // Producer side. Returns false (and leaves `value` untouched) when the queue is full.
    bool tryPush(T& value) noexcept {
        const std::size_t tail = tail_.load(std::memory_order_relaxed);
        const std::size_t next = advance(tail);
        if (next == head_.load(std::memory_order_acquire)) return false;
        slots_[tail] = std::move(value);
        tail_.store(next, std::memory_order_release);
        return true;
    }

    // Producer side: slots that a push is sure to find free (the consumer can only add more).
    std::size_t freeSlots() const noexcept {
        const std::size_t tail = tail_.load(std::memory_order_relaxed);
        const std::size_t head = head_.load(std::memory_order_acquire);
        const std::size_t used = tail >= head ? tail - head : tail + capacity_ + 1 - head;
        return capacity_ - used;
    }

    // Consumer side. Returns false when the queue is empty.
    bool tryPop(T& out) noexcept {
        const std::size_t head = head_.load(std::memory_order_relaxed);
        if (head == tail_.load(std::memory_order_acquire)) return false;
        out = std::move(slots_[head]);
        slots_[head] = T{};
        head_.store(advance(head), std::memory_order_release);
        return true;
    }

private:
    std::size_t advance(std::size_t i) const noexcept { return i == capacity_ ? 0 : i + 1; }

    // One slot stays empty to tell full from empty; indices live on separate cache lines so
    // that producer and consumer do not false-share.
    const std::size_t capacity_;
    std::unique_ptr<T[]> slots_;
    alignas(64) std::atomic<std::size_t> head_{0};  // next slot to pop (written by the consumer)
    alignas(64) std::atomic<std::size_t> tail_{0};  // next slot to push (written by the producer)
};

}  // namespace sideman::bridge
