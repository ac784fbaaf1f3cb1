//! A program's ring buffer, read as a stream of events: each record is
//! decoded with the struct its program declares for it (`struct event`, or
//! `struct <map>_event`) when its BTF has one, else shown as hex.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::Path;

use aya::maps::{Map, MapData, RingBuf};
use serde_json::Value;

use crate::value::Shape;
use crate::EbpfError;

/// Events from one pinned ring buffer. Poll [`Events::as_fd`] for
/// readability (epoll, tokio's `AsyncFd`), then drain it as an iterator.
pub struct Events {
    map: String,
    ring: RingBuf<MapData>,
    shape: Option<Shape>,
}

impl Events {
    /// Opens ring buffer `map` at `path`; its records are decoded with the
    /// BTF `btf_id` of the program that writes them, when given.
    pub(crate) fn open(map: &str, path: &Path, btf_id: Option<u32>) -> Result<Events, EbpfError> {
        let err = |reason: String| EbpfError::Map {
            map: map.to_string(),
            reason,
        };
        let data = MapData::from_pin(path).map_err(|e| err(format!("cannot open its pin: {e}")))?;
        let map_obj = Map::from_map_data(data).map_err(|e| err(e.to_string()))?;
        let ring = RingBuf::try_from(map_obj).map_err(|_| {
            err("not a ring buffer: `hotswap ebpf events` reads ring buffers".into())
        })?;
        let event = format!("{map}_event");
        // Ring buffers carry no BTF of their own (their value size is 0).
        let shape = btf_id.and_then(|id| crate::maps::struct_shape(id, &[event.as_str(), "event"]));
        Ok(Events {
            map: map.to_string(),
            ring,
            shape,
        })
    }

    /// The ring buffer's name.
    pub fn map_name(&self) -> &str {
        &self.map
    }

    /// Skips the records waiting now without decoding them. Bounded, so a
    /// program writing faster than this reads cannot keep it here.
    pub fn skip_waiting(&mut self) {
        const AT_MOST: usize = 1 << 20;
        for _ in 0..AT_MOST {
            if self.ring.next().is_none() {
                return;
            }
        }
    }
}

/// Readable when events are waiting.
impl AsFd for Events {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.ring.as_fd()
    }
}

/// For `tokio::io::unix::AsyncFd`, which wants a raw descriptor.
impl AsRawFd for Events {
    fn as_raw_fd(&self) -> RawFd {
        self.ring.as_raw_fd()
    }
}

/// The events waiting now, decoded; `None` when none is waiting (a later
/// call may find more, once [`Events::as_fd`] is readable again).
impl Iterator for Events {
    type Item = Value;

    fn next(&mut self) -> Option<Value> {
        let item = self.ring.next()?;
        let bytes: &[u8] = &item;
        Some(match &self.shape {
            Some(shape) if shape.size() <= bytes.len() => shape.read(&bytes[..shape.size()]),
            _ => Value::from(format!("0x{}", hex::encode(bytes))),
        })
    }
}
