//! Typed map keys and values: what a key or value looks like ([`Shape`],
//! read from the map's BTF), how text a person typed becomes its bytes,
//! and how bytes read from the kernel become JSON.
//!
//! ```
//! use hotswap_ebpf::Shape;
//!
//! assert_eq!(Shape::Ipv4.parse("10.0.0.7").unwrap(), [10, 0, 0, 7]);
//! let s64 = Shape::Int { size: 8, signed: true, big_endian: false };
//! assert_eq!(s64.parse("-1").unwrap(), [0xff; 8]);
//! assert_eq!(s64.read(&[0xff; 8]), serde_json::json!(-1));
//! assert!(s64.parse("ten").unwrap_err().contains("a number"));
//! ```

use std::net::Ipv4Addr;

use serde_json::{json, Value};

/// A key or value read from a map (JSON) as text a [`Shape`] parses back:
/// a string as it is, anything else (a number, a struct) as JSON.
pub fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// What a map key or value is, as far as typing it in goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// An integer of 1, 2, 4, 8 or 16 bytes; `big_endian` for `__be16` and
    /// the like.
    Int {
        /// Bytes.
        size: usize,
        /// Whether it is signed.
        signed: bool,
        /// Network byte order (`__be*` types).
        big_endian: bool,
    },
    /// `__be32`: an IPv4 address in network order, typed as `10.0.0.7`.
    Ipv4,
    /// A C enum: typed by variant name or number.
    Enum {
        /// Bytes.
        size: usize,
        /// Whether its values are signed.
        signed: bool,
        /// Its variants.
        variants: Vec<(String, u64)>,
    },
    /// A `char` array: text, NUL-padded.
    Str {
        /// Bytes, the NUL included when the text is shorter.
        len: usize,
    },
    /// An array of anything else.
    Array {
        /// Its element.
        elem: Box<Shape>,
        /// How many.
        len: usize,
    },
    /// A struct, typed as a JSON object of its fields.
    Struct {
        /// Bytes, padding included.
        size: usize,
        /// Its fields.
        fields: Vec<Field>,
    },
    /// Bytes with no type to go by, typed as hex (`0x0a000007`).
    Opaque {
        /// Bytes.
        size: usize,
    },
}

/// A struct's field.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Its name.
    pub name: String,
    /// Where it starts, in bytes.
    pub offset: usize,
    /// What it is.
    pub shape: Shape,
}

impl Shape {
    /// The shape of `size` bytes with no BTF: an unsigned integer when the
    /// size is one an integer can have (1, 2, 4 or 8), else bytes.
    pub fn untyped(size: usize) -> Shape {
        match size {
            1 | 2 | 4 | 8 => Shape::Int {
                size,
                signed: false,
                big_endian: false,
            },
            size => Shape::Opaque { size },
        }
    }

    /// How many bytes it takes.
    pub fn size(&self) -> usize {
        match self {
            Shape::Int { size, .. } | Shape::Enum { size, .. } | Shape::Opaque { size } => *size,
            Shape::Struct { size, .. } => *size,
            Shape::Ipv4 => 4,
            Shape::Str { len } => *len,
            Shape::Array { elem, len } => elem.size() * len,
        }
    }

    /// What to type, for error messages and `map dump` headers.
    pub fn describe(&self) -> String {
        match self {
            Shape::Int {
                size,
                signed,
                big_endian,
            } => format!(
                "{}{}{}",
                if *signed { "i" } else { "u" },
                size * 8,
                if *big_endian { " (network order)" } else { "" }
            ),
            Shape::Ipv4 => "IPv4 address".into(),
            Shape::Enum { variants, .. } => {
                let names: Vec<&str> = variants.iter().map(|(n, _)| n.as_str()).take(8).collect();
                format!("enum ({})", names.join(", "))
            }
            Shape::Str { len } => format!("string (up to {len} bytes)"),
            Shape::Array { elem, len } => format!("[{}; {len}]", elem.describe()),
            Shape::Struct { fields, .. } => {
                let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
                format!("struct {{{}}}", names.join(", "))
            }
            Shape::Opaque { size } => format!("{size} bytes (hex)"),
        }
    }

