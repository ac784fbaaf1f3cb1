//! `hotswap:plugin/kv` on the host: a component's window onto its slot's
//! key-value state, the same state ABI v1 plugins of the slot use.

use hotswap_core::{KvError, KvStore};

use crate::request::RequestState;

wasmtime::component::bindgen!({
    path: "../hotswap-abi/wit",
    world: "hotswap:plugin/host",
});

pub(crate) use hotswap::plugin::kv::add_to_linker;
use hotswap::plugin::kv::{Error, Host};

impl From<KvError> for Error {
    fn from(e: KvError) -> Error {
        match e {
            KvError::TooLarge { .. } => Error::TooLarge(e.to_string()),
            KvError::Full { .. } => Error::Full,
            KvError::Backend(why) => Error::Failed(why),
        }
    }
}

impl Host for RequestState {
    fn get(&mut self, key: Vec<u8>) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.kv.get(&key)?)
    }

    fn set(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<(), Error> {
        Ok(self.kv.put(&key, &value)?)
    }

    fn delete(&mut self, key: Vec<u8>) -> Result<bool, Error> {
        Ok(self.kv.delete(&key)?)
    }

    fn keys(
        &mut self,
        prefix: Vec<u8>,
        after: Option<Vec<u8>>,
        limit: u32,
    ) -> Result<Vec<Vec<u8>>, Error> {
        list(&*self.kv, &prefix, after, limit)
    }
}

/// Walks the store's keys from the first one past `after` (or the first
/// with `prefix`) while they start with `prefix`, at most `limit` of them.
fn list(
    kv: &dyn KvStore,
    prefix: &[u8],
    after: Option<Vec<u8>>,
    limit: u32,
) -> Result<Vec<Vec<u8>>, Error> {
    let mut from = match after {
        Some(key) if key.as_slice() >= prefix => hotswap_core::successor(&key),
        _ => prefix.to_vec(),
    };
    let mut keys = Vec::new();
    while keys.len() < limit as usize {
        let Some(key) = kv.next_key(&from)? else {
            break;
        };
        if !key.starts_with(prefix) {
            break;
        }
        from = hotswap_core::successor(&key);
        keys.push(key);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotswap_core::MemoryKv;

    #[test]
    fn list_pages_through_the_keys_with_a_prefix_only() {
        let kv = MemoryKv::default();
        for k in ["a", "user/1", "user/2", "user/3", "zed"] {
            kv.put(k.as_bytes(), b"v").unwrap();
        }
        let page = list(&kv, b"user/", None, 2).unwrap();
        assert_eq!(page, [b"user/1".to_vec(), b"user/2".to_vec()]);
        let rest = list(&kv, b"user/", page.last().cloned(), 10).unwrap();
        assert_eq!(rest, [b"user/3".to_vec()]);
        assert_eq!(list(&kv, b"", None, 100).unwrap().len(), 5);
        assert!(list(&kv, b"nobody/", None, 10).unwrap().is_empty());
    }
}
