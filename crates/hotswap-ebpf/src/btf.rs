//! A small reader of raw BTF: enough to say what a map's key and value
//! are (integers, enums, IPv4 addresses, strings, structs and arrays of
//! them), so the command line can write `10.0.0.7` or `-1` and get the
//! bytes right. aya-obj parses BTF too, but keeps its type walker private.
//!
//! The format is the kernel's (Documentation/bpf/btf.rst): a header, then
//! the type section (each type a 12-byte `btf_type` and kind-specific data),
//! then the string section. Type ids count from 1; 0 is `void`.

use crate::value::{Field, Shape};

const MAGIC: u16 = 0xeb9f;

// The kinds, from include/uapi/linux/btf.h.
const INT: u32 = 1;
const PTR: u32 = 2;
const ARRAY: u32 = 3;
const STRUCT: u32 = 4;
const UNION: u32 = 5;
const ENUM: u32 = 6;
const FWD: u32 = 7;
const TYPEDEF: u32 = 8;
const VOLATILE: u32 = 9;
const CONST: u32 = 10;
const RESTRICT: u32 = 11;
const FUNC: u32 = 12;
const FUNC_PROTO: u32 = 13;
const VAR: u32 = 14;
const DATASEC: u32 = 15;
const FLOAT: u32 = 16;
const DECL_TAG: u32 = 17;
const TYPE_TAG: u32 = 18;
const ENUM64: u32 = 19;

/// Types nest at most this deep before we call the type unreadable
/// (hostile BTF could loop a typedef onto itself).
const MAX_DEPTH: usize = 32;

/// One type: where its kind-specific data starts, and its header.
#[derive(Clone, Copy)]
struct Type {
    name_off: u32,
    kind: u32,
    vlen: usize,
    kind_flag: bool,
    /// `size` or `type`, by kind.
    size_or_type: u32,
    /// Offset of the data after the 12-byte header, in `types`.
    data: usize,
}

/// Parsed BTF: its types, indexed by id, and the bytes they point into.
pub(crate) struct Btf {
    types: Vec<Type>,
    type_bytes: Vec<u8>,
    strings: Vec<u8>,
}

impl Btf {
    /// Parses raw BTF (little-endian, as on every machine hotswap runs).
    pub(crate) fn parse(raw: &[u8]) -> Result<Btf, String> {
        let u32_at = |b: &[u8], at: usize| -> Result<u32, String> {
            b.get(at..at + 4)
                .map(|s| u32::from_le_bytes(s.try_into().expect("4 bytes")))
                .ok_or_else(|| "BTF is truncated".to_string())
        };
        if raw.len() < 24 || u16::from_le_bytes([raw[0], raw[1]]) != MAGIC {
            return Err("not BTF (bad magic)".into());
        }
        let hdr_len = u32_at(raw, 4)? as usize;
        let (type_off, type_len) = (u32_at(raw, 8)? as usize, u32_at(raw, 12)? as usize);
        let (str_off, str_len) = (u32_at(raw, 16)? as usize, u32_at(raw, 20)? as usize);
        let section = |off: usize, len: usize| {
            hdr_len
                .checked_add(off)
                .and_then(|start| Some(start..start.checked_add(len)?))
                .and_then(|r| raw.get(r))
                .ok_or_else(|| "BTF section out of bounds".to_string())
        };
        let type_bytes = section(type_off, type_len)?.to_vec();
        let strings = section(str_off, str_len)?.to_vec();

        // Id 0 is void; give it a placeholder so ids index directly.
        let mut types = vec![Type {
            name_off: 0,
            kind: 0,
            vlen: 0,
            kind_flag: false,
            size_or_type: 0,
            data: 0,
        }];
        let mut at = 0;
        while at < type_bytes.len() {
            let info = u32_at(&type_bytes, at + 4)?;
            let t = Type {
                name_off: u32_at(&type_bytes, at)?,
                kind: (info >> 24) & 0x1f,
                vlen: (info & 0xffff) as usize,
                kind_flag: info >> 31 == 1,
                size_or_type: u32_at(&type_bytes, at + 8)?,
                data: at + 12,
            };
            let extra = match t.kind {
                INT | VAR | DECL_TAG => 4,
                ARRAY => 12,
                STRUCT | UNION => 12 * t.vlen,
                ENUM | FUNC_PROTO => 8 * t.vlen,
                DATASEC | ENUM64 => 12 * t.vlen,
                PTR | FWD | TYPEDEF | VOLATILE | CONST | RESTRICT | FUNC | FLOAT | TYPE_TAG => 0,
                k => return Err(format!("BTF type {} has unknown kind {k}", types.len())),
            };
            at = t.data + extra;
            if at > type_bytes.len() {
                return Err("BTF is truncated".into());
            }
            types.push(t);
        }
        Ok(Btf {
            types,
            type_bytes,
            strings,
        })
    }

