//! Four request bodies read at once within one small admission budget, their
//! frames and declared lengths from the input, under a paused clock (so
//! waits for the budget end in their timeout at once): each body is read
//! whole or refused for a stated reason, a body read whole is exactly its
//! frames, and once all are done every permit of the budget is back.
#![no_main]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Bytes, Frame};
use kube_once_server::body;
use kube_once_server::limits::{Gate, Limits};
use libfuzzer_sys::fuzz_target;

/// Frames handed out one per poll, with a `Pending` between them so the
/// four readers interleave.
struct Frames {
    frames: VecDeque<Bytes>,
    ready: bool,
}

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if !self.ready {
            self.ready = true;
            context.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.ready = false;
        Poll::Ready(self.frames.pop_front().map(|data| Ok(Frame::data(data))))
    }
}

/// Input: per frame, one byte (which body, and whether it is the last
/// byte of a declared length) and two of length (a frame of up to 64 KiB).
fn bodies(input: &[u8]) -> [(Vec<Bytes>, Option<usize>); 4] {
    let mut bodies: [(Vec<Bytes>, Option<usize>); 4] = Default::default();
    for record in input.chunks_exact(3) {
        let which = usize::from(record[0] % 4);
        let length = usize::from(u16::from_le_bytes([record[1], record[2]]));
        if record[0] & 0x80 != 0 {
            bodies[which].1 = Some(length * 64);
        } else {
            bodies[which].0.push(Bytes::from(vec![record[0]; length]));
        }
    }
    bodies
}

fuzz_target!(|input: &[u8]| {
    let limits = Limits {
        admission_memory: 512 * 1024,
        admission_queue: 2,
        admission_queue_timeout: Duration::from_millis(100),
        ..Limits::DEFAULT
    };
    let gate = Gate::new(&limits);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
    runtime.block_on(async {
        let [a, b, c, d] = bodies(input);
        let read = |(frames, declared): (Vec<Bytes>, Option<usize>)| {
            let gate = &gate;
            async move {
                let expected: Vec<u8> = frames.concat();
                let mut receiving = gate.receive();
                let body = Frames { frames: frames.into(), ready: false };
                match body::read(body, declared, &mut receiving).await {
                    Ok(read) => assert_eq!(read, expected, "a body read whole is its frames"),
                    Err(body::Error::TooLarge) => assert!(expected.len() > kube_once_server::BODY_LIMIT),
                    Err(body::Error::Shed(_)) => {}
                    Err(body::Error::BrokeOff(reason)) => panic!("no frame breaks off here: {reason}"),
                }
            }
        };
        tokio::join!(read(a), read(b), read(c), read(d));
    });
    assert!(gate.is_idle(), "every permit is back once the bodies are done");
});
