//! A bounded multi-producer, single-consumer queue that allocates nothing until a value is queued.
//!
//! It replaces `tokio::sync::mpsc` for the per-socket packet and heartbeat channels. tokio
//! allocates the first block of 32 slots when a channel is created: with `PacketBuf` slots
//! (≈ 168 B) that is ≈ 5.4 KiB per socket, plus ≈ 0.5 KiB of cache-padded channel state, paid by
//! every connection although an idle socket holds at most one packet for a moment. Here the slots
//! live in a `VecDeque` that grows on demand and is released as soon as the queue drains.
//!
//! The API is the subset of `tokio::sync::mpsc` engineioxide uses, with tokio's error types, so
//! the public signatures (`Socket::reserve`, `Permit`) do not change.
//!
//! With an [`Overflow`] policy (the packet queue) a send that finds the queue at `capacity` is
//! not refused: it is queued past the bound, within `max_bytes`, and a watchdog is armed. A
//! queue that has not come back to `capacity` within `timeout`, or would exceed `max_bytes`,
//! declares its consumer slow: it closes, frees what it holds and calls `on_slow` once. So a
//! producer never blocks (a broadcast never waits for one slow socket) and nothing is discarded
//! while the queue is open: a value is either delivered or the consumer is told it was cut off.
use std::{
    collections::VecDeque,
    future::poll_fn,
    sync::{
        Arc, Mutex, MutexGuard, Weak,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll, Waker},
    time::Duration,
};

use tokio::{
    sync::{
        Notify,
        mpsc::error::{SendError, TryRecvError, TrySendError},
    },
    time::Instant,
};

/// What a queue does with sends past its capacity instead of refusing them (see the module doc).
pub(crate) struct Overflow<T> {
    /// Most bytes (as `weigh` counts them) the queue may hold once past its capacity.
    pub max_bytes: usize,
    /// How long the queue may stay past its capacity before its consumer is declared slow.
    pub timeout: Duration,
    /// The weight of one value, in bytes.
    pub weigh: fn(&T) -> usize,
    /// Called once when the consumer is declared slow (the queue is already closed then).
    pub on_slow: Box<dyn Fn() + Send + Sync>,
}

/// Creates a queue holding at most `capacity` values (queued plus reserved).
pub(crate) fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    build(capacity, None, |_| {})
}

/// Creates a queue that takes sends past `capacity` under the [`Overflow`] policy.
pub(crate) fn channel_with_overflow<T: Send + 'static>(
    capacity: usize,
    overflow: Overflow<T>,
) -> (Sender<T>, Receiver<T>) {
    build(capacity, Some(overflow), |queue| {
        tokio::spawn(watchdog(queue));
    })
}

fn build<T>(
    capacity: usize,
    overflow: Option<Overflow<T>>,
    spawn_watchdog: fn(Weak<Shared<T>>),
) -> (Sender<T>, Receiver<T>) {
    assert!(capacity > 0, "queue capacity must be greater than 0");
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            reserved: 0,
            rx_closed: false,
            rx_waker: None,
            bytes: 0,
            over_since: None,
            watchdog: false,
            slow: false,
        }),
        senders: AtomicUsize::new(1),
        tx_notify: Notify::new(),
        capacity,
        overflow,
        spawn_watchdog,
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Live senders; the receiver sees the end of the queue when it reaches 0.
    senders: AtomicUsize,
    /// Wakes senders waiting for room (`send`) or for the receiver to close (`closed`).
    tx_notify: Notify,
    capacity: usize,
    overflow: Option<Overflow<T>>,
    /// Starts [`watchdog`] (a fn pointer: only `channel_with_overflow` knows `T: Send`).
    spawn_watchdog: fn(Weak<Shared<T>>),
}

struct State<T> {
    queue: VecDeque<T>,
    /// Slots promised to outstanding [`Permit`]s.
    reserved: usize,
    /// The receiver was closed or dropped: nothing more can be sent.
    rx_closed: bool,
    rx_waker: Option<Waker>,
    /// With an [`Overflow`] policy: the weight of the queued values.
    bytes: usize,
    /// Since when more than `capacity` values are queued (the watchdog's reference).
    over_since: Option<Instant>,
    /// A watchdog task is running.
    watchdog: bool,
    /// The consumer was declared slow (the queue is closed).
    slow: bool,
}