    /// Whether it is a plain number, which `/metrics` can export.
    pub fn is_number(&self) -> bool {
        matches!(self, Shape::Int { size, .. } if *size <= 8)
    }

    /// The bytes for `text`, or what was expected instead.
    pub fn parse(&self, text: &str) -> Result<Vec<u8>, String> {
        let text = text.trim();
        match self {
            Shape::Int {
                size,
                signed,
                big_endian,
            } => {
                let n = parse_int(text, *size, *signed).ok_or_else(|| {
                    format!(
                        "expected {}, a number such as 42 or 0x2a; got `{text}`",
                        self.describe()
                    )
                })?;
                Ok(int_bytes(n, *size, *big_endian))
            }
            Shape::Ipv4 => text
                .parse::<Ipv4Addr>()
                .map(|a| a.octets().to_vec())
                .map_err(|_| format!("expected an IPv4 address such as 10.0.0.7; got `{text}`")),
            Shape::Enum {
                size,
                signed,
                variants,
            } => {
                let n = variants
                    .iter()
                    .find(|(name, _)| name == text)
                    .map(|(_, v)| *v as i128)
                    .or_else(|| parse_int(text, *size, *signed))
                    .ok_or_else(|| format!("expected one of {}; got `{text}`", self.describe()))?;
                Ok(int_bytes(n, *size, false))
            }
            Shape::Str { len } => {
                if text.len() > *len {
                    return Err(format!(
                        "`{text}` is {} bytes; this string holds at most {len}",
                        text.len()
                    ));
                }
                let mut b = text.as_bytes().to_vec();
                b.resize(*len, 0);
                Ok(b)
            }
            Shape::Array { .. } | Shape::Struct { .. } if !text.starts_with("0x") => {
                let json: Value = serde_json::from_str(text).map_err(|e| {
                    format!(
                        "expected {} as JSON, or as hex bytes (0x...): {e}",
                        self.describe()
                    )
                })?;
                self.from_json(&json)
            }
            Shape::Array { .. } | Shape::Struct { .. } | Shape::Opaque { .. } => {
                let hex = text.strip_prefix("0x").unwrap_or(text);
                let bytes = hex::decode(hex).map_err(|_| {
                    format!("expected {} hex bytes (0x...); got `{text}`", self.size())
                })?;
                if bytes.len() != self.size() {
                    return Err(format!(
                        "expected {} bytes; got {}",
                        self.size(),
                        bytes.len()
                    ));
                }
                Ok(bytes)
            }
        }
    }

    /// The bytes for a JSON value: strings and numbers as [`Shape::parse`]
    /// takes them, arrays and objects for arrays and structs.
    pub fn from_json(&self, json: &Value) -> Result<Vec<u8>, String> {
        match (self, json) {
            (Shape::Array { elem, len }, Value::Array(items)) => {
                if items.len() > *len {
                    return Err(format!(
                        "{} items given; the array holds {len}",
                        items.len()
                    ));
                }
                let mut out = Vec::with_capacity(self.size());
                for item in items {
                    out.extend(elem.from_json(item)?);
                }
                out.resize(self.size(), 0);
                Ok(out)
            }
            (Shape::Struct { size, fields }, Value::Object(given)) => {
                let mut out = vec![0u8; *size];
                for (name, value) in given {
                    let field = fields
                        .iter()
                        .find(|f| &f.name == name)
                        .ok_or_else(|| format!("no field `{name}` in {}", self.describe()))?;
                    let bytes = field.shape.from_json(value)?;
                    let end = field.offset + bytes.len();
                    if end > *size {
                        return Err(format!("field `{name}` does not fit the struct"));
                    }
                    out[field.offset..end].copy_from_slice(&bytes);
                }
                Ok(out)
            }
            (_, Value::String(s)) => self.parse(s),
            (_, Value::Number(n)) => self.parse(&n.to_string()),
            (_, other) => Err(format!("expected {}; got {other}", self.describe())),
        }
    }

