//! A table as the config names it in its source: its name, and, in a source with schemas
//! (PostgreSQL), the schema it is in. Sources take this, not a `schema.name` string, so a
//! name is never split where it was not joined.

use std::fmt;

/// A configured table in its source.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableRef {
    /// The schema it is in; `None`: the source's default (PostgreSQL's `public`; SQLite has
    /// none) or, where the source looks a table up by name alone, any schema.
    pub schema: Option<String>,
    /// The table's name, as configured.
    pub name: String,
}

impl TableRef {
    /// A table named `name`, in no particular schema.
    pub fn new(name: impl Into<String>) -> TableRef {
        TableRef {
            schema: None,
            name: name.into(),
        }
    }

    /// A table named `name` in `schema` (when one is given).
    pub fn in_schema(schema: Option<String>, name: impl Into<String>) -> TableRef {
        TableRef {
            schema,
            name: name.into(),
        }
    }
}

impl From<&str> for TableRef {
    /// A table of that name in no particular schema; the text is not split at a `.`.
    fn from(name: &str) -> TableRef {
        TableRef::new(name)
    }
}

impl fmt::Display for TableRef {
    /// `schema.name`, or the name alone, for messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{schema}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_never_split() {
        let t = TableRef::from("odd.name");
        assert_eq!(t.schema, None);
        assert_eq!(t.name, "odd.name");
        let q = TableRef::in_schema(Some("sales".into()), "orders");
        assert_eq!(q.to_string(), "sales.orders");
    }
}