impl<T> State<T> {
    fn is_full(&self, capacity: usize) -> bool {
        self.queue.len() + self.reserved >= capacity
    }
}

/// Whether a value of some weight may be queued now.
enum Admit {
    Yes,
    Full,
    Closed,
    /// Past capacity and over `max_bytes`: the consumer is slow.
    Slow,
}

/// Whether the watchdog must be started after a push.
#[must_use]
struct ArmWatchdog(bool);

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // No code panics while holding the lock; a poisoned lock still holds a consistent queue.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// May a value of `weight` bytes (`None`: not known yet, a reservation) be queued now?
    fn admit(&self, state: &State<T>, weight: Option<usize>) -> Admit {
        if state.rx_closed {
            return Admit::Closed;
        }
        if !state.is_full(self.capacity) {
            return Admit::Yes;
        }
        match (&self.overflow, weight) {
            (None, _) => Admit::Full,
            (Some(o), Some(w)) if state.bytes + w > o.max_bytes => Admit::Slow,
            (Some(_), _) => Admit::Yes,
        }
    }

    /// Pushes under the lock, then wakes the receiver outside of it; starts the watchdog when
    /// this push takes the queue past its capacity.
    fn push(self: &Arc<Self>, mut state: MutexGuard<'_, State<T>>, value: T) {
        if let Some(o) = &self.overflow {
            state.bytes += (o.weigh)(&value);
        }
        state.queue.push_back(value);
        let arm = self.note_overflow(&mut state);
        let waker = state.rx_waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
        if arm.0 {
            (self.spawn_watchdog)(Arc::downgrade(self));
        }
    }

    /// Records when the queue went past its capacity; says whether a watchdog must start.
    fn note_overflow(&self, state: &mut State<T>) -> ArmWatchdog {
        if self.overflow.is_none() || state.queue.len() <= self.capacity {
            return ArmWatchdog(false);
        }
        state.over_since.get_or_insert_with(Instant::now);
        ArmWatchdog(!std::mem::replace(&mut state.watchdog, true))
    }

    /// Declares the consumer slow: closes the queue, frees what it holds, tells `on_slow`.
    fn declare_slow(&self, mut state: MutexGuard<'_, State<T>>) {
        if state.slow {
            return;
        }
        state.slow = true;
        state.rx_closed = true;
        state.over_since = None;
        state.bytes = 0;
        let queued = std::mem::take(&mut state.queue);
        let waker = state.rx_waker.take();
        drop(state);
        // Dropped outside the lock: a value's destructor may use the queue.
        drop(queued);
        self.tx_notify.notify_waiters();
        if let Some(waker) = waker {
            waker.wake();
        }
        if let Some(o) = &self.overflow {
            (o.on_slow)();
        }
    }
}

/// Watches a queue that went past its capacity: declares its consumer slow if it is still past
/// it `timeout` after it went past (the reference moves on each time the queue comes back).
async fn watchdog<T>(queue: Weak<Shared<T>>) {
    // Not holding the queue while asleep: a dropped socket ends the watchdog.
    while let Some(deadline) = queue.upgrade().and_then(|shared| shared.watch()) {
        tokio::time::sleep_until(deadline).await;
    }
}

impl<T> Shared<T> {
    /// One look of the [`watchdog`]: when to look again, or `None` when it is done.
    fn watch(&self) -> Option<Instant> {
        let timeout = self.overflow.as_ref()?.timeout;
        let mut state = self.lock();
        let Some(since) = state.over_since else {
            state.watchdog = false;
            return None;
        };
        if since.elapsed() < timeout {
            return Some(since + timeout);
        }
        state.watchdog = false;
        self.declare_slow(state);
        None
    }
}

