//! A connection's wake-ups of itself, answered by polling it again at once.
//!
//! hyper hands a request body to the handler through a channel, and the
//! connection's dispatcher and the handler are polled by the same task: each
//! chunk the handler takes wakes the dispatcher, that is, the task that is
//! running. tokio treats a task woken while it runs as one that yielded: it
//! goes to the back of the run queue, and an idle worker is woken to steal it.
//! With one request in flight that is, for every request, a wake-up of the
//! other worker, its search for work, and often the connection moved to the
//! other core. What such a wake-up asks for is one more poll; [`Repoll`] makes
//! it here, a few times at most, and leaves any other wake-up to tokio.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// More self-wakes than this in one poll are a future that wants to yield
/// (hyper's own loop limit, tokio's cooperative budget): the task yields then.
const MAX_POLLS: usize = 4;

const IDLE: u8 = 0;
const POLLING: u8 = 1;
const WOKEN: u8 = 2;

/// `future`, with the wake-ups it makes while it is being polled turned into
/// another poll in place.
pub struct Repoll<F> {
    future: Pin<Box<F>>,
    wakes: Arc<Wakes>,
    waker: Waker,
}

impl<F: Future> Repoll<F> {
    pub fn new(future: F) -> Self {
        let wakes = Arc::new(Wakes { state: AtomicU8::new(IDLE), task: AtomicWaker::new() });
        Self { future: Box::pin(future), waker: Waker::from(wakes.clone()), wakes }
    }
}

impl<F: Future> Future for Repoll<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        this.wakes.task.register(cx.waker());
        let mut inner = Context::from_waker(&this.waker);
        for _ in 0..MAX_POLLS {
            this.wakes.state.store(POLLING, Ordering::Release);
            let poll = this.future.as_mut().poll(&mut inner);
            let woken = this.wakes.state.swap(IDLE, Ordering::AcqRel) == WOKEN;
            if poll.is_ready() || !woken {
                return poll;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Whether the future is being polled, and the task to wake when it is not.
struct Wakes {
    state: AtomicU8,
    task: AtomicWaker,
}

impl Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // During a poll (from this thread or another) the poll's end sees the
        // mark and polls again; otherwise the task is woken as usual.
        match self.state.compare_exchange(POLLING, WOKEN, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) | Err(WOKEN) => {}
            Err(_) => self.task.wake(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts the wake-ups of the task that polls it.
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Pending `pending` times, waking itself each time, then ready.
    struct WakesItself {
        pending: usize,
        polls: usize,
    }

    impl Future for WakesItself {
        type Output = usize;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
            self.polls += 1;
            if self.polls > self.pending {
                return Poll::Ready(self.polls);
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    fn poll_once<F: Future>(future: &mut Repoll<F>, counter: &Arc<Counter>) -> Poll<F::Output> {
        let waker = Waker::from(counter.clone());
        Pin::new(future).poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn a_wake_up_during_the_poll_is_another_poll_not_a_wake_up_of_the_task() {
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        let mut future = Repoll::new(WakesItself { pending: 2, polls: 0 });
        assert_eq!(poll_once(&mut future, &counter), Poll::Ready(3));
        assert_eq!(counter.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_future_that_keeps_waking_itself_still_yields_to_the_runtime() {
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        let mut future = Repoll::new(WakesItself { pending: usize::MAX, polls: 0 });
        assert_eq!(poll_once(&mut future, &counter), Poll::Pending);
        assert_eq!(counter.0.load(Ordering::SeqCst), 1, "the task is woken to be polled again later");
        assert_eq!(future.future.polls, MAX_POLLS);
    }

    #[test]
    fn a_wake_up_after_the_poll_reaches_the_task() {
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        let (sender, receiver) = tokio::sync::oneshot::channel::<()>();
        let mut future = Repoll::new(receiver);
        assert!(poll_once(&mut future, &counter).is_pending());
        sender.send(()).unwrap();
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert!(matches!(poll_once(&mut future, &counter), Poll::Ready(Ok(()))));
    }
}
