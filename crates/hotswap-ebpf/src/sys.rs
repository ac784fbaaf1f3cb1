//! The few `bpf(2)` commands hotswap issues itself: aya 0.14 keeps its own
//! syscall layer private, and its typed maps need the key and value types
//! at compile time, while a map written from the command line is known only
//! by its BTF. Everything here works on bytes and file descriptors.

use std::ffi::CString;
use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use aya_obj::generated::{bpf_attr, bpf_btf_info, bpf_cmd, bpf_map_info};

/// Issues `cmd` with `attr`; the result is the kernel's (an fd or 0).
fn bpf(cmd: bpf_cmd, attr: &mut bpf_attr) -> io::Result<i64> {
    // SAFETY: `attr` is a valid, initialised bpf_attr that outlives the
    // call, and every pointer in it points to a live buffer of the size
    // given beside it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr as *mut bpf_attr,
            size_of::<bpf_attr>(),
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn zeroed_attr() -> bpf_attr {
    // SAFETY: bpf_attr is plain old data; all-zero is its "unset" value.
    unsafe { zeroed() }
}

fn owned(fd: i64) -> OwnedFd {
    // SAFETY: the kernel just returned this fd to us, and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// Opens the object (map, program, link) pinned at `path`.
pub(crate) fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in the path"))?;
    let mut attr = zeroed_attr();
    attr.__bindgen_anon_4.pathname = c.as_ptr() as u64;
    bpf(bpf_cmd::BPF_OBJ_GET, &mut attr).map(owned)
}

/// What the kernel says about the object behind `fd`: `T` is the info
/// struct of its kind (`bpf_map_info`, `bpf_link_info`, `bpf_prog_info`,
/// `bpf_btf_info`), filled in by `BPF_OBJ_GET_INFO_BY_FD`. `init` sets the
/// fields that ask for more (buffers and their sizes).
fn obj_info<T: Copy>(fd: BorrowedFd<'_>, init: impl FnOnce(&mut T)) -> io::Result<T> {
    // SAFETY: the info structs are plain old data; all-zero asks for nothing extra.
    let mut info: T = unsafe { zeroed() };
    init(&mut info);
    let mut attr = zeroed_attr();
    attr.info.bpf_fd = fd.as_raw_fd() as u32;
    attr.info.info_len = size_of::<T>() as u32;
    attr.info.info = &mut info as *mut T as u64;
    bpf(bpf_cmd::BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(info)
}

/// What the kernel says about a map.
pub(crate) fn map_info(fd: BorrowedFd<'_>) -> io::Result<bpf_map_info> {
    obj_info(fd, |_| {})
}

/// The raw BTF (header, types, strings) the kernel holds under `id`.
pub(crate) fn btf_by_id(id: u32) -> io::Result<Vec<u8>> {
    let mut attr = zeroed_attr();
    attr.__bindgen_anon_6.__bindgen_anon_1.btf_id = id;
    let fd = bpf(bpf_cmd::BPF_BTF_GET_FD_BY_ID, &mut attr).map(owned)?;
    // First ask for the size, then for the bytes.
    let info_of = |buf: &mut [u8]| {
        obj_info(fd.as_fd(), |info: &mut bpf_btf_info| {
            info.btf = buf.as_mut_ptr() as u64;
            info.btf_size = buf.len() as u32;
        })
    };
    let size = info_of(&mut [])?.btf_size as usize;
    let mut buf = vec![0u8; size];
    let got = info_of(&mut buf)?.btf_size as usize;
    buf.truncate(got.min(size));
    Ok(buf)
}

/// `BPF_ANY`, `BPF_NOEXIST`, `BPF_EXIST`.
pub(crate) const BPF_ANY: u64 = 0;

fn elem_attr(fd: BorrowedFd<'_>, key: *const u8, value: u64, flags: u64) -> bpf_attr {
    let mut attr = zeroed_attr();
    attr.__bindgen_anon_2.map_fd = fd.as_raw_fd() as u32;
    attr.__bindgen_anon_2.key = key as u64;
    attr.__bindgen_anon_2.__bindgen_anon_1.value = value;
    attr.__bindgen_anon_2.flags = flags;
    attr
}

/// Reads `key`'s value into `value` (sized for the map, per-CPU included);
/// `false` when there is no such key.
pub(crate) fn lookup(fd: BorrowedFd<'_>, key: &[u8], value: &mut [u8]) -> io::Result<bool> {
    let mut attr = elem_attr(fd, key.as_ptr(), value.as_mut_ptr() as u64, 0);
    match bpf(bpf_cmd::BPF_MAP_LOOKUP_ELEM, &mut attr) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Writes `key`'s value.
pub(crate) fn update(fd: BorrowedFd<'_>, key: &[u8], value: &[u8], flags: u64) -> io::Result<()> {
    let mut attr = elem_attr(fd, key.as_ptr(), value.as_ptr() as u64, flags);
    bpf(bpf_cmd::BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
}

/// Deletes `key`; `false` when there was no such key.
pub(crate) fn delete(fd: BorrowedFd<'_>, key: &[u8]) -> io::Result<bool> {
    let mut attr = elem_attr(fd, key.as_ptr(), 0, 0);
    match bpf(bpf_cmd::BPF_MAP_DELETE_ELEM, &mut attr) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The key after `key` (the first key when `None`) into `next`; `false`
/// at the end.
pub(crate) fn next_key(
    fd: BorrowedFd<'_>,
    key: Option<&[u8]>,
    next: &mut [u8],
) -> io::Result<bool> {
    let key = key.map_or(std::ptr::null(), |k| k.as_ptr());
    let mut attr = elem_attr(fd, key, next.as_mut_ptr() as u64, 0);
    match bpf(bpf_cmd::BPF_MAP_GET_NEXT_KEY, &mut attr) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The id of the program a link runs.
pub(crate) fn link_program(fd: BorrowedFd<'_>) -> io::Result<u32> {
    Ok(obj_info(fd, |_: &mut aya_obj::generated::bpf_link_info| {})?.prog_id)
}

/// The id of the BTF that program `id` was loaded with (0: none).
pub(crate) fn program_btf(id: u32) -> io::Result<u32> {
    let mut attr = zeroed_attr();
    attr.__bindgen_anon_6.__bindgen_anon_1.prog_id = id;
    let fd = bpf(bpf_cmd::BPF_PROG_GET_FD_BY_ID, &mut attr).map(owned)?;
    Ok(obj_info(fd.as_fd(), |_: &mut aya_obj::generated::bpf_prog_info| {})?.btf_id)
}