/// The sending half; cloneable.
pub(crate) struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Sender<T> {
    /// Queues `value` now, or fails with `Full` / `Closed` handing it back (`Closed` too when
    /// this send made the queue declare its consumer slow).
    pub(crate) fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let weight = self.shared.overflow.as_ref().map(|o| (o.weigh)(&value));
        let state = self.shared.lock();
        match self.shared.admit(&state, weight) {
            Admit::Yes => {
                self.shared.push(state, value);
                Ok(())
            }
            Admit::Full => Err(TrySendError::Full(value)),
            Admit::Closed => Err(TrySendError::Closed(value)),
            Admit::Slow => {
                self.shared.declare_slow(state);
                Err(TrySendError::Closed(value))
            }
        }
    }

    /// Queues `value`, waiting for room if the queue is full.
    pub(crate) async fn send(&self, mut value: T) -> Result<(), SendError<T>> {
        loop {
            let notified = self.shared.tx_notify.notified();
            tokio::pin!(notified);
            // Registered before trying, so a slot freed in between is not missed.
            notified.as_mut().enable();
            match self.try_send(value) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(v)) => return Err(SendError(v)),
                Err(TrySendError::Full(v)) => value = v,
            }
            notified.await;
        }
    }

    /// Reserves one slot; the [`Permit`] sends without failing or gives the slot back on drop.
    pub(crate) fn try_reserve(&self) -> Result<Permit<'_, T>, TrySendError<()>> {
        let mut state = self.shared.lock();
        match self.shared.admit(&state, None) {
            Admit::Yes => {}
            Admit::Full => return Err(TrySendError::Full(())),
            Admit::Closed | Admit::Slow => return Err(TrySendError::Closed(())),
        }
        state.reserved += 1;
        Ok(Permit {
            shared: &self.shared,
        })
    }

    /// True once the receiver was closed or dropped.
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.lock().rx_closed
    }

    /// True once the queue declared its consumer slow.
    pub(crate) fn is_slow(&self) -> bool {
        self.shared.lock().slow
    }

    /// Resolves once the receiver is closed or dropped.
    pub(crate) async fn closed(&self) {
        loop {
            let notified = self.shared.tx_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_closed() {
                return;
            }
            notified.await;
        }
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The count is decremented before the lock is taken, so the receiver either sees 0
            // or has stored its waker by the time we look.
            let waker = self.shared.lock().rx_waker.take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("capacity", &self.shared.capacity)
            .finish_non_exhaustive()
    }
}

/// One reserved slot of the queue.
pub(crate) struct Permit<'a, T> {
    shared: &'a Arc<Shared<T>>,
}

impl<T> Permit<'_, T> {
    /// Queues `value` in the reserved slot. Dropped if the receiver has closed meanwhile, as with
    /// tokio's permits; past capacity, a value that would exceed `max_bytes` declares the
    /// consumer slow instead of being queued.
    pub(crate) fn send(self, value: T) {
        let shared = self.shared;
        std::mem::forget(self);
        let weight = shared.overflow.as_ref().map(|o| (o.weigh)(&value));
        let mut state = shared.lock();
        state.reserved -= 1;
        match shared.admit(&state, weight) {
            // Without an overflow policy a permit's slot is always free (`Full` cannot happen).
            Admit::Yes | Admit::Full => shared.push(state, value),
            Admit::Slow => shared.declare_slow(state),
            Admit::Closed => {}
        }
    }
}

impl<T> Drop for Permit<'_, T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        let was_full = state.is_full(self.shared.capacity);
        state.reserved -= 1;
        drop(state);
        if was_full {
            self.shared.tx_notify.notify_waiters();
        }
    }
}