    fn word(&self, at: usize) -> u32 {
        // Bounds were checked when the type was parsed.
        u32::from_le_bytes(self.type_bytes[at..at + 4].try_into().expect("4 bytes"))
    }

    fn name(&self, off: u32) -> &str {
        let rest = self.strings.get(off as usize..).unwrap_or_default();
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).unwrap_or("")
    }

    fn get(&self, id: u32) -> Option<&Type> {
        self.types.get(id as usize)
    }

    /// The id of the struct named `name`, if there is one.
    pub(crate) fn struct_named(&self, name: &str) -> Option<u32> {
        self.types
            .iter()
            .position(|t| t.kind == STRUCT && self.name(t.name_off) == name)
            .map(|i| i as u32)
    }

    /// What type `id` looks like to a person typing its values.
    pub(crate) fn shape(&self, id: u32) -> Shape {
        self.shape_at(id, 0, None)
    }

    /// Whether `id` is `char` (through qualifiers): an array of them is text,
    /// while an array of `__u8` stays a list of numbers.
    fn is_char(&self, id: u32, depth: usize) -> bool {
        match self.get(id) {
            Some(t)
                if depth < MAX_DEPTH
                    && matches!(t.kind, VOLATILE | CONST | RESTRICT | TYPE_TAG) =>
            {
                self.is_char(t.size_or_type, depth + 1)
            }
            Some(t) if t.kind == INT => {
                t.size_or_type == 1
                    && (self.name(t.name_off).ends_with("char")
                        && !self.name(t.name_off).starts_with("unsigned")
                        || (self.word(t.data) >> 24) & 2 != 0)
            }
            _ => false,
        }
    }

    fn shape_at(&self, id: u32, depth: usize, typedef: Option<&str>) -> Shape {
        let Some(t) = self
            .get(id)
            .copied()
            .filter(|_| depth < MAX_DEPTH && id != 0)
        else {
            return Shape::Opaque { size: 0 };
        };
        match t.kind {
            TYPEDEF => {
                // The outermost typedef name decides byte order: `__be32`.
                let name = typedef.or(Some(self.name(t.name_off)));
                self.shape_at(t.size_or_type, depth + 1, name)
            }
            VOLATILE | CONST | RESTRICT | TYPE_TAG => {
                self.shape_at(t.size_or_type, depth + 1, typedef)
            }
            INT => {
                let enc = self.word(t.data);
                let (bits, offset) = (enc & 0xff, (enc >> 16) & 0xff);
                let size = t.size_or_type as usize;
                if offset != 0 || bits as usize != size * 8 || !matches!(size, 1 | 2 | 4 | 8 | 16) {
                    return Shape::Opaque { size };
                }
                let signed = (enc >> 24) & 1 == 1;
                let big_endian = typedef.is_some_and(|n| n.starts_with("__be"));
                if big_endian && size == 4 && typedef == Some("__be32") {
                    return Shape::Ipv4;
                }
                Shape::Int {
                    size,
                    signed,
                    big_endian,
                }
            }
            ENUM | ENUM64 => {
                let size = t.size_or_type as usize;
                let stride = if t.kind == ENUM { 8 } else { 12 };
                let variants = (0..t.vlen)
                    .map(|i| {
                        let at = t.data + i * stride;
                        let lo = self.word(at + 4) as u64;
                        let value = if t.kind == ENUM64 {
                            lo | (self.word(at + 8) as u64) << 32
                        } else {
                            lo
                        };
                        (self.name(self.word(at)).to_string(), value)
                    })
                    .collect();
                Shape::Enum {
                    size,
                    signed: t.kind_flag,
                    variants,
                }
            }
            ARRAY => {
                let (elem, len) = (self.word(t.data), self.word(t.data + 8) as usize);
                if self.is_char(elem, depth + 1) {
                    return Shape::Str { len };
                }
                Shape::Array {
                    elem: Box::new(self.shape_at(elem, depth + 1, None)),
                    len,
                }
            }
            STRUCT => {
                let fields = (0..t.vlen)
                    .map(|i| {
                        let at = t.data + i * 12;
                        let (name, ty, off) = (self.word(at), self.word(at + 4), self.word(at + 8));
                        let (bit_offset, bitfield) = if t.kind_flag {
                            (off & 0xff_ffff, off >> 24)
                        } else {
                            (off, 0)
                        };
                        let shape = if bitfield != 0 || bit_offset % 8 != 0 {
                            Shape::Opaque { size: 0 }
                        } else {
                            self.shape_at(ty, depth + 1, None)
                        };
                        Field {
                            name: self.name(name).to_string(),
                            offset: (bit_offset / 8) as usize,
                            shape,
                        }
                    })
                    .collect();
                Shape::Struct {
                    size: t.size_or_type as usize,
                    fields,
                }
            }
            UNION | FLOAT => Shape::Opaque {
                size: t.size_or_type as usize,
            },
            PTR => Shape::Opaque { size: 8 },
            _ => Shape::Opaque { size: 0 },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::{TRACER_V1, XDP_FILTER_V1};

    /// The BTF clang wrote into one of our objects, as the kernel would hold it.
    fn btf_of(object: &[u8]) -> Btf {
        let parsed = aya_obj::Object::parse(object).expect("our objects parse");
        let raw = parsed.btf.expect("built with -g, so with BTF").to_bytes();
        Btf::parse(&raw).expect("our BTF parses")
    }

    #[test]
    fn reads_the_tracers_event_struct() {
        let btf = btf_of(TRACER_V1);
        let id = btf
            .struct_named("event")
            .expect("struct event is in the BTF");
        let shape = btf.shape(id);
        let u32_ = Shape::Int {
            size: 4,
            signed: false,
            big_endian: false,
        };
        let Shape::Struct { size: 16, fields } = shape else {
            panic!("{shape:?}")
        };
        let got: Vec<(&str, usize, &Shape)> = fields
            .iter()
            .map(|f| (f.name.as_str(), f.offset, &f.shape))
            .collect();
        let s64 = Shape::Int {
            size: 8,
            signed: true,
            big_endian: false,
        };
        assert_eq!(
            got,
            [
                ("pid", 0, &u32_),
                ("version", 4, &u32_),
                ("syscall", 8, &s64)
            ]
        );
    }

    #[test]
    fn network_order_typedefs_are_addresses() {
        let btf = btf_of(XDP_FILTER_V1);
        let be32 = (1..btf.types.len() as u32)
            .find(|&id| {
                btf.types[id as usize].kind == TYPEDEF
                    && btf.name(btf.types[id as usize].name_off) == "__be32"
            })
            .expect("__be32 is in the BTF");
        assert_eq!(btf.shape(be32), Shape::Ipv4);
    }

    #[test]
    fn hostile_btf_is_an_error_not_a_panic() {
        let raw = aya_obj::Object::parse(TRACER_V1)
            .unwrap()
            .btf
            .unwrap()
            .to_bytes();
        for cut in [0, 10, 24, raw.len() / 2, raw.len() - 1] {
            let _ = Btf::parse(&raw[..cut]); // must not panic
        }
        let mut looped = raw.clone();
        // Point every typedef, const and pointer at itself: shapes stay finite.
        let hdr = u32::from_le_bytes(raw[4..8].try_into().unwrap()) as usize;
        let btf = Btf::parse(&raw).unwrap();
        for (id, t) in btf.types.iter().enumerate().skip(1) {
            if matches!(t.kind, TYPEDEF | CONST | PTR) {
                let at =
                    hdr + u32::from_le_bytes(raw[8..12].try_into().unwrap()) as usize + t.data - 4;
                looped[at..at + 4].copy_from_slice(&(id as u32).to_le_bytes());
            }
        }
        let looped = Btf::parse(&looped).unwrap();
        for id in 0..looped.types.len() as u32 + 2 {
            let _ = looped.shape(id);
        }
    }
}