    /// `bytes` (exactly [`Shape::size`] of them) as JSON: numbers, text for
    /// addresses, enum variants and strings, arrays and objects.
    pub fn read(&self, bytes: &[u8]) -> Value {
        match self {
            Shape::Int {
                size,
                signed,
                big_endian,
            } => match read_int(bytes, *size, *signed, *big_endian) {
                Some(n) if i64::try_from(n).is_ok() => json!(n as i64),
                Some(n) if u64::try_from(n).is_ok() => json!(n as u64),
                Some(n) => json!(n.to_string()),
                None => hex_json(bytes),
            },
            Shape::Ipv4 => match <[u8; 4]>::try_from(bytes) {
                Ok(b) => json!(Ipv4Addr::from(b).to_string()),
                Err(_) => hex_json(bytes),
            },
            Shape::Enum {
                size,
                signed,
                variants,
            } => match read_int(bytes, *size, *signed, false) {
                Some(n) => variants
                    .iter()
                    .find(|(_, v)| *v as i128 == n || (*signed && *v as i64 as i128 == n))
                    .map_or_else(|| json!(n as i64), |(name, _)| json!(name)),
                None => hex_json(bytes),
            },
            Shape::Str { .. } => {
                let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
                json!(String::from_utf8_lossy(&bytes[..end]))
            }
            Shape::Array { elem, len } => {
                let step = elem.size();
                if step == 0 || bytes.len() != step * len {
                    return hex_json(bytes);
                }
                Value::Array(bytes.chunks(step).map(|c| elem.read(c)).collect())
            }
            Shape::Struct { fields, .. } => {
                let mut obj = serde_json::Map::new();
                for f in fields {
                    let end = f.offset + f.shape.size();
                    if f.shape.size() == 0 || end > bytes.len() {
                        continue; // bitfields and the unreadable are left out
                    }
                    obj.insert(f.name.clone(), f.shape.read(&bytes[f.offset..end]));
                }
                Value::Object(obj)
            }
            Shape::Opaque { .. } => hex_json(bytes),
        }
    }
}

fn hex_json(bytes: &[u8]) -> Value {
    json!(format!("0x{}", hex::encode(bytes)))
}

/// A decimal or `0x` hex integer that fits `size` bytes.
fn parse_int(text: &str, size: usize, signed: bool) -> Option<i128> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let magnitude = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => u128::from_str_radix(hex, 16).ok()?,
        None => digits.parse::<u128>().ok()?,
    };
    let bits = (size * 8) as u32;
    let n = if neg {
        if !signed {
            return None;
        }
        -(i128::try_from(magnitude).ok()?)
    } else {
        i128::try_from(magnitude).ok()?
    };
    let (min, max) = if bits >= 128 {
        (i128::MIN, i128::MAX)
    } else if signed {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    } else {
        (0, (1i128 << bits) - 1)
    };
    (min..=max).contains(&n).then_some(n)
}

fn int_bytes(n: i128, size: usize, big_endian: bool) -> Vec<u8> {
    let le = n.to_le_bytes();
    let mut b = le[..size].to_vec();
    if big_endian {
        b.reverse();
    }
    b
}

