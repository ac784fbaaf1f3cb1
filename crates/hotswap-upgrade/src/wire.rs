//! The hand-over channel's framing: a tag byte, a little-endian `u32`
//! length, and that many bytes, over a Unix stream socket pair.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;

/// The child can serve as soon as the parent lets go.
pub(crate) const READY: u8 = b'R';
/// The parent stopped and drained; the payload is its state blob.
pub(crate) const GO: u8 = b'G';
/// The child is serving; the parent may exit.
pub(crate) const SERVING: u8 = b'S';

/// Largest state blob accepted, so a confused peer cannot make us allocate
/// without bound.
pub(crate) const MAX_PAYLOAD: u32 = 256 << 20;

pub(crate) fn send(stream: &mut UnixStream, tag: u8, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|n| *n <= MAX_PAYLOAD)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "state blob too large"))?;
    let mut header = [0u8; 5];
    header[0] = tag;
    header[1..].copy_from_slice(&len.to_le_bytes());
    stream.write_all(&header)?;
    stream.write_all(payload)?;
    stream.flush()
}

/// Reads one message; `Ok(None)` when the peer closed the channel.
pub(crate) fn recv(stream: &mut UnixStream) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut header = [0u8; 5];
    match stream.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(header[1..].try_into().expect("4 bytes"));
    if len > MAX_PAYLOAD {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a message of {len} bytes is over the limit"),
        ));
    }
    let mut payload = vec![0u8; len as usize];
    stream.read_exact(&mut payload)?;
    Ok(Some((header[0], payload)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_eof_is_none() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        send(&mut a, GO, b"state").unwrap();
        send(&mut a, SERVING, b"").unwrap();
        drop(a);
        assert_eq!(recv(&mut b).unwrap(), Some((GO, b"state".to_vec())));
        assert_eq!(recv(&mut b).unwrap(), Some((SERVING, Vec::new())));
        assert_eq!(recv(&mut b).unwrap(), None);
    }

    #[test]
    fn an_oversized_length_is_refused_before_allocating() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.write_all(&[GO, 0xff, 0xff, 0xff, 0xff]).unwrap();
        assert_eq!(recv(&mut b).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
