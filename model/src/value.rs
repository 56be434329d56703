//! A source value, with SQLite's five storage classes as the common denominator: every
//! source maps its values onto these without loss, and the CSV encoding starts from them.

/// One value of one column of one row, exactly as the source stored it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL. Written as an empty, unquoted field (never confused with an empty string).
    Null,
    /// A 64-bit signed integer.
    Integer(i64),
    /// An IEEE 754 double, including infinities and NaN.
    Real(f64),
    /// UTF-8 text.
    Text(String),
    /// Raw bytes. Written base64.
    Blob(Vec<u8>),
}

impl Value {
    /// About how many bytes of memory the value holds (its heap bytes and the enum), for
    /// bounding buffers in bytes rather than in values.
    pub fn memory_size(&self) -> usize {
        std::mem::size_of::<Value>()
            + match self {
                Value::Text(s) => s.len(),
                Value::Blob(b) => b.len(),
                _ => 0,
            }
    }

    /// Whether this is SQL NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Exact equality that also treats two NaNs with the same bits as equal, which is what
    /// "the value round-trips" means for doubles.
    pub fn same_as(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Real(a), Value::Real(b)) => a.to_bits() == b.to_bits(),
            _ => self == other,
        }
    }
}
