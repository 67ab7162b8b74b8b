//! A request body read within the admission budget: the buffer grows with
//! the bytes that arrive, and the budget's share for bodies being received
//! ([`Receiving`]) holds its capacity, so a client that declares a large
//! body, or none, and then trickles it holds what it sent.

use http_body_util::BodyExt;
use hyper::body::{Body, Buf};

use crate::BODY_LIMIT;
use crate::limits::{Receiving, Shed};

/// Why a body was not read whole.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the request body is over {BODY_LIMIT} bytes")]
    TooLarge,
    #[error("the request body broke off: {0}")]
    BrokeOff(String),
    /// No room in the budget for the bytes arriving.
    #[error("no room in the admission memory budget for the request body")]
    Shed(Shed),
}

/// The whole body in one buffer. `declared` is the Content-Length: the
/// buffer doubles toward it as bytes arrive (the client's word, so never
/// ahead of them), so a large review costs about its size once.
///
/// The body is read to its end whatever the outcome (within the request
/// timeout): answering while the client still sends makes it see a broken
/// pipe or a reset, not the status and its reason.
pub async fn read<B>(body: B, declared: Option<usize>, receiving: &mut Receiving<'_>) -> Result<Vec<u8>, Error>
where
    B: Body,
    B::Error: std::fmt::Display,
{
    let mut body = std::pin::pin!(body);
    let mut buffer = Vec::new();
    let mut refused = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| Error::BrokeOff(error.to_string()))?;
        let Ok(data) = frame.into_data() else { continue };
        if refused.is_some() {
            continue;
        }
        let needed = buffer.len() + data.remaining();
        if needed > BODY_LIMIT {
            refused = Some(Error::TooLarge);
            buffer = Vec::new();
            continue;
        }
        if needed > buffer.capacity() {
            let capacity = grown_capacity(buffer.capacity(), needed, declared);
            if let Err(shed) = receiving.grow_to(capacity).await {
                refused = Some(Error::Shed(shed));
                buffer = Vec::new();
                continue;
            }
            buffer.reserve_exact(capacity - buffer.len());
        }
        extend(&mut buffer, data);
    }
    match refused {
        Some(error) => Err(error),
        None => Ok(buffer),
    }
}

fn extend(buffer: &mut Vec<u8>, mut data: impl Buf) {
    while data.has_remaining() {
        let chunk = data.chunk();
        buffer.extend_from_slice(chunk);
        let read = chunk.len();
        data.advance(read);
    }
}

/// The next capacity of a body buffer that must hold `needed` bytes:
/// double, but never past the declared length while the bytes fit in it,
/// nor past [`BODY_LIMIT`].
fn grown_capacity(capacity: usize, needed: usize, declared: Option<usize>) -> usize {
    let doubled = needed.max(capacity * 2);
    let capped = match declared {
        Some(declared) if declared >= needed => doubled.min(declared),
        _ => doubled,
    };
    capped.min(BODY_LIMIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buffer_doubles_up_to_the_declared_length_and_no_further_than_the_limit() {
        assert_eq!(grown_capacity(0, 10, None), 10);
        assert_eq!(grown_capacity(10, 11, None), 20);
        assert_eq!(grown_capacity(10, 11, Some(15)), 15, "the declared length, once the bytes fit in it");
        assert_eq!(grown_capacity(10, 16, Some(15)), 20, "a body longer than declared grows on");
        assert_eq!(grown_capacity(BODY_LIMIT, BODY_LIMIT, None), BODY_LIMIT);
    }
}
