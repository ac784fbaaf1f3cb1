//! WebAssembly function types, as small as the ABI needs them.

use core::fmt;

/// A value type of the ABI's functions. Pointers and `usize` are `I32` on
/// wasm32; the ABI uses no floats and no references.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValType {
    /// `i32`.
    I32,
    /// `i64`.
    I64,
}

impl fmt::Display for ValType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValType::I32 => "i32",
            ValType::I64 => "i64",
        })
    }
}

/// A function type, printed as validators show it: `func(i32, i32) -> (i64)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature<'a> {
    /// The parameters, in order.
    pub params: &'a [ValType],
    /// The results (none or one in this ABI).
    pub results: &'a [ValType],
}

impl fmt::Display for Signature<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, types: &[ValType]| {
            for (i, t) in types.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{t}")?;
            }
            Ok(())
        };
        f.write_str("func(")?;
        list(f, self.params)?;
        f.write_str(") -> (")?;
        list(f, self.results)?;
        f.write_str(")")
    }
}
