//! Decoding of the `pgoutput` plugin's messages, protocol version 1 ("Logical Replication
//! Message Formats" in the PostgreSQL documentation): one message per row of
//! `pg_logical_slot_peek_binary_changes`. Only what lakelink uses is kept; values stay in
//! their text form for the type mapping.

/// One column value of a tuple.
#[derive(Debug, Clone, PartialEq)]
pub enum TupleValue {
    /// SQL NULL.
    Null,
    /// A TOASTed value the change left unchanged: the server did not send it.
    UnchangedToast,
    /// The value in the type's text output form.
    Text(String),
}

/// A column of a relation as the server describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct RelationColumn {
    /// The column's name.
    pub name: String,
    /// Its type's OID.
    pub type_oid: u32,
}

/// A decoded message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A transaction starts; its changes stand at `final_lsn`, the commit's LSN.
    Begin {
        /// The LSN of the transaction's commit record.
        final_lsn: i64,
    },
    /// The transaction ends.
    Commit {
        /// The LSN of the commit record (equals the Begin's `final_lsn`).
        commit_lsn: i64,
    },
    /// A table's current shape; precedes its first change in a decoding run, and follows
    /// every change of its columns.
    Relation {
        /// The relation's OID.
        oid: u32,
        /// Its schema.
        namespace: String,
        /// Its name.
        name: String,
        /// Its published columns, in the order tuples carry them.
        columns: Vec<RelationColumn>,
    },
    /// A new row.
    Insert {
        /// The relation.
        oid: u32,
        /// The new row.
        new: Vec<TupleValue>,
    },
    /// A changed row; `old` is the old row (REPLICA IDENTITY FULL) or key, when sent.
    Update {
        /// The relation.
        oid: u32,
        /// The old row or key, if the server sent it.
        old: Option<Vec<TupleValue>>,
        /// The new row.
        new: Vec<TupleValue>,
    },
    /// A removed row; `old` is the old row or its key.
    Delete {
        /// The relation.
        oid: u32,
        /// The old row or key.
        old: Vec<TupleValue>,
    },
    /// Tables were truncated.
    Truncate {
        /// The relations.
        oids: Vec<u32>,
    },
    /// Anything lakelink has no use for (origin, type, logical message).
    Other,
}

/// What is wrong with a message.
#[derive(Debug, thiserror::Error)]
#[error("malformed pgoutput message ({0})")]
pub struct DecodeError(&'static str);

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < n {
            return Err(DecodeError(what));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }

    fn i16(&mut self, what: &'static str) -> Result<i16, DecodeError> {
        let b = self.take(2, what)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        let b = self.take(4, what)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(self.i32(what)? as u32)
    }

    fn i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    /// A NUL-terminated string.
    fn string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let end = self
            .bytes
            .iter()
            .position(|&b| b == 0)
            .ok_or(DecodeError(what))?;
        let s = String::from_utf8_lossy(&self.bytes[..end]).into_owned();
        self.bytes = &self.bytes[end + 1..];
        Ok(s)
    }

    fn tuple(&mut self) -> Result<Vec<TupleValue>, DecodeError> {
        let n = self.i16("tuple width")?;
        let mut out = Vec::with_capacity(n.max(0) as usize);
        for _ in 0..n {
            out.push(match self.u8("tuple value kind")? {
                b'n' => TupleValue::Null,
                b'u' => TupleValue::UnchangedToast,
                b't' | b'b' => {
                    let len = self.i32("value length")?;
                    let bytes = self.take(len.max(0) as usize, "value")?;
                    // The server's encoding is UTF-8 for every database lakelink reads
                    // text from (checked on connect).
                    TupleValue::Text(String::from_utf8_lossy(bytes).into_owned())
                }
                _ => return Err(DecodeError("unknown tuple value kind")),
            });
        }
        Ok(out)
    }
}

/// Decodes one message.
pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    let mut r = Reader { bytes };
    Ok(match r.u8("message type")? {
        b'B' => Message::Begin {
            final_lsn: r.i64("begin lsn")?,
        },
        b'C' => {
            r.u8("commit flags")?;
            Message::Commit {
                commit_lsn: r.i64("commit lsn")?,
            }
        }
        b'R' => {
            let oid = r.u32("relation oid")?;
            let namespace = r.string("namespace")?;
            let name = r.string("relation name")?;
            r.u8("replica identity")?;
            let n = r.i16("column count")?;
            let mut columns = Vec::with_capacity(n.max(0) as usize);
            for _ in 0..n {
                r.u8("column flags")?;
                let name = r.string("column name")?;
                let type_oid = r.u32("column type")?;
                r.i32("column type modifier")?;
                columns.push(RelationColumn { name, type_oid });
            }
            Message::Relation {
                oid,
                namespace,
                name,
                columns,
            }
        }
        b'I' => {
            let oid = r.u32("relation oid")?;
            r.u8("new tuple marker")?;
            Message::Insert {
                oid,
                new: r.tuple()?,
            }
        }
        b'U' => {
            let oid = r.u32("relation oid")?;
            let (old, new) = match r.u8("tuple marker")? {
                b'K' | b'O' => {
                    let old = r.tuple()?;
                    r.u8("new tuple marker")?;
                    (Some(old), r.tuple()?)
                }
                b'N' => (None, r.tuple()?),
                _ => return Err(DecodeError("unknown update tuple marker")),
            };
            Message::Update { oid, old, new }
        }
        b'D' => {
            let oid = r.u32("relation oid")?;
            r.u8("old tuple marker")?;
            Message::Delete {
                oid,
                old: r.tuple()?,
            }
        }
        b'T' => {
            let n = r.i32("relation count")?;
            r.u8("truncate options")?;
            let mut oids = Vec::with_capacity(n.max(0) as usize);
            for _ in 0..n {
                oids.push(r.u32("relation oid")?);
            }
            Message::Truncate { oids }
        }
        _ => Message::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Messages captured from PostgreSQL 15 for `INSERT INTO a VALUES (1, 'x')`.
    #[test]
    fn decodes_messages_the_server_sent() {
        assert_eq!(
            decode(&hex("420000000001924c10000303fd71b37796000002d9")).unwrap(),
            Message::Begin {
                final_lsn: 0x1924C10
            }
        );
        assert_eq!(
            decode(&hex(
                "52000040027075626c69630061006400020169640000000017ffffffff00760000000019ffffffff"
            ))
            .unwrap(),
            Message::Relation {
                oid: 16386,
                namespace: "public".into(),
                name: "a".into(),
                columns: vec![
                    RelationColumn {
                        name: "id".into(),
                        type_oid: 23
                    },
                    RelationColumn {
                        name: "v".into(),
                        type_oid: 25
                    },
                ],
            }
        );
        assert_eq!(
            decode(&hex("49000040024e0002740000000131740000000178")).unwrap(),
            Message::Insert {
                oid: 16386,
                new: vec![TupleValue::Text("1".into()), TupleValue::Text("x".into())],
            }
        );
        assert_eq!(
            decode(&hex("43000000000001924c100000000001924c40000303fd71b37796")).unwrap(),
            Message::Commit {
                commit_lsn: 0x1924C10
            }
        );
    }

    #[test]
    fn truncated_messages_are_errors_not_panics() {
        assert!(decode(&hex("49000040024e000274000000")).is_err());
        assert!(decode(&[]).is_err());
    }
}
