//! The channel between the driver's threads and the callers of a [`Dht`](super::Dht): a
//! bounded queue whose sending side never blocks (the I/O and hook threads must not stall on a
//! slow caller) and whose [`Receiver`] can block, block with a timeout, poll without blocking,
//! or be awaited from any executor (it keeps the [`Waker`] of the task waiting on it).
//!
//! It is the crate's own so that the public API does not expose another crate's channel type,
//! and so that one type serves both the blocking and the `async` calls.

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

struct State<T> {
    queue: VecDeque<T>,
    senders: usize,
    receiver_alive: bool,
    waker: Option<Waker>,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
    capacity: usize,
}

/// A new channel holding at most `capacity` (at least 1) messages.
pub(crate) fn bounded<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            senders: 1,
            receiver_alive: true,
            waker: None,
        }),
        ready: Condvar::new(),
        capacity: capacity.max(1),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

/// Why [`Sender::try_send`] did not queue a message.
#[derive(Debug)]
pub(crate) enum TrySendError<T> {
    /// The channel holds `capacity` messages already.
    Full(T),
    /// The receiver was dropped.
    Disconnected(T),
}

/// The sending side (the driver's threads). Dropping the last one ends the channel.
pub(crate) struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Sender<T> {
    /// Queues `message` unless the channel is full or its receiver is gone; never blocks.
    pub(crate) fn try_send(&self, message: T) -> Result<(), TrySendError<T>> {
        let waker = {
            let mut state = self.shared.state.lock();
            if !state.receiver_alive {
                return Err(TrySendError::Disconnected(message));
            }
            if state.queue.len() >= self.shared.capacity {
                return Err(TrySendError::Full(message));
            }
            state.queue.push_back(message);
            state.waker.take()
        };
        self.shared.ready.notify_one();
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.state.lock().senders += 1;
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut state = self.shared.state.lock();
            state.senders -= 1;
            if state.senders > 0 {
                return;
            }
            state.waker.take()
        };
        self.shared.ready.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The channel is empty and every sender is gone: nothing more will come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecvError;

impl std::fmt::Display for RecvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the channel is closed")
    }
}

impl std::error::Error for RecvError {}

/// Why [`Receiver::recv_timeout`] returned no message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvTimeoutError {
    /// Nothing came before the timeout.
    Timeout,
    /// The channel is closed: nothing more will come.
    Disconnected,
}

impl std::fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecvTimeoutError::Timeout => f.write_str("nothing received before the timeout"),
            RecvTimeoutError::Disconnected => f.write_str("the channel is closed"),
        }
    }
}

impl std::error::Error for RecvTimeoutError {}

/// Why [`Receiver::try_recv`] returned no message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing is waiting now.
    Empty,
    /// The channel is closed: nothing more will come.
    Disconnected,
}

impl std::fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("nothing is waiting"),
            TryRecvError::Disconnected => f.write_str("the channel is closed"),
        }
    }
}

impl std::error::Error for TryRecvError {}

/// The receiving end of a driver channel, such as the events of
/// [`Dht::subscribe`](super::Dht::subscribe). Messages come in the order they were sent;
/// blocking calls, [`Receiver::try_recv`] and [`Receiver::recv_async`] may be mixed. Dropping
/// it ends the channel: the driver stops sending to it.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("len", &self.len())
            .field("capacity", &self.shared.capacity)
            .finish()
    }
}

impl<T> Receiver<T> {
    /// Waits for the next message; `Err` once the channel is closed and empty.
    pub fn recv(&self) -> Result<T, RecvError> {
        let mut state = self.shared.state.lock();
        loop {
            if let Some(message) = state.queue.pop_front() {
                return Ok(message);
            }
            if state.senders == 0 {
                return Err(RecvError);
            }
            self.shared.ready.wait(&mut state);
        }
    }

