//! Writing a table's change records as CSV rows in attribute order (LAKE_FORMAT §5): an image
//! row for an insert or update, and a delete record that carries the Id, the Sink columns,
//! the partition column, `versionnumber` and `IsDelete`.

use lakelink_model::FieldKind;
use lakelink_model::change::Position;
use lakelink_model::csv_row::{Record, RowWriter};
use lakelink_model::schema::{Attribute, AttributeRole, TableSchema};
use lakelink_model::value::Value;
use lakelink_model::value_codec::write_value;

/// A table's attributes, ready to encode rows.
pub struct RowLayout {
    attributes: Vec<Attribute>,
    id_kind: FieldKind,
    partition_column: Option<usize>,
    scratch: String,
}

impl RowLayout {
    /// The layout of `schema`.
    pub fn new(schema: &TableSchema) -> RowLayout {
        RowLayout {
            attributes: schema.attributes(),
            id_kind: schema.id_kind(),
            partition_column: schema.partition_column,
            scratch: String::new(),
        }
    }

    /// The attributes in row order.
    pub fn attributes(&self) -> &[Attribute] {
        &self.attributes
    }

    /// Appends the row of an inserted or updated image.
    pub fn image_row(
        &mut self,
        out: &mut Vec<u8>,
        id: &Value,
        row: &[Value],
        position: Position,
        written_at: &str,
    ) {
        self.write(out, id, position, written_at, |i| row.get(i), false);
    }

    /// Appends a delete record.
    pub fn delete_row(
        &mut self,
        out: &mut Vec<u8>,
        id: &Value,
        partition_value: &Value,
        position: Position,
        written_at: &str,
    ) {
        let partition_column = self.partition_column;
        self.write(
            out,
            id,
            position,
            written_at,
            |i| (Some(i) == partition_column).then_some(partition_value),
            true,
        );
    }

    /// Appends a delete record for a row the lake holds, read back as `row` (its fields in
    /// attribute order): its Id and partition column are written as they stand there.
    pub fn delete_row_as_read(
        &mut self,
        out: &mut Vec<u8>,
        row: &Record,
        position: Position,
        written_at: &str,
    ) {
        let mut w = RowWriter::new(out);
        for (i, a) in self.attributes.iter().enumerate() {
            let as_read = match a.role {
                AttributeRole::Id => true,
                AttributeRole::Column(c) => Some(c) == self.partition_column,
                _ => false,
            };
            match (as_read, row.get(i)) {
                (true, Some((text, quoted))) => w.field(text, quoted),
                _ => match a.role {
                    AttributeRole::SinkCreatedOn | AttributeRole::SinkModifiedOn => {
                        w.quoted(written_at)
                    }
                    AttributeRole::VersionNumber => w.raw(itoa::Buffer::new().format(position.0)),
                    AttributeRole::IsDelete => w.raw("True"),
                    _ => w.null(),
                },
            }
        }
        w.finish();
    }

    fn write<'v>(
        &mut self,
        out: &mut Vec<u8>,
        id: &Value,
        position: Position,
        written_at: &str,
        column: impl Fn(usize) -> Option<&'v Value>,
        is_delete: bool,
    ) {
        let mut w = RowWriter::new(out);
        for a in &self.attributes {
            match a.role {
                AttributeRole::Id => write_value(&mut w, id, self.id_kind, &mut self.scratch),
                AttributeRole::SinkCreatedOn | AttributeRole::SinkModifiedOn => {
                    w.quoted(written_at)
                }
                AttributeRole::Column(i) => match column(i) {
                    Some(v) => write_value(&mut w, v, a.kind, &mut self.scratch),
                    None => w.null(),
                },
                AttributeRole::VersionNumber => w.raw(itoa::Buffer::new().format(position.0)),
                AttributeRole::IsDelete => {
                    if is_delete {
                        w.raw("True");
                    } else {
                        w.null();
                    }
                }
            }
        }
        w.finish();
    }
}
