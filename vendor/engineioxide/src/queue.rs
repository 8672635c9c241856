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
use std::{
    collections::VecDeque,
    future::poll_fn,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll, Waker},
};

use tokio::sync::{
    Notify,
    mpsc::error::{SendError, TryRecvError, TrySendError},
};

/// Creates a queue holding at most `capacity` values (queued plus reserved).
pub(crate) fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    assert!(capacity > 0, "queue capacity must be greater than 0");
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            reserved: 0,
            rx_closed: false,
            rx_waker: None,
        }),
        senders: AtomicUsize::new(1),
        tx_notify: Notify::new(),
        capacity,
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
}

struct State<T> {
    queue: VecDeque<T>,
    /// Slots promised to outstanding [`Permit`]s.
    reserved: usize,
    /// The receiver was closed or dropped: nothing more can be sent.
    rx_closed: bool,
    rx_waker: Option<Waker>,
}

impl<T> State<T> {
    fn is_full(&self, capacity: usize) -> bool {
        self.queue.len() + self.reserved >= capacity
    }
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // No code panics while holding the lock; a poisoned lock still holds a consistent queue.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pushes under the lock, then wakes the receiver outside of it.
    fn push(&self, mut state: MutexGuard<'_, State<T>>, value: T) {
        state.queue.push_back(value);
        let waker = state.rx_waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The sending half; cloneable.
pub(crate) struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Sender<T> {
    /// Queues `value` now, or fails with `Full` / `Closed` handing it back.
    pub(crate) fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let state = self.shared.lock();
        if state.rx_closed {
            return Err(TrySendError::Closed(value));
        }
        if state.is_full(self.shared.capacity) {
            return Err(TrySendError::Full(value));
        }
        self.shared.push(state, value);
        Ok(())
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
        if state.rx_closed {
            return Err(TrySendError::Closed(()));
        }
        if state.is_full(self.shared.capacity) {
            return Err(TrySendError::Full(()));
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
    /// tokio's permits.
    pub(crate) fn send(self, value: T) {
        let shared = self.shared;
        std::mem::forget(self);
        let mut state = shared.lock();
        state.reserved -= 1;
        if !state.rx_closed {
            shared.push(state, value);
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
}