fn read_int(bytes: &[u8], size: usize, signed: bool, big_endian: bool) -> Option<i128> {
    if bytes.len() != size || size > 16 || size == 0 {
        return None;
    }
    // Little-endian into 16 bytes on the stack (this runs for every field
    // of every event), then sign-extended.
    let mut b = [0u8; 16];
    b[..size].copy_from_slice(bytes);
    if big_endian {
        b[..size].reverse();
    }
    if signed && b[size - 1] & 0x80 != 0 {
        b[size..].fill(0xff);
    }
    Some(i128::from_le_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(size: usize, signed: bool) -> Shape {
        Shape::Int {
            size,
            signed,
            big_endian: false,
        }
    }

    #[test]
    fn integers_round_trip_and_are_range_checked() {
        for (shape, text) in [
            (int(4, false), "4294967295"),
            (int(4, true), "-2147483648"),
            (int(8, false), "18446744073709551615"),
            (int(1, false), "0xff"),
            (int(2, true), "-1"),
        ] {
            let bytes = shape.parse(text).unwrap();
            assert_eq!(bytes.len(), shape.size());
            let back = shape.read(&bytes);
            let expected = if text.starts_with("0x") {
                json!(255)
            } else {
                serde_json::from_str::<Value>(text).unwrap()
            };
            assert_eq!(back, expected, "{text}");
        }
        for (shape, text) in [
            (int(4, false), "4294967296"),
            (int(4, false), "-1"),
            (int(1, true), "128"),
            (int(4, false), "1.5"),
            (int(4, false), ""),
        ] {
            assert!(
                shape.parse(text).is_err(),
                "{text} should not fit {shape:?}"
            );
        }
    }

    #[test]
    fn network_order_integers_and_addresses() {
        let be16 = Shape::Int {
            size: 2,
            signed: false,
            big_endian: true,
        };
        assert_eq!(be16.parse("8080").unwrap(), [0x1f, 0x90]);
        assert_eq!(be16.read(&[0x1f, 0x90]), json!(8080));
        assert_eq!(Shape::Ipv4.read(&[192, 168, 1, 2]), json!("192.168.1.2"));
        assert!(Shape::Ipv4.parse("300.1.1.1").unwrap_err().contains("IPv4"));
    }

    #[test]
    fn strings_are_padded_and_bounded() {
        let s = Shape::Str { len: 8 };
        assert_eq!(s.parse("curl").unwrap(), b"curl\0\0\0\0");
        assert_eq!(s.read(b"curl\0\0\0\0"), json!("curl"));
        assert!(s.parse("much too long").unwrap_err().contains("at most 8"));
    }

    #[test]
    fn enums_by_name_or_number() {
        let e = Shape::Enum {
            size: 4,
            signed: false,
            variants: vec![("PASS".into(), 0), ("DROP".into(), 1)],
        };
        assert_eq!(e.parse("DROP").unwrap(), [1, 0, 0, 0]);
        assert_eq!(e.parse("0").unwrap(), [0; 4]);
        assert_eq!(e.read(&[1, 0, 0, 0]), json!("DROP"));
        assert_eq!(e.read(&[7, 0, 0, 0]), json!(7));
    }

    #[test]
    fn structs_from_json_and_hex() {
        let s = Shape::Struct {
            size: 16,
            fields: vec![
                Field {
                    name: "pid".into(),
                    offset: 0,
                    shape: int(4, false),
                },
                Field {
                    name: "addr".into(),
                    offset: 4,
                    shape: Shape::Ipv4,
                },
                Field {
                    name: "n".into(),
                    offset: 8,
                    shape: int(8, true),
                },
            ],
        };
        let bytes = s
            .parse(r#"{"pid": 7, "addr": "10.0.0.1", "n": -2}"#)
            .unwrap();
        assert_eq!(
            s.read(&bytes),
            json!({"pid": 7, "addr": "10.0.0.1", "n": -2})
        );
        assert_eq!(
            s.parse(&format!("0x{}", hex::encode(&bytes))).unwrap(),
            bytes
        );
        assert!(s
            .parse(r#"{"nope": 1}"#)
            .unwrap_err()
            .contains("no field `nope`"));
        assert!(s.parse("0x00").unwrap_err().contains("16 bytes"));
    }
}