/// The receiving half; there is one.
pub(crate) struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Receiver<T> {
    /// Pops the next value, or says whether the queue has ended (closed, or every sender
    /// dropped, and drained). With `waker`, a receiver that will wait is registered under the
    /// same lock, so a value pushed right after is not missed.
    fn pop(&mut self, waker: Option<&Waker>) -> Result<T, bool> {
        let mut state = self.shared.lock();
        let was_full = state.is_full(self.shared.capacity);
        if let Some(value) = state.queue.pop_front() {
            if let Some(o) = &self.shared.overflow {
                state.bytes -= (o.weigh)(&value);
            }
            if state.queue.len() <= self.shared.capacity {
                state.over_since = None;
            }
            if state.queue.is_empty() {
                // Give the slots back: an idle socket should hold no queue memory.
                state.queue = VecDeque::new();
            }
            drop(state);
            if was_full {
                self.shared.tx_notify.notify_waiters();
            }
            return Ok(value);
        }
        let ended = state.rx_closed || self.shared.senders.load(Ordering::Acquire) == 0;
        if let (false, Some(waker)) = (ended, waker) {
            match &mut state.rx_waker {
                Some(w) if w.will_wake(waker) => {}
                slot => *slot = Some(waker.clone()),
            }
        }
        Err(ended)
    }

    /// Takes the next value, `Ready(None)` once closed (or every sender dropped) and drained.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        match self.pop(Some(cx.waker())) {
            Ok(value) => Poll::Ready(Some(value)),
            Err(true) => Poll::Ready(None),
            Err(false) => Poll::Pending,
        }
    }

    /// Waits for the next value; `None` once closed (or every sender dropped) and drained.
    pub(crate) async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Takes the next value if there is one.
    pub(crate) fn try_recv(&mut self) -> Result<T, TryRecvError> {
        self.pop(None).map_err(|ended| {
            if ended {
                TryRecvError::Disconnected
            } else {
                TryRecvError::Empty
            }
        })
    }

    /// Refuses further sends; values already queued can still be received.
    pub(crate) fn close(&mut self) {
        self.shared.lock().rx_closed = true;
        self.shared.tx_notify.notify_waiters();
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let queued = {
            let mut state = self.shared.lock();
            state.rx_closed = true;
            std::mem::take(&mut state.queue)
        };
        // Dropped outside the lock: a value's destructor may use the queue.
        drop(queued);
        self.shared.tx_notify.notify_waiters();
    }
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("Receiver")
            .field("queued", &state.queue.len())
            .field("reserved", &state.reserved)
            .field("closed", &state.rx_closed)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const WAIT: Duration = Duration::from_secs(2);

    #[test]
    fn creating_a_queue_allocates_no_slots() {
        let (tx, rx) = channel::<[u8; 168]>(128);
        assert_eq!(rx.shared.lock().queue.capacity(), 0);
        tx.try_send([1; 168]).unwrap();
        assert!(rx.shared.lock().queue.capacity() > 0);
        let mut rx = rx;
        assert_eq!(rx.try_recv().unwrap()[0], 1);
        assert_eq!(
            rx.shared.lock().queue.capacity(),
            0,
            "a drained queue gives its slots back"
        );
        drop(tx);
    }

    #[test]
    fn bounded_by_queued_plus_reserved() {
        let (tx, mut rx) = channel(2);
        tx.try_send(1).unwrap();
        let permit = tx.try_reserve().unwrap();
        assert!(matches!(tx.try_send(3), Err(TrySendError::Full(3))));
        assert!(matches!(tx.try_reserve(), Err(TrySendError::Full(()))));
        permit.send(2);
        assert_eq!(rx.try_recv().unwrap(), 1);
        assert_eq!(rx.try_recv().unwrap(), 2);
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
        // An unused permit gives its slot back.
        let permit = tx.try_reserve().unwrap();
        let permit2 = tx.try_reserve().unwrap();
        drop(permit);
        drop(permit2);
        tx.try_send(4).unwrap();
        tx.try_send(5).unwrap();
        assert_eq!(rx.try_recv().unwrap(), 4);
    }

    #[test]
    fn close_refuses_sends_but_delivers_what_was_queued() {
        let (tx, mut rx) = channel(4);
        tx.try_send("a").unwrap();
        assert!(!tx.is_closed());
        rx.close();
        assert!(tx.is_closed());
        assert!(matches!(tx.try_send("b"), Err(TrySendError::Closed("b"))));
        assert!(matches!(tx.try_reserve(), Err(TrySendError::Closed(()))));
        assert_eq!(rx.try_recv().unwrap(), "a");
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Disconnected)));
    }

    #[tokio::test]
    async fn recv_wakes_on_send_and_ends_when_senders_are_gone() {
        let (tx, mut rx) = channel(4);
        let tx2 = tx.clone();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(v) = rx.recv().await {
                got.push(v);
            }
            got
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        tx.try_send(1).unwrap();
        tx2.try_send(2).unwrap();
        drop(tx);
        tokio::time::sleep(Duration::from_millis(20)).await;
        tx2.try_send(3).unwrap();
        drop(tx2);
        let got = tokio::time::timeout(WAIT, reader).await.unwrap().unwrap();
        assert_eq!(got, vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn send_waits_for_room_and_closed_waits_for_the_receiver() {
        let (tx, mut rx) = channel(1);
        let tx = Arc::new(tx);
        tx.try_send(1).unwrap();
        let sender = {
            let tx = tx.clone();
            tokio::spawn(async move { tx.send(2).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !sender.is_finished(),
            "send must wait while the queue is full"
        );
        assert_eq!(rx.recv().await, Some(1));
        tokio::time::timeout(WAIT, sender)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(rx.recv().await, Some(2));

        let waiter = {
            let tx = tx.clone();
            tokio::spawn(async move { tx.closed().await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        drop(rx);
        tokio::time::timeout(WAIT, waiter).await.unwrap().unwrap();
        assert!(matches!(tx.send(3).await, Err(SendError(3))));
    }

    /// Counts `on_slow` calls.
    fn overflow<T>(max_bytes: usize, weight: fn(&T) -> usize) -> (Overflow<T>, Arc<AtomicUsize>) {
        let verdicts = Arc::new(AtomicUsize::new(0));
        let counter = verdicts.clone();
        let overflow = Overflow {
            max_bytes,
            timeout: Duration::from_secs(1),
            weigh: weight,
            on_slow: Box::new(move || {
                counter.fetch_add(1, Ordering::SeqCst);
            }),
        };
        (overflow, verdicts)
    }

    fn ten(_: &u32) -> usize {
        10
    }

    #[tokio::test(start_paused = true)]
    async fn past_capacity_a_send_is_queued_and_a_drained_queue_is_not_slow() {
        let (policy, verdicts) = overflow(1000, ten);
        let (tx, mut rx) = channel_with_overflow(2, policy);
        for i in 0..5 {
            tx.try_send(i).unwrap();
        }
        let permit = tx.try_reserve().unwrap();
        permit.send(5);
        for i in 0..6 {
            assert_eq!(rx.try_recv().unwrap(), i);
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(verdicts.load(Ordering::SeqCst), 0);
        assert!(!tx.is_closed());
        tx.try_send(6).unwrap();
        assert_eq!(rx.try_recv().unwrap(), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn a_queue_left_past_capacity_declares_its_consumer_slow_and_frees_it() {
        let (policy, verdicts) = overflow(1000, ten);
        let (tx, mut rx) = channel_with_overflow(2, policy);
        for i in 0..3 {
            tx.try_send(i).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(999)).await;
        assert_eq!(verdicts.load(Ordering::SeqCst), 0, "not before the timeout");
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert_eq!(verdicts.load(Ordering::SeqCst), 1);
        assert!(tx.is_closed() && tx.is_slow());
        assert!(matches!(tx.try_send(9), Err(TrySendError::Closed(9))));
        assert!(matches!(tx.try_reserve(), Err(TrySendError::Closed(()))));
        // What it held is freed, not delivered later.
        assert_eq!(rx.shared.lock().queue.capacity(), 0);
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Disconnected)));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(verdicts.load(Ordering::SeqCst), 1, "told once");
    }

    #[tokio::test(start_paused = true)]
    async fn coming_back_to_capacity_restarts_the_clock() {
        let (policy, verdicts) = overflow(1000, ten);
        let (tx, mut rx) = channel_with_overflow(2, policy);
        for i in 0..3 {
            tx.try_send(i).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(rx.try_recv().unwrap(), 0);
        tx.try_send(3).unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(
            verdicts.load(Ordering::SeqCst),
            0,
            "past capacity again for 600 ms only"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(verdicts.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn past_capacity_a_send_over_max_bytes_declares_the_consumer_slow_at_once() {
        let (policy, verdicts) = overflow(35, ten);
        let (tx, mut rx) = channel_with_overflow(2, policy);
        tx.try_send(1).unwrap();
        tx.try_send(2).unwrap();
        tx.try_send(3).unwrap();
        assert!(matches!(tx.try_send(4), Err(TrySendError::Closed(4))));
        assert_eq!(verdicts.load(Ordering::SeqCst), 1);
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Disconnected)));

        // Same through a permit: the weight is known only when it sends.
        let (policy, verdicts) = overflow(35, ten);
        let (tx, _rx) = channel_with_overflow(2, policy);
        for i in 0..3 {
            tx.try_send(i).unwrap();
        }
        let permit = tx.try_reserve().unwrap();
        permit.send(4);
        assert_eq!(verdicts.load(Ordering::SeqCst), 1);
        assert!(tx.is_slow());
    }

    #[test]
    fn without_an_overflow_policy_a_full_queue_still_refuses() {
        let (tx, _rx) = channel(1);
        tx.try_send(1).unwrap();
        assert!(matches!(tx.try_send(2), Err(TrySendError::Full(2))));
        assert!(!tx.is_slow());
    }

    /// Several producers (try_send and permits), one consumer, the receiver closing while they
    /// send: every value is either received, in its producer's order, or refused to its sender.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn stress_every_send_is_received_in_order_or_refused() {
        const PRODUCERS: u32 = 4;
        const EACH: u32 = 5_000;
        for close_after in [None, Some(7_000usize)] {
            let (mut policy, verdicts) = overflow(usize::MAX, |_: &(u32, u32)| 16);
            // Never slow here, however late the consumer gets on a busy machine.
            policy.timeout = Duration::from_secs(3600);
            let (tx, mut rx) = channel_with_overflow(8, policy);
            let producers: Vec<_> = (0..PRODUCERS)
                .map(|p| {
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        let mut accepted = 0u32;
                        for i in 0..EACH {
                            let sent = if i % 2 == 0 {
                                tx.try_send((p, i)).is_ok()
                            } else {
                                tx.try_reserve().map(|permit| permit.send((p, i))).is_ok()
                            };
                            if sent {
                                accepted += 1;
                            } else {
                                break;
                            }
                            if i % 64 == 0 {
                                tokio::task::yield_now().await;
                            }
                        }
                        accepted
                    })
                })
                .collect();
            drop(tx);
            let consumer = tokio::spawn(async move {
                let mut next = vec![0u32; PRODUCERS as usize];
                let mut received = 0usize;
                while let Some((p, i)) = rx.recv().await {
                    assert_eq!(i, next[p as usize], "producer {p} out of order");
                    next[p as usize] += 1;
                    received += 1;
                    if Some(received) == close_after {
                        rx.close();
                    }
                }
                received
            });
            let mut accepted = 0usize;
            for p in producers {
                accepted += tokio::time::timeout(WAIT * 5, p).await.unwrap().unwrap() as usize;
            }
            let received = tokio::time::timeout(WAIT * 5, consumer)
                .await
                .unwrap()
                .unwrap();
            match close_after {
                None => {
                    assert_eq!(received, accepted, "accepted but never received");
                    assert_eq!(accepted, (PRODUCERS * EACH) as usize);
                }
                // A permit taken before the close and sent after it is dropped (documented on
                // `Permit::send`, as with tokio's permits): at most one such value per producer,
                // whose next send is then refused. A `try_send` is never lost.
                Some(n) => {
                    assert!(
                        received <= accepted,
                        "received {received} > accepted {accepted}"
                    );
                    assert!(
                        accepted - received <= PRODUCERS as usize,
                        "{} accepted values lost at the close",
                        accepted - received
                    );
                    assert!(received >= n);
                }
            }
            assert_eq!(verdicts.load(Ordering::SeqCst), 0);
        }
    }
}
