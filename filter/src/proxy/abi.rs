//! The hostcalls that hand the filter text from clients and upstreams: header maps, one header,
//! a gRPC status message. The SDK's readers panic, which stops the VM, on text that is not
//! UTF-8 (HTTP lets header values, a `grpc-message` among them, carry other bytes) and on a map
//! Envoy does not have (an HTTP call that failed has no answer).
//! Read here instead: a map that is not there is empty, and stray bytes become U+FFFD.

use std::ptr::null_mut;

use proxy_wasm::types::MapType;

/// Proxy-Wasm's `WasmResult::Ok`.
const OK: u32 = 0;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(map_type: MapType, data: *mut *mut u8, size: *mut usize) -> u32;
    fn proxy_get_header_map_value(
        map_type: MapType,
        key: *const u8,
        key_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32;
    fn proxy_get_status(code: *mut u32, data: *mut *mut u8, size: *mut usize) -> u32;
}

/// Every header of a map, as text; empty when Envoy has no such map.
pub(super) fn header_map(map: MapType) -> Vec<(String, String)> {
    let (mut data, mut size) = (null_mut(), 0);
    // SAFETY: the ABI's signature; Envoy writes a pointer and size it allocated through the
    // module's `proxy_on_memory_allocate`, which `owned` takes back.
    let result = unsafe { proxy_get_header_map_pairs(map, &mut data, &mut size) };
    let bytes = unsafe { owned(data, size) };
    if result != OK {
        return Vec::new();
    }
    header_pairs(&bytes)
}

/// One header of a map, as text; `None` when the map or the header is not there.
pub(super) fn header_value(map: MapType, name: &str) -> Option<String> {
    let (mut data, mut size) = (null_mut(), 0);
    // SAFETY: as in `header_map`; the key is read for its length only.
    let result = unsafe { proxy_get_header_map_value(map, name.as_ptr(), name.len(), &mut data, &mut size) };
    let bytes = unsafe { owned(data, size) };
    (result == OK).then(|| text(&bytes))
}

/// The message of the status of the gRPC call being answered, as text.
pub(super) fn grpc_status_message() -> Option<String> {
    let (mut code, mut data, mut size) = (0, null_mut(), 0);
    // SAFETY: as in `header_map`.
    let result = unsafe { proxy_get_status(&mut code, &mut data, &mut size) };
    let bytes = unsafe { owned(data, size) };
    (result == OK).then(|| text(&bytes))
}

/// Memory Envoy handed over, to be freed with the returned vector.
///
/// # Safety
/// `data` is null, or was allocated for `size` bytes by `proxy_on_memory_allocate`.
unsafe fn owned(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        return Vec::new();
    }
    // SAFETY: the SDK's allocator gives a boxed slice of `size` bytes, which a vector of
    // that length and capacity frees.
    unsafe { Vec::from_raw_parts(data, size, size) }
}

/// A serialized header map: the count, each name's and value's size, then each name and value
/// followed by a NUL. What does not add up ends the map where it stops making sense.
fn header_pairs(bytes: &[u8]) -> Vec<(String, String)> {
    let word = |at: usize| -> Option<usize> {
        let word: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(word)).ok()
    };
    let Some(count) = word(0) else { return Vec::new() };
    let Some(mut at) = count.checked_mul(8).and_then(|sizes| sizes.checked_add(4)) else { return Vec::new() };
    let mut take = |size: usize| -> Option<&[u8]> {
        let end = at.checked_add(size)?;
        let taken = bytes.get(at..end)?;
        at = end.checked_add(1)?;
        Some(taken)
    };
    let mut pairs = Vec::with_capacity(count.min(bytes.len() / 10));
    for index in 0..count {
        let sizes = index.checked_mul(8).and_then(|offset| Some((word(4 + offset)?, word(8 + offset)?)));
        let Some((name_size, value_size)) = sizes else { break };
        let (Some(name), Some(value)) = (take(name_size), take(value_size)) else { break };
        pairs.push((text(name), text(value)));
    }
    pairs
}

/// Checked as UTF-8 first, which header text nearly always is and which is cheaper than the
/// lossy reading of whatever is not.
fn text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serialized(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
        for (name, value) in pairs {
            out.extend((name.len() as u32).to_le_bytes());
            out.extend((value.len() as u32).to_le_bytes());
        }
        for (name, value) in pairs {
            out.extend(*name);
            out.push(0);
            out.extend(*value);
            out.push(0);
        }
        out
    }

    #[test]
    fn a_header_map_reads_as_the_sdk_reads_it_and_stray_bytes_become_replacement_characters() {
        let bytes = serialized(&[(b":status", b"200"), (b"x-note", b"caf\xe9"), (b"empty", b"")]);
        let expected = [(":status", "200"), ("x-note", "caf\u{fffd}"), ("empty", "")];
        let expected: Vec<(String, String)> =
            expected.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        assert_eq!(header_pairs(&bytes), expected);
    }

    #[test]
    fn a_map_that_does_not_add_up_ends_where_it_stops_making_sense() {
        let whole = serialized(&[(b"a", b"1"), (b"b", b"2")]);
        // All but the final NUL, which a complete last value does not need.
        for end in 0..whole.len() - 1 {
            let pairs = header_pairs(&whole[..end]);
            assert!(pairs.len() <= 1, "{end}: {pairs:?}");
        }
        assert!(header_pairs(&[0xff, 0xff, 0xff, 0xff]).is_empty(), "a count the bytes cannot hold");
        let mut lying = serialized(&[(b"a", b"1")]);
        lying[4] = 0xff;
        assert!(header_pairs(&lying).is_empty(), "a size past the end");
    }
}