    /// Waits at most `timeout` for the next message.
    #[allow(clippy::disallowed_methods)] // a blocking receive waits on the OS clock
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.recv_deadline(deadline),
            None => self.recv().map_err(|_| RecvTimeoutError::Disconnected),
        }
    }

    /// Waits until `deadline` at most for the next message.
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        let mut state = self.shared.state.lock();
        loop {
            if let Some(message) = state.queue.pop_front() {
                return Ok(message);
            }
            if state.senders == 0 {
                return Err(RecvTimeoutError::Disconnected);
            }
            if self
                .shared
                .ready
                .wait_until(&mut state, deadline)
                .timed_out()
            {
                return state.queue.pop_front().ok_or(RecvTimeoutError::Timeout);
            }
        }
    }

    /// The next message if one is waiting; never blocks.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut state = self.shared.state.lock();
        match state.queue.pop_front() {
            Some(message) => Ok(message),
            None if state.senders == 0 => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    /// Polls for the next message from a task: `Pending` registers the task's waker, which
    /// the next message (or the channel's end) wakes.
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Result<T, RecvError>> {
        let mut state = self.shared.state.lock();
        if let Some(message) = state.queue.pop_front() {
            return Poll::Ready(Ok(message));
        }
        if state.senders == 0 {
            return Poll::Ready(Err(RecvError));
        }
        match &mut state.waker {
            Some(waker) => waker.clone_from(cx.waker()),
            None => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Waits for the next message without blocking the thread: a future for any executor.
    pub fn recv_async(&self) -> Recv<'_, T> {
        Recv { receiver: self }
    }

    /// Messages waiting now.
    pub fn len(&self) -> usize {
        self.shared.state.lock().queue.len()
    }

    /// Whether no message is waiting now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A blocking iterator over the messages: it ends when the channel is closed.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { receiver: self }
    }

    /// An iterator over the messages waiting now: it never blocks.
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { receiver: self }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut state = self.shared.state.lock();
        state.receiver_alive = false;
        state.queue.clear();
        state.waker = None;
    }
}

/// The future of [`Receiver::recv_async`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Recv<'a, T> {
    receiver: &'a Receiver<T>,
}

impl<T> std::future::Future for Recv<'_, T> {
    type Output = Result<T, RecvError>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.receiver.poll_recv(cx)
    }
}

/// The blocking iterator of [`Receiver::iter`].
#[derive(Debug)]
pub struct Iter<'a, T> {
    receiver: &'a Receiver<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.receiver.recv().ok()
    }
}

/// The non-blocking iterator of [`Receiver::try_iter`].
#[derive(Debug)]
pub struct TryIter<'a, T> {
    receiver: &'a Receiver<T>,
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.receiver.try_recv().ok()
    }
}

/// The blocking iterator of a [`Receiver`] taken by value.
#[derive(Debug)]
pub struct IntoIter<T> {
    receiver: Receiver<T>,
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.receiver.recv().ok()
    }
}

impl<T> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;

    fn into_iter(self) -> IntoIter<T> {
        IntoIter { receiver: self }
    }
}

impl<'a, T> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    #[test]
    fn bounded_ordered_and_closed_by_the_last_sender() {
        let (tx, rx) = bounded(2);
        let tx2 = tx.clone();
        tx.try_send(1).unwrap();
        tx2.try_send(2).unwrap();
        assert!(matches!(tx.try_send(3), Err(TrySendError::Full(3))));
        assert_eq!(rx.len(), 2);
        assert_eq!(rx.try_recv(), Ok(1));
        assert_eq!(rx.recv_timeout(Duration::from_millis(1)), Ok(2));
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(1)),
            Err(RecvTimeoutError::Timeout)
        );
        drop(tx);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty), "one sender left");
        tx2.try_send(4).unwrap();
        drop(tx2);
        assert_eq!(rx.iter().collect::<Vec<_>>(), vec![4]);
        assert_eq!(rx.recv(), Err(RecvError));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    }

    #[test]
    fn a_dropped_receiver_disconnects_the_senders() {
        let (tx, rx) = bounded::<u8>(1);
        drop(rx);
        assert!(matches!(tx.try_send(1), Err(TrySendError::Disconnected(1))));
    }

    #[test]
    fn a_blocked_receiver_wakes_on_send_from_another_thread() {
        let (tx, rx) = bounded(1);
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.try_send(7).unwrap();
        });
        assert_eq!(rx.recv(), Ok(7));
        sender.join().unwrap();
        assert_eq!(rx.recv(), Err(RecvError));
    }

    struct CountWakes(AtomicUsize);

    impl Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn poll_registers_the_waker_that_a_send_and_the_end_wake() {
        let (tx, rx) = bounded(4);
        let wakes = Arc::new(CountWakes(AtomicUsize::new(0)));
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(rx.poll_recv(&mut cx).is_pending());
        tx.try_send(5).unwrap();
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Ok(5)));
        assert!(rx.poll_recv(&mut cx).is_pending());
        drop(tx);
        assert_eq!(wakes.0.load(Ordering::SeqCst), 2);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Err(RecvError)));
    }
}
